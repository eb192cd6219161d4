"""Pairing, both ways: by a one-time code (SPAKE2 over a direct connection), through the real
command and against a listener played by hand (one guess per ceremony, nothing checkable before
the dialer's proof, pinned only what the dialer confirms); and by card files with offers, reveals
and the short authentication string. A wrong code, a changed card or a refused confirmation
leaves no link behind."""

from __future__ import annotations

import asyncio
import os
import re
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from spake2 import SPAKE2_B

from hotline.crypto.card import SignedCard, make_card, parse_card
from hotline.crypto.identity import StationIdentity, sas_commitment
from hotline.crypto.offer import format_offer, format_reveal, open_reveal, parse_offer
from hotline.crypto.pairing import card_pairing_keys, pake_confirmation, pake_keys
from hotline.errors import CardError, HandshakeError
from hotline.station import pake
from hotline.station.datadir import DataDir
from hotline.station.launch import StationProcess, free_ports
from hotline.station.links import Link, load_links

PASSPHRASE = "pairing test passphrase"


def _hotline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def two(tmp_path: Path) -> tuple[DataDir, DataDir, Path]:
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(PASSPHRASE + "\n")
    ports = free_ports(6)
    dirs = []
    for name, (path_port, api_port, console_port) in (
        ("Alpha", ports[0:3]),
        ("Bravo", ports[3:6]),
    ):
        data = DataDir(tmp_path / name.lower())
        data.init(
            name,
            PASSPHRASE.encode(),
            [f"127.0.0.1:{path_port}"],
            api=f"127.0.0.1:{api_port}",
            console=f"127.0.0.1:{console_port}",
        )
        dirs.append(data)
    return dirs[0], dirs[1], passphrase


def _links(data: DataDir) -> list[Link]:
    return load_links(data, data.open_keystore(PASSPHRASE.encode()))


