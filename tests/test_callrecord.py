"""Call records: canonical JSON both ways, every refusal, and the envelope that carries one."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import msgspec
import pytest

from hotline.crypto.identity import StationIdentity
from hotline.crypto.session import link_id_for
from hotline.errors import ProtocolError
from hotline.protocol.callrecord import (
    CallRecord,
    MediaFigures,
    Participant,
    Party,
    Recording,
    decode_record,
    encode_record,
)
from hotline.protocol.envelope import (
    Attachment,
    Envelope,
    EnvelopeBody,
    Lane,
    MessageType,
    Ref,
    decode_envelope,
    encode_body,
    genesis_hash,
)
from hotline.protocol.link import SECOND, LinkCore
from hotline.protocol.state import LinkConfig, LinkState

T0 = 1_800_000_000 * SECOND
ALICE = StationIdentity.from_random(os.urandom(96))
BOB = StationIdentity.from_random(os.urandom(96))
LINK = link_id_for(ALICE.public, BOB.public)
DIGEST = hashlib.sha256(b"recording").hexdigest()

RECORD = CallRecord(
    version=1,
    call_id="00112233445566778899aabbccddeeff",
    direction="outgoing",
    precedence="FLASH",
    caller=Party("Москва", "Иванов", "principal"),
    answerer=Party("London", "Smith", "principal"),
    invited_ns=T0,
    answered_ns=T0 + 4 * SECOND,
    ended_ns=T0 + 600 * SECOND,
    end_reason="ended here: conversation over",
    media=MediaFigures(
        frames_sent=29_800, frames_received=29_750, lost=50, concealed=40, late=3, recovered_fec=7
    ),
    transport="udp+tcp",
    recorded=True,
    recordings=(Recording("call-0011.opus", DIGEST, 2_400_000),),
    participants=(
        Participant("Иванов", "principal", "local", T0, None),
        Participant("Петрова", "interpreter", "local", T0 + SECOND, T0 + 500 * SECOND),
        Participant("Smith", "principal", "peer", T0 + 4 * SECOND, None),
    ),
)
UNANSWERED = msgspec.structs.replace(
    RECORD,
    direction="incoming",
    answerer=None,
    answered_ns=None,
    end_reason="no answer",
    transport="none",
    media=MediaFigures(0, 0, 0, 0, 0, 0),
    recorded=False,
    recordings=(),
    participants=(),
)


def _json(record: CallRecord = RECORD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(encode_record(record))
    return data


def _text(data: dict[str, Any]) -> str:
    """JSON in the canonical layout (keys in the given order, no spaces, raw UTF-8)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _changed(path: str, value: object) -> str:
    """The record's canonical text with one value replaced (a dotted path; digits index lists)."""
    data = _json()
    *parents, last = path.split(".")
    node: Any = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(last) if last.isdigit() else last] = value
    return _text(data)


# --- round trips and the canonical form -------------------------------------------------------


@pytest.mark.parametrize("record", [RECORD, UNANSWERED], ids=["answered", "unanswered"])
def test_a_record_round_trips_through_its_canonical_text(record: CallRecord) -> None:
    text = encode_record(record)
    assert decode_record(text) == record
    assert _text(json.loads(text)) == text  # no spaces, keys in order, raw UTF-8
    assert text.startswith('{"version":1,"call_id":"00112233445566778899aabbccddeeff",')
    assert list(json.loads(text)) == list(CallRecord.__struct_fields__)


def test_the_text_keeps_cyrillic_as_utf8_not_escapes() -> None:
    text = encode_record(RECORD)
    assert '"Иванов"' in text
    assert "\\u" not in text


NOT_CANONICAL = [
    pytest.param(json.dumps(_json()), id="spaces"),
    pytest.param(json.dumps(_json(), separators=(",", ":")), id="cyrillic-escaped"),
    pytest.param(_text(_json()) + "\n", id="trailing-newline"),
    pytest.param(" " + _text(_json()), id="leading-space"),
    pytest.param(_text(dict(reversed(list(_json().items())))), id="keys-reordered"),
    pytest.param(_text(_json()).replace('{"version":1,', '{"version":1,"version":1,'), id="dup"),
    pytest.param(_text(_json()).replace('"invited_ns":', '"invited_ns": '), id="one-space"),
]


