"""Write tests/vectors/hotline.json: known-answer vectors for the hotline handshake.

    python tests/vectors/generate_hotline.py

Every key comes from a fixed label. The responder's ML-KEM ciphertext cannot: the library
encapsulates with randomness of its own, so the file records it (`resp_kem_ciphertext`) and the
runner replays it; a run replays the one already in the file too, so it rewrites the same bytes
(delete the file for a new ciphertext, and update docs/protocol.md §10.4 then). Regenerate only
when the protocol changes.

`hotline_transport` is the hotline's own transport (docs/protocol.md §4): messages at the edges
of the REKEY interval, each computed here from the primitives (ChaCha20-Poly1305 of
`cryptography`, REKEY as Noise §4.2 defines it), not by `Session`, which the runner checks
against them.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

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
# (sender, counter, payload): each direction's first messages, the last under the split key, the
# first under each REKEYed key (2^16, 2^17), and one after a REKEY.
HOTLINE_TRANSPORT = [
    ("init", 0, b"first"),
    ("init", 1, b"second"),
    ("init", 65_535, b"the last message under the key from Split()"),
    ("init", 65_536, b"the first under REKEY(k)"),
    ("init", 65_537, "и следующее".encode()),
    ("init", 131_072, b"the first under REKEY(REKEY(k))"),
    ("resp", 0, "Москва: первое".encode()),
    ("resp", 65_536, b""),
]
MAX_NONCE = 2**64 - 1


def _nonce(n: int) -> bytes:
    return bytes(4) + n.to_bytes(8, "little")


def rekey(key: bytes) -> bytes:
    """Noise §4.2: REKEY(k) = ENCRYPT(k, 2^64 - 1, empty, 32 zero bytes)[:32]."""
    return ChaCha20Poly1305(key).encrypt(_nonce(MAX_NONCE), bytes(32), b"")[:32]


def hotline_message(key: bytes, n: int, payload: bytes) -> bytes:
    """docs/protocol.md §4.1-4.2: u64be(n) || ENCRYPT(REKEY^(n // 2^16)(k), n, "", payload)."""
    for _ in range(n // 2**16):
        key = rekey(key)
    return n.to_bytes(8, "big") + ChaCha20Poly1305(key).encrypt(_nonce(n), payload, b"")


def make_vector(
    label: str, sent_ns: int, app1: bytes, app2: bytes, recorded_kem: bytes | None = None
) -> dict[str, object]:
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
        if recorded_kem is not None:  # the file's: the same vector again
            recorded.append(recorded_kem)
            return recorded_kem, kem.decapsulate(init_kem, recorded_kem)
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
    keys = {"init": i_to_r.k, "resp": r_to_i.k}
    transport = []
    for side, n, text in HOTLINE_TRANSPORT:
        key = keys[side]
        assert key is not None
        sealed = hotline_message(key, n, text)
        transport.append({"sender": side, "n": n, "payload": text.hex(), "message": sealed.hex()})
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
        "hotline_transport": transport,
    }


def main() -> None:
    out = Path(__file__).with_name("hotline.json")
    recorded: list[bytes | None] = [None] * len(CASES)
    if out.exists():
        old = json.loads(out.read_text(encoding="utf-8"))["vectors"]
        recorded = [bytes.fromhex(v["resp_kem_ciphertext"]) for v in old]
    vectors = [make_vector(*case, kem) for case, kem in zip(CASES, recorded, strict=True)]
    out.write_text(json.dumps({"vectors": vectors}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(vectors)} vectors to {out}")


if __name__ == "__main__":
    main()
