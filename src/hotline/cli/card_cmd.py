"""`hotline card`: show this station's card, or write it to a file for the peer."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.text import Text

from hotline.cli.common import DATA_DIR_OPTION, JSON_OPTION, console, data_dir, peer
from hotline.crypto.card import SignedCard
from hotline.crypto.identity import format_fingerprint
from hotline.station.datadir import write_atomically


def card_summary(card: SignedCard) -> dict[str, object]:
    return {
        "name": card.body.name,
        "fingerprint": card.fingerprint.hex(),
        "paths": card.body.paths,
        "created": card.body.created,
        "format_version": card.body.version,
    }


def card(
    export: Path | None = typer.Option(None, "--export", "-o", help="Write the card to this file."),
    data: Path | None = DATA_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Print this station's card (public keys, name, paths), or export it to a file."""
    signed = data_dir(data).card()
    if export is not None:
        write_atomically(export, signed.armored().encode("utf-8"))
    if as_json:
        summary = card_summary(signed)
        summary["card"] = signed.armored()
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    console.print(Text.assemble("Station      ", peer(signed.body.name)))
    console.print(f"Fingerprint  {format_fingerprint(signed.fingerprint)}")
    console.print(f"Paths        {', '.join(signed.body.paths) or '(none)'}")
    if export is not None:
        console.print(f"Card written to {export}")
    else:
        console.print()
        console.print(signed.armored(), end="", soft_wrap=True)
