"""`hotline demo`: two stations, London and Moscow, made and paired, talking over a PQ session.

For now the demo runs the crypto core end to end in one process: it creates both stations on
disk, exchanges their cards, shows the string the operators would compare, opens both keystores,
runs the hotline handshake and carries a greeting each way in its own language.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path

import typer

from hotline.cli.common import console
from hotline.crypto.card import SignedCard, parse_card
from hotline.crypto.identity import StationIdentity, format_fingerprint, short_authentication_string
from hotline.crypto.session import PROTOCOL_NAME, Initiator, LinkKeys, Responder, link_id_for
from hotline.errors import ConfigError
from hotline.station.datadir import DataDir, write_atomically

STATIONS = (
    ("London", ["127.0.0.1:7101", "127.0.0.1:7102"]),
    ("Moscow", ["127.0.0.1:7201", "127.0.0.1:7202"]),
)
GREETINGS = {
    "London": "Moscow, this is London. Link test: all paths up. Please acknowledge.",
    "Moscow": "Лондон, говорит Москва. Проверка связи: сообщение получено, подтверждаем.",
}


def demo(
    directory: Path | None = typer.Option(
        None, "--dir", help="Where to create the two stations [default: a new temporary directory]."
    ),
) -> None:
    """Create two stations, London and Moscow, pair them and exchange greetings."""
    root = directory or Path(tempfile.mkdtemp(prefix="hotline-demo-"))
    if directory is not None and directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} is not empty; give a new directory for the demo")
    console.print(f"[bold]Hotline demo[/bold] in {root}\n")
    stations = {name: _make_station(root, name, paths) for name, paths in STATIONS}
    cards = {name: _exchange_card(root, name) for name in stations}
    london, moscow = (stations[n][1] for n in ("London", "Moscow"))
    sas = short_authentication_string(london.public, moscow.public)
    console.print(f"\nBoth operators read aloud: [bold]{sas}[/bold]")
    console.print("(the same string on both sides, so the cards were not swapped on the way)\n")
    _talk(london, moscow, cards)


def _make_station(root: Path, name: str, paths: list[str]) -> tuple[DataDir, StationIdentity]:
    data = DataDir(root / name.lower())
    passphrase_file = root / f"{name.lower()}.passphrase"
    passphrase = secrets.token_urlsafe(24).encode()
    root.mkdir(parents=True, exist_ok=True)
    write_atomically(passphrase_file, passphrase + b"\n", mode=0o600)
    card = data.init(name, passphrase, paths)
    identity = data.open_keystore(passphrase)
    console.print(f"Station {name:<7} {format_fingerprint(card.fingerprint)}")
    console.print(f"                data {data.path}, passphrase in {passphrase_file}")
    return data, identity


def _exchange_card(root: Path, name: str) -> SignedCard:
    """Each side reads the other's card file, as an operator would after receiving it."""
    card = parse_card((root / name.lower() / "card.hotline").read_text(encoding="utf-8"))
    paths = ", ".join(card.body.paths)
    console.print(f"Card of {name} verified: self-signed with Ed25519 + ML-DSA-65, paths {paths}")
    return card


def _talk(london: StationIdentity, moscow: StationIdentity, cards: dict[str, SignedCard]) -> None:
    link_id = link_id_for(london.public, moscow.public)
    psk = secrets.token_bytes(32)  # the pairing ceremony's secret; the PAKE ceremony comes next
    initiator = Initiator(
        LinkKeys(link_id, london.dh_seed, cards["Moscow"].body.dh, psk), rng=secrets.token_bytes
    )
    responder = Responder(
        LinkKeys(link_id, moscow.dh_seed, cards["London"].body.dh, psk), rng=secrets.token_bytes
    )
    started = time.perf_counter()
    message1 = initiator.start(time.time_ns())
    at_moscow, message2 = responder.respond(message1, time.time_ns())
    at_london = initiator.finish(message2, time.time_ns())
    elapsed_ms = (time.perf_counter() - started) * 1000
    console.print(f"Handshake {PROTOCOL_NAME}")
    session_id = at_london.session.handshake_hash.hex()[:16]
    sizes = f"{len(message1)} + {len(message2)} bytes"
    console.print(f"  {sizes}, {elapsed_ms:.1f} ms, session {session_id}…")
    assert at_london.session.handshake_hash == at_moscow.session.handshake_hash
    for sender, receiver, text in (
        (at_london.session, at_moscow.session, GREETINGS["London"]),
        (at_moscow.session, at_london.session, GREETINGS["Moscow"]),
    ):
        sealed = sender.seal(text.encode("utf-8"))
        opened = receiver.open(sealed).decode("utf-8")
        who = "London → Moscow" if sender is at_london.session else "Moscow → London"
        console.print(f"\n{who} ({len(sealed)} bytes on the wire):\n  {opened}")
