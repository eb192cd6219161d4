"""Run Noise test vectors in the cacophony JSON format.

    python -m hotline.crypto.noise.vectors FILE [FILE ...]

Each vector is played both ways: the sending side must write exactly the recorded ciphertext,
and the receiving side must read it back to the recorded payload. After the handshake both
sides must hold the recorded handshake hash; transport messages follow on the split ciphers.
A protocol this build does not support counts as failed, never as skipped. The last line is
``N passed, M failed``; the exit status is 1 when M > 0.

Two optional fields carry the KEM of the HFS extension, whose encapsulation draws randomness
that the library does not let us inject:
  ``init_kem_ephemeral``  the initiator's ML-KEM key pair as its 64-byte seed (d || z);
  ``resp_kem_ciphertext`` the ciphertext the responder's encapsulation produced. The runner
                          replays it, taking the shared secret from the initiator's key.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.crypto.noise.functions import DH_FUNCTIONS, KEMS, AeadFailure, KEMKeyPair, lookup
from hotline.crypto.noise.handshake import HandshakeState
from hotline.crypto.noise.patterns import parse_protocol_name
from hotline.errors import HotlineError

__all__ = ["VectorResult", "load_vectors", "main", "run_vector"]


@dataclass(frozen=True, slots=True)
class VectorResult:
    name: str
    passed: bool
    reason: str = ""


class _Mismatch(Exception):
    pass


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
        psks=[bytes.fromhex(p) for p in vector.get(f"{side}_psks", [])],
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
    name = vector.get("protocol_name", "<unnamed>")
    try:
        _play(vector)
    except (_Mismatch, HotlineError, AeadFailure, ValueError, KeyError, TypeError) as exc:
        return VectorResult(name, False, f"{type(exc).__name__}: {exc}")
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
            _expect(receiver.read_message(written), payload, f"message {i}: read payload")
            continue
        if transport is None:
            _expect(init.handshake_hash, bytes.fromhex(vector["handshake_hash"]), "handshake hash")
            _expect(resp.handshake_hash, init.handshake_hash, "responder's handshake hash")
            i_to_r, r_to_i = init.split()
            ri_to_r, rr_to_i = resp.split()
            transport = {True: (i_to_r, ri_to_r), False: (rr_to_i, r_to_i)}
        send, recv = transport[from_init]
        written = send.encrypt_with_ad(b"", payload)
        _expect(written, ciphertext, f"message {i}: transport ciphertext")
        _expect(recv.decrypt_with_ad(b"", written), payload, f"message {i}: transport payload")
    if not (init.complete and resp.complete):
        raise _Mismatch("the vector ended before the handshake completed")
    if transport is None:  # no transport messages: the hash must still be checked
        _expect(init.handshake_hash, bytes.fromhex(vector["handshake_hash"]), "handshake hash")
        _expect(resp.handshake_hash, init.handshake_hash, "responder's handshake hash")


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
