"""`hotline pair`: pair with a peer station from its card file, after both operators have read
the short authentication string to each other."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from hotline.cli.common import (
    DATA_DIR_OPTION,
    PASSPHRASE_FILE_OPTION,
    console,
    data_dir,
    read_passphrase,
)
from hotline.cli.fingerprint_cmd import read_card
from hotline.crypto.identity import format_fingerprint, short_authentication_string
from hotline.errors import ConfigError
from hotline.station.links import add_link


def pair(
    card_file: Path = typer.Argument(..., help="The peer station's card file."),
    sas: str | None = typer.Option(
        None, "--sas", help="The string the other operator read out; checked, not asked for."
    ),
    data: Path | None = DATA_DIR_OPTION,
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
) -> None:
    """Pair with a peer: compare the short authentication string, then pin its keys."""
    directory = data_dir(data)
    ours, peer = directory.card(), read_card(card_file)
    expected = short_authentication_string(ours.identity, peer.identity)
    console.print(f"Peer station   {peer.body.name}")
    console.print(f"Fingerprint    {format_fingerprint(peer.fingerprint)}")
    console.print(f"Paths          {', '.join(peer.body.paths) or '(none: it will dial us)'}")
    console.print(f"Short authentication string: [bold]{expected}[/bold]")
    if sas is not None:
        if " ".join(sas.split()) != expected:
            raise ConfigError("the string read by the other operator differs: not paired")
    elif not sys.stdin.isatty() or not typer.confirm(
        "Did the other operator read exactly this string?", default=False
    ):
        raise ConfigError("the short authentication string was not confirmed: not paired")
    identity = directory.open_keystore(read_passphrase(passphrase_file, confirm=False))
    link = add_link(directory, identity, peer, int(time.time()))
    console.print(f"Paired with {peer.body.name} as link {link.name!r}.")
