"""A station's long-term identity: an X25519 static key for Noise, and a hybrid signing key
(Ed25519 + ML-DSA-65) whose signatures verify only when both halves verify.

Pure: an identity is made from seeds the caller supplies. Every signature is domain-separated by
a purpose label, so a signature made for one purpose (a card, a rotation, a receipt) can never be
replayed as another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PublicKey

__all__ = [
    "FINGERPRINT_LEN",
    "HYBRID_SIGNATURE_LEN",
    "SAS_NONCE_LEN",
    "SEED_LEN",
    "PublicIdentity",
    "StationIdentity",
    "format_fingerprint",
    "sas_commitment",
    "short_authentication_string",
]

SEED_LEN = 32
FINGERPRINT_LEN = 32
ED25519_SIGNATURE_LEN = 64
MLDSA65_SIGNATURE_LEN = 3309
HYBRID_SIGNATURE_LEN = ED25519_SIGNATURE_LEN + MLDSA65_SIGNATURE_LEN
MLDSA65_PUBLIC_LEN = 1952
SAS_NONCE_LEN = 32  # each station's fresh value in the pairing string: too long to guess from c
_MLDSA_CONTEXT = b"hotline"  # FIPS 204 context string: binds ML-DSA signatures to this protocol


def _digest(algorithm: hashes.HashAlgorithm, *parts: bytes) -> bytes:
    """A hash over length-prefixed parts, so no two different lists of parts collide."""
    h = hashes.Hash(algorithm)
    for part in parts:
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.finalize()


def _signed_message(purpose: str, message: bytes) -> bytes:
    """What both halves of a hybrid signature cover: a versioned purpose label, then the message."""
    label = f"hotline/v1/{purpose}".encode()
    return len(label).to_bytes(1, "big") + label + message


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """The public half of a station identity, as a peer pins it."""

    dh: bytes  # X25519, 32 bytes: the Noise static key
    ed25519: bytes  # 32 bytes
    mldsa65: bytes  # 1952 bytes
    _ed: Ed25519PublicKey = field(init=False, repr=False, compare=False)
    _ml: MLDSA65PublicKey = field(init=False, repr=False, compare=False)
    fingerprint: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (len(self.dh), len(self.ed25519), len(self.mldsa65)) != (32, 32, MLDSA65_PUBLIC_LEN):
            raise ValueError("public identity keys have the wrong lengths")
        try:  # parsed once: a link verifies every envelope with the same key
            ed = ed25519.Ed25519PublicKey.from_public_bytes(self.ed25519)
            ml = mldsa.MLDSA65PublicKey.from_public_bytes(self.mldsa65)
        except ValueError:
            raise ValueError("public identity keys do not parse") from None
        object.__setattr__(self, "_ed", ed)
        object.__setattr__(self, "_ml", ml)
        # SHA-256 over the three public keys, each length-prefixed, under a fixed label.
        fingerprint = _digest(
            hashes.SHA256(), b"hotline-fingerprint-v1", self.dh, self.ed25519, self.mldsa65
        )
        object.__setattr__(self, "fingerprint", fingerprint)

    def verify(self, purpose: str, message: bytes, signature: bytes) -> bool:
        """True only when both the Ed25519 and the ML-DSA-65 signature verify."""
        if len(signature) != HYBRID_SIGNATURE_LEN:
            return False
        signed = _signed_message(purpose, message)
        classic, post_quantum = signature[:ED25519_SIGNATURE_LEN], signature[ED25519_SIGNATURE_LEN:]
        try:
            self._ed.verify(classic, signed)
            self._ml.verify(post_quantum, signed, _MLDSA_CONTEXT)
        except InvalidSignature:
            return False
        return True

    def verify_ed25519(self, purpose: str, message: bytes, signature: bytes) -> bool:
        """Check a classical signature (used per envelope; checkpoints add the hybrid one)."""
        try:
            self._ed.verify(signature, _signed_message(purpose, message))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class StationIdentity:
    """A station's private keys, made from three 32-byte seeds."""

    dh_seed: bytes = field(repr=False)
    ed25519_seed: bytes = field(repr=False)
    mldsa65_seed: bytes = field(repr=False)
    public: PublicIdentity = field(init=False)
    _ed: ed25519.Ed25519PrivateKey = field(init=False, repr=False, compare=False)
    _ml: mldsa.MLDSA65PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if {len(self.dh_seed), len(self.ed25519_seed), len(self.mldsa65_seed)} != {SEED_LEN}:
            raise ValueError(f"identity seeds must be {SEED_LEN} bytes each")
        ed = ed25519.Ed25519PrivateKey.from_private_bytes(self.ed25519_seed)
        ml = mldsa.MLDSA65PrivateKey.from_seed_bytes(self.mldsa65_seed)
        dh = x25519.X25519PrivateKey.from_private_bytes(self.dh_seed)
        public = PublicIdentity(
            dh.public_key().public_bytes_raw(),
            ed.public_key().public_bytes_raw(),
            ml.public_key().public_bytes_raw(),
        )
        object.__setattr__(self, "public", public)
        object.__setattr__(self, "_ed", ed)
        object.__setattr__(self, "_ml", ml)

    @classmethod
    def from_random(cls, random_bytes: bytes) -> StationIdentity:
        """Make an identity from 96 random bytes that the caller drew."""
        if len(random_bytes) != 3 * SEED_LEN:
            raise ValueError(f"need {3 * SEED_LEN} random bytes")
        return cls(random_bytes[:32], random_bytes[32:64], random_bytes[64:])

    def sign(self, purpose: str, message: bytes) -> bytes:
        """A hybrid signature: Ed25519 (64 bytes) then ML-DSA-65 (3309 bytes)."""
        signed = _signed_message(purpose, message)
        return self._ed.sign(signed) + self._ml.sign(signed, _MLDSA_CONTEXT)

    def sign_ed25519(self, purpose: str, message: bytes) -> bytes:
        """A classical signature alone (64 bytes), for what is signed often and cheaply."""
        return self._ed.sign(_signed_message(purpose, message))


