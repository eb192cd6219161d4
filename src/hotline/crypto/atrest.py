"""Secrets kept at rest in the store, sealed to a key pair the station derives from its keystore.

The operators' TOTP secrets must be in the store (the console checks codes against them), but a
copy of `store.db` alone must not give them away. They are sealed to a public key, so any tool
that writes the store (`hotline operator add`, run while the station is stopped) can seal a new
secret without the passphrase, and only the station, with its keystore open, can read them back:

    private  = HKDF-SHA256(ikm = the identity's X25519 seed, salt = "",
                           info = "hotline totp at rest v1", length = 32), as an X25519 key
    seal(m)  = e = a fresh X25519 key;  k = HKDF-SHA256(ikm = X25519(e, public),
               salt = e.public || public, info = "hotline sealed at rest v1", length = 32);
               "hotline-sealed-1:" || base64url(e.public || ChaCha20-Poly1305(k, nonce 0, m,
               associated data = context))

A fresh key per seal makes the all-zero nonce safe; the context (the operator's name) binds a
sealed secret to its account, so rows cannot be swapped. This is the shape of HPKE's base mode
and of libsodium's sealed box, written with `cryptography`'s primitives only.

Pure: the fresh key's 32 bytes come from the caller.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hotline.crypto.identity import StationIdentity

__all__ = ["SEALED_PREFIX", "is_sealed", "open_sealed", "seal", "totp_key"]

SEALED_PREFIX = "hotline-sealed-1:"
_NONCE = bytes(12)


def totp_key(identity: StationIdentity) -> tuple[bytes, bytes]:
    """The key pair that seals the TOTP secrets: (private, public), 32 bytes each."""
    seed = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"", info=b"hotline totp at rest v1"
    ).derive(identity.dh_seed)
    private = x25519.X25519PrivateKey.from_private_bytes(seed)
    return seed, private.public_key().public_bytes_raw()


def is_sealed(text: str) -> bool:
    return text.startswith(SEALED_PREFIX)


def seal(public: bytes, plaintext: str, context: bytes, ephemeral: bytes) -> str:
    """Seal `plaintext` to `public`, bound to `context`; `ephemeral` is 32 fresh random bytes."""
    fresh = x25519.X25519PrivateKey.from_private_bytes(ephemeral)
    fresh_public = fresh.public_key().public_bytes_raw()
    shared = fresh.exchange(x25519.X25519PublicKey.from_public_bytes(public))
    key = _key(shared, fresh_public, public)
    sealed = ChaCha20Poly1305(key).encrypt(_NONCE, plaintext.encode("utf-8"), context)
    return SEALED_PREFIX + base64.urlsafe_b64encode(fresh_public + sealed).decode("ascii")


def open_sealed(private: bytes, sealed: str, context: bytes) -> str:
    """The text `seal` sealed to our key with the same context.

    Raises:
        ValueError: not a sealed text, damaged, sealed to another key, or for another context.
    """
    if not is_sealed(sealed):
        raise ValueError("not a sealed text")
    try:
        raw = base64.urlsafe_b64decode(sealed[len(SEALED_PREFIX) :].encode("ascii"))
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("a sealed text that does not decode") from None
    if len(raw) < 32 + 16:
        raise ValueError("a sealed text too short to hold anything")
    ours = x25519.X25519PrivateKey.from_private_bytes(private)
    fresh_public, body = raw[:32], raw[32:]
    try:
        shared = ours.exchange(x25519.X25519PublicKey.from_public_bytes(fresh_public))
        key = _key(shared, fresh_public, ours.public_key().public_bytes_raw())
        return ChaCha20Poly1305(key).decrypt(_NONCE, body, context).decode("utf-8")
    except (InvalidTag, ValueError):  # ValueError: an all-zero shared secret (a small-order key)
        raise ValueError("a sealed text that does not open with this key") from None


def _key(shared: bytes, fresh_public: bytes, public: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=fresh_public + public,
        info=b"hotline sealed at rest v1",
    ).derive(shared)
