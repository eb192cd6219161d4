"""Link frames and packets: round trips, packing into packets, strict refusal of anything else."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.errors import ProtocolError
from hotline.protocol.frames import (
    MAX_PACKET,
    PACKET_VERSION,
    CheckpointFrame,
    Close,
    EnvelopeFrame,
    Frame,
    Hello,
    Ping,
    Pong,
    ReceiptFrame,
    decode_packet,
    encode_frame,
    encode_packets,
)
from hotline.protocol.statements import Head

U64 = 2**64 - 1
HASH = b"\x5a" * 32
FRAME_TYPES = (Hello, EnvelopeFrame, ReceiptFrame, Ping, Pong, CheckpointFrame, Close)

# --- strategies --------------------------------------------------------------------------------

u64s = st.integers(min_value=0, max_value=U64)
hashes = st.binary(min_size=32, max_size=32)


def _filled(args: tuple[int, int]) -> bytes:
    byte, size = args
    return bytes([byte]) * size


# Realistic sizes: envelope bodies up to 33 KiB of text, hybrid signatures of 3373 bytes. Large
# byte strings are drawn as a repeated byte, which Hypothesis generates (and shrinks) cheaply.
large_bytes = st.tuples(st.integers(0, 255), st.integers(0, 40_000)).map(_filled)
bodies = st.one_of(st.binary(max_size=300), large_bytes)
signatures = st.one_of(
    st.binary(max_size=100), st.binary(min_size=64, max_size=64), st.just(b"\x01" * 3373)
)
heads = st.builds(Head, u64s, hashes)

hellos: st.SearchStrategy[Hello] = st.builds(
    Hello,
    hashes,
    st.lists(heads, min_size=4, max_size=4),
    st.lists(st.integers(min_value=1, max_value=2**64 - 1), min_size=4, max_size=4),
)
envelope_frames: st.SearchStrategy[EnvelopeFrame] = st.builds(EnvelopeFrame, bodies, signatures)
receipt_frames: st.SearchStrategy[ReceiptFrame] = st.builds(
    ReceiptFrame, st.binary(max_size=400), signatures
)
pings: st.SearchStrategy[Ping] = st.builds(Ping, u64s, u64s)
pongs: st.SearchStrategy[Pong] = st.builds(Pong, u64s, u64s, u64s)
checkpoint_frames: st.SearchStrategy[CheckpointFrame] = st.builds(
    CheckpointFrame, st.binary(max_size=600), signatures
)
closes: st.SearchStrategy[Close] = st.builds(Close, u64s, st.text(max_size=200))
frames: st.SearchStrategy[Frame] = st.one_of(
    hellos, envelope_frames, receipt_frames, pings, pongs, checkpoint_frames, closes
)
frame_lists: st.SearchStrategy[list[Frame]] = st.lists(frames, max_size=12)


def _packet(*chunks: bytes, version: int = PACKET_VERSION) -> bytes:
    """A packet of raw frame bytes, each behind its correct 16-bit length."""
    return bytes([version]) + b"".join(struct.pack(">H", len(c)) + c for c in chunks)


def _mp(obj: object) -> bytes:
    return msgspec.msgpack.encode(obj)


def _decode_all(packets: list[bytes]) -> list[Frame]:
    return [frame for packet in packets for frame in decode_packet(packet)]


# --- round trips -------------------------------------------------------------------------------


@given(frame_lists)
def test_frames_round_trip_through_packets(frame_list: list[Frame]) -> None:
    packets = encode_packets(frame_list)
    assert _decode_all(packets) == frame_list
    assert bool(packets) == bool(frame_list)
    for packet in packets:
        assert packet[0] == PACKET_VERSION
        assert len(packet) <= MAX_PACKET
    # As few packets as fit: the first frame of each packet did not fit in the one before it.
    for previous, following in itertools.pairwise(packets):
        first = encode_frame(decode_packet(following)[0])
        assert len(previous) + 2 + len(first) > MAX_PACKET


@given(st.lists(st.tuples(st.integers(0, 255), st.integers(22_000, 65_000)), min_size=3))
def test_large_frames_split_across_packets(sizes: list[tuple[int, int]]) -> None:
    frame_list: list[Frame] = [EnvelopeFrame(_filled(s), b"\x07" * 64) for s in sizes]
    packets = encode_packets(frame_list)
    total = sum(2 + len(encode_frame(f)) for f in frame_list)
    assert len(packets) >= 2
    assert len(packets) * (MAX_PACKET - 1) >= total
    assert all(len(p) <= MAX_PACKET for p in packets)
    assert _decode_all(packets) == frame_list


def test_packing_is_greedy_and_in_order() -> None:
    # Each frame encodes to a little over 32 000 bytes: two fit in a packet, three do not.
    frame_list: list[Frame] = [EnvelopeFrame(bytes([i]) * 32_000, b"s" * 64) for i in range(7)]
    packets = encode_packets(frame_list)
    assert [len(decode_packet(p)) for p in packets] == [2, 2, 2, 1]
    assert _decode_all(packets) == frame_list


def test_no_frames_make_no_packets() -> None:
    assert encode_packets([]) == []


def test_every_frame_kind_round_trips_with_its_tag() -> None:
    every: list[Frame] = [
        Hello(HASH, [Head(i, HASH) for i in range(4)], [1, 2, 3, 4]),
        EnvelopeFrame(b"body", b"sig"),
        ReceiptFrame(b"body", b"sig"),
        Ping(1, 2),
        Pong(1, 2, 3),
        CheckpointFrame(b"body", b"sig"),
        Close(1000, "Лондон закрывает линию"),
    ]
    for kind, frame in enumerate(every, start=1):
        assert msgspec.msgpack.decode(encode_frame(frame))[0] == kind
    (packet,) = encode_packets(every)
    assert decode_packet(packet) == every


def test_close_reason_counts_characters_not_bytes() -> None:
    (packet,) = encode_packets([Close(1, "ж" * 200)])  # 400 bytes of UTF-8, 200 characters
    assert decode_packet(packet) == [Close(1, "ж" * 200)]


# --- fuzz: anything decodes or raises ProtocolError, never anything else --------------------------

msgpack_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=U64),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=40),
)
msgpack_values: st.SearchStrategy[Any] = st.recursive(
    msgpack_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)
# Arrays that start like a frame (a kind, mostly a known one) followed by anything at all.
frame_shaped = st.tuples(st.integers(-1, 9), st.lists(msgpack_values, max_size=5)).map(
    lambda t: _mp([t[0], *t[1]])
)


def _replace_one(frame: Frame, position: int, value: object) -> bytes:
    """A valid frame with one element (at the top level or one level down) replaced."""
    items: list[Any] = msgspec.msgpack.decode(encode_frame(frame))
    index = position % len(items)
    if isinstance(items[index], list) and items[index] and position % 2:
        inner = items[index]
        inner[position % len(inner)] = value
    else:
        items[index] = value
    return _mp(items)


one_field_wrong = st.builds(_replace_one, frames, st.integers(0, 50), msgpack_values)
frame_bytes = st.one_of(st.binary(max_size=60), frame_shaped, one_field_wrong)
fuzz_packets = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda b: bytes([PACKET_VERSION]) + b),
    st.lists(frame_bytes, max_size=4).map(lambda chunks: _packet(*chunks)),
)


def _check_decodes_or_refuses(packet: bytes) -> None:
    try:
        decoded = decode_packet(packet)
    except ProtocolError as exc:
        decoded, reason = [], str(exc)
    else:
        reason = ""
    if not decoded:
        assert reason  # a refusal always says why
        return
    assert all(isinstance(frame, FRAME_TYPES) for frame in decoded)
    for frame in decoded:
        if isinstance(frame, Hello):
            assert len(frame.held) == len(frame.next) == 4
        if isinstance(frame, Close):
            assert len(frame.reason) <= 200
    # What was accepted re-encodes to packets that decode to the same frames.
    assert _decode_all(encode_packets(decoded)) == decoded


@given(st.binary())
def test_any_bytes_decode_or_raise_protocol_error(packet: bytes) -> None:
    _check_decodes_or_refuses(packet)


@given(fuzz_packets)
def test_frame_shaped_input_decodes_or_raises_protocol_error(packet: bytes) -> None:
    _check_decodes_or_refuses(packet)


mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "insert", "delete"]), st.integers(0), st.integers(1, 255)),
    min_size=1,
    max_size=4,
)


def _mutate(packet: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(packet)
    for op, where, byte in ops:
        position = where % (len(data) + 1)
        if op == "insert":
            data.insert(position, byte)
        elif data:
            position %= len(data)
            if op == "flip":
                data[position] ^= byte
            else:
                del data[position]
    return bytes(data)


small_frames = st.one_of(
    hellos,
    st.builds(EnvelopeFrame, st.binary(max_size=100), st.binary(max_size=70)),
    st.builds(ReceiptFrame, st.binary(max_size=100), st.binary(max_size=70)),
    pings,
    pongs,
    closes,
)


@given(st.lists(small_frames, min_size=1, max_size=5), mutations)
def test_mutated_packets_decode_or_raise_protocol_error(
    frame_list: list[Frame], ops: list[tuple[str, int, int]]
) -> None:
    (packet,) = encode_packets(frame_list)
    _check_decodes_or_refuses(_mutate(packet, ops))


# --- bad packets, each refused with a reason ------------------------------------------------------

PING = _mp([4, 1, 2])
GOOD = _packet(PING)
HEADS4 = [[0, HASH]] * 4

BAD_PACKETS = [
    pytest.param(b"", "empty packet", id="empty"),
    pytest.param(_packet(PING, version=0), "packet version 0 is not supported", id="version-0"),
    pytest.param(_packet(PING, version=2), "packet version 2 is not supported", id="version-2"),
    pytest.param(bytes([PACKET_VERSION]), "packet holds no frame", id="version-only"),
    pytest.param(
        GOOD[:-1], f"frame length {len(PING)} does not fit the packet", id="length-past-end"
    ),
    pytest.param(
        bytes([PACKET_VERSION]) + b"\xff\xff" + PING, "frame length 65535 does not fit", id="huge"
    ),
    pytest.param(_packet(b""), "frame length 0 does not fit the packet", id="zero-length"),
    pytest.param(GOOD + b"\x00", "packet ends inside a frame length", id="trailing-byte"),
    pytest.param(_packet(_mp([99, 1, 2])), "frame does not decode: Invalid value 99", id="kind-99"),
    pytest.param(_packet(_mp([0, 1, 2])), "frame does not decode: Invalid value 0", id="kind-0"),
    pytest.param(_packet(_mp(["4", 1, 2])), "frame does not decode", id="kind-as-text"),
    pytest.param(_packet(_mp([])), "frame does not decode", id="empty-array"),
    pytest.param(_packet(_mp(4)), "frame does not decode: Expected `array`", id="not-an-array"),
    pytest.param(
        _packet(_mp({"kind": 4, "nonce": 1, "sent_ns": 2})),
        "frame does not decode: Expected `array`, got `object`",
        id="map",
    ),
    pytest.param(_packet(b"\xc1"), "frame does not decode", id="reserved-msgpack-byte"),
    pytest.param(_packet(PING + b"\x00"), "frame does not decode", id="trailing-byte-in-frame"),
    pytest.param(_packet(_mp([4, 1])), "at least length 3", id="missing-field"),
    pytest.param(_packet(_mp([5, 1, 2])), "at least length 4", id="pong-missing-field"),
    pytest.param(
        _packet(_mp([4, 1, 2, 3])), "Expected `array` of at most length", id="extra-field"
    ),
    pytest.param(
        _packet(_mp([2, "body", b"sig"])), "Expected `bytes`, got `str` - at `$[1]`", id="str-bytes"
    ),
    pytest.param(
        _packet(_mp([7, 1, b"reason"])), "Expected `str`, got `bytes` - at `$[2]`", id="bytes-str"
    ),
    pytest.param(_packet(_mp([4, 1.0, 2])), "Expected `int`, got `float`", id="float-for-int"),
    pytest.param(_packet(_mp([4, True, 2])), "Expected `int`, got `bool`", id="bool-for-int"),
    pytest.param(_packet(_mp([3, None, b"sig"])), "Expected `bytes`, got `None`", id="nil-bytes"),
    pytest.param(
        _packet(b"\x93\x07\x01\xa2\xff\xfe"), "frame does not decode", id="reason-not-utf8"
    ),
    pytest.param(
        _packet(_mp([1, HASH, HEADS4[:3], [1, 1, 1]])),
        "hello frame must name 4 lanes",
        id="3-lanes",
    ),
    pytest.param(
        _packet(_mp([1, HASH, [[0, HASH]] * 5, [1] * 5])), "must name 4 lanes", id="5-lanes"
    ),
    pytest.param(
        _packet(_mp([1, HASH, HEADS4, [1, 1, 1]])), "must name 4 lanes", id="4-heads-3-next"
    ),
    pytest.param(
        _packet(_mp([1, HASH, [[0]] * 4, [1] * 4])), "frame does not decode", id="head-no-hash"
    ),
    pytest.param(
        _packet(_mp([1, HASH, [[0, "h"]] * 4, [1] * 4])), "Expected `bytes`", id="head-text-hash"
    ),
    pytest.param(
        _packet(_mp([7, 1, "x" * 201])), "close reason is too long", id="close-reason-201"
    ),
    pytest.param(_packet(PING, _mp([4, 1])), "at least length 3", id="good-then-bad"),
    pytest.param(_packet(_mp([4, 1]), PING), "at least length 3", id="bad-then-good"),
]


@pytest.mark.parametrize(("packet", "message"), BAD_PACKETS)
def test_bad_packet_is_refused_whole(packet: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        decode_packet(packet)
    assert message in str(refused.value)


def test_close_reason_of_200_characters_is_accepted() -> None:
    assert decode_packet(_packet(_mp([7, 1, "x" * 200]))) == [Close(1, "x" * 200)]


# --- a frame too large for a packet is refused at encode time -----------------------------------


def _overhead() -> int:
    """Bytes an EnvelopeFrame adds around a body of 256..65535 bytes and an empty signature."""
    return len(encode_frame(EnvelopeFrame(b"x" * 1000, b""))) - 1000


def test_largest_frame_fills_a_packet_exactly() -> None:
    body = b"x" * (MAX_PACKET - 1 - 2 - _overhead())
    frame_list: list[Frame] = [EnvelopeFrame(body, b"")]
    (packet,) = encode_packets(frame_list)
    assert len(packet) == MAX_PACKET
    assert decode_packet(packet) == frame_list


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(EnvelopeFrame(b"x" * (MAX_PACKET - 2 - _overhead()), b""), id="one-byte-over"),
        pytest.param(CheckpointFrame(b"x" * MAX_PACKET, b"s"), id="checkpoint"),
        pytest.param(Close(1, "x" * MAX_PACKET), id="close"),
    ],
)
def test_frame_too_large_for_a_packet_raises_value_error(frame: Frame) -> None:
    with pytest.raises(ValueError, match=r"frame of \d+ bytes cannot be sent"):
        encode_packets([Ping(1, 2), frame])


@pytest.mark.parametrize(
    "hello",
    [
        pytest.param([1, HASH, [[0, HASH[:31]], *HEADS4[1:]], [1, 1, 1, 1]], id="short-hash"),
        pytest.param([1, HASH, [[-1, HASH], *HEADS4[1:]], [1, 1, 1, 1]], id="negative-seq"),
        pytest.param([1, HASH, HEADS4, [0, 1, 1, 1]], id="next-zero"),
    ],
)
def test_hello_with_malformed_heads_is_refused(hello: list[object]) -> None:
    with pytest.raises(ProtocolError, match="hello frame has malformed heads"):
        decode_packet(_packet(_mp(hello)))
