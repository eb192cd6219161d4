"""Harness: call records (hotline.protocol.callrecord), the canonical JSON text a `call_record`
envelope carries: the peer writes it, and a station, the transcripts and the bundle verifier
read it with `decode_record`, which refuses with ProtocolError.

The bytes are the text (UTF-8; bytes that are not UTF-8 become U+FFFD, as an envelope's text
never holds them: msgspec refuses them before). A record accepted must be canonical: encoding it
again gives the same text, so two readers read one record one way.
"""

from __future__ import annotations

from collections.abc import Iterator

from fuzz.common import SECOND, T0, refused
from hotline.protocol.callrecord import (
    CallRecord,
    MediaFigures,
    Participant,
    Party,
    Recording,
    decode_record,
    encode_record,
)

__all__ = ["sample_record", "seeds", "test_one_input"]


def sample_record(recorded: bool = True, answered: bool = True) -> CallRecord:
    """A record as a station writes one: Moscow's outgoing call, answered by London."""
    recordings = (
        Recording("00112233445566778899aabbccddeeff-sent.opus", "ab" * 32, 48_000),
        Recording("00112233445566778899aabbccddeeff-received.opus", "cd" * 32, 47_000),
    )
    return CallRecord(
        version=1,
        call_id="00112233445566778899aabbccddeeff",
        direction="outgoing",
        precedence="FLASH",
        caller=Party("Москва", "Иванов", "principal"),
        answerer=Party("London", "Smith", "interpreter") if answered else None,
        invited_ns=T0,
        answered_ns=T0 + 4 * SECOND if answered else None,
        ended_ns=T0 + 600 * SECOND,
        end_reason="ended here: conversation over" if answered else "no answer",
        media=MediaFigures(29_800, 29_750, 50, 40, 3, 7),
        transport="udp+tcp" if answered else "none",
        recorded=recorded,
        recordings=recordings if recorded else (),
        participants=(
            Participant("Иванов", "principal", "local", T0, None),
            Participant("Smith", "interpreter", "peer", T0 + 4 * SECOND, T0 + 500 * SECOND),
        )
        if answered
        else (),
    )


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    record = refused(lambda: decode_record(text))
    if record is not None:
        assert encode_record(record) == text, "an accepted record is not canonical"


def seeds() -> Iterator[bytes]:
    for recorded, answered in ((True, True), (False, True), (False, False)):
        yield encode_record(sample_record(recorded, answered)).encode("utf-8")
