"""Call signalling frames: kinds 12 to 19 of the link's frames (docs/calls.md §2).

A call is invited, rung, answered and ended by these frames, carried in the link's packets beside
its envelopes. The link core passes them through untouched (a `CallFrameReceived` event); the
call state machine in hotline.protocol.calls applies them.

    kind  frame          fields after the kind
    12    CallInvite     call_id, lane, caller, role, recorded, key_share, receiver_index, frame_ms
    13    CallRinging    call_id
    14    CallAnswer     call_id, answerer, role, key_share, receiver_index
    15    CallDecline    call_id, reason
    16    CallBusy       call_id
    17    CallEnd        call_id, reason
    18    CallKeepalive  call_id, udp_heard
    19    CallMedia      call_id, datagram (the TCP fallback for one sealed media datagram)

Decoding is strict, as for every frame (frames.py): after msgspec's checks of kinds, counts and
types, `check_call_frame` checks lengths and ranges, and anything out of bounds refuses the whole
packet with a ProtocolError.
"""

from __future__ import annotations

import msgspec

from hotline.errors import ProtocolError

__all__ = [
    "CALL_FRAME_TYPES",
    "CALL_ID_LEN",
    "FRAME_MS",
    "KEY_SHARE_LEN",
    "MAX_DATAGRAM",
    "MAX_NAME",
    "CallAnswer",
    "CallBusy",
    "CallDecline",
    "CallEnd",
    "CallFrame",
    "CallInvite",
    "CallKeepalive",
    "CallMedia",
    "CallRinging",
    "check_call_frame",
]

CALL_ID_LEN = 16
KEY_SHARE_LEN = 32
MAX_NAME = 200  # characters of a person, a role or a reason, as for a Close frame's reason
MAX_DATAGRAM = 1200  # a sealed media datagram: what one UDP datagram carries on any path
FRAME_MS = (10, 20)  # the Opus frame durations a call may use
_U32 = 2**32


class CallInvite(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=12):
    call_id: bytes
    lane: int  # precedence: 0 FLASH .. 3 ROUTINE, as for messages
    caller: str  # the person placing the call
    role: str  # their role in it (principal, interpreter, ...)
    recorded: bool  # the caller's station records the call
    key_share: bytes  # the caller's contribution to the call's media keys
    receiver_index: int  # u32: how the caller's station recognises datagrams sent to it
    frame_ms: int  # 10 or 20


class CallRinging(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=13):
    call_id: bytes


class CallAnswer(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=14):
    call_id: bytes
    answerer: str
    role: str
    key_share: bytes
    receiver_index: int


class CallDecline(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=15):
    call_id: bytes
    reason: str


class CallBusy(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=16):
    call_id: bytes


class CallEnd(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=17):
    call_id: bytes
    reason: str


class CallKeepalive(
    msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=18
):
    call_id: bytes
    udp_heard: bool  # the sender received an authentic UDP media datagram lately


class CallMedia(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, tag=19):
    call_id: bytes
    datagram: bytes


CallFrame = (
    CallInvite
    | CallRinging
    | CallAnswer
    | CallDecline
    | CallBusy
    | CallEnd
    | CallKeepalive
    | CallMedia
)
CALL_FRAME_TYPES = (
    CallInvite,
    CallRinging,
    CallAnswer,
    CallDecline,
    CallBusy,
    CallEnd,
    CallKeepalive,
    CallMedia,
)


def _is_int(value: object, low: int, high: int) -> bool:
    """A real integer (a bool is not one) with low <= value < high."""
    return type(value) is int and low <= value < high


def _is_bytes(value: object, low: int, high: int) -> bool:
    return type(value) is bytes and low <= len(value) <= high


def _is_text(value: object, *, empty: bool) -> bool:
    """Printable text (no control character to fool a log line or a console) of at most
    MAX_NAME characters that UTF-8 can carry; empty only where allowed."""
    if type(value) is not str or len(value) > MAX_NAME or not (value or empty):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which no peer could decode
        return False
    return value.isprintable()


def _problem(frame: CallFrame) -> str | None:  # noqa: PLR0911 - one return per rule, in order
    if not _is_bytes(frame.call_id, CALL_ID_LEN, CALL_ID_LEN):
        return f"call id must be {CALL_ID_LEN} bytes"
    match frame:
        case CallInvite():
            return _invite_problem(frame)
        case CallAnswer():
            if not (_is_text(frame.answerer, empty=False) and _is_text(frame.role, empty=False)):
                return "call answer names no answerer or role, or too long a one"
            return _keys_problem(frame.key_share, frame.receiver_index)
        case CallDecline() | CallEnd() if not _is_text(frame.reason, empty=True):
            return "call reason is too long or not printable"
        case CallKeepalive() if type(frame.udp_heard) is not bool:
            return "call keepalive has a bad flag"
        case CallMedia() if not _is_bytes(frame.datagram, 1, MAX_DATAGRAM):
            return f"call media datagram is empty or over {MAX_DATAGRAM} bytes"
    return None


def _invite_problem(frame: CallInvite) -> str | None:
    if not _is_int(frame.lane, 0, 4):
        return "call invite has a bad lane"
    if not (type(frame.frame_ms) is int and frame.frame_ms in FRAME_MS):
        return "call invite frame duration must be 10 or 20 ms"
    if type(frame.recorded) is not bool:
        return "call invite has a bad recording flag"
    if not (_is_text(frame.caller, empty=False) and _is_text(frame.role, empty=False)):
        return "call invite names no caller or role, or too long a one"
    return _keys_problem(frame.key_share, frame.receiver_index)


def _keys_problem(key_share: object, receiver_index: object) -> str | None:
    if not _is_bytes(key_share, KEY_SHARE_LEN, KEY_SHARE_LEN):
        return f"call key share must be {KEY_SHARE_LEN} bytes"
    if not _is_int(receiver_index, 0, _U32):
        return "call receiver index must fit 32 bits"
    return None


def check_call_frame(frame: CallFrame) -> CallFrame:
    """Return the frame if it is within bounds: checked after decoding and before sending.

    Raises:
        ProtocolError: a length, range, type or text out of bounds (the reason says which).
    """
    problem = _problem(frame)
    if problem:
        raise ProtocolError(problem)
    return frame
