"""Pairing by a one-time code (docs/protocol.md §6.2): one operator runs `hotline pair --listen`,
reads the code it prints to the other over another channel (a phone call), and the other runs
`hotline pair --connect`.

Over a direct TCP connection the two stations run SPAKE2 with the code as password; its key
seals each side's card (ChaCha20-Poly1305, a key per direction) and yields the link's PSK.

    1 dialer -> listener   version 2 || SPAKE2 message (side B)
    2 listener -> dialer   version 2 || SPAKE2 message (side A)
    3 dialer -> listener   nonce (12) || its sealed card: the proof that it knows the code
    4 listener -> dialer   nonce (12) || its sealed card, only once message 3 opened
    5 dialer -> listener   HMAC over both cards: what the dialer pinned

Someone guessing gets one guess per ceremony: the listener sends nothing that depends on the key
before a message 3 opened, and the first message 3 that does not open ends the ceremony, for
every connection. A connection that ends before its message 3 spent no guess, so the ceremony
goes on (strangers holding connections open cannot keep the other station out). Nothing is
written before message 5 checked.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from spake2 import SPAKE2_A, SPAKE2_B

from hotline.crypto.card import SignedCard, card_from_bytes
from hotline.crypto.pairing import pake_confirmation, pake_keys, pake_psk
from hotline.crypto.session import link_id_for
from hotline.errors import CardError, HandshakeError, ProtocolError
from hotline.station.wire import read_message, write_message

__all__ = ["CODE_DIGITS", "make_code", "pair_as_dialer", "pair_as_listener"]

CODE_DIGITS = 10  # one guess per ceremony: a 1 in 10^10 chance for an attacker
VERSION = b"\x02"  # 1: both sealed cards sent at once, no confirmation
IDS = {"idA": b"hotline pairing listener", "idB": b"hotline pairing dialer"}
EXCHANGE_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 8  # open at once on a listener; more are closed unanswered
DIFFER = "the codes differ (or someone interfered): not paired"
UNCONFIRMED = "the other station did not confirm the cards it pinned: not paired"
_BROKEN = (OSError, TimeoutError, asyncio.IncompleteReadError, ProtocolError)


def make_code() -> str:
    digits = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    return f"{digits[:5]}-{digits[5:]}"


def _password(code: str) -> bytes:
    digits = "".join(c for c in code if c.isdigit())
    if len(digits) != CODE_DIGITS:
        raise HandshakeError(f"a pairing code has {CODE_DIGITS} digits")
    return digits.encode()


def _seal(key: bytes, card: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, card, b"card")


def _open(key: bytes, sealed: bytes) -> bytes:
    """The card bytes; InvalidTag if they were not sealed under `key` (another code)."""
    if len(sealed) < 12 + 16:
        raise InvalidTag
    return ChaCha20Poly1305(key).decrypt(sealed[:12], sealed[12:], b"card")


@dataclass
class _Ceremony:
    """One `--listen`: its outcome, who owns it once a proof opened, the connections open."""

    done: asyncio.Future[tuple[SignedCard, bytes]]
    owner: asyncio.StreamWriter | None = None
    open: set[asyncio.StreamWriter] = field(default_factory=set)

    def end(self, result: tuple[SignedCard, bytes] | HandshakeError) -> None:
        if not self.done.done():
            if isinstance(result, HandshakeError):
                self.done.set_exception(result)
            else:
                self.done.set_result(result)
        self.close_all()

    def close_all(self) -> None:
        for writer in self.open:  # the others: their messages 3 are never checked
            writer.close()


async def _as_listener(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, password: bytes,
    ours: SignedCard, ceremony: _Ceremony,
) -> None:  # fmt: skip
    first = await read_message(reader)
    if first[:1] != VERSION:
        return  # another version, or not a station: nothing was sent, nothing spent
    spake = SPAKE2_A(password, **IDS)
    outbound = spake.start()
    try:
        key = spake.finish(first[1:])
    except Exception:  # the library raises several kinds for a bad message
        return
    write_message(writer, VERSION + outbound)  # depends on the code, checkable by no one
    keys = pake_keys(key)
    proof = await read_message(reader)
    if ceremony.done.done() or ceremony.owner is not None:
        return  # another connection's proof came first: this one is never checked
    try:
        dialer_card = _open(keys.dialer_card, proof)
    except InvalidTag:
        ceremony.end(HandshakeError(DIFFER))  # the one guess of this ceremony, spent
        return
    ceremony.owner = writer
    try:
        peer = card_from_bytes(dialer_card)
    except CardError as exc:
        ceremony.end(HandshakeError(f"the other station's card is not valid: {exc}"))
        return
    listener_card = ours.to_bytes()
    write_message(writer, _seal(keys.listener_card, listener_card))
    confirmation = await read_message(reader)
    if not hmac.compare_digest(confirmation, pake_confirmation(keys, listener_card, dialer_card)):
        ceremony.end(HandshakeError(UNCONFIRMED))
        return
    ceremony.end((peer, pake_psk(key, link_id_for(ours.identity, peer.identity))))


async def pair_as_listener(
    address: str, code: str, ours: SignedCard, wait_s: float
) -> tuple[SignedCard, bytes]:
    """Wait for the other station on `address`; return its card and the PSK."""
    host, _, port = address.rpartition(":")
    password = _password(code)
    ceremony = _Ceremony(asyncio.get_running_loop().create_future())

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if ceremony.done.done() or len(ceremony.open) >= MAX_CONNECTIONS:
            writer.close()
            return
        ceremony.open.add(writer)
        try:
            await asyncio.wait_for(
                _as_listener(reader, writer, password, ours, ceremony), EXCHANGE_TIMEOUT_S
            )
        except _BROKEN:
            if ceremony.owner is writer:  # it proved the code, then went: end, unpinned
                ceremony.end(HandshakeError(UNCONFIRMED))
        finally:
            ceremony.open.discard(writer)
            writer.close()

    server = await asyncio.start_server(one, host.strip("[]"), int(port))
    try:
        return await asyncio.wait_for(asyncio.shield(ceremony.done), wait_s)
    except TimeoutError:
        raise HandshakeError(f"no station paired within {wait_s:.0f} s") from None
    finally:
        server.close()
        ceremony.done.cancel()  # if it had not ended: no connection may finish it now
        ceremony.close_all()


async def _as_dialer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, code: str, ours: SignedCard
) -> tuple[SignedCard, bytes]:
    spake = SPAKE2_B(_password(code), **IDS)
    write_message(writer, VERSION + spake.start())
    theirs = await read_message(reader)
    if theirs[:1] != VERSION:
        raise HandshakeError("the other side speaks another pairing version")
    try:
        key = spake.finish(theirs[1:])
    except Exception as exc:  # the library raises several kinds
        raise HandshakeError(f"the pairing exchange failed: {exc}") from None
    keys = pake_keys(key)
    dialer_card = ours.to_bytes()
    write_message(writer, _seal(keys.dialer_card, dialer_card))
    try:
        sealed = await read_message(reader)  # the listener closes instead if our proof failed
        listener_card = _open(keys.listener_card, sealed)
    except (asyncio.IncompleteReadError, InvalidTag):
        raise HandshakeError(DIFFER) from None
    try:
        peer = card_from_bytes(listener_card)
    except CardError as exc:
        raise HandshakeError(f"the other station's card is not valid: {exc}") from None
    write_message(writer, pake_confirmation(keys, listener_card, dialer_card))
    await writer.drain()
    return peer, pake_psk(key, link_id_for(ours.identity, peer.identity))


async def pair_as_dialer(address: str, code: str, ours: SignedCard) -> tuple[SignedCard, bytes]:
    host, _, port = address.rpartition(":")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port)), 10
        )
    except (OSError, TimeoutError) as exc:
        raise HandshakeError(f"cannot reach the other station at {address}: {exc}") from None
    try:
        return await asyncio.wait_for(_as_dialer(reader, writer, code, ours), EXCHANGE_TIMEOUT_S)
    except _BROKEN as exc:
        raise HandshakeError(
            f"the pairing connection failed: {exc or type(exc).__name__}"
        ) from None
    finally:
        writer.close()
