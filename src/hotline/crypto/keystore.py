"""The keystore: a station's private keys sealed under a passphrase (Argon2id, then an AEAD).

Pure: `seal` takes its salt and nonce from the caller, `unseal` takes bytes; reading and writing
the file is the station's job (hotline.station.datadir). The layout, every field big-endian:

    offset  size  field
    0       16    magic "HOTLINE-KEYSTORE"
    16      1     format version (1)
    17      4     Argon2id memory, KiB
    21      4     Argon2id iterations
    25      1     Argon2id lanes
    26      16    salt
    42      12    ChaCha20-Poly1305 nonce
    54      ...   ChaCha20-Poly1305 ciphertext of the secrets; the 54 header bytes are its
                  associated data, so no parameter can be changed without detection

The secrets are a MessagePack array [version, x25519 seed, ed25519 seed, ml-dsa-65 seed,
created]. A wrong passphrase and a damaged ciphertext look the same to an AEAD; the error says so.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from hotline.crypto.identity import StationIdentity
from hotline.errors import KeystoreError

__all__ = ["KEYSTORE_VERSION", "NONCE_LEN", "SALT_LEN", "KdfParams", "seal", "unseal"]

MAGIC = b"HOTLINE-KEYSTORE"
KEYSTORE_VERSION = 1
SALT_LEN = 16
NONCE_LEN = 12
_HEADER = struct.Struct(">16sBIIB16s12s")


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost. The default is RFC 9106's second recommended option (64 MiB, t=3, p=4)."""

    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4

    def check(self) -> None:
        if not (8 * self.lanes <= self.memory_kib <= 4 * 1024 * 1024):
            raise KeystoreError("keystore is corrupted: implausible Argon2id memory parameter")
        if not (1 <= self.iterations <= 64 and 1 <= self.lanes <= 64):
            raise KeystoreError("keystore is corrupted: implausible Argon2id parameters")


class _Secrets(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    version: int
    dh: bytes
    ed25519: bytes
    mldsa65: bytes
    created: int


def _key(passphrase: bytes, salt: bytes, params: KdfParams) -> bytes:
    kdf = Argon2id(
        salt=salt,
        length=32,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive(passphrase)


def seal(
    identity: StationIdentity,
    created: int,
    passphrase: bytes,
    *,
    salt: bytes,
    nonce: bytes,
    params: KdfParams = KdfParams(),
) -> bytes:
    """Seal an identity; `salt` and `nonce` must be fresh random bytes for every call."""
    if len(salt) != SALT_LEN or len(nonce) != NONCE_LEN:
        raise ValueError(f"salt is {SALT_LEN} bytes and nonce {NONCE_LEN}")
    params.check()
    header = _HEADER.pack(
        MAGIC, KEYSTORE_VERSION, params.memory_kib, params.iterations, params.lanes, salt, nonce
    )
    secrets = _Secrets(
        KEYSTORE_VERSION, identity.dh_seed, identity.ed25519_seed, identity.mldsa65_seed, created
    )
    plaintext = msgspec.msgpack.encode(secrets)
    return header + ChaCha20Poly1305(_key(passphrase, salt, params)).encrypt(
        nonce, plaintext, header
    )


def unseal(blob: bytes, passphrase: bytes) -> tuple[StationIdentity, int]:
    """Open a keystore; returns the identity and its creation time.

    Raises:
        KeystoreError: not a keystore, an unknown version, damage, or a wrong passphrase.
    """
    if len(blob) < len(MAGIC) or blob[: len(MAGIC)] != MAGIC:
        raise KeystoreError("not a Hotline keystore (its first bytes are not HOTLINE-KEYSTORE)")
    if len(blob) > len(MAGIC) and blob[len(MAGIC)] != KEYSTORE_VERSION:
        raise KeystoreError(
            f"keystore format version {blob[len(MAGIC)]} is not supported "
            f"(this build reads version {KEYSTORE_VERSION})"
        )
    if len(blob) < _HEADER.size + 16:
        raise KeystoreError("keystore is truncated")
    _magic, _version, memory, iterations, lanes, salt, nonce = _HEADER.unpack_from(blob)
    params = KdfParams(memory, iterations, lanes)
    params.check()
    header, ciphertext = blob[: _HEADER.size], blob[_HEADER.size :]
    try:
        plaintext = ChaCha20Poly1305(_key(passphrase, salt, params)).decrypt(
            nonce, ciphertext, header
        )
    except InvalidTag:
        raise KeystoreError("wrong passphrase, or the keystore file is damaged") from None
    try:
        secrets = msgspec.msgpack.decode(plaintext, type=_Secrets)
        if secrets.version != KEYSTORE_VERSION:
            raise ValueError("inner version differs from the header's")
        return StationIdentity(secrets.dh, secrets.ed25519, secrets.mldsa65), secrets.created
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        raise KeystoreError("keystore is corrupted: its sealed contents do not decode") from None
