"""Link frames, and how they are packed into one Noise transport message.

A transport plaintext is a *packet*: one version byte, then one or more frames, each a 16-bit
big-endian length followed by that many bytes of MessagePack. A frame is an array whose first
element is its kind:

    kind  frame          fields after the kind
    1     Hello          link_id, held (4 heads: what I durably hold of yours), next (4 ints)
    2     Envelope       body (exact signed bytes), signature
    3     Receipt        body (exact signed bytes), signature
    4     Ping           nonce, sent_ns
    5     Pong           nonce, echo_ns, peer_ns
    6     Checkpoint     body (exact signed bytes), signature
    7     Close          code, reason
    8     Want           sha256, offset, end: send me these bytes of a file (receiver to sender)
    9     Chunk          sha256, offset, data: bytes of a file (sender to receiver)
    10    HeldFrame      body (exact signed bytes), signature: "I hold this message's file"
    11    Ask            lane, seq: do you hold this message's files? (sender to receiver)
    12    CallInvite     call_id, lane, caller, role, recorded, key_share, receiver_index, frame_ms
    13    CallRinging    call_id
    14    CallAnswer     call_id, answerer, role, key_share, receiver_index
    15    CallDecline    call_id, reason
    16    CallBusy       call_id
    17    CallEnd        call_id, reason
    18    CallKeepalive  call_id, udp_heard
    19    CallMedia      call_id, datagram: one sealed media datagram, when UDP does not get through

Frames 8 to 11 carry attachments beside the chains; hotline.protocol.transfer has their rules.
Frames 12 to 19 signal calls; hotline.protocol.callframes bounds them, hotline.protocol.calls
has their rules (docs/calls.md).

Decoding is strict: an unknown kind, a wrong length, a missing or extra field, or a field of the
wrong type raises ProtocolError, and the whole packet is refused before any of it is acted on.
"""

from __future__ import annotations

import struct

import msgspec

from hotline.crypto.session import MAX_PLAINTEXT
from hotline.errors import ProtocolError
from hotline.protocol.callframes import CALL_FRAME_TYPES, CallFrame, check_call_frame
from hotline.protocol.statements import Head

__all__ = [
    "MAX_CHUNK",
    "MAX_PACKET",
    "PACKET_VERSION",
    "Ask",
    "CheckpointFrame",
    "Chunk",
    "Close",
    "EnvelopeFrame",
    "Frame",
    "HeldFrame",
    "Hello",
    "Ping",
    "Pong",
    "ReceiptFrame",
    "TransferFrame",
    "Want",
    "decode_packet",
    "encode_packets",
]

PACKET_VERSION = 1
MAX_PACKET = MAX_PLAINTEXT  # one packet per Noise transport message
MAX_REASON = 200
_LEN = struct.Struct(">H")
# A chunk's data: what fits one packet beside the frame's other fields (at most 60 bytes).
MAX_CHUNK = MAX_PACKET - 1 - 2 - 64


class Hello(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=1):
    link_id: bytes
    held: list[Head]  # per lane, the last of the peer's envelopes this side durably holds
    next: list[int]  # per lane, the next sequence number this side will send


class EnvelopeFrame(
    msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=2
):
    body: bytes
    signature: bytes


class ReceiptFrame(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=3):
    body: bytes
    signature: bytes


class Ping(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=4):
    nonce: int
    sent_ns: int


class Pong(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=5):
    nonce: int
    echo_ns: int
    peer_ns: int


class CheckpointFrame(
    msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=6
):
    body: bytes
    signature: bytes


class Close(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=7):
    code: int
    reason: str


class Want(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=8):
    sha256: bytes
    offset: int
    end: int


class Chunk(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=9):
    sha256: bytes
    offset: int
    data: bytes


class HeldFrame(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=10):
    body: bytes
    signature: bytes


class Ask(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=11):
    lane: int
    seq: int


TransferFrame = Want | Chunk | HeldFrame | Ask
Frame = (
    Hello
    | EnvelopeFrame
    | ReceiptFrame
    | Ping
    | Pong
    | CheckpointFrame
    | Close
    | TransferFrame
    | CallFrame
)

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Frame)


def encode_frame(frame: Frame) -> bytes:
    return _ENCODER.encode(frame)


def encode_packets(frames: list[Frame]) -> list[bytes]:
    """Pack frames into as few packets as fit, in order."""
    packets: list[bytes] = []
    current = bytearray([PACKET_VERSION])
    for frame in frames:
        data = encode_frame(frame)
        if 1 + _LEN.size + len(data) > MAX_PACKET:
            raise ValueError(f"a {type(frame).__name__} frame of {len(data)} bytes cannot be sent")
        if len(current) + _LEN.size + len(data) > MAX_PACKET:
            packets.append(bytes(current))
            current = bytearray([PACKET_VERSION])
        current += _LEN.pack(len(data)) + data
    if len(current) > 1:
        packets.append(bytes(current))
    return packets


def decode_packet(packet: bytes) -> list[Frame]:
    """Decode every frame of a packet, or refuse the packet whole.

    Raises:
        ProtocolError: a wrong version, a bad length, or a frame that does not decode strictly.
    """
    if not packet:
        raise ProtocolError("empty packet")
    if packet[0] != PACKET_VERSION:
        raise ProtocolError(f"packet version {packet[0]} is not supported")
    frames: list[Frame] = []
    offset = 1
    while offset < len(packet):
        if offset + _LEN.size > len(packet):
            raise ProtocolError("packet ends inside a frame length")
        (length,) = _LEN.unpack_from(packet, offset)
        offset += _LEN.size
        if length == 0 or offset + length > len(packet):
            raise ProtocolError(f"frame length {length} does not fit the packet")
        frames.append(_decode_frame(packet[offset : offset + length]))
        offset += length
    if not frames:
        raise ProtocolError("packet holds no frame")
    return frames


def _decode_frame(data: bytes) -> Frame:
    try:
        frame: Frame = _DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"frame does not decode: {exc}") from None
    if isinstance(frame, Hello):
        if len(frame.held) != 4 or len(frame.next) != 4:
            raise ProtocolError("hello frame must name 4 lanes")
        if any(h.seq < 0 or len(h.hash) != 32 for h in frame.held) or min(frame.next) < 1:
            raise ProtocolError("hello frame has malformed heads")
    if isinstance(frame, Close) and len(frame.reason) > MAX_REASON:
        raise ProtocolError("close reason is too long")
    if isinstance(frame, Want | Chunk) and not (
        len(frame.sha256) == 32 and 0 <= frame.offset < 2**63
    ):
        raise ProtocolError("transfer frame has a malformed file hash or offset")
    if isinstance(frame, Want) and not frame.offset < frame.end < 2**63:
        raise ProtocolError("want frame asks for an empty or reversed range")
    if isinstance(frame, Chunk) and not 0 < len(frame.data) <= MAX_CHUNK:
        raise ProtocolError("chunk frame is empty or too large")
    if isinstance(frame, Ask) and not (0 <= frame.lane < 4 and 1 <= frame.seq < 2**63):
        raise ProtocolError("ask frame names no envelope")
    if isinstance(frame, CALL_FRAME_TYPES):
        check_call_frame(frame)
    return frame
