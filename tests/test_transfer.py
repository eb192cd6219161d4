"""The pure rules of attachments and annotations: the receiver's window, what a chunk must be to
be written, what a Held statement and an annotation must say, and the frames that carry files."""

from __future__ import annotations

import os

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.crypto.identity import StationIdentity
from hotline.errors import ProtocolError
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.envelope import (
    ENVELOPE_VERSION,
    Attachment,
    Envelope,
    EnvelopeBody,
    Lane,
    MessageType,
)
from hotline.protocol.frames import MAX_CHUNK, Ask, Chunk, Want, decode_packet, encode_packets
from hotline.protocol.statements import Signed
from hotline.protocol.transfer import WINDOW, Fetch, Held

ALICE = StationIdentity.from_random(os.urandom(96))
BOB = StationIdentity.from_random(os.urandom(96))
SHA = bytes(range(32))
FILE = Attachment("карта.png", "image/png", 10 * WINDOW + 123, SHA)
BODY = EnvelopeBody(
    version=ENVELOPE_VERSION, link_id=b"L" * 32, direction=0, lane=int(Lane.ROUTINE), seq=5,
    sent_ns=1, type=int(MessageType.PRINCIPAL), language="ru", text="Карта", prev_hash=b"p" * 32,
    peer_head=b"h" * 32, ref=None, attachments=(FILE,),
)  # fmt: skip
ENVELOPE = Envelope.create(BODY, ALICE)


def test_a_fetch_asks_a_window_at_a_time_and_writes_strictly_in_order() -> None:
    fetch = Fetch(SHA, FILE.size)
    want = fetch.start(sid=1, durable=0)
    assert want == Want(SHA, 0, WINDOW)
    assert not fetch.accepts(2, Chunk(SHA, 0, b"x")), "only on the session it asked on"
    assert not fetch.accepts(1, Chunk(SHA, 1, b"x")), "only the next byte wanted"
    held, asked = 0, [want]
    while not fetch.complete:
        size = min(MAX_CHUNK, fetch.granted - fetch.held)
        chunk = Chunk(SHA, fetch.held, b"x" * size)
        assert fetch.accepts(1, chunk)
        more = fetch.advance(size)
        held += size
        if more is not None:
            assert more.offset == asked[-1].end, "each new window starts where the last ended"
            assert more.end - fetch.held <= WINDOW, "never more than a window in flight"
            asked.append(more)
    assert held == FILE.size
    assert asked[-1].end == FILE.size


def test_a_lost_session_restarts_from_what_is_durable() -> None:
    fetch = Fetch(SHA, FILE.size)
    fetch.start(1, 0)
    fetch.advance(MAX_CHUNK)
    fetch.lost(1)
    assert fetch.sid is None
    late = Chunk(SHA, MAX_CHUNK, b"x")
    assert not fetch.accepts(1, late), "a late chunk from the lost session is dropped"
    again = fetch.start(2, durable=0)  # a crash lost what was not synced
    assert again == Want(SHA, 0, WINDOW)
    assert fetch.start(3, durable=FILE.size) is None, "nothing to ask for a file held whole"


def test_a_held_statement_covers_exactly_its_file() -> None:
    held = Held.create(BOB, ENVELOPE, 0, 99)
    checked = Held.verify(held.signed, BOB.public)
    assert checked.covers(ENVELOPE, 0)
    assert not checked.covers(ENVELOPE, 1)
    other = Envelope.create(msgspec.structs.replace(ENVELOPE.body, seq=6), ALICE)
    assert not checked.covers(other, 0)
    with pytest.raises(ProtocolError, match="bad signature"):
        Held.verify(held.signed, ALICE.public)
    with pytest.raises(ProtocolError, match="does not decode"):
        Held.verify(Signed(b"\x91\x01", held.signed.signature), BOB.public)


def test_annotations_follow_their_form() -> None:
    t = Annotation.create(BOB, ENVELOPE, Kind.TRANSLATION, "en", "Map", "nina", "translator", 1)
    assert Annotation.verify(t.signed, BOB.public).about(ENVELOPE)
    with pytest.raises(ProtocolError, match="bad signature"):
        Annotation.verify(t.signed, ALICE.public)
    # (kind, text, person, engine, refers), each breaking one rule
    bad: list[tuple[Kind, str, str, str, bytes]] = [
        (Kind.REVIEW, "", "ivan", "", b""),  # a review names what it reviews
        (Kind.TRANSLATION, "Map", "nina", "", t.hash),  # a translation names nothing
        (Kind.MACHINE, "Map", "nina", "", b""),  # a machine draft names its engine
        (Kind.TRANSLATION, "Map", "nina", "argos", b""),  # and only a machine draft
        (Kind.TRANSLATION, "  ", "nina", "", b""),  # a translation has a text
        (Kind.TRANSLATION, "Map", "", "", b""),  # and a person
    ]
    for kind, text, person, engine, refers in bad:
        with pytest.raises(ProtocolError):
            Annotation.create(
                BOB, ENVELOPE, kind, "en", text, person, "translator", 1, engine, refers
            )


@given(st.binary(min_size=1, max_size=MAX_CHUNK), st.integers(0, 2**63 - 1))
def test_a_chunk_of_any_size_up_to_the_limit_fits_one_packet(data: bytes, offset: int) -> None:
    [packet] = encode_packets([Chunk(SHA, offset, data)])
    assert decode_packet(packet) == [Chunk(SHA, offset, data)]


@pytest.mark.parametrize(
    "frame",
    [
        Want(b"short", 0, 1),
        Want(SHA, 5, 5),  # an empty range
        Want(SHA, -1, 5),
        Chunk(SHA, 0, b""),
        Ask(4, 1),
        Ask(0, 0),
    ],
)
def test_a_malformed_transfer_frame_refuses_the_packet(frame: object) -> None:
    packet = b"\x01" + len(raw := msgspec.msgpack.encode(frame)).to_bytes(2, "big") + raw
    with pytest.raises(ProtocolError):
        decode_packet(packet)
