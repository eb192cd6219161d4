"""The first-message MAC ("mac1", after WireGuard's): a cheap check, before any Noise work, that
whoever sent a first handshake message knows the link's public material.

On a path, message 1 of the hotline handshake travels as `message1 || mac1`, where

    key  = SHA-256("hotline-mac1-v1" || link id || responder's static X25519 public key)
    mac1 = HMAC-SHA-256(key, message1)[0:16]

(docs/protocol.md §3.9). Both stations hold the key's inputs from pairing; someone who merely
reaches a path port does not: the link id is a hash of both stations' fingerprints. The MAC is
not a secret and authenticates no one (the Noise handshake does that): it lets the responder drop
junk for the price of one HMAC per paired link, without X25519, AEAD or a store read, and tells
it which link a first message is for.

Pure: no clock, no randomness, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.asymmetric import x25519

from hotline.crypto.session import LINK_ID_LEN, LinkKeys

__all__ = [
    "MAC_LEN",
    "MESSAGE1_MIN_LEN",
    "add_mac",
    "check_mac",
    "initiator_mac_key",
    "mac_key",
    "match_mac",
    "responder_mac_key",
]

MAC_LEN = 16
LABEL = b"hotline-mac1-v1"
# The shortest message 1 (empty application data, docs/protocol.md §3.5): anything shorter is
# refused before the MAC is even computed.
MESSAGE1_MIN_LEN = 1257
_KEY_LEN = 32


def mac_key(link_id: bytes, responder_static: bytes) -> bytes:
    """The 32-byte mac1 key of a link, for first messages sent to `responder_static`."""
    if len(link_id) != LINK_ID_LEN or len(responder_static) != _KEY_LEN:
        raise ValueError("a link id and an X25519 public key are 32 bytes each")
    digest = hashes.Hash(hashes.SHA256())
    digest.update(LABEL + link_id + responder_static)
    return digest.finalize()


def initiator_mac_key(keys: LinkKeys) -> bytes:
    """The key the dialing side uses: the responder is the pinned peer."""
    return mac_key(keys.link_id, keys.peer_static)


def responder_mac_key(keys: LinkKeys) -> bytes:
    """The key the accepting side checks with: the responder is this station."""
    ours = x25519.X25519PrivateKey.from_private_bytes(keys.local_static).public_key()
    return mac_key(keys.link_id, ours.public_bytes_raw())


def _mac(key: bytes, message1: bytes) -> bytes:
    tag = hmac.HMAC(key, hashes.SHA256())
    tag.update(message1)
    return tag.finalize()[:MAC_LEN]


def add_mac(key: bytes, message1: bytes) -> bytes:
    """`message1 || mac1`: what the initiator writes on the path."""
    return message1 + _mac(key, message1)


def check_mac(key: bytes, framed: bytes) -> bytes | None:
    """Message 1 if `framed` ends with its valid mac1 under `key`, else None (compared in
    constant time; a message too short to be a message 1 is refused without computing)."""
    if len(framed) < MESSAGE1_MIN_LEN + MAC_LEN:
        return None
    message1, tag = framed[:-MAC_LEN], framed[-MAC_LEN:]
    return message1 if constant_time.bytes_eq(_mac(key, message1), tag) else None


def match_mac(keys: Sequence[bytes], framed: bytes) -> tuple[int, bytes] | None:
    """The index of the key whose mac1 `framed` carries, and message 1; None if none does."""
    for index, key in enumerate(keys):
        message1 = check_mac(key, framed)
        if message1 is not None:
            return index, message1
    return None
