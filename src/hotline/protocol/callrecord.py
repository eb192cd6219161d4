"""Call records: what a station states about each call it took part in (docs/calls.md §4).

When a call ends, each station writes a call record and sends it as an envelope of type
CALL_RECORD in its own chain, so the record is signed, chained, receipted and checkpointed like any
message, and each side holds both sides' statements. The envelope's text is the record as
canonical JSON, its language "zxx" (no linguistic content); it names no other envelope and carries
no files, and no person acknowledges it.

Canonical means: msgspec's JSON of `CallRecord`, fields in the order declared here, no spaces,
UTF-8 (only what JSON must escape is escaped). `decode_record` refuses any text that does not
re-encode to itself, so two stations (or a verifier years later) read one text one way, and a
record's bytes are fixed by its content.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from hotline.errors import ProtocolError

__all__ = [
    "CALL_RECORD_LANGUAGE",
    "RECORD_VERSION",
    "CallRecord",
    "MediaFigures",
    "Participant",
    "Party",
    "Recording",
    "decode_record",
    "encode_record",
]

RECORD_VERSION = 1
CALL_RECORD_LANGUAGE = "zxx"  # BCP 47: "no linguistic content"
MAX_NAME = 200  # characters of a station, person or role name (as in the call frames)
MAX_REASON = 300  # an end reason: "ended by peer: " and the peer's reason of up to 200
MAX_FILE_NAME_BYTES = 255
MAX_RECORDINGS = 32
MAX_PARTICIPANTS = 64
_I63 = 2**63
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class Party(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    station: str  # the station's name, as on its card
    person: str
    role: str


class MediaFigures(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """This station's media figures: frames it sent, and of the peer's, how they fared."""

    frames_sent: int
    frames_received: int
    lost: int  # never arrived in time to be played
    concealed: int  # played as concealment (Opus packet loss concealment)
    late: int  # arrived after their time had passed: dropped
    recovered_fec: int  # rebuilt from the next frame's forward error correction


class Recording(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str  # a file name in the station's recordings
    sha256: str  # 64 lowercase hex digits
    size: int


class Participant(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    person: str
    role: str
    side: Literal["local", "peer"]
    joined_ns: int
    left_ns: int | None  # None: still in the call when it ended


class CallRecord(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    version: int
    call_id: str  # 32 lowercase hex digits
    direction: Literal["outgoing", "incoming"]  # seen from the station that writes the record
    precedence: Literal["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"]
    caller: Party
    answerer: Party | None
    invited_ns: int
    answered_ns: int | None
    ended_ns: int
    end_reason: str
    media: MediaFigures
    transport: Literal["udp", "tcp", "udp+tcp", "none"]  # what carried media, on the whole
    recorded: bool
    recordings: tuple[Recording, ...]  # empty when not recorded
    participants: tuple[Participant, ...]


_DECODER = msgspec.json.Decoder(CallRecord)
_ENCODER = msgspec.json.Encoder()


def encode_record(record: CallRecord) -> str:
    """The canonical text of a record.

    Raises:
        ProtocolError: the record breaks a rule that decode_record checks (so a record that
            could not be read back is never signed).
    """
    try:
        text = _ENCODER.encode(record).decode("utf-8")
    except (msgspec.EncodeError, UnicodeEncodeError, OverflowError, TypeError) as exc:
        raise ProtocolError(f"call record cannot be encoded: {exc}") from None
    decode_record(text)  # types (a bool is not an int), bounds, consistency
    return text


def decode_record(text: str) -> CallRecord:
    """Read a record strictly.

    Raises:
        ProtocolError: not JSON, a wrong type, a missing or unknown key, not canonical, out of
            bounds, or inconsistent (the reason says which).
    """
    try:
        record = _DECODER.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeEncodeError) as exc:
        raise ProtocolError(f"call record does not decode: {exc}") from None
    problem = _problem(record)
    if problem:
        raise ProtocolError(f"call record refused: {problem}")
    if _ENCODER.encode(record) != text.encode("utf-8"):
        raise ProtocolError("call record is not in canonical form")
    return record


def _problem(r: CallRecord) -> str | None:  # noqa: PLR0911 - one return per rule, in order
    if r.version != RECORD_VERSION:
        return f"version {r.version} is not supported"
    if not _HEX32.fullmatch(r.call_id):
        return "call id must be 32 lowercase hex digits"
    if not all(_party_ok(p) for p in (r.caller, r.answerer) if p is not None):
        return "a party names no station, person or role, or too long a one"
    if not _text_ok(r.end_reason, MAX_REASON):
        return "end reason is empty, too long or not printable"
    if not _ints_ok(
        r.invited_ns, r.answered_ns or 0, r.ended_ns, *msgspec.structs.astuple(r.media)
    ):
        return "a time or a media figure is out of range"
    if (r.answerer is None) != (r.answered_ns is None):
        return "an answered call, and only one, names its answerer and answer time"
    answered = r.answered_ns if r.answered_ns is not None else r.invited_ns
    if not r.invited_ns <= answered <= r.ended_ns:
        return "times out of order (invited, answered, ended)"
    if r.recordings and not r.recorded:
        return "recordings of a call not recorded"
    if len(r.recordings) > MAX_RECORDINGS or not all(map(_recording_ok, r.recordings)):
        return "a recording has a bad name, hash or size, or there are too many"
    if len(r.participants) > MAX_PARTICIPANTS:
        return "too many participants"
    if not all(_participant_ok(p, r) for p in r.participants):
        return "a participant is unnamed, or joined or left outside the call"
    return None


def _text_ok(text: str, limit: int) -> bool:
    """Printable (no control character to fool a log or a transcript), 1 to `limit` characters."""
    return 0 < len(text) <= limit and text.isprintable()


def _ints_ok(*values: int) -> bool:
    return all(0 <= v < _I63 for v in values)


def _party_ok(p: Party) -> bool:
    return all(_text_ok(t, MAX_NAME) for t in (p.station, p.person, p.role))


def _recording_ok(rec: Recording) -> bool:
    name = rec.name
    return (
        0 < len(name.encode("utf-8", "replace")) <= MAX_FILE_NAME_BYTES
        and name.isprintable()
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and bool(_HEX64.fullmatch(rec.sha256))
        and _ints_ok(rec.size)
    )


def _participant_ok(p: Participant, r: CallRecord) -> bool:
    left = p.left_ns if p.left_ns is not None else r.ended_ns
    return (
        _text_ok(p.person, MAX_NAME)
        and _text_ok(p.role, MAX_NAME)
        and _ints_ok(p.joined_ns, left)
        and r.invited_ns <= p.joined_ns <= left <= r.ended_ns
    )
