"""HandshakeState (Noise rev 34, section 5.3), with the psk modifier (section 9) and the KEM
tokens `e1` and `ekem1` of the HFS extension.

Pure: no randomness of its own. Ephemeral keys come from the `rng` the caller passes (or are
given outright, as test vectors do). A message that fails to read leaves the state exactly as
it was before the call, so the caller can drop it and go on waiting, or abandon the handshake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hotline.crypto.noise.functions import (
    CIPHERS,
    DH_FUNCTIONS,
    HASHES,
    KEMS,
    AeadFailure,
    DHKeyPair,
    KEMFunctions,
    KEMKeyPair,
    lookup,
)
from hotline.crypto.noise.patterns import parse_protocol_name
from hotline.crypto.noise.state import CipherState, SymmetricState
from hotline.errors import HandshakeError, NoiseStateError

__all__ = ["MAX_MESSAGE_LEN", "PSK_LEN", "HandshakeState"]

MAX_MESSAGE_LEN = 65535  # section 3
PSK_LEN = 32

Rng = Callable[[int], bytes]
Encapsulate = Callable[[bytes], tuple[bytes, bytes]]


class HandshakeState:
    """One side of one Noise handshake.

    Args:
        protocol_name: e.g. ``Noise_XX_25519_ChaChaPoly_SHA256``.
        initiator: True for the side that sends the first message.
        prologue: bytes both sides must agree on; mixed into the handshake hash.
        s, e: our static and (for tests) ephemeral DH key pairs.
        rs, re: the peer's static and ephemeral public keys, when known in advance.
        psks: pre-shared keys (32 bytes each), consumed in the order the pattern names them.
        rng: a source of random bytes for ephemeral keys not given outright.
        e1: our KEM key pair, when given outright (test vectors).
        encapsulate: replaces the KEM's own encapsulation (test vectors record its output).
    """

    def __init__(
        self,
        protocol_name: str,
        *,
        initiator: bool,
        prologue: bytes = b"",
        s: DHKeyPair | None = None,
        e: DHKeyPair | None = None,
        rs: bytes | None = None,
        re: bytes | None = None,
        psks: Sequence[bytes] = (),
        rng: Rng | None = None,
        e1: KEMKeyPair | None = None,
        encapsulate: Encapsulate | None = None,
    ) -> None:
        name = parse_protocol_name(protocol_name)
        self.protocol = name
        self.dh = lookup(DH_FUNCTIONS, name.dh, "DH function")
        self.kem = lookup(KEMS, name.kem, "KEM") if name.kem else None
        cipher = lookup(CIPHERS, name.cipher, "cipher")
        self.pattern = name.pattern
        self.initiator = initiator
        self.s, self.e, self.rs, self.re = s, e, rs, re
        self.e1: KEMKeyPair | None = e1
        self.re1: bytes | None = None
        self._rng = rng
        self._encapsulate = encapsulate
        if any(len(psk) != PSK_LEN for psk in psks):
            raise NoiseStateError(f"a pre-shared key must be {PSK_LEN} bytes")
        if len(psks) != self.pattern.psk_count:
            raise NoiseStateError(
                f"{self.pattern.name} needs {self.pattern.psk_count} PSKs, got {len(psks)}"
            )
        self._psks = tuple(psks)
        self._psk_used = 0
        self.symmetric = SymmetricState(
            protocol_name.encode("ascii"), lookup(HASHES, name.hash, "hash"), cipher
        )
        self.symmetric.mix_hash(prologue)
        self._index = 0
        self._result: tuple[CipherState, CipherState] | None = None
        self._mix_pre_messages()

    # -- public API ------------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return self._result is not None

    @property
    def my_turn(self) -> bool:
        """True when the next handshake message is ours to write."""
        return not self.complete and (self._index % 2 == 0) == self.initiator

    @property
    def handshake_hash(self) -> bytes:
        return self.symmetric.h

    @property
    def remote_static(self) -> bytes | None:
        return self.rs

    def write_message(self, payload: bytes = b"") -> bytes:
        if not self.my_turn:
            raise NoiseStateError("it is not this side's turn to write a handshake message")
        saved = self.save()
        try:
            out = bytearray()
            for token in self.pattern.messages[self._index]:
                out += self._write_token(token)
            out += self.symmetric.encrypt_and_hash(payload)
            if len(out) > MAX_MESSAGE_LEN:
                raise NoiseStateError(f"handshake message of {len(out)} bytes is too long")
        except Exception:
            self.restore(saved)
            raise
        self._advance()
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        """Read the peer's next handshake message and return its payload.

        Raises:
            HandshakeError: the message is truncated, too long, or fails authentication.
                Nothing in this object changed.
        """
        if self.complete or self.my_turn:
            raise NoiseStateError("it is not this side's turn to read a handshake message")
        if len(message) > MAX_MESSAGE_LEN:
            raise HandshakeError(f"handshake message of {len(message)} bytes is too long")
        saved = self.save()
        try:
            rest = memoryview(message)
            for token in self.pattern.messages[self._index]:
                rest = self._read_token(token, rest)
            payload = self._decrypt_and_hash(bytes(rest))
        except Exception:
            self.restore(saved)
            raise
        self._advance()
        return payload

    def split(self) -> tuple[CipherState, CipherState]:
        """The two transport CipherStates: (initiator-to-responder, responder-to-initiator)."""
        if self._result is None:
            raise NoiseStateError("the handshake is not complete")
        return self._result

    # -- tokens (section 5.3) --------------------------------------------------------------------

    def _write_token(self, token: str) -> bytes:
        sym = self.symmetric
        match token:
            case "e":
                if self.e is None:
                    self.e = self.dh.keypair(self._random(self.dh.dhlen))
                sym.mix_hash(self.e.public)
                if self.pattern.has_psk:
                    sym.mix_key(self.e.public)
                return self.e.public
            case "s":
                if self.s is None:
                    raise NoiseStateError("this pattern needs our static key")
                return sym.encrypt_and_hash(self.s.public)
            case "e1":
                kem = self._need_kem()
                if self.e1 is None:
                    self.e1 = kem.keypair(self._random(kem.seedlen))
                return sym.encrypt_and_hash(self.e1.public)
            case "ekem1":
                kem = self._need_kem()
                if self.re1 is None:
                    raise NoiseStateError("ekem1 before the peer's e1")
                encapsulate = self._encapsulate or kem.encapsulate
                ciphertext, shared = encapsulate(self.re1)
                out = sym.encrypt_and_hash(ciphertext)
                sym.mix_key(shared)
                return out
            case "psk":
                sym.mix_key_and_hash(self._next_psk())
                return b""
            case _:
                sym.mix_key(self._dh_for(token))
                return b""

    def _read_token(self, token: str, rest: memoryview) -> memoryview:
        sym = self.symmetric
        match token:
            case "e":
                self.re, rest = _take(rest, self.dh.dhlen), rest[self.dh.dhlen :]
                sym.mix_hash(self.re)
                if self.pattern.has_psk:
                    sym.mix_key(self.re)
                return rest
            case "s":
                self.rs, rest = self._read_encrypted(rest, self.dh.dhlen)
                return rest
            case "e1":
                self.re1, rest = self._read_encrypted(rest, self._need_kem().publickeylen)
                return rest
            case "ekem1":
                kem = self._need_kem()
                ciphertext, rest = self._read_encrypted(rest, kem.ciphertextlen)
                if self.e1 is None:
                    raise NoiseStateError("ekem1 received without our e1")
                sym.mix_key(kem.decapsulate(self.e1, ciphertext))
                return rest
            case "psk":
                sym.mix_key_and_hash(self._next_psk())
                return rest
            case _:
                sym.mix_key(self._dh_for(token))
                return rest

    def _read_encrypted(self, rest: memoryview, length: int) -> tuple[bytes, memoryview]:
        size = length + (16 if self.symmetric.cs.has_key() else 0)
        return self._decrypt_and_hash(_take(rest, size)), rest[size:]

    def _decrypt_and_hash(self, data: bytes) -> bytes:
        try:
            return self.symmetric.decrypt_and_hash(data)
        except AeadFailure:
            raise HandshakeError(
                "handshake message failed authentication (wrong key or PSK, another protocol "
                "version or link, or altered on the way)"
            ) from None

    def _dh_for(self, token: str) -> bytes:
        """ee, es, se, ss: the first letter is the initiator's key, the second the responder's."""
        mine, theirs = (token[0], token[1]) if self.initiator else (token[1], token[0])
        local = self.e if mine == "e" else self.s
        remote = self.re if theirs == "e" else self.rs
        if local is None or remote is None:
            raise NoiseStateError(f"token {token} needs a key this side does not have")
        return self.dh.dh(local, remote)

    # -- bookkeeping -----------------------------------------------------------------------------

    def _next_psk(self) -> bytes:
        """PSKs are used in the order the pattern names them (section 9.3)."""
        psk = self._psks[self._psk_used]
        self._psk_used += 1
        return psk

    def save(self) -> _Saved:
        """A checkpoint of the whole state, for `restore`."""
        return _Saved(
            self.symmetric.snapshot(),
            self.e,
            self.e1,
            self.re,
            self.rs,
            self.re1,
            self._psk_used,
            self._index,
            self._result,
        )

    def restore(self, saved: _Saved) -> None:
        """Go back to a checkpoint. Used inside to undo a message that failed half-way, and by a
        caller that refuses a message after reading it (a replayed timestamp, say)."""
        self.symmetric.restore(saved.symmetric)
        self.e, self.e1, self.re, self.rs, self.re1 = (
            saved.e,
            saved.e1,
            saved.re,
            saved.rs,
            saved.re1,
        )
        self._psk_used, self._index, self._result = saved.psk_used, saved.index, saved.result

    def _advance(self) -> None:
        self._index += 1
        if self._index == len(self.pattern.messages):
            self._result = self.symmetric.split()

    def _mix_pre_messages(self) -> None:
        """Pre-messages are hashed initiator first (section 7.1); an `e` also feeds MixKey under a
        PSK (section 9.2)."""
        for owner_is_initiator, tokens in (
            (True, self.pattern.initiator_pre),
            (False, self.pattern.responder_pre),
        ):
            mine = owner_is_initiator == self.initiator
            for token in tokens:
                key = self._pre_message_key(token, mine)
                self.symmetric.mix_hash(key)
                if token == "e" and self.pattern.has_psk:
                    self.symmetric.mix_key(key)

    def _pre_message_key(self, token: str, mine: bool) -> bytes:
        local = self.e if token == "e" else self.s
        key = (local.public if local else None) if mine else (self.re if token == "e" else self.rs)
        if key is None:
            raise NoiseStateError(f"pattern {self.pattern.name} needs a pre-known {token}")
        return key

    def _need_kem(self) -> KEMFunctions:
        if self.kem is None:
            raise NoiseStateError("KEM token in a protocol without a KEM")
        return self.kem

    def _random(self, n: int) -> bytes:
        if self._rng is None:
            raise NoiseStateError("an ephemeral key is needed but no random source was given")
        return self._rng(n)


@dataclass(frozen=True, slots=True)
class _Saved:
    symmetric: tuple[bytes, bytes, bytes | None, int]
    e: DHKeyPair | None
    e1: KEMKeyPair | None
    re: bytes | None
    rs: bytes | None
    re1: bytes | None
    psk_used: int
    index: int
    result: tuple[CipherState, CipherState] | None


def _take(view: memoryview, n: int) -> bytes:
    if len(view) < n:
        raise HandshakeError("handshake message is truncated")
    return bytes(view[:n])
