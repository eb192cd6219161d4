"""The readable transcript in a bundle: every message of the link in the order the exporting
station received it (the peer's) or accepted it (its own), by its own clock, with
its lane, type, language and original text, its files, who acknowledged what, and beside each
received message the translations made of it, with their standing (certified, reviewed, not
yet reviewed). A call record is shown as the call it records (calls.py), in its place among the
messages, and beside the exporter's own record its records of conversation (memcons), each
with its standing as a translation has. A rendering for people, not evidence: `hotline verify`
checks the signed records beside it, not this page.

The HTML is one self-contained file (its style inline, no script, nothing fetched), so it opens
years later in whatever browser there is; every string from a record is escaped and isolated in a
`<bdi>`, its invisible characters shown as marks and its words that mix scripts marked
(hotline.protocol.textsafety), so the page reads as the record was written. The entries
stream: each (direction, lane) of the store is already in time order, so export writes each to
its own temporary file and `Timeline.merged` interleaves them by time, holding one entry per
file; a link of millions of messages renders in constant memory.
"""

from __future__ import annotations

import heapq
import html
import json
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Protocol

from hotline.archive.calls import CallView, Memcon, call_view
from hotline.crypto.card import SignedCard
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.callrecord import decode_record
from hotline.protocol.clock import utc_text
from hotline.protocol.envelope import Envelope, Lane, MessageType
from hotline.protocol.textsafety import pieces, shown

__all__ = ["Entry", "Sink", "Timeline", "Translation", "translations_of", "write_html"]


class Sink(Protocol):
    """Where a rendering goes: a file, a ZIP member, a hash on the way to one."""

    def write(self, data: bytes | bytearray, /) -> int: ...


_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #111; }
table { border-collapse: collapse; width: 100%; } td, th { border-top: 1px solid #ccc;
  padding: .4em .5em; vertical-align: top; text-align: left; }
