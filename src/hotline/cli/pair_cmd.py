"""`hotline pair`: pin a peer station, one of two ways (docs/protocol.md §6).

By card files, in three steps on each side (files travel by any means; the string is compared
over a channel where the operators know each other's voices):

hotline pair --offer OURS.offer                        1. our card, committed to a fresh value
hotline pair THEIRS.offer --reveal-to OURS.reveal      2. with their offer: our value, revealed
hotline pair THEIRS.offer --reveal THEIRS.reveal       3. with their value: compare the string

By a one-time code, over a direct connection:

hotline pair --listen HOST:PORT                        print a one-time code, wait for the other
hotline pair --connect HOST:PORT --code CODE

And once paired, a newer card of the same peer (its side's nodes changed):

hotline pair --update THEIRS.card                      checked against the pinned keys
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import typer
from rich.text import Text

from hotline.cli.common import (
    DATA_DIR_OPTION,
    PASSPHRASE_FILE_OPTION,
    console,
    data_dir,
    read_passphrase,
)
from hotline.cli.common import peer as shown_name
from hotline.crypto.card import SignedCard, parse_card
from hotline.crypto.identity import format_fingerprint
from hotline.errors import CardError, ConfigError
from hotline.station import offers
from hotline.station.datadir import DataDir, write_atomically
from hotline.station.links import add_link, update_link
from hotline.station.pake import make_code, pair_as_dialer, pair_as_listener


def pair(
    offer_file: Path | None = typer.Argument(
        None, help="The peer's offer file (pairing by card files)."
    ),
    offer: Path | None = typer.Option(
        None, "--offer", help="Write this station's offer (its card and a commitment) here."
    ),
    reveal_to: Path | None = typer.Option(
        None, "--reveal-to", help="Write this station's reveal for the peer's offer here."
    ),
    reveal: Path | None = typer.Option(
        None, "--reveal", help="The peer's reveal: check it and show the string to compare."
    ),
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
    update: Path | None = typer.Option(
        None, "--update", help="A newer card of a paired peer: put it in place of the one held."
    ),
    data: Path | None = DATA_DIR_OPTION,
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
) -> None:
    """Pair with a peer station: by card files (an offer, a reveal, then the short
    authentication string), or by a one-time code over a direct connection."""
    directory = data_dir(data)
    by_files = any(x is not None for x in (offer_file, reveal_to, reveal, sas))
    if update is not None:
        if by_files or offer is not None or listen or connect:
            raise ConfigError("--update replaces a paired peer's card: give it alone")
        _update(directory, update)
    elif listen or connect:
        if by_files or offer is not None or (listen and connect):
            raise ConfigError("pair either by card files, or by --listen, or by --connect --code")
        peer, psk = _by_code(directory.card(), listen, connect, code, wait)
        _pin(directory, peer, psk, passphrase_file)
    elif offer is not None:
        if by_files:
            raise ConfigError("--offer starts a pairing by card files: give it alone")
        _offer(directory, offer)
    elif offer_file is not None and (reveal_to is not None or reveal is not None):
        confirmed = _by_files(directory, _read(offer_file), reveal_to, reveal, sas)
        if confirmed is not None:
            _pin(directory, confirmed, None, passphrase_file)
            offers.finish(directory)
    else:
        raise ConfigError(
            "give --offer FILE, or the peer's offer with --reveal-to FILE and then --reveal FILE, "
            "or --listen, or --connect with --code"
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file") from None


def _offer(directory: DataDir, path: Path) -> None:
    write_atomically(path, offers.make_offer(directory, int(time.time())).encode())
    console.print(f"This station's offer is in {path}: send it to the other side.", markup=False)
    console.print("When theirs arrives: hotline pair THEIRS.offer --reveal-to OURS.reveal")


def _by_files(
    directory: DataDir,
    peer_offer: str,
    reveal_to: Path | None,
    reveal: Path | None,
    sas: str | None,
) -> SignedCard | None:
    """Step 2 (our reveal) and/or step 3 (theirs, and the string): the card to pin, once the
    operators confirmed the string; None after step 2 alone."""
    if reveal_to is not None:
        peer, ours = offers.reveal(directory, peer_offer)
        write_atomically(reveal_to, ours.encode())
        _show(peer)
        console.print(f"This station's reveal is in {reveal_to}: send it.", markup=False)
        if reveal is None:
            console.print("When theirs arrives: hotline pair THEIRS.offer --reveal THEIRS.reveal")
            return None
    assert reveal is not None
    peer, expected = offers.compare(directory, peer_offer, _read(reveal))
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


def _show(peer: SignedCard) -> None:
    console.print(Text.assemble("Peer station   ", shown_name(peer.body.name)))
    console.print(f"Fingerprint    {format_fingerprint(peer.fingerprint)}")
    paths = ", ".join(peer.body.paths) or "(none: it will dial us)"
    console.print(Text.assemble("Paths          ", shown_name(paths)))
    for node in peer.body.nodes:  # a side on several machines: each other node's paths
        console.print(Text.assemble("Other node     ", shown_name(", ".join(node))))


def _update(directory: DataDir, path: Path) -> None:
    try:
        card = parse_card(_read(path))
    except CardError as exc:
        raise CardError(f"{path}: {exc}") from None
    name, changes = update_link(directory, card)
    _show(card)
    if not changes:
        console.print(Text.assemble("Link '", shown_name(name), "' already holds this card."))
        return
    for change in changes:
        console.print(Text.assemble("  ", shown_name(change)))
    console.print(
        Text.assemble(
            "Link '",
            shown_name(name),
            "' holds the new card: restart the station "
            "(hotline serve) for it to dial the addresses it lists.",
        )
    )


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
    console.print(
        Text.assemble(
            "Paired with ", shown_name(peer.body.name), " as link '", shown_name(link.name), "'."
        )
    )
