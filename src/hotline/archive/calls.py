"""Calls in the transcripts: a call record's envelope shown as the call it records, among the
messages, never as a message of its own (it has no prose to read, translate or acknowledge).

Each station writes its own record of each call (docs/calls.md §4), so a transcript shows up to
two per call: the exporter's and its peer's, each under the station that wrote it, each as that
station saw the call ("outgoing" from the caller's side). `call_view` turns one record into
labelled lines that the HTML and the PDF both print; every string in it comes from a record, so
both escape or clean it as they do a message's text. Beside the exporter's own record stand the
records of conversation its note-takers wrote of the call (`memcons_of`), each with its standing,
as a message's translations stand beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.callrecord import CallRecord, MediaFigures, Party, Recording

__all__ = ["CallView", "Memcon", "call_view", "memcons_of"]


@dataclass(frozen=True, slots=True)
class CallView:
    """One call record as a transcript shows it."""

    precedence: str  # the call's: FLASH ... ROUTINE (its record always travels as ROUTINE)
    direction: str  # "outgoing" or "incoming", as the writing station saw the call
    details: list[tuple[str, str]]  # (label, value) lines, in the order shown; values untrusted


def call_view(record: CallRecord, notes: Mapping[str, str]) -> CallView:
    """The lines of one record; `notes` says, per recording name, where the file is."""
    answered = record.answered_ns
    details = [
        ("caller", _party(record.caller)),
        ("answerer", _party(record.answerer) if record.answerer else "not answered"),
        ("invited", _when(record.invited_ns)),
        ("answered", _when(answered) if answered is not None else "-"),
        ("ended", _when(record.ended_ns)),
        ("duration", _duration(record)),
        ("end reason", record.end_reason),
        ("transport", record.transport),
        ("media", _media(record.media)),
    ]
    if record.participants:
        people = ", ".join(f"{p.person} ({p.role}, {p.side})" for p in record.participants)
        details.append(("participants", people))
    if not record.recorded or not record.recordings:
        details.append(("recorded", "yes, but it names no file" if record.recorded else "no"))
    for rec in record.recordings:
        details.append(("recorded", _recording(rec, notes.get(rec.name))))
    return CallView(record.precedence, record.direction, details)


@dataclass(frozen=True, slots=True)
class Memcon:
    """One record of conversation of a call, with what makes it trustworthy or not."""

    language: str
    text: str
    status: str  # "certified by olga (supervisor); written by …" or "NOT CERTIFIED; …"


def memcons_of(annotations: list[Annotation]) -> list[Memcon]:
    """The records of conversation of one call record (from its annotations, in the order made),
    the certified one first, each with its standing."""
    reviews: dict[bytes, list[str]] = {}
    certified: dict[bytes, str] = {}
    for a in annotations:
        if a.kind == Kind.REVIEW:
            reviews.setdefault(a.body.refers, []).append(a.body.person)
        elif a.kind == Kind.CERTIFICATION:
            certified[a.body.refers] = f"{a.body.person} ({a.body.role})"
    shown = []
    for a in (a for a in annotations if a.kind == Kind.MEMCON):
        by = f"written by {a.body.person} ({a.body.role})"
        checked = reviews.get(a.hash)
        reviewed = f", reviewed by {', '.join(checked)}" if checked else ", not yet reviewed"
        status = (
            f"certified by {certified[a.hash]}; {by}{reviewed}"
            if a.hash in certified
            else f"NOT CERTIFIED; {by}{reviewed}"
        )
        shown.append(
            (a.hash not in certified, a.body.made_ns, Memcon(a.body.language, a.body.text, status))
        )
    return [m for *_, m in sorted(shown, key=lambda s: (s[0], s[1]))]


def _party(p: Party) -> str:
    return f"{p.station}: {p.person} ({p.role})"


def _when(ns: int) -> str:
    # Any time a record may hold (below 2^63 ns) is a date before the year 2263.
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
    return f"{when:%Y-%m-%d %H:%M:%S} UTC"


def _duration(r: CallRecord) -> str:
    if r.answered_ns is None:
        return f"not answered (rang {_span(r.ended_ns - r.invited_ns)})"
    return f"{_span(r.ended_ns - r.answered_ns)} from the answer"


def _span(ns: int) -> str:
    seconds = ns // 10**9
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02} min {seconds:02} s"
    return f"{minutes} min {seconds:02} s" if minutes else f"{seconds} s"


def _media(m: MediaFigures) -> str:
    return (
        f"{m.frames_sent:,} frames sent; of the peer's, {m.frames_received:,} received, "
        f"{m.lost:,} lost, {m.concealed:,} concealed, {m.late:,} late, "
        f"{m.recovered_fec:,} recovered by FEC"
    )


def _recording(rec: Recording, note: str | None) -> str:
    where = f" ({note})" if note else ""
    return f"{rec.name}, {rec.size:,} bytes, sha256 {rec.sha256}{where}"