.text { white-space: pre-wrap; } .meta { color: #555; font-size: 90%; white-space: nowrap; }
.FLASH { color: #a00; font-weight: 700; } .exercise { background: #fff6c8; }
.status { color: #555; font-size: 85%; display: block; margin-top: .3em; }
.files { color: #333; font-size: 90%; margin-top: .3em; }
.clock-fault { color: #a00; font-weight: 700; white-space: normal; }
.details th { border: 0; color: #555; font-weight: 400; padding: .1em .8em .1em 0; width: 8em; }
.details td { border: 0; padding: .1em 0; overflow-wrap: anywhere; }
.memcon h4 { margin: 0 0 .3em; font-size: 95%; }
bdi { unicode-bidi: isolate; } mark { background: #ffe08a; }
.withdrawn > bdi { text-decoration: line-through; color: #777; }
.mark { color: #a00; background: #fdecea; border: 1px solid #e3a0a0; border-radius: 2px;
  font-size: 85%; padding: 0 .15em; }
"""


@dataclass(frozen=True, slots=True)
class Translation:
    """One translation of a message, with what makes it trustworthy or not."""

    language: str
    text: str
    status: str  # "certified by olga (supervisor); translated by …" or "NOT CERTIFIED; …"


@dataclass(frozen=True, slots=True)
class Entry:
    """One message as a transcript (HTML or PDF) shows it; every text in it is untrusted."""

    sent_ns: int
    sender: str  # the station's name
    lane: str  # FLASH / IMMEDIATE / PRIORITY / ROUTINE
    seq: int
    kind: str  # principal / service / test / acknowledgement / exercise / call record
    language: str
    text: str  # the original, exactly as sent ("" for a call record: `call` shows it)
    acknowledges: str | None = None  # "FLASH 3", when the message is an acknowledgement
    attachments: list[str] = field(default_factory=list)  # "map.png (image/png, …)"
    translations: list[Translation] = field(default_factory=list)
    call: CallView | None = None  # a call record: the call, as its station recorded it
    memcons: list[Memcon] = field(default_factory=list)  # our call record's records of conversation
    # When the exporting station received it (the peer's) or accepted it (its own), by its own
    # clock, and whether `sent_ns` is further from that than the bound (hotline.protocol.clock).
    at_ns: int | None = None
    clock_fault: bool = False

    @property
    def when_ns(self) -> int:
        """What the transcripts order and date by: our clock's time, `sent_ns` only when
        that is not known (a sender's clock can say anything)."""
        return self.sent_ns if self.at_ns is None else self.at_ns

    @classmethod
    def of(
        cls,
        sender: str,
        envelope: Envelope,
        translations: list[Translation],
        notes: Mapping[str, str] | None = None,
        memcons: list[Memcon] | None = None,
    ) -> Entry:
        """`notes`, for a call record: where each recording it names is, by name; `memcons`,
        its records of conversation."""
        body = envelope.body
        if body.type == MessageType.CALL_RECORD:  # decoded once already: the envelope's rules
            call = call_view(decode_record(body.text), notes or {})
            return cls(
                body.sent_ns, sender, Lane(body.lane).name, body.seq, "call record",
                body.language, "", call=call, memcons=memcons or [],
            )  # fmt: skip
        ref = f"{Lane(body.ref.lane).name} {body.ref.seq}" if body.ref is not None else None
        files = [
            f"{a.name} ({a.media_type}, {a.size:,} bytes, sha256 {a.sha256.hex()[:16]}…)"
            for a in body.attachments
        ]
        return cls(
            body.sent_ns, sender, Lane(body.lane).name, body.seq,
            MessageType(body.type).name.lower(), body.language, body.text, ref, files,
            translations,
        )  # fmt: skip


def translations_of(annotations: list[Annotation]) -> list[Translation]:
    """The people's translations of one message, certified ones first, withdrawn ones last, each
    with its standing. Machine drafts are left out: they are in the bundle's records, not the
    reading."""
    reviews: dict[bytes, list[str]] = {}
    certified: dict[bytes, str] = {}
    withdrawn: dict[bytes, str] = {}
    for a in annotations:
        if a.kind == Kind.WITHDRAWAL:
            withdrawn[a.body.refers] = f"{a.body.person} ({a.body.role}): {a.body.text}"
        elif a.kind == Kind.REVIEW:
            reviews.setdefault(a.body.refers, []).append(a.body.person)
        elif a.kind == Kind.CERTIFICATION:
            certified[a.body.refers] = f"{a.body.person} ({a.body.role})"
    shown = []
    for a in annotations:
        if a.kind != Kind.TRANSLATION:
            continue
        by = f"translated by {a.body.person}"
        checked = reviews.get(a.hash)
        reviewed = f", reviewed by {', '.join(checked)}" if checked else ""
        if a.hash in withdrawn:
            was = f", certified by {certified[a.hash]}" if a.hash in certified else ""
            status = f"WITHDRAWN by {withdrawn[a.hash]}; {by}{reviewed}{was}"
        elif a.hash in certified:
            status = f"certified by {certified[a.hash]}; {by}{reviewed}"
        else:
            status = f"NOT CERTIFIED; {by}{reviewed or ', not yet reviewed'}"
        shown.append(
            (
                2 if a.hash in withdrawn else int(a.hash not in certified),
                a.body.made_ns,
                Translation(a.body.language, a.body.text, status),
            )
        )
    return [t for *_, t in sorted(shown, key=lambda s: (s[0], s[1]))]


class Timeline:
    """Entries written per (direction, lane), in time order within each, read back merged."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="hotline-transcript-")
        self._files: dict[tuple[int, int], IO[str]] = {}
        self.count = 0

    def add(self, direction: int, lane: int, entry: Entry) -> None:
        key = (direction, lane)
        if key not in self._files:
            path = Path(self._dir.name) / f"{direction}-{lane}.jsonl"
            self._files[key] = path.open("w+", encoding="utf-8")
        self._files[key].write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
        self.count += 1

    def merged(self) -> Iterator[Entry]:
        for f in self._files.values():
            f.flush()
            f.seek(0)
        streams = [(_entry(line) for line in f) for f in self._files.values()]
        yield from heapq.merge(*streams, key=lambda e: e.when_ns)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._dir.cleanup()


def _entry(line: str) -> Entry:
    raw = json.loads(line)
    raw["translations"] = [Translation(**t) for t in raw["translations"]]
    raw["memcons"] = [Memcon(**m) for m in raw["memcons"]]
    if raw["call"] is not None:
        call = raw["call"]
        raw["call"] = CallView(
            call["precedence"], call["direction"], list(map(tuple, call["details"]))
        )
    return Entry(**raw)


_PIECE = {
    "text": "{}",
    "mark": "<span class='mark'>{}</span>",
    "mixed": "<mark>{}</mark>",
    "note": "<span class='mark'>{}</span>",
}


def _peer(text: str) -> str:
    """A string from a record as HTML: escaped, isolated, invisible characters shown as marks and
    words that mix scripts marked (hotline.protocol.textsafety)."""
    inner = "".join(_PIECE[p.kind].format(html.escape(p.text)) for p in pieces(text))
    return f"<bdi>{inner}</bdi>"


def write_html(out: Sink, link_id: bytes, cards: list[SignedCard], timeline: Timeline) -> None:
    title = " and ".join(html.escape(shown(c.body.name)) for c in cards)  # no element in a title
    names = " and ".join(_peer(c.body.name) for c in cards)
    stations = "".join(
        f"<li>{_peer(c.body.name)}: <code>{c.fingerprint.hex()}</code></li>" for c in cards
    )
    out.write(
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>Hotline transcript: {title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Hotline transcript: {names}</h1>"
        f"<p>Link <code>{link_id.hex()}</code>. Stations:</p><ul>{stations}</ul>"
        f"<p>{timeline.count} envelopes, in the order this station received or accepted them, by "
        "its own clock; a time a sender's clock gave that is far from it is shown beside it, "
        "marked as a clock fault. This page is a rendering; "
        "the signed records in this bundle are the evidence: check them with "
        "<code>hotline verify</code>. Translations were made at the receiving end; each shows "
        "who made, reviewed and certified it. Each station writes its own record of each call: "
        "a call is shown by each record, where that station wrote it, when the call ended, and "
        "beside this station's record, the record of conversation its note-takers wrote, with "
        "who wrote, reviewed and certified it.</p>"
        "<table><tr><th>Time (UTC)</th><th>From</th><th>Lane, seq</th><th>Type, language</th>"
        "<th>Original text</th><th>Translation</th></tr>".encode()
    )
    for entry in timeline.merged():
        out.write(_row(entry).encode())
    out.write(b"</table></body></html>\n")


def _row(e: Entry) -> str:
    when = _when(e)
    if e.call is not None:
        return _call_row(e, e.call, when)
    language = html.escape(e.language)  # an attribute: a BCP 47 tag (the envelope's rules)
    text = _peer(e.text)
    if e.acknowledges is not None:
        text = f"<em>acknowledges {html.escape(e.acknowledges)}:</em> {text}"
    if e.attachments:
        files = "<br>".join(_peer(f) for f in e.attachments)
        text += f"<div class='files'>Files: {files}</div>"
    translated = "".join(
        f"<div lang='{html.escape(t.language)}'"
        f"{' class=withdrawn' if t.status.startswith('WITHDRAWN') else ''}>{_peer(t.text)}"
        f"<span class='status'>{_peer(t.language)}: {_peer(t.status)}</span></div>"
        for t in e.translations
    )
    return (
        f"<tr class='{html.escape(e.kind)}'><td class='meta'>{when}</td>"
        f"<td>{_peer(e.sender)}</td><td class='meta {e.lane}'>{e.lane} {e.seq}</td>"
        f"<td class='meta'>{html.escape(e.kind)}, <span lang='{language}'>{_peer(e.language)}"
        "</span></td>"
        f"<td class='text' lang='{language}'>{text}</td><td class='text'>{translated}</td></tr>"
    )


def _when(e: Entry) -> str:
    """Our clock's time; for a clock fault, the sender's beside it."""
    when = utc_text(e.when_ns).removesuffix(" UTC")
    if e.clock_fault:
        sent = utc_text(e.sent_ns)
        when += f"<br><span class='clock-fault'>clock fault: dated {sent} by its sender</span>"
    return when


def _call_row(e: Entry, call: CallView, when: str) -> str:
    """A call, not a message: its record's lines across the text and translation columns."""
    precedence = html.escape(call.precedence)
    lines = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{_peer(value)}</td></tr>"
        for label, value in call.details
    )
    memcons = "".join(
        f"<div class='memcon' lang='{html.escape(m.language)}'><h4>Record of conversation, "
        f"{_peer(m.language)}</h4>{_peer(m.text)}<span class='status'>{_peer(m.status)}</span>"
        "</div>"
        for m in e.memcons
    )
    # The record of conversation beside the call, as a translation beside its original.
    span, beside = ("", f"</td><td class='text'>{memcons}") if memcons else (" colspan='2'", "")
    return (
        f"<tr class='call'><td class='meta'>{when}</td><td>{_peer(e.sender)}</td>"
        f"<td class='meta'>{e.lane} {e.seq}</td><td class='meta'>call record</td>"
        f"<td{span}><strong class='{precedence}'>{precedence} call</strong>, "
        f"{html.escape(call.direction)} (as {_peer(e.sender)} recorded it)"
        f"<table class='details'>{lines}</table>{beside}</td></tr>"
    )
