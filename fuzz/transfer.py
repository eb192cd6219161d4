"""Harness: attachments on the wire (hotline.protocol.transfer): the Held statements a receiver
signs for a file, and the chunks of a file that a receiver writes in order. Held statements come
from the peer and from bundles; `Held.decode`, `check_signature` and `verify` refuse with
ProtocolError. Entry points:

    0  stored form  Signed.from_bytes, Held.verify against Moscow's keys (Moscow received
                    London's file), then `covers` for each file of London's envelope
    1  signed body  the bytes as a Held body Moscow signed: the form must be checked regardless
    2  fetch        a conversation (fuzz.common.split_steps) of the sender's packets, each
                    decoded strictly; its Chunks go to a Fetch, and a step of op 1 loses the
                    session and resumes on another

A Fetch writes a file strictly in order: it accepts only the next bytes it asked for, on the
session it asked on, and never holds more than the file.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator

from fuzz.common import LONDON_CONFIG, MOSCOW, T0, join_steps, mode, refused, split_steps, with_mode
from hotline.protocol.envelope import Attachment, Envelope, Lane, MessageType
from hotline.protocol.frames import Chunk, HeldFrame, Want, decode_packet, encode_packets
from hotline.protocol.link import LinkCore
from hotline.protocol.state import LinkState
from hotline.protocol.statements import Signed
from hotline.protocol.transfer import Fetch, Held

__all__ = ["seeds", "test_one_input"]

MODES = 3
FILE = bytes(range(256)) + b"the end of a small file"
SHA = hashlib.sha256(FILE).digest()


@functools.cache
def london_envelope() -> Envelope:
    """London's message with two files: the envelope Moscow's Held statements are about."""
    core = LinkCore(LONDON_CONFIG, LinkState.new(LONDON_CONFIG), T0)
    files = (
        Attachment("map.png", "image/png", len(FILE), SHA),
        Attachment("notes.txt", "text/plain", 5, bytes(32)),
    )
    out = core.send(Lane.ROUTINE, MessageType.PRINCIPAL, "en", "two files", T0, attachments=files)
    return out.batch.outbound[0]


def _covers(held: Held | None) -> None:
    if held is not None:
        envelope = london_envelope()
        covered = [i for i in range(-1, 3) if held.covers(envelope, i)]
        assert covered in ([], [held.body.index]), "a Held statement covers another file"


def _fetch(steps: list[tuple[int, bytes]]) -> None:
    fetch = Fetch(SHA, len(FILE))
    sid = 1
    fetch.start(sid, 0)
    for op, chunk in steps[:64]:
        if op % 2:
            fetch.lost(sid)
            sid += 1
            fetch.start(sid, fetch.held)  # what a resumed receiver asks: from what it holds
            continue
        for frame in refused(lambda: decode_packet(chunk)) or []:  # noqa: B023 - called at once
            if isinstance(frame, Chunk) and fetch.accepts(sid, frame):
                assert frame.offset == fetch.held, "a chunk accepted out of order"
                fetch.advance(len(frame.data))
                assert fetch.held <= fetch.size, "a fetch holds more than the file"


def test_one_input(data: bytes) -> None:
    choice, payload = mode(data, MODES)
    if choice == 0:
        signed = refused(lambda: Signed.from_bytes(payload))
        if signed is not None:
            statement: Signed = signed  # as declared, for the lambda
            _covers(refused(lambda: Held.verify(statement, MOSCOW.public)))
    elif choice == 1:
        signed = Signed(payload, MOSCOW.sign_ed25519("attachment", payload))
        _covers(refused(lambda: Held.verify(signed, MOSCOW.public)))
    else:
        _fetch(split_steps(payload))


def seeds() -> Iterator[bytes]:
    held = Held.create(MOSCOW, london_envelope(), 0, T0)
    yield with_mode(0, held.signed.to_bytes())
    yield with_mode(1, held.signed.body_bytes)
    chunks = [
        Chunk(SHA, offset, FILE[offset : offset + 100]) for offset in range(0, len(FILE), 100)
    ]
    packets = [encode_packets([frame])[0] for frame in chunks]
    frame = HeldFrame(held.signed.body_bytes, held.signed.signature)
    other = encode_packets([Want(SHA, 0, len(FILE)), frame])[0]
    yield with_mode(2, join_steps([(0, packets[0]), (0, packets[0]), (1, b""), (0, other),
                                   (0, packets[1]), (0, packets[2])]))  # fmt: skip
