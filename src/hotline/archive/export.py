"""Writing a bundle: a link's record from one station's store (docs/archive.md has the format).

Everything streams from the store into the ZIP: envelopes line by line, files in place, the
transcript merged from per-lane temporary files; memory does not grow with the link (but for
the PDF, which its library builds whole: hence PDF_AUTO_LIMIT). Each
member's SHA-256 goes into the manifest, and the exporting station signs the manifest (hybrid,
Ed25519 + ML-DSA-65), so the bundle as a whole is vouched for, not only each record in it.

Our call records bring the recordings they name from the station's recordings directory
(recordings.py); one that is not there as recorded is listed in the manifest as missing, so the
bundle says so rather than leave it out in silence.

A time range is on this station's own clock, never on an envelope's `sent_ns`, which is its
sender's word (a peer can date a message 2554 or 1970: hotline.protocol.clock). It keeps the
envelopes this station accepted (its own) or received (the peer's) within it, and what names
them: annotations, Held statements, files, recordings. Each lane is then a contiguous piece of
its chain, from the first envelope taken in within the range to the last (with any between, should
our clock have stepped back), checked link by link from its first envelope, whose predecessor
is outside the range. So no envelope escapes a range, and two ranges that meet lose none.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hotline.archive.calls import memcons_of
from hotline.archive.manifest import COUNTS, FORMAT, MEMCON_VERSION, VERSION, WITHDRAWAL_VERSION
from hotline.archive.recordings import RecordingsOut
from hotline.archive.transcript import Entry, Timeline, translations_of, write_html
from hotline.crypto.card import SignedCard
from hotline.crypto.identity import StationIdentity
from hotline.crypto.session import link_id_for
from hotline.errors import ConfigError
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.callrecord import decode_record
from hotline.protocol.clock import CLOCK_FAULT_NS, clock_fault
from hotline.protocol.envelope import Envelope, MessageType, decode_envelope
from hotline.protocol.statements import Signed
from hotline.store.base import SqlStore

__all__ = ["FORMAT", "MANIFEST_PURPOSE", "PDF_AUTO_LIMIT", "VERSION", "export_bundle"]

MANIFEST_PURPOSE = "archive-manifest"
# A PDF is for reading and printing: a crisis, a day, a week. Past this many messages (a link's
# whole record of years) it would run to thousands of pages and minutes of rendering, so "auto"
# leaves it out and says so; a time range (--since/--until) or pdf="always" gives one.
PDF_AUTO_LIMIT = 2_000
PROGRESS_EVERY = 500  # envelopes between two words of progress (export_bundle's `progress`)
_LAST_NS = 2**64 - 1  # the latest time a u64 of nanoseconds can say (2554)


class _Hashed:
    """A ZIP member being written, hashed as it goes."""

    def __init__(self, member: IO[bytes]) -> None:
        self.member = member
        self.digest = hashlib.sha256()

    def write(self, data: bytes | bytearray) -> int:
        self.digest.update(data)
        return self.member.write(data)


@dataclass
class _Segments:
    """Per (direction, lane), the first and last sequence numbers in the bundle."""

    bounds: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)

    def add(self, direction: int, lane: int, seq: int) -> None:
        first, _ = self.bounds.get((direction, lane), (seq, seq))
        self.bounds[(direction, lane)] = (first, seq)

    def holds(self, direction: int, lane: int, seq: int) -> bool:
        first, last = self.bounds.get((direction, lane), (1, 0))
        return first <= seq <= last


def export_bundle(
    store: SqlStore,
    identity: StationIdentity,
    ours: SignedCard,
    peer: SignedCard,
    out: Path,
    exported_ns: int,
    files: Path | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    pdf: str = "auto",
    recordings: Path | None = None,
    clock_fault_ns: int = CLOCK_FAULT_NS,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Write the link's record from our store to `out` (a new file); return the manifest's
    counts and `missing_recordings`, how many recordings our call records name that are not in
    the bundle (the manifest names them). `files` is the station's attachments directory: the
    files held whole there go in; `recordings` its recordings directory. `pdf`: "auto" (a PDF
    transcript up to PDF_AUTO_LIMIT messages), "always" or "never". The range is on this
    station's clock (see above); `clock_fault_ns` is the bound beyond which the transcripts mark
    an envelope's own date as a clock fault (the station's `[console] clock_fault_s`).
    `progress`, if given, is told (member name, envelopes so far) as each member is begun and
    every PROGRESS_EVERY envelopes.

    Raises:
        LocalError: a recording changed while it was copied.
        ConfigError: a time range that holds no time: it ends before it starts, or before 1970.
    """
    if pdf not in ("auto", "always", "never"):
        raise ValueError(f"pdf is auto, always or never, not {pdf!r}")
    since_ns, until_ns = _span(since_ns, until_ns)
    tmp = out.with_name(f".{out.name}.tmp")
    exporter = _Exporter(store, identity, ours, peer, since_ns, until_ns)
    exporter.pdf = pdf
    exporter.clock_fault_ns = clock_fault_ns
    exporter.recordings = RecordingsOut(recordings)
    exporter.progress = progress
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            exporter.write(bundle, files, exported_ns)
        tmp.replace(out)
    finally:
        exporter.timeline.close()
        tmp.unlink(missing_ok=True)
    return {**exporter.counts, "missing_recordings": len(exporter.recordings.missing)}


