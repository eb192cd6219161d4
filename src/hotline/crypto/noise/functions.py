"""The crypto functions a Noise protocol name selects (Noise rev 34, section 12; HFS section 3).

Every primitive comes from `cryptography`; this module only adapts each one to the small shape
the Noise state machines need. Nothing here draws randomness: key pairs are made from bytes the
caller supplies. The one exception is ML-KEM encapsulation, whose randomness the library draws
itself (its API takes none); the handshake lets a caller substitute the encapsulation step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import mlkem, x448, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from hotline.errors import HandshakeError, UnsupportedError

__all__ = [
    "CIPHERS",
    "DH_FUNCTIONS",
    "HASHES",
    "KEMS",
    "AeadFailure",
    "CipherFunctions",
    "DHFunctions",
    "DHKeyPair",
    "HashFunctions",
    "KEMFunctions",
    "KEMKeyPair",
]


_T = TypeVar("_T")


class AeadFailure(Exception):
    """Authentication failed. Deliberately carries no detail (one opaque error, as Fernet does)."""


# ---------------------------------------------------------------------------------------------
# DH functions (section 12.1, 12.2)


@dataclass(frozen=True, slots=True)
class DHKeyPair:
    """A DH key pair; `private` is the raw private key, `public` the raw public key."""

    private: bytes = field(repr=False)
    public: bytes
    _key: object = field(repr=False, compare=False)


class DHFunctions(Protocol):
    name: str
    dhlen: int

    def keypair(self, private: bytes) -> DHKeyPair: ...
    def dh(self, keypair: DHKeyPair, public: bytes) -> bytes: ...


class _X25519:
    name = "25519"
    dhlen = 32

    def keypair(self, private: bytes) -> DHKeyPair:
        key = x25519.X25519PrivateKey.from_private_bytes(private)
        return DHKeyPair(private, key.public_key().public_bytes_raw(), key)

    def dh(self, keypair: DHKeyPair, public: bytes) -> bytes:
        assert isinstance(keypair._key, x25519.X25519PrivateKey)
        try:
            return keypair._key.exchange(x25519.X25519PublicKey.from_public_bytes(public))
        except ValueError as exc:  # wrong length, or a low-order point giving an all-zero output
            raise HandshakeError("peer sent an invalid X25519 public key") from exc


class _X448:
    name = "448"
    dhlen = 56

    def keypair(self, private: bytes) -> DHKeyPair:
        key = x448.X448PrivateKey.from_private_bytes(private)
        return DHKeyPair(private, key.public_key().public_bytes_raw(), key)

    def dh(self, keypair: DHKeyPair, public: bytes) -> bytes:
        assert isinstance(keypair._key, x448.X448PrivateKey)
        try:
            return keypair._key.exchange(x448.X448PublicKey.from_public_bytes(public))
        except ValueError as exc:
            raise HandshakeError("peer sent an invalid X448 public key") from exc


DH_FUNCTIONS: dict[str, DHFunctions] = {"25519": _X25519(), "448": _X448()}


# ---------------------------------------------------------------------------------------------
# Cipher functions (section 12.3, 12.4)


class _Aead(Protocol):
    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...
    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


@dataclass(frozen=True, slots=True)
class CipherFunctions:
    """An AEAD and its Noise nonce encoding: 32 zero bits, then the 64-bit counter."""

    name: str
    make: Callable[[bytes], _Aead]
    byteorder: Literal["little", "big"]  # little-endian for ChaChaPoly, big for AESGCM

    def nonce(self, n: int) -> bytes:
        return b"\x00\x00\x00\x00" + n.to_bytes(8, self.byteorder)

    def encrypt(self, aead: _Aead, n: int, ad: bytes, plaintext: bytes) -> bytes:
        return aead.encrypt(self.nonce(n), plaintext, ad)

    def decrypt(self, aead: _Aead, n: int, ad: bytes, ciphertext: bytes) -> bytes:
        try:
            return aead.decrypt(self.nonce(n), ciphertext, ad)
        except InvalidTag:
            raise AeadFailure from None


CIPHERS: dict[str, CipherFunctions] = {
    "ChaChaPoly": CipherFunctions("ChaChaPoly", ChaCha20Poly1305, "little"),
    "AESGCM": CipherFunctions("AESGCM", AESGCM, "big"),
}


# ---------------------------------------------------------------------------------------------
# Hash functions (section 12.5 - 12.8) and HKDF (section 4.3)


@dataclass(frozen=True, slots=True)
class HashFunctions:
    name: str
    algorithm: Callable[[], hashes.HashAlgorithm]
    hashlen: int

    def hash(self, data: bytes) -> bytes:
        h = hashes.Hash(self.algorithm())
        h.update(data)
        return h.finalize()

    def hmac(self, key: bytes, data: bytes) -> bytes:
        h = hmac.HMAC(key, self.algorithm())
        h.update(data)
        return h.finalize()

    def hkdf(self, chaining_key: bytes, ikm: bytes, outputs: int) -> list[bytes]:
        """HKDF as Noise defines it: HMAC-based, 2 or 3 outputs of HASHLEN bytes."""
        temp_key = self.hmac(chaining_key, ikm)
        out: list[bytes] = []
        previous = b""
        for i in range(1, outputs + 1):
            previous = self.hmac(temp_key, previous + bytes([i]))
            out.append(previous)
        return out


HASHES: dict[str, HashFunctions] = {
    "SHA256": HashFunctions("SHA256", hashes.SHA256, 32),
    "SHA512": HashFunctions("SHA512", hashes.SHA512, 64),
    "BLAKE2s": HashFunctions("BLAKE2s", lambda: hashes.BLAKE2s(32), 32),
    "BLAKE2b": HashFunctions("BLAKE2b", lambda: hashes.BLAKE2b(64), 64),
}


# ---------------------------------------------------------------------------------------------
# KEM functions (Noise HFS, section 3)


@dataclass(frozen=True, slots=True)
class KEMKeyPair:
    """A KEM key pair; `seed` is the private key in its 64-byte FIPS 203 seed form (d || z)."""

    seed: bytes = field(repr=False)
    public: bytes
    _key: object = field(repr=False, compare=False)


class KEMFunctions(Protocol):
    name: str
    seedlen: int
    publickeylen: int
    ciphertextlen: int

    def keypair(self, seed: bytes) -> KEMKeyPair: ...
    def encapsulate(self, public: bytes) -> tuple[bytes, bytes]: ...
    def decapsulate(self, keypair: KEMKeyPair, ciphertext: bytes) -> bytes: ...


class _MLKEM768:
    """ML-KEM-768 (FIPS 203). GENERATE_KEM_CIPHERTEXT returns (ciphertext, kem_output)."""

    name = "MLKEM768"
    seedlen = 64
    publickeylen = 1184
    ciphertextlen = 1088

    def keypair(self, seed: bytes) -> KEMKeyPair:
        key = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
        return KEMKeyPair(seed, key.public_key().public_bytes_raw(), key)

    def encapsulate(self, public: bytes) -> tuple[bytes, bytes]:
        try:
            peer = mlkem.MLKEM768PublicKey.from_public_bytes(public)
        except ValueError as exc:  # wrong length, or coefficients not reduced (FIPS 203, 7.2)
            raise HandshakeError("peer sent an invalid ML-KEM-768 public key") from exc
        shared, ciphertext = peer.encapsulate()
        return ciphertext, shared

    def decapsulate(self, keypair: KEMKeyPair, ciphertext: bytes) -> bytes:
        assert isinstance(keypair._key, mlkem.MLKEM768PrivateKey)
        try:
            return keypair._key.decapsulate(ciphertext)
        except ValueError as exc:
            raise HandshakeError("peer sent an invalid ML-KEM-768 ciphertext") from exc


KEMS: dict[str, KEMFunctions] = {"MLKEM768": _MLKEM768()}


def lookup(table: dict[str, _T], name: str, what: str) -> _T:
    """Find a function by its protocol-name token, or say plainly that we lack it."""
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table))
        raise UnsupportedError(f"unsupported {what} {name!r} (supported: {known})") from None
