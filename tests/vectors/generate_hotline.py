"""Write tests/vectors/hotline.json: known-answer vectors for the hotline handshake.

    python tests/vectors/generate_hotline.py

Every key comes from a fixed label, so a run reproduces the same file except for the responder's
ML-KEM ciphertext, which the library encapsulates with randomness of its own; the file records it
(`resp_kem_ciphertext`) and the runner replays it. Regenerate only when the protocol changes.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from hotline.crypto.noise.functions import DH_FUNCTIONS, KEMS
from hotline.crypto.noise.handshake import HandshakeState
from hotline.crypto.session import PROTOCOL_NAME, PROTOCOL_VERSION, prologue


def fixed(label: str, n: int) -> bytes:
    return hashlib.shake_256(f"hotline test vector: {label}".encode()).digest(n)


def payload(sent_ns: int, app: bytes) -> bytes:
    return struct.pack(">BQ", PROTOCOL_VERSION, sent_ns) + app


CASES = [
    ("london-moscow", 1_795_000_000_000_000_000, b"", b""),
    ("with-app-data", 1_795_000_123_456_789_012, b"path=primary", b"path=primary ok"),
]
TRANSPORT = [
    b"London to Moscow: test message, hourly, 00:00 UTC",
    "Москва — Лондону: проверочное сообщение получено.".encode(),
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ".encode(),
    b"",
]


def make_vector(label: str, sent_ns: int, app1: bytes, app2: bytes) -> dict[str, object]:
    dh, kem = DH_FUNCTIONS["25519"], KEMS["MLKEM768"]
    link_id, psk = fixed(f"{label} link id", 32), fixed(f"{label} psk", 32)
    init_s, resp_s = (
        dh.keypair(fixed(f"{label} init static", 32)),
        dh.keypair(fixed(f"{label} resp static", 32)),
    )
    init_e, resp_e = (
        dh.keypair(fixed(f"{label} init ephemeral", 32)),
        dh.keypair(fixed(f"{label} resp ephemeral", 32)),
    )
    init_kem = kem.keypair(fixed(f"{label} init kem ephemeral", 64))
    recorded: list[bytes] = []

    def encapsulate(public: bytes) -> tuple[bytes, bytes]:
        ciphertext, shared = kem.encapsulate(public)
        recorded.append(ciphertext)
        return ciphertext, shared

    common_prologue = prologue(link_id)
    init = HandshakeState(
        PROTOCOL_NAME,
        initiator=True,
        s=init_s,
        e=init_e,
        rs=resp_s.public,
        e1=init_kem,
        prologue=common_prologue,
        psks=[psk],
    )
    resp = HandshakeState(
        PROTOCOL_NAME,
        initiator=False,
        s=resp_s,
        e=resp_e,
        rs=init_s.public,
        prologue=common_prologue,
        psks=[psk],
        encapsulate=encapsulate,
    )
    messages = []
    for sender, receiver, body in (
        (init, resp, payload(sent_ns, app1)),
        (resp, init, payload(sent_ns + 7_000_000, app2)),
    ):
        ciphertext = sender.write_message(body)
        assert receiver.read_message(ciphertext) == body
        messages.append({"payload": body.hex(), "ciphertext": ciphertext.hex()})
    i_to_r, r_to_i = init.split()
    for index, text in enumerate(TRANSPORT):
        cipher = i_to_r if index % 2 == 0 else r_to_i
        messages.append(
            {"payload": text.hex(), "ciphertext": cipher.encrypt_with_ad(b"", text).hex()}
        )
    return {
        "protocol_name": PROTOCOL_NAME,
        "init_prologue": common_prologue.hex(),
        "init_static": init_s.private.hex(),
        "init_ephemeral": init_e.private.hex(),
        "init_remote_static": resp_s.public.hex(),
        "init_psks": [psk.hex()],
        "init_kem_ephemeral": init_kem.seed.hex(),
        "resp_prologue": common_prologue.hex(),
        "resp_static": resp_s.private.hex(),
        "resp_ephemeral": resp_e.private.hex(),
        "resp_remote_static": init_s.public.hex(),
        "resp_psks": [psk.hex()],
        "resp_kem_ciphertext": recorded[0].hex(),
        "handshake_hash": init.handshake_hash.hex(),
        "messages": messages,
    }


def main() -> None:
    out = Path(__file__).with_name("hotline.json")
    vectors = [make_vector(*case) for case in CASES]
    out.write_text(json.dumps({"vectors": vectors}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(vectors)} vectors to {out}")


if __name__ == "__main__":
    main()
