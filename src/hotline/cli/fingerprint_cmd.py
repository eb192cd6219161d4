"""`hotline fingerprint`: this station's fingerprint, or a card's, and a peer card's beside it.

The short authentication string is not shown here: it depends on both stations' fresh values of
one pairing (docs/protocol.md §6.1), so `hotline pair` shows it, during the ceremony."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.text import Text

from hotline.cli.common import DATA_DIR_OPTION, JSON_OPTION, console, data_dir
from hotline.cli.common import peer as shown_name
from hotline.crypto.card import SignedCard, parse_card
from hotline.crypto.identity import format_fingerprint
from hotline.errors import ConfigError


def fingerprint(
    card_file: Path | None = typer.Option(
        None, "--card", help="Show the fingerprint of this card file instead of our own."
    ),
    peer: Path | None = typer.Option(
        None,
        "--peer",
        help="A peer's card (or offer) file: also show its fingerprint.",
    ),
    data: Path | None = DATA_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Print a station fingerprint, and with --peer a peer card's."""
    card = read_card(card_file) if card_file else data_dir(data).card()
    result: dict[str, str] = {"name": card.body.name, "fingerprint": card.fingerprint.hex()}
    if peer is not None:
        other = read_card(peer)
        result["peer"] = other.body.name
        result["peer_fingerprint"] = other.fingerprint.hex()
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    console.print(
        Text.assemble(shown_name(card.body.name), f": {format_fingerprint(card.fingerprint)}")
    )
    if peer is not None:
        console.print(
            Text.assemble(
                shown_name(result["peer"]),
                f": {format_fingerprint(bytes.fromhex(result['peer_fingerprint']))}",
            )
        )
        console.print(
            "The string to compare comes from the pairing itself: hotline pair --offer FILE."
        )


def read_card(path: Path) -> SignedCard:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read card file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text card file") from None
    return parse_card(text)
