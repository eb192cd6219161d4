"""`hotline card`: show this station's card, or write it to a file for the peer; `--remake` signs
it again from station.toml (this node's paths and the side's other nodes')."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.text import Text

from hotline.cli.common import (
    DATA_DIR_OPTION,
    JSON_OPTION,
    PASSPHRASE_FILE_OPTION,
    console,
    data_dir,
    peer,
    read_passphrase,
)
from hotline.crypto.card import SignedCard
from hotline.crypto.identity import format_fingerprint
from hotline.station.datadir import card_problem, write_atomically


def card_summary(card: SignedCard) -> dict[str, object]:
    return {
        "name": card.body.name,
        "fingerprint": card.fingerprint.hex(),
        "paths": card.body.paths,
        "other_nodes": card.body.nodes,
        "created": card.body.created,
        "format_version": card.body.version,
    }


def card(
    export: Path | None = typer.Option(None, "--export", "-o", help="Write the card to this file."),
    remake: bool = typer.Option(
        False,
        "--remake",
        help="Sign the card again from station.toml: [station] listen and [node] other_nodes.",
    ),
    data: Path | None = DATA_DIR_OPTION,
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Print this station's card (public keys, name, paths), or export it to a file."""
    directory = data_dir(data)
    if remake:
        identity = directory.open_keystore(read_passphrase(passphrase_file, confirm=False))
        signed = directory.remake_card(identity)
    else:
        signed = directory.card()
    problem = card_problem(directory.config(), signed)
    if export is not None:
        write_atomically(export, signed.armored().encode("utf-8"))
    if as_json:
        summary = card_summary(signed)
        summary["card"] = signed.armored()
        summary["problem"] = problem
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    console.print(Text.assemble("Station      ", peer(signed.body.name)))
    console.print(f"Fingerprint  {format_fingerprint(signed.fingerprint)}")
    console.print(f"Paths        {', '.join(signed.body.paths) or '(none)'}")
    for node in signed.body.nodes:
        console.print(f"Other node   {', '.join(node)}", markup=False)
    if remake:
        console.print(
            f"Card made again in {directory.card_file}: copy it to the side's other nodes, and "
            "send it to the peer (hotline pair --update CARD there).",
            markup=False,
        )
    if problem is not None:
        console.print(Text.assemble(("Warning: ", "yellow"), problem))
    if export is not None:
        console.print(f"Card written to {export}")
    else:
        console.print()
        console.print(signed.armored(), end="", soft_wrap=True)