def _pair_by_code(
    a: DataDir, b: DataDir, passphrase: Path, wrong_code: bool = False
) -> tuple[str, str]:
    address = f"127.0.0.1:{free_ports(1)[0]}"
    listener = subprocess.Popen(
        [sys.executable, "-m", "hotline", "pair", "-d", str(a.path), "--listen", address,
         "--wait", "30", "--passphrase-file", str(passphrase)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert listener.stdout is not None
    code = re.search(r"\d{5}-\d{5}", listener.stdout.readline())
    assert code is not None
    listener.stdout.readline()  # "waiting on ..."
    given = "00000-00000" if wrong_code else code.group(0)
    dialer = _hotline("pair", "-d", str(b.path), "--connect", address, "--code", given,
                      "--passphrase-file", str(passphrase))  # fmt: skip
    out, err = listener.communicate(timeout=60)
    return dialer.stdout + dialer.stderr, out + err


def test_pairing_by_code_pins_both_sides_with_a_shared_secret(
    two: tuple[DataDir, DataDir, Path],
) -> None:
    a, b, passphrase = two
    dialer_output, listener_output = _pair_by_code(a, b, passphrase)
    assert "Paired with Alpha as link 'alpha'." in dialer_output
    assert "Paired with Bravo as link 'bravo'." in listener_output
    (at_a,), (at_b,) = _links(a), _links(b)
    assert at_a.keys.link_id == at_b.keys.link_id
    assert at_a.keys.psk == at_b.keys.psk
    identity = a.open_keystore(PASSPHRASE.encode())
    assert at_a.keys.psk != card_pairing_keys(identity, at_a.peer_card.identity).psk
    assert (a.path / "links" / "bravo" / "psk.sealed").stat().st_mode & 0o777 == 0o600
    assert at_a.keys.psk not in (a.path / "links" / "bravo" / "psk.sealed").read_bytes()
    # The PSK from the code opens real sessions between the two stations.
    stations = [
        StationProcess(d.card().body.name, d, passphrase, d.path.parent / f"{d.path.name}.log")
        for d in (a, b)
    ]
    try:
        for station in stations:
            station.start()
        deadline = time.monotonic() + 30
        while stations[0].call("GET", "/api/v1/status")["links"][0]["state"] != "UP":
            assert time.monotonic() < deadline, "the stations paired by code did not connect"
            time.sleep(0.1)
        stations[0].call("POST", "/api/v1/links/bravo/messages", {"text": "paired by code"})
        deadline = time.monotonic() + 30
        while not stations[1].call("GET", "/api/v1/links/alpha/inbox"):
            assert time.monotonic() < deadline, "the message did not arrive"
            time.sleep(0.1)
    finally:
        for station in stations:
            station.close()


def test_a_wrong_code_pairs_nothing(two: tuple[DataDir, DataDir, Path]) -> None:
    a, b, passphrase = two
    dialer_output, listener_output = _pair_by_code(a, b, passphrase, wrong_code=True)
    assert "the codes differ (or someone interfered): not paired" in dialer_output
    assert "the codes differ (or someone interfered): not paired" in listener_output
    assert not (a.path / "links").exists()
    assert not (b.path / "links").exists()


def _pair(data: DataDir, passphrase: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _hotline("pair", "-d", str(data.path), "--passphrase-file", str(passphrase), *args)


def _string(output: str) -> str:
    found = re.search(r"Short authentication string: ((?:\d{5} ){7}\d{5})", output)
    assert found is not None, output
    return found.group(1)


def test_pairing_by_card_files_commits_reveals_then_checks_the_string(
    two: tuple[DataDir, DataDir, Path], tmp_path: Path
) -> None:
    a, b, passphrase = two
    files = {name: tmp_path / name for name in ("a.offer", "b.offer", "a.reveal", "b.reveal")}
    # 1. Offers: each card with a commitment to a fresh value. A plain card is not an offer.
    for data, offer in ((a, "a.offer"), (b, "b.offer")):
        assert _pair(data, passphrase, "--offer", str(files[offer])).returncode == 0
    plain = _pair(a, passphrase, str(b.card_file), "--reveal-to", str(files["a.reveal"]))
    assert plain.returncode == 4
    assert "carries no commitment" in plain.stderr
    own = _pair(a, passphrase, str(files["a.offer"]), "--reveal-to", str(files["a.reveal"]))
    assert "this station's own offer" in own.stderr
    changed = tmp_path / "changed.offer"
    changed.write_text(files["b.offer"].read_text().replace("Name: Bravo", "Name: Mallory"))
    assert _pair(a, passphrase, str(changed), "--reveal-to", str(files["a.reveal"])).returncode == 4
    assert not files["a.reveal"].exists()  # nothing revealed for an offer that is not valid
    # 2. Reveals, each once the other's offer is held: a value is revealed for one offer only.
    for data, theirs, ours in ((a, "b.offer", "a.reveal"), (b, "a.offer", "b.reveal")):
        done = _pair(data, passphrase, str(files[theirs]), "--reveal-to", str(files[ours]))
        assert done.returncode == 0, done.stderr
    other = tmp_path / "other.offer"
    commitment = re.compile(r"Commitment: [0-9a-f]{64}")
    other.write_text(commitment.sub("Commitment: " + "ab" * 32, files["b.offer"].read_text()))
    again = _pair(a, passphrase, str(other), "--reveal-to", str(tmp_path / "again.reveal"))
    assert again.returncode == 2
    assert "already revealed for another offer" in again.stderr
    # 3. A reveal that does not open its commitment is refused; then the string, the same on
    # both sides, and it must be confirmed.
    forged = tmp_path / "forged.reveal"
    forged.write_text(re.sub(r"Nonce: \w+", "Nonce: " + "cd" * 32, files["b.reveal"].read_text()))
    opened = _pair(a, passphrase, str(files["b.offer"]), "--reveal", str(forged), "--sas", "1")
    assert opened.returncode == 4
    assert "does not open the commitment" in opened.stderr
    check = ("--reveal", str(files["b.reveal"]))
    wrong = _pair(a, passphrase, str(files["b.offer"]), *check, "--sas", "12345 12345")
    assert wrong.returncode == 2
    assert "the string read by the other operator differs: not paired" in wrong.stderr
    unconfirmed = _pair(a, passphrase, str(files["b.offer"]), *check)
    assert unconfirmed.returncode == 2
    assert "was not confirmed: not paired" in unconfirmed.stderr
    at_b = _pair(b, passphrase, str(files["a.offer"]), "--reveal", str(files["a.reveal"]))
    sas = _string(unconfirmed.stdout)
    assert _string(at_b.stdout) == sas
    assert not (a.path / "links").exists()
    done = _pair(a, passphrase, str(files["b.offer"]), *check, "--sas", sas)
    assert done.returncode == 0, done.stderr
    assert [link.name for link in _links(a)] == ["bravo"]
    assert not (a.path / "pairing-offer.json").exists()  # the value is never used again


def test_each_ceremony_by_card_files_gives_another_string(
    two: tuple[DataDir, DataDir, Path], tmp_path: Path
) -> None:
    # The string is not a function of the two cards (which a man in the middle could search
    # over in advance): it changes with each ceremony's fresh values.
    a, b, passphrase = two
    strings = []
    for run in range(2):
        offer = {d: tmp_path / f"{run}-{d.path.name}.offer" for d in (a, b)}
        reveal = {d: tmp_path / f"{run}-{d.path.name}.reveal" for d in (a, b)}
        for data in (a, b):
            assert _pair(data, passphrase, "--offer", str(offer[data])).returncode == 0
        for data, peer in ((a, b), (b, a)):
            args = (str(offer[peer]), "--reveal-to", str(reveal[data]))
            assert _pair(data, passphrase, *args).returncode == 0
        shown = _pair(a, passphrase, str(offer[b]), "--reveal", str(reveal[b]))
        strings.append(_string(shown.stdout))
    assert strings[0] != strings[1]


def test_offers_and_reveals_read_back_and_refuse_what_is_ambiguous_or_foreign() -> None:
    identity = StationIdentity.from_random(os.urandom(96))
    card, value = make_card(identity, "Alpha", [], 1_800_000_000), os.urandom(32)
    commitment = sas_commitment(identity.public, value)
    offer = format_offer(card, commitment)
    assert parse_card(offer) == card  # an offer is a card file too
    assert parse_offer(offer) == (card, commitment)
    twice = offer.replace("Commitment:", f"Commitment: {commitment.hex()}\nCommitment:")
    with pytest.raises(CardError, match="2 times"):
        parse_offer(twice)
    reveal = format_reveal(identity.public, value)
    assert open_reveal(card, commitment, reveal) == value
    with pytest.raises(CardError, match="another station"):
        open_reveal(_card("Bravo"), commitment, reveal)
    with pytest.raises(CardError, match="does not open"):
        open_reveal(card, commitment, format_reveal(identity.public, os.urandom(32)))


# -- the code ceremony against a dialer played by hand (docs/protocol.md §6.2) -----------------

CODE = "12345-67890"
IDS = {"idA": b"hotline pairing listener", "idB": b"hotline pairing dialer"}


def _card(name: str) -> SignedCard:
    return make_card(StationIdentity.from_random(os.urandom(96)), name, [], 1_800_000_000)


class _Hand:
    """A dialer written from the document: SPAKE2 with a code of our choice, then any message."""

    opened: ClassVar[list[asyncio.StreamWriter]] = []  # closed after each test

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.opened.append(writer)

    @classmethod
    async def spake(cls, address: str, code: str) -> tuple[_Hand, bytes]:
        """Messages 1 and 2: the connection and the SPAKE2 key for `code`."""
        host, _, port = address.rpartition(":")
        hand = cls(*await asyncio.open_connection(host, int(port)))
        spake = SPAKE2_B(code.replace("-", "").encode(), **IDS)
        hand.send(pake.VERSION + spake.start())
        reply = await hand.receive()
        assert reply[:1] == pake.VERSION
        return hand, spake.finish(reply[1:])

    def send(self, message: bytes) -> None:
        self.writer.write(struct.pack(">I", len(message)) + message)

    async def receive(self) -> bytes:
        (length,) = struct.unpack(">I", await self.reader.readexactly(4))
        return await self.reader.readexactly(length)

    async def rest(self) -> bytes:
        """Everything the listener sends until it closes."""
        return await asyncio.wait_for(self.reader.read(), 10)


def _sealed(key: bytes, card: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, card, b"card")


Listening = asyncio.Task[tuple[SignedCard, bytes]]


def _with_listener(test: Callable[[str, Listening], Awaitable[None]]) -> None:
    async def run() -> None:
        address = f"127.0.0.1:{free_ports(1)[0]}"
        listener = asyncio.create_task(pake.pair_as_listener(address, CODE, _card("Alpha"), 30))
        await asyncio.sleep(0.2)  # listening
        try:
            await test(address, listener)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            while _Hand.opened:
                _Hand.opened.pop().close()
            await asyncio.sleep(0.2)  # the transports close their sockets

    asyncio.run(run())


def test_the_listener_sends_nothing_checkable_before_the_dialer_proves_the_code() -> None:
    async def test(address: str, listener: Listening) -> None:
        # A guess that stops after the SPAKE2 messages: it gets nothing it could check offline.
        guess, _key = await _Hand.spake(address, "00000-00001")
        guess.writer.write_eof()
        assert await guess.rest() == b""
        # It spent no guess: the ceremony goes on, and the other station pairs.
        bravo = _card("Bravo")
        peer, psk = await pake.pair_as_dialer(address, CODE, bravo)
        assert peer.body.name == "Alpha"
        assert await listener == (bravo, psk)

    _with_listener(test)


def test_one_failed_proof_ends_the_ceremony_for_every_connection() -> None:
    async def test(address: str, listener: Listening) -> None:
        guesses = [await _Hand.spake(address, f"00000-0000{i}") for i in range(3)]
        first, key = guesses[0]
        first.send(_sealed(pake_keys(key).dialer_card, _card("Mallory").to_bytes()))
        with pytest.raises(HandshakeError, match="codes differ"):
            await listener
        for hand, _key in guesses:  # closed, and none got a sealed card to check a guess on
            assert await hand.rest() == b""
        with pytest.raises(HandshakeError, match="cannot reach"):  # over: not one more guess
            await pake.pair_as_dialer(address, CODE, _card("Bravo"))

    _with_listener(test)


@pytest.mark.parametrize("confirmation", ["another card", "none"])
def test_the_listener_pins_only_what_the_dialer_confirms(confirmation: str) -> None:
    async def test(address: str, listener: Listening) -> None:
        hand, key = await _Hand.spake(address, CODE)  # it knows the code
        keys, bravo = pake_keys(key), _card("Bravo").to_bytes()
        hand.send(_sealed(keys.dialer_card, bravo))
        sealed = await hand.receive()
        alpha = ChaCha20Poly1305(keys.listener_card).decrypt(sealed[:12], sealed[12:], b"card")
        if confirmation == "another card":
            hand.send(pake_confirmation(keys, _card("Alpha").to_bytes(), bravo))
        else:
            hand.writer.close()
        with pytest.raises(HandshakeError, match="did not confirm the cards it pinned"):
            await listener
        assert pake_confirmation(keys, alpha, bravo) != pake_confirmation(
            keys, _card("Alpha").to_bytes(), bravo
        )

    _with_listener(test)
