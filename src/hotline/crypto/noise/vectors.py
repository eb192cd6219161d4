"""Run Noise test vectors in the cacophony JSON format (docs/protocol.md §10).

    python -m hotline.crypto.noise.vectors FILE [FILE ...]

Each vector is played both ways: the sending side must write exactly the recorded ciphertext,
and the receiving side must read it back to the recorded payload. After the handshake both
sides must hold the recorded handshake hash; transport messages follow on the split ciphers.
A protocol this build does not support counts as failed, never as skipped. The last line is
``N passed, M failed``; the exit status is 1 when M > 0.

Any conforming file runs. The format (the Noise wiki's "Test vectors") makes these keys optional,
each absent or null: ``name``, every ``init_*`` and ``resp_*`` key but the prologues,
``handshake_hash`` (not compared when absent), ``fail``, ``fallback``, ``fallback_pattern`` and
``hybrid`` (a leftover: the protocol name says it all). With ``"fail": true`` the vector passes
when a receiver cannot read a message (every message before it written as recorded) and fails if
every message is read. ``"fallback": true`` (Noise Pipes) is not supported: it counts as failed,
saying so.

Two optional fields carry the KEM of the HFS extension, whose encapsulation draws randomness
that the library does not let us inject:
  ``init_kem_ephemeral``  the initiator's ML-KEM key pair as its 64-byte seed (d || z);
  ``resp_kem_ciphertext`` the ciphertext the responder's encapsulation produced. The runner
                          replays it, taking the shared secret from the initiator's key.

One optional field carries the hotline's own transport (docs/protocol.md §4), beyond Noise's:
  ``hotline_transport``   a list of {"sender": "init" or "resp", "n": counter, "payload": hex,
                          "message": hex}, each direction's counters growing: message n of that
                          direction as `Session.seal` writes it (the 8-byte counter header, the
                          key REKEYed every 2^16 messages) and `Session.open` reads it, on
                          sessions built from the handshake's `Split()`. Counters skipped are
                          taken as sent: their REKEYs are applied, as §4.2 says.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.crypto.noise.functions import DH_FUNCTIONS, KEMS, AeadFailure, KEMKeyPair, lookup
from hotline.crypto.noise.handshake import HandshakeState
from hotline.crypto.noise.patterns import parse_protocol_name
from hotline.crypto.noise.state import CipherState
from hotline.crypto.session import REKEY_INTERVAL, Session
from hotline.errors import HotlineError

__all__ = ["VectorResult", "load_vectors", "main", "run_vector"]


@dataclass(frozen=True, slots=True)
class VectorResult:
    name: str
    passed: bool
    reason: str = ""


class _Mismatch(Exception):
    pass


class _Failed(Exception):
    """A receiver could not read a message: what a vector marked `fail` expects."""


def _hex(vector: dict[str, Any], key: str) -> bytes | None:
    value = vector.get(key)
    return bytes.fromhex(value) if value is not None else None


def _party(vector: dict[str, Any], side: str, kem_pair: KEMKeyPair | None) -> HandshakeState:
    name = parse_protocol_name(vector["protocol_name"])
    dh = lookup(DH_FUNCTIONS, name.dh, "DH function")
    static, ephemeral = _hex(vector, f"{side}_static"), _hex(vector, f"{side}_ephemeral")
    encapsulate = None
    if side == "resp" and kem_pair is not None:
        encapsulate = _recorded_encapsulation(vector, kem_pair)
    return HandshakeState(
        vector["protocol_name"],
        initiator=side == "init",
        prologue=_hex(vector, f"{side}_prologue") or b"",
        s=dh.keypair(static) if static else None,
        e=dh.keypair(ephemeral) if ephemeral else None,
        rs=_hex(vector, f"{side}_remote_static"),
        re=_hex(vector, f"{side}_remote_ephemeral"),
        psks=[bytes.fromhex(p) for p in vector.get(f"{side}_psks") or []],
        e1=kem_pair if side == "init" else None,
        encapsulate=encapsulate,
    )


def _recorded_encapsulation(vector: dict[str, Any], init_kem: KEMKeyPair) -> Any:
    ciphertext = _hex(vector, "resp_kem_ciphertext")
    if ciphertext is None:
        raise _Mismatch("an hfs vector needs resp_kem_ciphertext")
    kem = lookup(KEMS, parse_protocol_name(vector["protocol_name"]).kem or "", "KEM")

    def encapsulate(public: bytes) -> tuple[bytes, bytes]:
        if public != init_kem.public:
            raise _Mismatch("responder received a different KEM public key than recorded")
        return ciphertext, kem.decapsulate(init_kem, ciphertext)

    return encapsulate


def run_vector(vector: dict[str, Any]) -> VectorResult:
    name = vector.get("protocol_name") or "<unnamed>"
    try:
        if vector.get("fallback"):
            raise _Mismatch("fallback (Noise Pipes) is not supported")
        _play(vector)
    except _Failed as exc:
        if not vector.get("fail"):
            return VectorResult(name, False, str(exc))
        return VectorResult(name, True)
    except (_Mismatch, HotlineError, AeadFailure, ValueError, KeyError, TypeError) as exc:
        return VectorResult(name, False, f"{type(exc).__name__}: {exc}")
    if vector.get("fail"):
        return VectorResult(name, False, "the vector should fail, yet every message was read")
    return VectorResult(name, True)


def _play(vector: dict[str, Any]) -> None:
    protocol = parse_protocol_name(vector["protocol_name"])
    kem_pair = None
    if protocol.kem:
        seed = _hex(vector, "init_kem_ephemeral")
        if seed is None:
            raise _Mismatch("an hfs vector needs init_kem_ephemeral")
        kem_pair = lookup(KEMS, protocol.kem, "KEM").keypair(seed)
    init, resp = _party(vector, "init", kem_pair), _party(vector, "resp", kem_pair)
    transport = None
    for i, message in enumerate(vector["messages"]):
        payload, ciphertext = (
            bytes.fromhex(message["payload"]),
            bytes.fromhex(message["ciphertext"]),
        )
        from_init = protocol.pattern.one_way or i % 2 == 0
        sender, receiver = (init, resp) if from_init else (resp, init)
        if not sender.complete:
            written = sender.write_message(payload)
            _expect(written, ciphertext, f"message {i}: written ciphertext")
            _expect(_read(receiver.read_message, written, i), payload, f"message {i}: read payload")
            continue
        if transport is None:
            _hash(vector, init, resp)
            i_to_r, r_to_i = init.split()
            ri_to_r, rr_to_i = resp.split()
            transport = {True: (i_to_r, ri_to_r), False: (rr_to_i, r_to_i)}
        send, recv = transport[from_init]
        written = send.encrypt_with_ad(b"", payload)
        _expect(written, ciphertext, f"message {i}: transport ciphertext")
        read = _read(functools.partial(recv.decrypt_with_ad, b""), written, i)
        _expect(read, payload, f"message {i}: transport payload")
    if not (init.complete and resp.complete):
        raise _Mismatch("the vector ended before the handshake completed")
    if transport is None:  # no transport messages: the hash must still be checked
        _hash(vector, init, resp)
    if vector.get("hotline_transport") is not None:
        _hotline_transport(init, resp, vector["hotline_transport"])


def _read(read: Callable[[bytes], bytes], data: bytes, i: int) -> bytes:
    try:
        return read(data)
    except (HotlineError, AeadFailure) as exc:
        raise _Failed(f"message {i} could not be read: {type(exc).__name__}: {exc}") from None


def _hash(vector: dict[str, Any], init: HandshakeState, resp: HandshakeState) -> None:
    expected = _hex(vector, "handshake_hash")
    if expected is not None:  # optional in the format
        _expect(init.handshake_hash, expected, "handshake hash")
    _expect(resp.handshake_hash, init.handshake_hash, "responder's handshake hash")


def _hotline_transport(
    init: HandshakeState, resp: HandshakeState, entries: list[dict[str, Any]]
) -> None:
    """Each entry sealed by its sender's `Session` and opened by the other's, on fresh copies
    of the split CipherStates (the Noise transport messages above used the originals)."""
    i_to_r, r_to_i = (_fresh(c) for c in init.split())
    ri_to_r, rr_to_i = (_fresh(c) for c in resp.split())
    sessions = {
        "init": Session(i_to_r, r_to_i, init.handshake_hash, initiator=True),
        "resp": Session(ri_to_r, rr_to_i, resp.handshake_hash, initiator=False),
    }
    ciphers = {"init": (i_to_r, ri_to_r), "resp": (rr_to_i, r_to_i)}  # sender's, receiver's
    for i, entry in enumerate(entries):
        side, n = entry["sender"], entry["n"]
        if side not in sessions or type(n) is not int:
            raise _Mismatch(f"hotline transport {i}: sender is init or resp, n an integer")
        for cipher in ciphers[side]:
            _skip_to(cipher, n)
        payload, message = bytes.fromhex(entry["payload"]), bytes.fromhex(entry["message"])
        what = f"hotline transport {i} ({side} message {n})"
        sealed = sessions[side].seal(payload)
        _expect(sealed, message, f"{what}: sealed")
        _expect(sessions["resp" if side == "init" else "init"].open(sealed), payload, what)


def _fresh(cipher: CipherState) -> CipherState:
    if cipher.k is None:
        raise _Mismatch("the handshake split no transport key")
    return CipherState(cipher.cipher, cipher.k)


def _skip_to(cipher: CipherState, n: int) -> None:
    """Take messages cipher.n .. n-1 as sent: REKEY for each multiple of 2^16 among them (a
    message m > 0 with m mod 2^16 = 0 is sealed after a REKEY), then stand at n."""
    if n < cipher.n:
        raise _Mismatch(f"hotline transport counter {n} goes back (next is {cipher.n})")
    first = -(-max(cipher.n, 1) // REKEY_INTERVAL) * REKEY_INTERVAL
    for _ in range(first, n, REKEY_INTERVAL):
        cipher.rekey()
    cipher.set_nonce(n)


def _expect(got: bytes, want: bytes, what: str) -> None:
    if got != want:
        raise _Mismatch(f"{what} differs: got {got.hex()[:64]}..., want {want.hex()[:64]}...")


def load_vectors(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    vectors = data["vectors"] if isinstance(data, dict) else data
    if not isinstance(vectors, list):
        raise ValueError(f"{path}: expected a list of vectors")
    return vectors


def run_files(paths: Sequence[Path]) -> Iterator[VectorResult]:
    for path in paths:
        for vector in load_vectors(path):
            yield run_vector(vector)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m hotline.crypto.noise.vectors FILE [FILE ...]", file=sys.stderr)
        return 2
    passed = failed = 0
    try:
        for result in run_files([Path(a) for a in args]):
            if result.passed:
                passed += 1
            else:
                failed += 1
                print(f"FAIL {result.name}: {result.reason}")
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot read vectors: {exc}", file=sys.stderr)
        return 2
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
