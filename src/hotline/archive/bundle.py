"""Checking a bundle offline: a link's record, as `hotline export` wrote it (export.py), and
docs/archive.md says byte by byte:

    manifest.json       format, version, link id, exporter, time, range, counts, and the SHA-256
                        of every other member
    manifest.sig        the exporting station's hybrid signature over manifest.json
    cards/<hex>.card    both stations' cards, armored, as each was signed
    envelopes.jsonl     every envelope, in order (direction, lane, seq): the exact signed bytes
    receipts.jsonl      the receipts held, as signed
    checkpoints.jsonl   the checkpoints held, as signed, in the order they were stored
    annotations.jsonl   translations, reviews and certifications, as signed by the receiver
    held.jsonl          the receivers' signed Held statements for attachments
    files/<sha256>      the attachment files held whole by the exporter
    recordings/<name>   the recordings the exporter's call records name
    transcript.html     the messages for people to read, in the order sent (not evidence)
    transcript.pdf      the same, for print

`verify` needs nothing but the bundle: no station, no private key. It checks the cards, that the
link id is theirs, the manifest's signature and every member's hash, every envelope's signature,
every chain (sequence numbers without a gap, each envelope naming its predecessor's hash), that
each receipt, checkpoint, annotation and Held statement is signed by the right station and names
envelopes that are in the bundle, the translation workflow's rules, every file's hash, every
call record, each recording against the exporter's record of its call (or listed as missing),
and whether both stations' newest checkpoints agree. It stops at the first problem and says which
envelope or statement, and what failed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hotline.archive import ArchiveError
from hotline.archive.export import FORMAT, MANIFEST_PURPOSE, VERSION, export_bundle
from hotline.archive.recordings import Claim, check_recordings, missing_of
from hotline.crypto.card import SignedCard, parse_card
from hotline.crypto.identity import PublicIdentity
from hotline.crypto.session import link_id_for
from hotline.errors import CardError, ProtocolError
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.callrecord import decode_record
from hotline.protocol.envelope import LANES, Lane, MessageType, decode_envelope, genesis_hash
from hotline.protocol.statements import Checkpoint, Head, Receipt, Signed
from hotline.protocol.transfer import Held

__all__ = ["ArchiveError", "Verified", "export_bundle", "verify_bundle"]

# What reading a damaged ZIP member can raise.
_DAMAGE = (OSError, ValueError, EOFError, NotImplementedError, zipfile.BadZipFile, zlib.error)
_FILE = re.compile("files/([0-9a-f]{64})")


# -- verify ----------------------------------------------------------------------------------------


@dataclass
class Verified:
    """What a bundle proves."""

    link_id: bytes
    stations: dict[int, str]  # direction -> station name
    heads: dict[int, list[Head]]  # direction -> the last envelope per lane
    exported_by: str = ""  # the station that exported and signed the bundle
    ranged: bool = False  # a time range: each lane a piece of its chain
    envelopes: int = 0
    receipts: int = 0
    checkpoints: int = 0
    annotations: int = 0
    held: int = 0
    files: int = 0
    calls: int = 0  # call records, both stations'
    recordings: int = 0  # the exporter's recordings in the bundle, each checked
    missing_recordings: dict[str, str] = field(default_factory=dict)  # name -> absent | altered
    certified: int = 0  # distinct translations certified
    agreed: bool = False  # both stations' newest checkpoints name the same eight heads


def verify_bundle(path: Path) -> Verified:
    """Check a bundle offline.

    Raises:
        ArchiveError: the first problem found, naming the envelope or statement and what failed.
    """
    try:
        bundle = zipfile.ZipFile(path)
    except _DAMAGE as exc:
        raise ArchiveError(f"{path} is not a readable bundle: {exc}") from None
    with bundle:
        manifest = _manifest(bundle)
        link_id, cards = _cards(bundle, manifest)
        exporter = _signed_manifest(bundle, manifest, cards)
        signers = {d: c.identity for d, c in enumerate(cards)}
        check = _Check(bundle, link_id, signers, {d: c.body.name for d, c in enumerate(cards)})
        check.range = manifest.get("range") if isinstance(manifest.get("range"), dict) else None
        check.exporter = exporter
        check.result.exported_by, check.ranged = cards[exporter].body.name, check.range is not None
        check.result.ranged = check.ranged
        check.envelopes()
        check.receipts()
        check.checkpoints()
        check.annotations()
        check.held()
        check.files()
        check.recordings(missing_of(manifest))
        # Last, so that a changed record is named precisely above: whatever else changed (the
        # transcript, a member added) is not what the exporter signed.
        _members(bundle, manifest, check.digests)
        result = check.result
        counts = manifest.get("counts", {})
        found = {"envelopes": result.envelopes, "receipts": result.receipts,
                 "checkpoints": result.checkpoints, "annotations": result.annotations,
                 "held": result.held, "files": result.files,
                 "recordings": result.recordings}  # fmt: skip
        if counts != found:
            raise ArchiveError(f"the manifest counts {counts}, the bundle holds {found}")
    return result


def _signed_manifest(
    bundle: zipfile.ZipFile, manifest: dict[str, Any], cards: list[SignedCard]
) -> int:
    """The exporter's hybrid signature over the manifest's exact bytes: who vouches for it (its
    direction)."""
    found = [d for d, c in enumerate(cards) if c.fingerprint.hex() == manifest.get("exported_by")]
    if not found:
        raise ArchiveError("the manifest names an exporter that is neither station")
    exporter = cards[found[0]]
    if not exporter.identity.verify(
        MANIFEST_PURPOSE, _read(bundle, "manifest.json"), _read(bundle, "manifest.sig")
    ):
        raise ArchiveError(f"manifest.sig: the manifest is not signed by {exporter.body.name}")
    return found[0]


def _members(bundle: zipfile.ZipFile, manifest: dict[str, Any], read: dict[str, str]) -> None:
    """Every member is one the signed manifest lists, with the hash it lists (files are named
    by their hash, checked by `files`)."""
    listed = manifest.get("members")
    if not isinstance(listed, dict):
        raise ArchiveError("the manifest lists no members")
    if bool(manifest.get("transcript_pdf")) != ("transcript.pdf" in listed):
        raise ArchiveError("the manifest's transcript_pdf does not match its members")
    present = set(bundle.namelist())
    for name in sorted(present - set(listed) - {"manifest.json", "manifest.sig"}):
        if not _FILE.fullmatch(name):
            raise ArchiveError(f"{name} is in the bundle but not in its signed manifest")
    for name, expected in sorted(listed.items()):
        if name not in present:
            raise ArchiveError(f"the bundle has no {name}")
        if (read.get(name) or _hash_member(bundle, name)) != expected:
            raise ArchiveError(f"{name} is not the member the manifest signed (its hash differs)")


def _hash_member(bundle: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with _open(bundle, name) as member:
        try:
            while block := member.read(1 << 20):
                digest.update(block)
        except _DAMAGE as exc:
            raise ArchiveError(f"{name} is damaged: {exc}") from None
    return digest.hexdigest()


def _open(bundle: zipfile.ZipFile, name: str) -> IO[bytes]:
    try:
        return bundle.open(name)
    except KeyError:
        raise ArchiveError(f"the bundle has no {name}") from None
    except _DAMAGE as exc:
        raise ArchiveError(f"{name} is damaged: {exc}") from None


def _read(bundle: zipfile.ZipFile, name: str) -> bytes:
    with _open(bundle, name) as member:
        try:
            return member.read()
        except _DAMAGE as exc:  # a flipped byte: a bad CRC, a broken stream
            raise ArchiveError(f"{name} is damaged: {exc}") from None


def _records(
    bundle: zipfile.ZipFile, name: str, digests: dict[str, str]
) -> Iterator[tuple[int, dict[str, Any], bytes]]:
    """The member's lines, decoded, one at a time: a record of millions is not read whole.
    Read to its end, the member's SHA-256 goes into `digests`: the manifest check needs it,
    and the member need not be read again."""
    digest = hashlib.sha256()
    with _open(bundle, name) as member:
        number = 0
        while True:
            try:
                raw = member.readline()
            except _DAMAGE as exc:
                raise ArchiveError(f"{name} is damaged: {exc}") from None
            if not raw:
                digests[name] = digest.hexdigest()
                return
            digest.update(raw)
            number += 1
            try:
                record = json.loads(raw)
                signed = base64.b64decode(record["signed"], validate=True)
            except (ValueError, KeyError, TypeError) as exc:
                raise ArchiveError(f"{name} line {number} does not decode: {exc}") from None
            yield number, record, signed


def _manifest(bundle: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest = json.loads(_read(bundle, "manifest.json"))
    except ValueError as exc:
        raise ArchiveError(f"manifest.json is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"manifest.json does not describe a {FORMAT} bundle")
    if manifest.get("version") != VERSION:
        raise ArchiveError(f"bundle version {manifest.get('version')!r}; this reads {VERSION}")
    return manifest


def _cards(bundle: zipfile.ZipFile, manifest: dict[str, Any]) -> tuple[bytes, list[SignedCard]]:
    names = sorted(n for n in bundle.namelist() if n.startswith("cards/"))
    if len(names) != 2:
        raise ArchiveError(f"a bundle holds two cards; this one holds {len(names)}")
    cards = []
    for name in names:
        try:
            card = parse_card(_read(bundle, name).decode("utf-8"))
        except (CardError, UnicodeDecodeError) as exc:
            raise ArchiveError(f"{name}: {exc}") from None
        if name != f"cards/{card.fingerprint.hex()}.card":
            raise ArchiveError(f"{name} holds the card of {card.fingerprint.hex()}")
        cards.append(card)
    first, second = sorted(cards, key=lambda c: c.fingerprint)
    link_id = link_id_for(first.identity, second.identity)
    if manifest.get("link_id") != link_id.hex():
        raise ArchiveError("the cards are not those of the link the manifest names")
    return link_id, [first, second]


class _Check:
    """The checks of one bundle, in order; `hashes` (each envelope's, by direction, lane and
    seq) is what receipts and checkpoints are held against."""

    def __init__(
        self,
        bundle: zipfile.ZipFile,
        link_id: bytes,
        signers: dict[int, PublicIdentity],
        names: dict[int, str],
    ) -> None:
        self.bundle, self.link_id, self.signers = bundle, link_id, signers
        empty = {d: [Head(0, genesis_hash(link_id, d, lane)) for lane in LANES] for d in (0, 1)}
        self.result = Verified(link_id, names, empty)
        self.hashes: dict[tuple[int, int, int], bytes] = {}
        self.first: dict[tuple[int, int], int] = {}  # where each lane's piece starts
        self.ranged = False
        self.range: dict[str, Any] | None = None
        self.digests: dict[str, str] = {}  # members read whole, by name: their SHA-256
        # The files each envelope names, for the Held statements and the files/ members.
        self.named: dict[tuple[int, int, int], tuple[tuple[bytes, int], ...]] = {}
        self.exporter = 0  # the exporting station's direction: its recordings are carried
        self.claims: dict[str, list[Claim]] = {}  # the recordings its call records name

    def envelopes(self) -> None:
        """Every chain, in order, each envelope naming its predecessor."""
        last: tuple[int, int, int] = (-1, -1, 0)  # before any lane
        for number, record, signed in self._records("envelopes.jsonl"):
            direction, lane, seq = record.get("direction"), record.get("lane"), record.get("seq")
            where = f"envelope {direction}/{_lane(lane)} {seq} (envelopes.jsonl line {number})"
            if direction not in (0, 1) or lane not in LANES or not isinstance(seq, int):
                raise ArchiveError(f"{where}: no such direction, lane or sequence number")
            if (direction, lane, seq) <= last:
                raise ArchiveError(f"{where}: out of order or repeated")
            try:
                envelope = decode_envelope(signed, self.signers[direction])
            except ProtocolError as exc:
                raise ArchiveError(f"{where}: {exc}") from None
            body = envelope.body
            if (body.link_id, body.direction, body.lane, body.seq) != (
                self.link_id, direction, lane, seq
            ):  # fmt: skip
                raise ArchiveError(f"{where}: its signed body says another place")
            if self.range is not None and not _within(body.sent_ns, self.range):
                raise ArchiveError(f"{where}: sent outside the bundle's time range")
            starts = last[:2] != (direction, lane)
            expected = last[2] + 1 if not starts else seq if self.ranged else 1
            if seq != expected:
                raise ArchiveError(f"{where}: {expected} is missing before it")
            heads = self.result.heads[direction]
            if starts:
                self.first[(direction, lane)] = seq
            anchor = starts and self.ranged and seq > 1  # its predecessor is before the range
            if not anchor and body.prev_hash != heads[lane].hash:  # predecessor, or genesis
                raise ArchiveError(f"{where}: does not name its predecessor's hash")
            if body.attachments:
                self.named[(direction, lane, seq)] = tuple(
                    (a.sha256, a.size) for a in body.attachments
                )
            if body.type == MessageType.CALL_RECORD:  # its text decoded with the envelope
                self._call_record(body.text, direction, f"envelope {direction}/{_lane(lane)} {seq}")
            heads[lane] = Head(seq, envelope.hash)
            self.hashes[(direction, lane, seq)] = envelope.hash
            last = (direction, lane, seq)
            self.result.envelopes += 1

    def receipts(self) -> None:
        for number, record, signed in self._records("receipts.jsonl"):
            direction = record.get("direction")
            where = f"receipt for direction {direction} (receipts.jsonl line {number})"
            if direction not in (0, 1):
                raise ArchiveError(f"{where}: no such direction")
            try:  # the receiver signs a receipt for the envelopes it holds
                receipt = Receipt.verify(Signed.from_bytes(signed), self.signers[1 - direction])
            except (ProtocolError, ValueError) as exc:
                raise ArchiveError(f"{where}: {exc}") from None
            self._names(where, receipt.body.link_id, receipt.body.direction, direction)
            self._covered(where, receipt.body.heads, direction)
            self.result.receipts += 1

    def checkpoints(self) -> None:
        newest: dict[int, Checkpoint] = {}
        for number, record, signed in self._records("checkpoints.jsonl"):
            signer = record.get("signer_direction")
            where = f"checkpoint by direction {signer} (checkpoints.jsonl line {number})"
            if signer not in (0, 1):
                raise ArchiveError(f"{where}: no such direction")
            try:
                checkpoint = Checkpoint.verify(Signed.from_bytes(signed), self.signers[signer])
            except (ProtocolError, ValueError) as exc:
                raise ArchiveError(f"{where}: {exc}") from None
            body = checkpoint.body
            self._names(where, body.link_id, body.direction, signer)
            self._covered(where, body.outbound, signer)
            self._covered(where, body.inbound, 1 - signer)
            if signer not in newest or body.issued_ns >= newest[signer].body.issued_ns:
                newest[signer] = checkpoint
            self.result.checkpoints += 1
        if len(newest) == 2:
            zero, one = newest[0].body, newest[1].body
            self.result.agreed = (zero.outbound, zero.inbound) == (one.inbound, one.outbound)

    def annotations(self) -> None:
        """Signed by the receiving station, about an envelope in the bundle; a review or a
        certification names an earlier translation of the same envelope, and is not by its
        translator; a certification comes after a review."""
        seen: dict[bytes, Annotation] = {}
        reviewed: set[bytes] = set()
        certified: set[bytes] = set()
        for number, _record, signed in self._records("annotations.jsonl"):
            where = f"annotation (annotations.jsonl line {number})"
            try:
                a = Annotation.decode(Signed.from_bytes(signed))
                body = a.body
                a.check_signature(self._receiver(body.direction))
            except (ProtocolError, ValueError) as exc:
                raise ArchiveError(f"{where}: {exc}") from None
            what = f"{a.kind.name.lower()} of {body.direction}/{_lane(body.lane)} {body.seq}"
            where = f"{what} (annotations.jsonl line {number})"
            if (
                body.link_id != self.link_id
                or self.hashes.get((body.direction, body.lane, body.seq)) != body.envelope_hash
            ):
                raise ArchiveError(f"{where}: names an envelope that is not in the bundle")
            if a.kind in (Kind.REVIEW, Kind.CERTIFICATION):
                translation = seen.get(body.refers)
                if (
                    translation is None
                    or translation.kind != Kind.TRANSLATION
                    or not _same_envelope(translation, a)
                ):
                    raise ArchiveError(f"{where}: names no earlier translation of that message")
                if translation.body.person == body.person:
                    raise ArchiveError(f"{where}: by the translator of what it checks")
                if a.kind == Kind.REVIEW:
                    reviewed.add(body.refers)
                if a.kind == Kind.CERTIFICATION and body.refers not in reviewed:
                    raise ArchiveError(f"{where}: certifies a translation nobody reviewed")
                if a.kind == Kind.CERTIFICATION and body.role != "supervisor":
                    raise ArchiveError(f"{where}: by a {body.role}, not a supervisor")
                if a.kind == Kind.CERTIFICATION:
                    certified.add(body.refers)
            seen[a.hash] = a
            self.result.annotations += 1
        self.result.certified = len(certified)

    def held(self) -> None:
        """Each Held statement signed by the receiver, for a file its envelope names."""
        for number, _record, signed in self._records("held.jsonl"):
            where = f"held statement (held.jsonl line {number})"
            try:
                held = Held.decode(Signed.from_bytes(signed))
                body = held.body
                held.check_signature(self._receiver(body.direction))
            except (ProtocolError, ValueError) as exc:
                raise ArchiveError(f"{where}: {exc}") from None
            key = (body.direction, body.lane, body.seq)
            files = self.named.get(key, ())
            if (
                body.link_id != self.link_id
                or self.hashes.get(key) != body.envelope_hash
                or not 0 <= body.index < len(files)
                or files[body.index] != (body.sha256, body.size)
            ):
                raise ArchiveError(
                    f"{where}: names file {body.index} of {body.direction}/{_lane(body.lane)} "
                    f"{body.seq}, which is not in the bundle"
                )
            self.result.held += 1

    def files(self) -> None:
        """Each file in files/ hashes to its name, and an envelope names it."""
        named = {sha for files in self.named.values() for sha, _ in files}
        for name in sorted(self.bundle.namelist()):
            match = _FILE.fullmatch(name)
            if match is None:
                continue
            if bytes.fromhex(match.group(1)) not in named:
                raise ArchiveError(f"{name}: no envelope in the bundle names this file")
            if _hash_member(self.bundle, name) != match.group(1):
                raise ArchiveError(f"{name}: its bytes do not hash to its name")
            self.result.files += 1

    def recordings(self, missing: dict[str, str]) -> None:
        """The exporter's recordings: each as its record names it, or listed as missing."""
        self.result.recordings = check_recordings(self.bundle, self.claims, missing, self.digests)
        self.result.missing_recordings = missing

    def _call_record(self, text: str, direction: int, where: str) -> None:
        record = decode_record(text)
        self.result.calls += 1
        if direction == self.exporter:  # the peer's record names the peer's files
            for rec in record.recordings:
                self.claims.setdefault(rec.name, []).append(Claim(rec, where))

    def _receiver(self, direction: int) -> PublicIdentity:
        """The station that received envelopes sent in `direction`: it signs what it holds."""
        if direction not in (0, 1):
            raise ProtocolError("it names no direction")
        return self.signers[1 - direction]

    def _records(self, name: str) -> Iterator[tuple[int, dict[str, Any], bytes]]:
        return _records(self.bundle, name, self.digests)

    def _in_piece(self, direction: int, lane: int, seq: int) -> bool:
        first = self.first.get((direction, lane))
        return first is not None and first <= seq <= self.result.heads[direction][lane].seq

    def _names(self, where: str, link_id: bytes, direction: int, expected: int) -> None:
        if link_id != self.link_id or direction != expected:
            raise ArchiveError(f"{where}: its signed body names another link or direction")

    def _covered(self, where: str, heads: list[Head], direction: int) -> None:
        """Every head names an envelope in the bundle (or the lane's genesis)."""
        for lane, head in zip(LANES, heads, strict=True):
            if self.ranged and not self._in_piece(direction, lane, head.seq):
                continue  # outside the range: not in this bundle, by design
            known = (
                genesis_hash(self.link_id, direction, lane)
                if head.seq == 0
                else self.hashes.get((direction, lane, head.seq))
            )
            if known != head.hash:
                raise ArchiveError(
                    f"{where}: {Lane(lane).name} {head.seq} of direction {direction} is not in "
                    "the bundle"
                )


def _within(sent_ns: int, span: dict[str, Any]) -> bool:
    since, until = span.get("since_ns"), span.get("until_ns")
    return (since is None or sent_ns >= since) and (until is None or sent_ns <= until)


def _same_envelope(a: Annotation, b: Annotation) -> bool:
    return (a.body.direction, a.body.lane, a.body.seq) == (
        b.body.direction,
        b.body.lane,
        b.body.seq,
    )


def _lane(lane: object) -> str:
    return Lane(lane).name if isinstance(lane, int) and lane in LANES else repr(lane)