class _Exporter:
    def __init__(
        self,
        store: SqlStore,
        identity: StationIdentity,
        ours: SignedCard,
        peer: SignedCard,
        since_ns: int | None,
        until_ns: int | None,
    ) -> None:
        self.store, self.identity, self.ours, self.peer = store, identity, ours, peer
        self.since_ns, self.until_ns = since_ns, until_ns
        self.link_id = link_id_for(ours.identity, peer.identity)
        self.our_direction = 0 if ours.fingerprint < peer.fingerprint else 1
        self.cards = sorted((ours, peer), key=lambda c: c.fingerprint)
        self.counts = dict.fromkeys(COUNTS, 0)
        self.members: dict[str, str] = {}
        self.timeline = Timeline()
        self.segments = _Segments()
        self.wanted: set[bytes] = set()  # the files the envelopes name
        self.annotations = _annotations(store, self.link_id, identity)
        self.version = VERSION  # MEMCON_VERSION once a memcon's annotation is in the bundle
        self.pdf = "auto"
        self.progress: Callable[[str, int], None] | None = None
        self.recordings = RecordingsOut(None)
        self.clock_fault_ns = CLOCK_FAULT_NS

    def write(self, bundle: zipfile.ZipFile, files: Path | None, exported_ns: int) -> None:
        for card in self.cards:
            self._member(bundle, f"cards/{card.fingerprint.hex()}.card", _text(card.armored()))
        self._member(bundle, "envelopes.jsonl", self._envelopes)
        self._member(bundle, "receipts.jsonl", self._receipts)
        self._member(bundle, "checkpoints.jsonl", self._checkpoints)
        self._member(bundle, "annotations.jsonl", self._annotated)
        self._member(bundle, "held.jsonl", self._held)
        for sha256 in sorted(self.wanted):
            path = files / sha256.hex() if files is not None else None
            if path is not None and path.is_file():  # named by its hash: checked on verify
                bundle.write(path, f"files/{sha256.hex()}", compress_type=zipfile.ZIP_STORED)
                self.counts["files"] += 1
        self.counts["recordings"] = self.recordings.write(
            lambda info, write: self._member(bundle, info, write)
        )
        cards, timeline = self.cards, self.timeline
        self._member(
            bundle, "transcript.html", lambda f: write_html(f, self.link_id, cards, timeline)
        )
        with_pdf = self.pdf == "always" or (
            self.pdf == "auto" and self.counts["envelopes"] <= PDF_AUTO_LIMIT
        )
        if with_pdf:
            self._member(bundle, "transcript.pdf", lambda f: _pdf(f, self.link_id, cards, timeline))
        ranged = self.since_ns is not None or self.until_ns is not None
        manifest = {
            "format": FORMAT,
            "version": self.version,
            "link_id": self.link_id.hex(),
            "exported_by": self.ours.fingerprint.hex(),
            "exported_ns": exported_ns,
            "range": {"since_ns": self.since_ns, "until_ns": self.until_ns} if ranged else None,
            "counts": self.counts,
            "transcript_pdf": with_pdf,
            "missing_recordings": dict(sorted(self.recordings.missing.items())),
            "members": self.members,
        }
        manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode()
        bundle.writestr("manifest.json", manifest_bytes)
        bundle.writestr("manifest.sig", self.identity.sign(MANIFEST_PURPOSE, manifest_bytes))

    def _member(
        self,
        bundle: zipfile.ZipFile,
        name: str | zipfile.ZipInfo,
        write: Callable[[_Hashed], object],
    ) -> str:
        if self.progress is not None:
            member = name.filename if isinstance(name, zipfile.ZipInfo) else name
            self.progress(member, self.counts["envelopes"])
        with bundle.open(name, "w") as raw:
            hashed = _Hashed(raw)
            write(hashed)
        key = name.filename if isinstance(name, zipfile.ZipInfo) else name
        self.members[key] = hashed.digest.hexdigest()
        return self.members[key]

    def _pieces(self, table: str) -> dict[int, tuple[int, int]] | None:
        """Per lane, the seqs a time range keeps, by our clock (None: the whole record)."""
        if self.since_ns is None and self.until_ns is None:
            return None
        return self.store.lane_pieces(self.link_id, table, self.since_ns, self.until_ns)

    def _envelopes(self, f: _Hashed) -> None:
        for direction in (0, 1):
            ours = direction == self.our_direction
            table, sender = ("outbox", self.ours) if ours else ("inbox", self.peer)
            pieces = self._pieces(table)
            for lane, seq, at_ns, data in self.store.all_envelopes(self.link_id, table):
                first, last = pieces.get(lane, (1, 0)) if pieces is not None else (1, seq)
                if not first <= seq <= last:
                    continue
                envelope = decode_envelope(bytes(data), None)
                f.write(_line({"direction": direction, "lane": lane, "seq": seq}, data))
                self.segments.add(direction, lane, seq)
                self.wanted.update(a.sha256 for a in envelope.body.attachments)
                said = self.annotations.get((direction, lane, seq), [])
                notes = self._recordings(envelope, ours, sender.body.name)
                memcons = memcons_of(said) if ours else []
                translations = [] if ours else translations_of(said)
                entry = Entry.of(sender.body.name, envelope, translations, notes, memcons)
                fault = clock_fault(envelope.body.sent_ns, at_ns, self.clock_fault_ns)
                entry = dataclasses.replace(entry, at_ns=at_ns, clock_fault=fault)
                self.timeline.add(direction, lane, entry)
                self.counts["envelopes"] += 1
                if self.progress is not None and self.counts["envelopes"] % PROGRESS_EVERY == 0:
                    self.progress("envelopes.jsonl", self.counts["envelopes"])

    def _recordings(self, envelope: Envelope, ours: bool, station: str) -> dict[str, str]:
        """A call record's recordings: ours to carry; the peer's are the peer's to keep."""
        if envelope.body.type != MessageType.CALL_RECORD:
            return {}
        record = decode_record(envelope.body.text)
        if ours:
            return self.recordings.add(record)
        return {r.name: f"kept by {station}, not in this bundle" for r in record.recordings}

    def _receipts(self, f: _Hashed) -> None:
        receipt = self.store.stored_receipt(self.link_id)
        if receipt is not None:  # the peer's, for our envelopes
            f.write(_line({"direction": self.our_direction}, receipt))
            self.counts["receipts"] += 1

    def _checkpoints(self, f: _Hashed) -> None:
        for origin, data in self.store.stored_checkpoints(self.link_id):
            direction = self.our_direction if origin == "local" else 1 - self.our_direction
            f.write(_line({"signer_direction": direction}, data))
            self.counts["checkpoints"] += 1

    def _annotated(self, f: _Hashed) -> None:
        """Ours: about the peer's envelopes (translations) and our call records (memcons)."""
        for found in self.annotations.values():
            for a in found:
                if self.segments.holds(a.body.direction, a.body.lane, a.body.seq):
                    f.write(_line({}, a.signed.to_bytes()))
                    self.counts["annotations"] += 1
                    if a.kind == Kind.WITHDRAWAL:
                        self.version = WITHDRAWAL_VERSION  # reads memcons too
                    elif a.kind == Kind.MEMCON or a.body.direction == self.our_direction:
                        self.version = max(self.version, MEMCON_VERSION)  # a memcon, a check

    def _held(self, f: _Hashed) -> None:
        for row in self.store.all_attachments(self.link_id):
            direction = self.our_direction if row.side == "out" else 1 - self.our_direction
            if row.statement is not None and self.segments.holds(direction, row.lane, row.seq):
                f.write(_line({"side": row.side}, row.statement))
                self.counts["held"] += 1