def format_fingerprint(fingerprint: bytes) -> str:
    """Upper-case hex in groups of four, the way operators read it aloud."""
    text = fingerprint.hex().upper()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def sas_commitment(identity: PublicIdentity, nonce: bytes) -> bytes:
    """A station's commitment to its fresh value for one pairing by card files (protocol.md §6.1):
    sent with its card before it has seen the peer's, revealed only once it holds the peer's."""
    if len(nonce) != SAS_NONCE_LEN:
        raise ValueError(f"a pairing nonce is {SAS_NONCE_LEN} bytes")
    return _digest(hashes.SHA256(), b"hotline-sas-commit-v1", identity.fingerprint, nonce)


def short_authentication_string(
    a: PublicIdentity, a_nonce: bytes, b: PublicIdentity, b_nonce: bytes
) -> str:
    """The string both operators read to each other to confirm a pairing by card files.

    It is the same on both sides (the pairs are sorted by fingerprint), 8 groups of 5 digits:
    each group is 5 bytes of a SHA-512 over both fingerprints and both stations' fresh values,
    reduced modulo 100000. Each value was committed to (`sas_commitment`) before either was
    revealed, so a man in the middle fixes his substitute cards before the last value is known
    and has nothing left to search: he succeeds by chance, about 1 in 2^133. Without the values
    he could search for two strings that collide, about 2^66.5 work (protocol.md §6.1).
    """
    if len(a_nonce) != SAS_NONCE_LEN or len(b_nonce) != SAS_NONCE_LEN:
        raise ValueError(f"a pairing nonce is {SAS_NONCE_LEN} bytes")
    (f_low, r_low), (f_high, r_high) = sorted(((a.fingerprint, a_nonce), (b.fingerprint, b_nonce)))
    digest = _digest(hashes.SHA512(), b"hotline-sas-v2", f_low, f_high, r_low, r_high)
    groups = [int.from_bytes(digest[i : i + 5], "big") % 100000 for i in range(0, 40, 5)]
    return " ".join(f"{g:05d}" for g in groups)
