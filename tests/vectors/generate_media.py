"""Write tests/vectors/media.json: known-answer vectors for call media keys and datagrams.

    python tests/vectors/generate_media.py

Every input comes from a fixed label (SHAKE-256, as generate_hotline.py), so a run reproduces
the file byte for byte; tests/test_media.py checks that, and checks the file both ways (the sealer
writes each datagram, the opener reads it back, the refused ones are refused). The layout is in
docs/protocol.md section 11.9. Regenerate only when the protocol changes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from hotline.protocol.media import (
    MAX_OPUS,
    MEDIA_VERSION,
    REJECT_AFTER,
    AudioFrame,
    MediaKeys,
    MediaPayload,
    MediaSealer,
    Probe,
    ProbeReply,
    media_keys,
)

OUT = Path(__file__).with_name("media.json")
SILENCE = bytes.fromhex("f8fffe")  # an Opus 20 ms CELT frame of silence, as encoders emit it
SENT_NS = 1_795_000_000_000_000_000
CALLER, CALLEE = "caller-to-callee", "callee-to-caller"

Datagram = tuple[str, int, MediaPayload]  # direction, counter, payload


def fixed(label: str, n: int) -> bytes:
    return hashlib.shake_256(f"hotline test vector: {label}".encode()).digest(n)


OPUS_80, OPUS_MAX = fixed("media opus 80", 80), fixed("media opus max", MAX_OPUS)
# name, datagrams, whether the call also lists datagrams that must be refused
CASES: list[tuple[str, list[Datagram], bool]] = [
    (
        "london-calls-moscow",
        [
            (CALLER, 0, AudioFrame(0, 0, 0, 0, SILENCE)),
            (CALLER, 1, AudioFrame(0, 0, 1, 0, SILENCE)),  # the same frame, on path 1
            (CALLEE, 0, Probe(0, 1, SENT_NS)),
            (CALLER, 2, ProbeReply(0, 1, SENT_NS)),
            (CALLEE, 1, AudioFrame(0, 0, 1, 0, OPUS_80)),
        ],
        True,
    ),
    (
        "counters-at-the-top",
        [
            (CALLER, 2**32 + 5, AudioFrame(2**32 - 1, 2**32 - 960, 255, 0, OPUS_MAX)),
            (CALLER, REJECT_AFTER - 1, Probe(255, 2**32 - 1, 2**64 - 1)),
        ],
        False,
    ),
]


def payload_json(payload: MediaPayload) -> dict[str, object]:
    if isinstance(payload, AudioFrame):
        fields: dict[str, object] = {"kind": "audio", "seq": payload.seq}
        fields |= {"timestamp": payload.timestamp, "path": payload.path, "flags": payload.flags}
        return fields | {"opus": payload.opus.hex()}
    kind = "probe" if isinstance(payload, Probe) else "probe_reply"
    ns = payload.sent_ns if isinstance(payload, Probe) else payload.echo_ns
    name = "sent_ns" if isinstance(payload, Probe) else "echo_ns"
    return {"kind": kind, "path": payload.path, "probe_id": payload.probe_id, name: ns}


def direction_key(keys: MediaKeys, direction: str, indexes: dict[str, int]) -> tuple[bytes, int]:
    """The key of a direction and the receiver index its datagrams carry (the receiver's)."""
    if direction == CALLER:
        return keys.caller_to_callee, indexes["callee_receiver_index"]
    return keys.callee_to_caller, indexes["caller_receiver_index"]


def make_call(case: str, datagrams: list[Datagram], refuse: bool) -> dict[str, object]:
    call_id = fixed(f"media {case} call id", 16)
    caller_share = fixed(f"media {case} caller share", 32)
    callee_share = fixed(f"media {case} callee share", 32)
    indexes = {
        "caller_receiver_index": int.from_bytes(fixed(f"media {case} caller index", 4), "big"),
        "callee_receiver_index": int.from_bytes(fixed(f"media {case} callee index", 4), "big"),
    }
    keys = media_keys(call_id, caller_share, callee_share)
    sealed: list[dict[str, Any]] = []
    for direction, counter, payload in datagrams:
        key, receiver_index = direction_key(keys, direction, indexes)
        datagram = MediaSealer(key, receiver_index, counter=counter).seal(payload)
        sealed.append(
            {
                "direction": direction,
                "counter": counter,
                "payload": payload_json(payload),
                "plaintext": payload.encode().hex(),
                "datagram": datagram.hex(),
            }
        )
    return {
        "name": case,
        "call_id": call_id.hex(),
        "caller_share": caller_share.hex(),
        "callee_share": callee_share.hex(),
        **indexes,
        "caller_to_callee": keys.caller_to_callee.hex(),
        "callee_to_caller": keys.callee_to_caller.hex(),
        "datagrams": sealed,
        "refused": refused(keys, indexes, [bytes.fromhex(d["datagram"]) for d in sealed])
        if refuse
        else [],
    }


def refused(keys: MediaKeys, indexes: dict[str, int], sealed: list[bytes]) -> list[object]:
    """Datagrams an opener of the direction must refuse, each on a fresh opener."""
    first = sealed[0]  # caller-to-callee
    flipped = first[:-1] + bytes([first[-1] ^ 0x01])  # one bit of the tag
    key, receiver_index = direction_key(keys, CALLER, indexes)
    # Authentic, yet past the limit: sealed with the primitive, as no MediaSealer would.
    header = bytes([MEDIA_VERSION]) + receiver_index.to_bytes(4, "big")
    header += REJECT_AFTER.to_bytes(8, "big")
    nonce = bytes(4) + header[5:]
    beyond = header + ChaCha20Poly1305(key).encrypt(nonce, Probe(0, 0, 0).encode(), header)
    reflected = sealed[2]  # callee-to-caller, sent back to the callee
    return [
        {"direction": CALLER, "datagram": flipped.hex(), "reason": "failed authentication"},
        {"direction": CALLER, "datagram": beyond.hex(), "reason": "counter beyond the limit"},
        {"direction": CALLER, "datagram": reflected.hex(), "reason": "wrong receiver index"},
    ]


def build() -> dict[str, object]:
    return {"calls": [make_call(*case) for case in CASES]}


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
