"""`hotline pair`: pin a peer station, one of two ways.

hotline pair PEER.card                   compare the short authentication string, then pair
hotline pair --listen HOST:PORT          print a one-time code, wait for the other station
hotline pair --connect HOST:PORT --code CODE
"""

from __future__ import annotations

import asyncio
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
from hotline.crypto.card import SignedCard
from hotline.crypto.identity import format_fingerprint, short_authentication_string
from hotline.errors import ConfigError
from hotline.station.datadir import DataDir
from hotline.station.links import add_link
from hotline.station.pake import make_code, pair_as_dialer, pair_as_listener


def pair(
    card_file: Path | None = typer.Argument(None, help="The peer's card file (pairing by string)."),
    sas: str | None = typer.Option(
        None, "--sas", help="The string the other operator read out; checked, not asked for."
    ),
    listen: str | None = typer.Option(
        None, "--listen", help="host:port to wait on for the other station, with a one-time code."
    ),
    connect: str | None = typer.Option(
        None, "--connect", help="host:port of the listening station."
    ),
    code: str | None = typer.Option(
        None, "--code", help="The one-time code the other side read out."
    ),
    wait: float = typer.Option(600, "--wait", help="Seconds to wait for the other station.", min=1),
    data: Path | None = DATA_DIR_OPTION,
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
) -> None:
    """Pair with a peer station: by its card and the short authentication string, or by a
    one-time code over a direct connection."""
    directory = data_dir(data)
    ours = directory.card()
    if listen or connect:
        if card_file is not None or sas is not None or (listen and connect):
            raise ConfigError("pair either by a card file, or by --listen, or by --connect --code")
        peer, psk = _by_code(ours, listen, connect, code, wait)
    elif card_file is not None:
        peer, psk = _by_card(ours, read_card(card_file), sas), None
    else:
        raise ConfigError("give the peer's card file, or --listen, or --connect with --code")
    _pin(directory, peer, psk, passphrase_file)


def _show(peer: SignedCard) -> None:
    console.print(f"Peer station   {peer.body.name}")
    console.print(f"Fingerprint    {format_fingerprint(peer.fingerprint)}")
    console.print(f"Paths          {', '.join(peer.body.paths) or '(none: it will dial us)'}")


def _by_card(ours: SignedCard, peer: SignedCard, sas: str | None) -> SignedCard:
    expected = short_authentication_string(ours.identity, peer.identity)
    _show(peer)
    console.print(f"Short authentication string: [bold]{expected}[/bold]")
    if sas is not None:
        if " ".join(sas.split()) != expected:
            raise ConfigError("the string read by the other operator differs: not paired")
    elif not sys.stdin.isatty() or not typer.confirm(
        "Did the other operator read exactly this string?", default=False
    ):
        raise ConfigError("the short authentication string was not confirmed: not paired")
    return peer


def _by_code(
    ours: SignedCard, listen: str | None, connect: str | None, code: str | None, wait: float
) -> tuple[SignedCard, bytes]:
    if listen:
        code = make_code()
        console.print(f"One-time pairing code: [bold]{code}[/bold]")
        console.print(f"Read it to the other operator; waiting on {listen} ...", highlight=False)
        sys.stdout.flush()
        peer, psk = asyncio.run(pair_as_listener(listen, code, ours, wait))
    else:
        if not code:
            raise ConfigError("--connect needs the --code the other operator read out")
        assert connect is not None
        peer, psk = asyncio.run(pair_as_dialer(connect, code, ours))
    _show(peer)
    return peer, psk


def _pin(
    directory: DataDir, peer: SignedCard, psk: bytes | None, passphrase_file: Path | None
) -> None:
    identity = directory.open_keystore(read_passphrase(passphrase_file, confirm=False))
    link = add_link(directory, identity, peer, int(time.time()), psk)
    console.print(f"Paired with {peer.body.name} as link {link.name!r}.")