def _span(since_ns: int | None, until_ns: int | None) -> tuple[int | None, int | None]:
    """The range as the manifest gives it, within what a u64 of nanoseconds can say (0 to
    2^64 - 1): a start before 1970 is 0, an end after 2554 is 2^64 - 1."""
    since_ns = None if since_ns is None else max(since_ns, 0)
    until_ns = None if until_ns is None else min(until_ns, _LAST_NS)
    if (since_ns or 0) > _LAST_NS or (until_ns is not None and until_ns < (since_ns or 0)):
        raise ConfigError("the time range holds no time (it ends before it starts or 1970)")
    return since_ns, until_ns


def _text(text: str) -> Callable[[_Hashed], object]:
    return lambda f: f.write(text.encode())


def _annotations(
    store: SqlStore, link_id: bytes, identity: StationIdentity
) -> dict[tuple[int, int, int], list[Annotation]]:
    """Our annotations, by the (direction, lane, seq) of the envelope they are about: the peer's
    (translations) or ours (memcons), each's in the order made."""
    found: dict[tuple[int, int, int], list[Annotation]] = {}
    for statement in store.all_annotations(link_id):
        a = Annotation.verify(Signed.from_bytes(statement), identity.public)
        found.setdefault((a.body.direction, a.body.lane, a.body.seq), []).append(a)
    return found


def _pdf(out: _Hashed, link_id: bytes, cards: list[SignedCard], timeline: Timeline) -> None:
    from hotline.archive.pdf import write_pdf  # noqa: PLC0415 - fpdf2 and its font load only here

    names = " and ".join(c.body.name for c in cards)
    stations = [(c.body.name, c.fingerprint.hex()) for c in cards]
    write_pdf(out, f"Hotline transcript: {names}", link_id, stations, timeline.merged())


def _line(fields: dict[str, Any], signed: bytes) -> bytes:
    record = {**fields, "signed": base64.b64encode(bytes(signed)).decode("ascii")}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"
