"""Pairing by a one-time code: one operator runs `hotline pair --listen`, reads the code it prints
to the other over another channel (a phone call), and the other runs `hotline pair --connect`.

Over a direct TCP connection the two stations run SPAKE2 with the code as password. A wrong code,
or a man in the middle, gets one guess per ceremony and learns nothing that helps a second. The
SPAKE2 key seals each side's card (ChaCha20-Poly1305, a key per direction), so a card that does
not open means the codes differ and nothing is paired; and it yields the link's PSK.

    dialer -> listener   version byte 1 || SPAKE2 message (side B)
    listener -> dialer   version byte 1 || SPAKE2 message (side A)
    each -> other        nonce (12) || sealed card (its binary form), associated data "card"

Messages are framed as on a path (4-byte length). Nothing is written before both cards opened.
"""

from __future__ import annotations

import asyncio
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from spake2 import SPAKE2_A, SPAKE2_B

from hotline.crypto.card import SignedCard, card_from_bytes
from hotline.crypto.pairing import pake_keys
from hotline.crypto.session import link_id_for
from hotline.errors import CardError, HandshakeError
from hotline.station.wire import read_message, write_message

__all__ = ["CODE_DIGITS", "make_code", "pair_as_dialer", "pair_as_listener"]

CODE_DIGITS = 10  # one guess per ceremony: a 1 in 10^10 chance for an attacker
VERSION = b"\x01"
IDS = {"idA": b"hotline pairing listener", "idB": b"hotline pairing dialer"}
EXCHANGE_TIMEOUT_S = 30.0


def make_code() -> str:
    digits = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    return f"{digits[:5]}-{digits[5:]}"


def _password(code: str) -> bytes:
    digits = "".join(c for c in code if c.isdigit())
    if len(digits) != CODE_DIGITS:
        raise HandshakeError(f"a pairing code has {CODE_DIGITS} digits")
    return digits.encode()


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    code: str,
    ours: SignedCard,
    listener: bool,
) -> tuple[SignedCard, bytes]:
    spake = (SPAKE2_A if listener else SPAKE2_B)(_password(code), **IDS)
    write_message(writer, VERSION + spake.start())
    theirs = await read_message(reader)
    if theirs[:1] != VERSION:
        raise HandshakeError("the other side speaks another pairing version")
    try:
        key = spake.finish(theirs[1:])
    except Exception as exc:
        raise HandshakeError(f"the pairing exchange failed: {exc}") from None
    # The link id needs both cards; seal the cards under a key with no salt yet, the PSK after.
    listener_key, dialer_key, _ = pake_keys(key, b"")
    mine, other = (listener_key, dialer_key) if listener else (dialer_key, listener_key)
    nonce = secrets.token_bytes(12)
    write_message(writer, nonce + ChaCha20Poly1305(mine).encrypt(nonce, ours.to_bytes(), b"card"))
    sealed = await read_message(reader)
    try:
        peer = card_from_bytes(ChaCha20Poly1305(other).decrypt(sealed[:12], sealed[12:], b"card"))
    except (InvalidTag, ValueError):
        raise HandshakeError("the codes differ (or someone interfered): not paired") from None
    except CardError as exc:
        raise HandshakeError(f"the other station's card is not valid: {exc}") from None
    psk = pake_keys(key, link_id_for(ours.identity, peer.identity))[2]
    return peer, psk


async def pair_as_listener(
    address: str, code: str, ours: SignedCard, wait_s: float
) -> tuple[SignedCard, bytes]:
    """Wait for the other station on `address`; return its card and the PSK."""
    host, _, port = address.rpartition(":")
    done: asyncio.Future[tuple[SignedCard, bytes]] = asyncio.get_running_loop().create_future()

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if done.done():
            writer.close()
            return
        try:
            result = await asyncio.wait_for(
                _exchange(reader, writer, code, ours, True), EXCHANGE_TIMEOUT_S
            )
            done.set_result(result)
        except (HandshakeError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            if not done.done():
                done.set_exception(
                    exc if isinstance(exc, HandshakeError) else HandshakeError(str(exc))
                )
        finally:
            writer.close()

    server = await asyncio.start_server(one, host.strip("[]"), int(port))
    try:
        return await asyncio.wait_for(done, wait_s)
    except TimeoutError:
        raise HandshakeError(f"no station connected within {wait_s:.0f} s") from None
    finally:
        server.close()


async def pair_as_dialer(address: str, code: str, ours: SignedCard) -> tuple[SignedCard, bytes]:
    host, _, port = address.rpartition(":")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port)), 10
        )
    except (OSError, TimeoutError) as exc:
        raise HandshakeError(f"cannot reach the other station at {address}: {exc}") from None
    try:
        return await asyncio.wait_for(
            _exchange(reader, writer, code, ours, False), EXCHANGE_TIMEOUT_S
        )
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        raise HandshakeError(
            f"the pairing connection failed: {exc or type(exc).__name__}"
        ) from None
    finally:
        writer.close()