@pytest.mark.parametrize("text", NOT_CANONICAL)
def test_a_text_that_is_not_canonical_is_refused(text: str) -> None:
    assert json.loads(text) == _json()  # the same content, written another way
    with pytest.raises(ProtocolError, match="not in canonical form"):
        decode_record(text)


# --- every refusal ------------------------------------------------------------------------------

WRONG_TYPES = [
    ("version", True, "Expected `int`, got `bool`"),
    ("invited_ns", True, "Expected `int`, got `bool`"),
    ("invited_ns", 1.0e18, "Expected `int`, got `float`"),
    ("ended_ns", "1800000600000000000", "Expected `int`, got `str`"),
    ("media.lost", None, "Expected `int`, got `null`"),
    ("recorded", 1, "Expected `bool`, got `int`"),
    ("call_id", 1, "Expected `str`, got `int`"),
    ("caller", None, "Expected `object`, got `null`"),
    ("recordings", {}, "Expected `array`, got `object`"),
    ("direction", "sideways", "Invalid enum value 'sideways'"),
    ("precedence", "URGENT", "Invalid enum value 'URGENT'"),
    ("transport", "quic", "Invalid enum value 'quic'"),
    ("participants.0.side", "both", "Invalid enum value 'both'"),
    ("recordings.0.size", -1.5, "Expected `int`, got `float`"),
]


@pytest.mark.parametrize(("path", "value", "message"), WRONG_TYPES)
def test_a_wrong_type_is_refused(path: str, value: object, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_record(_changed(path, value))


def test_unknown_and_missing_keys_are_refused() -> None:
    extra = {**_json(), "note": "x"}
    with pytest.raises(ProtocolError, match="Object contains unknown field `note`"):
        decode_record(_text(extra))
    nested = _json()
    nested["media"]["jitter"] = 1
    with pytest.raises(ProtocolError, match="unknown field `jitter`"):
        decode_record(_text(nested))
    missing = _json()
    del missing["end_reason"]
    with pytest.raises(ProtocolError, match="missing required field `end_reason`"):
        decode_record(_text(missing))
    with pytest.raises(ProtocolError, match="does not decode"):
        decode_record(_text(_json())[:-1])


H = "ab" * 32
OUT_OF_RULES = [
    ("version", 2, "version 2 is not supported"),
    ("call_id", "00112233445566778899AABBCCDDEEFF", "32 lowercase hex"),
    ("call_id", "0011223344556677", "32 lowercase hex"),
    ("call_id", "g0112233445566778899aabbccddeeff", "32 lowercase hex"),
    ("recordings.0.sha256", H.upper(), "bad name, hash or size"),
    ("recordings.0.sha256", H[:63], "bad name, hash or size"),
    ("recordings.0.name", "../call.opus", "bad name, hash or size"),
    ("recordings.0.name", "", "bad name, hash or size"),
    ("recordings.0.size", -1, "bad name, hash or size"),
    ("caller.station", "", "a party names no station"),
    ("answerer.person", "x" * 201, "a party names no station"),
    ("caller.role", "principal\n", "a party names no station"),
    ("end_reason", "", "end reason is empty"),
    ("invited_ns", -1, "out of range"),
    ("media.frames_sent", 2**63, "out of range"),
    ("answered_ns", T0 - 1, "times out of order"),  # answered before invited
    ("ended_ns", T0 - 1, "times out of order"),  # ended before invited
    ("ended_ns", T0 + SECOND, "times out of order"),  # ended before answered
    ("answered_ns", None, "only one, names its answerer"),
    ("answerer", None, "only one, names its answerer"),
    ("recorded", False, "recordings of a call not recorded"),
    ("participants.0.joined_ns", T0 - 1, "joined or left outside the call"),
    ("participants.1.left_ns", T0 + 601 * SECOND, "joined or left outside the call"),
    ("participants.1.left_ns", T0, "joined or left outside the call"),  # left before joining
    ("participants.2.person", "", "a participant is unnamed"),
]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    OUT_OF_RULES,
    ids=[f"{r[0]}-{i}" for i, r in enumerate(OUT_OF_RULES)],
)
def test_a_record_against_the_rules_is_refused_both_ways(
    path: str, value: object, message: str
) -> None:
    text = _changed(path, value)
    with pytest.raises(ProtocolError, match=message):
        decode_record(text)
    # The same record, built in Python, is never encoded (so never signed).
    unchecked = msgspec.json.decode(text, type=CallRecord)
    with pytest.raises(ProtocolError, match=message):
        encode_record(unchecked)


