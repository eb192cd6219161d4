"""CipherState and SymmetricState (Noise rev 34, sections 5.1 and 5.2).

Both are small value-holding objects with the spec's method names in snake case. `snapshot()` and
`restore()` let the handshake undo a message that failed half-way, so a refused message never
leaves half-applied state behind.
"""

from __future__ import annotations

from hotline.crypto.noise.functions import AeadFailure, CipherFunctions, HashFunctions
from hotline.errors import NoiseStateError

__all__ = ["MAX_NONCE", "CipherState", "SymmetricState"]

MAX_NONCE = 2**64 - 1  # reserved: never used to encrypt (section 5.1); REKEY uses it
_ZEROS32 = bytes(32)


class CipherState:
    """A key and a nonce counter. Without a key it passes plaintext through, as the spec says."""

    __slots__ = ("_aead", "cipher", "k", "n")

    def __init__(self, cipher: CipherFunctions, key: bytes | None = None) -> None:
        self.cipher = cipher
        self.k: bytes | None = None
        self.n = 0
        self._aead: object = None
        if key is not None:
            self.initialize_key(key)

    def initialize_key(self, key: bytes | None) -> None:
        self.k = key
        self.n = 0
        self._aead = self.cipher.make(key) if key is not None else None

    def has_key(self) -> bool:
        return self.k is not None

    def set_nonce(self, n: int) -> None:
        self.n = n

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self.k is None:
            return plaintext
        out = self.encrypt_at(self.n, ad, plaintext)
        self.n += 1
        return out

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Raises AeadFailure on a bad tag; the nonce then stays where it was."""
        if self.k is None:
            return ciphertext
        out = self.decrypt_at(self.n, ad, ciphertext)
        self.n += 1
        return out

    def encrypt_at(self, n: int, ad: bytes, plaintext: bytes) -> bytes:
        """Encrypt with an explicit nonce, for transports that deliver out of order (section 11.4).
        The counter is not touched; the caller owns nonce uniqueness."""
        if n >= MAX_NONCE:
            raise NoiseStateError("nonce space exhausted: the session must re-handshake")
        return self.cipher.encrypt(self._aead, n, ad, plaintext)  # type: ignore[arg-type]

    def decrypt_at(self, n: int, ad: bytes, ciphertext: bytes) -> bytes:
        """Decrypt with an explicit nonce; the caller keeps its own replay window."""
        if n >= MAX_NONCE:
            raise AeadFailure
        return self.cipher.decrypt(self._aead, n, ad, ciphertext)  # type: ignore[arg-type]

    def rekey(self) -> None:
        """REKEY (section 4.2): the new key is ENCRYPT(k, maxnonce, zerolen, zeros)[:32].
        The nonce counter is not reset (section 11.3)."""
        if self.k is None:
            raise NoiseStateError("rekey needs a key")
        new_key = self.cipher.encrypt(self._aead, MAX_NONCE, b"", _ZEROS32)[:32]  # type: ignore[arg-type]
        n = self.n
        self.initialize_key(new_key)
        self.n = n


class SymmetricState:
    """The chaining key `ck`, the handshake hash `h`, and the CipherState they drive."""

    __slots__ = ("ck", "cs", "h", "hash")

    def __init__(self, protocol_name: bytes, hash_fn: HashFunctions, cipher: CipherFunctions):
        self.hash = hash_fn
        if len(protocol_name) <= hash_fn.hashlen:
            self.h = protocol_name.ljust(hash_fn.hashlen, b"\x00")
        else:
            self.h = hash_fn.hash(protocol_name)
        self.ck = self.h
        self.cs = CipherState(cipher)

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = self.hash.hkdf(self.ck, ikm, 2)
        self.cs.initialize_key(temp_k[:32])

    def mix_hash(self, data: bytes) -> None:
        self.h = self.hash.hash(self.h + data)

    def mix_key_and_hash(self, ikm: bytes) -> None:
        self.ck, temp_h, temp_k = self.hash.hkdf(self.ck, ikm, 3)
        self.mix_hash(temp_h)
        self.cs.initialize_key(temp_k[:32])

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cs.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cs.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        k1, k2 = self.hash.hkdf(self.ck, b"", 2)
        return CipherState(self.cs.cipher, k1[:32]), CipherState(self.cs.cipher, k2[:32])

    def snapshot(self) -> tuple[bytes, bytes, bytes | None, int]:
        return (self.ck, self.h, self.cs.k, self.cs.n)

    def restore(self, saved: tuple[bytes, bytes, bytes | None, int]) -> None:
        self.ck, self.h, key, n = saved
        self.cs.initialize_key(key)
        self.cs.n = n