def test_encode_refuses_a_bool_where_an_int_belongs() -> None:
    with pytest.raises(ProtocolError, match="Expected `int`, got `bool`"):
        encode_record(msgspec.structs.replace(RECORD, invited_ns=True))


def test_bounds_at_their_limits_are_accepted() -> None:
    record = msgspec.structs.replace(
        RECORD,
        caller=Party("s" * 200, "ж" * 200, "r" * 200),
        invited_ns=0,
        answered_ns=0,
        participants=(Participant("p", "listener", "peer", 0, 0),),
        ended_ns=2**63 - 1,
        recordings=(Recording("я" * 127, H, 0),),  # 254 bytes of UTF-8
    )
    assert decode_record(encode_record(record)) == record


# --- the envelope that carries it ----------------------------------------------------------------


def _body(**changes: Any) -> EnvelopeBody:
    body = EnvelopeBody(
        version=1,
        link_id=LINK,
        direction=0,
        lane=Lane.ROUTINE,
        seq=1,
        sent_ns=T0 + 601 * SECOND,
        type=MessageType.CALL_RECORD,
        language="zxx",
        text=encode_record(RECORD),
        prev_hash=genesis_hash(LINK, 0, Lane.ROUTINE),
        peer_head=bytes(32),
        ref=None,
    )
    return msgspec.structs.replace(body, **changes)


def test_a_call_record_envelope_is_signed_and_verified() -> None:
    envelope = Envelope.create(_body(), ALICE)
    received = decode_envelope(envelope.to_bytes(), ALICE.public)
    assert received == envelope
    assert decode_record(received.body.text) == RECORD
    with pytest.raises(ProtocolError, match="bad signature"):
        decode_envelope(envelope.to_bytes(), BOB.public)


ENVELOPE_REFUSALS = [
    pytest.param({"language": "en"}, 'language "zxx" and no attachments', id="language-en"),
    pytest.param(
        {"attachments": (Attachment("a.opus", "audio/ogg", 1, bytes(32)),)},
        "no attachments",
        id="attachment",
    ),
    pytest.param({"ref": Ref(0, 1, bytes(32))}, "only one, names", id="ref"),
    pytest.param({"text": "call over"}, "call record does not decode", id="prose"),
    pytest.param({"text": json.dumps(_json())}, "not in canonical form", id="not-canonical"),
    pytest.param({"text": _changed("ended_ns", 0)}, "times out of order", id="bad-record"),
]


@pytest.mark.parametrize(("changes", "message"), ENVELOPE_REFUSALS)
def test_a_call_record_envelope_out_of_rules_is_never_signed_nor_accepted(
    changes: dict[str, Any], message: str
) -> None:
    body = _body(**changes)
    with pytest.raises(ProtocolError, match=message):
        Envelope.create(body, ALICE)
    body_bytes = encode_body(body)  # signed by the right key: only the rules can refuse it
    signature = ALICE.sign_ed25519("envelope", body_bytes)
    with pytest.raises(ProtocolError, match=message):
        Envelope.from_parts(body_bytes, signature, ALICE.public)


def test_a_call_record_is_not_acknowledged() -> None:
    sender = LinkConfig(LINK, ALICE, BOB.public)
    receiver = LinkConfig(LINK, BOB, ALICE.public)
    record = Envelope.create(_body(direction=sender.direction), ALICE)
    core = LinkCore(receiver, LinkState.new(receiver), T0)
    heads = list(core.out.heads)
    with pytest.raises(ProtocolError, match="a call record is not acknowledged"):
        core.acknowledge(record, "en", "seen", T0)
    assert list(core.out.heads) == heads  # nothing was signed or queued
