"""Checking a bundle offline: a link's record, as `hotline export` wrote it (export.py), and
docs/archive.md says byte by byte:

    manifest.json       format, version, link id, exporter, time, range, counts, and the SHA-256
                        of every other member
    manifest.sig        the exporting station's hybrid signature over manifest.json
    cards/<hex>.card    both stations' cards, armored, as each was signed
    envelopes.jsonl     every envelope, in order (direction, lane, seq): the exact signed bytes
    receipts.jsonl      the peer's receipt for the exporter's envelopes, as signed
    checkpoints.jsonl   the checkpoints held, as signed, in the order they were stored
    annotations.jsonl   translations, records of conversation (memcons), their reviews and
                        certifications, as signed by the exporter
    held.jsonl          the receivers' signed Held statements for attachments
    files/<sha256>      the attachment files held whole by the exporter
    recordings/<name>   the recordings the exporter's call records name
    transcript.html     the messages for people to read, in the exporter's order (not evidence)
    transcript.pdf      the same, for print

`verify` needs nothing but the bundle: no station, no private key. It runs the numbered steps of
docs/archive.md, which is normative: the container and the strict manifest (manifest.py,
strict.py), the cards and the link id, the manifest's signature, every envelope (chains.py: its
signature, the body rules of docs/link.md, its chain (in a time range, a lane's piece of it),
its `peer_head` and an acknowledgement's `ref` tied to the other station's chain), the receipt,
the checkpoints, the annotations under the workflow's rules (workflow.py), the Held
statements, the files, the recordings (recordings.py), every member's hash, the counts, and
whether both stations' newest checkpoints agree. It stops at the first problem and says which
envelope or statement, and what failed.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotline.archive import ArchiveError
from hotline.archive.chains import Chains, canonical
from hotline.archive.export import MANIFEST_PURPOSE, export_bundle
from hotline.archive.manifest import (
    DAMAGE,
    FILE,
    MEMCON_VERSION,
    WITHDRAWAL_VERSION,
    Manifest,
    check_container,
    check_members,
    hash_member,
    read_manifest,
    read_member,
    read_records,
)
from hotline.archive.recordings import check_recordings
from hotline.archive.strict import DIRECTION, LANE, SEQ, Field
from hotline.archive.workflow import Workflow
from hotline.crypto.card import SignedCard, parse_card
from hotline.crypto.identity import PublicIdentity
from hotline.crypto.session import link_id_for
from hotline.errors import CardError, ProtocolError
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.envelope import LANES, Lane
from hotline.protocol.statements import Checkpoint, Head, Receipt
from hotline.protocol.transfer import Held

__all__ = ["ArchiveError", "Verified", "export_bundle", "verify_bundle"]

_SIDE = Field(lambda v: v in ("out", "in") and type(v) is str, '"out" or "in"')


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
    memcons: int = 0  # records of conversation of the exporter's calls (each version written)
    memcons_certified: int = 0  # calls whose record of conversation is certified
    withdrawn: int = 0  # translations withdrawn (each kept, with its withdrawal)
    agreed: bool = False  # both stations' newest checkpoints name the same eight heads
    # "agreed"; "differ": both newest checkpoints are here and name other heads; "unknown": a
    # station's checkpoint is not in the bundle, so agreement can be neither shown nor denied.
    agreement: str = "unknown"


def verify_bundle(path: Path) -> Verified:
    """Check a bundle offline, in the numbered steps of docs/archive.md.

    Raises:
        ArchiveError: the first problem found, naming the envelope or statement and what failed.
    """
    try:
        bundle = zipfile.ZipFile(path)
    except DAMAGE as exc:
        raise ArchiveError(f"{path} is not a readable bundle: {exc}") from None
    with bundle:
        check_container(bundle)
        manifest = read_manifest(bundle)  # 1
        link_id, cards = _cards(bundle, manifest)  # 2
        exporter = _signed_manifest(bundle, manifest, cards)  # 3
        check = _Check(bundle, link_id, cards, exporter, manifest.range)
        check.version = manifest.version
        check.envelopes()  # 4
        check.receipts()  # 5
        check.checkpoints()  # 6
        check.annotations()  # 7
        check.held()  # 8
        check.files()  # 9
        check.recordings(manifest.missing_recordings)  # 10
        # 11, after the records, so that a changed record is named precisely above: whatever
        # else changed (the transcript, a member added) is not what the exporter signed.
        names = [f"cards/{c.fingerprint.hex()}.card" for c in cards]
        check_members(bundle, manifest, names, check.digests)
        result = check.result
        found = {"envelopes": result.envelopes, "receipts": result.receipts,
                 "checkpoints": result.checkpoints, "annotations": result.annotations,
                 "held": result.held, "files": result.files,
                 "recordings": result.recordings}  # fmt: skip
        if manifest.counts != found:  # 12
            raise ArchiveError(f"the manifest counts {manifest.counts}, the bundle holds {found}")
    return result


def _signed_manifest(bundle: zipfile.ZipFile, manifest: Manifest, cards: list[SignedCard]) -> int:
    """Step 3: the exporter's hybrid signature over the manifest's exact bytes: who vouches for
    it (its direction)."""
    found = [d for d, c in enumerate(cards) if c.fingerprint.hex() == manifest.exported_by]
    if not found:
        raise ArchiveError("the manifest names an exporter that is neither station")
    exporter = cards[found[0]]
    if not exporter.identity.verify(
        MANIFEST_PURPOSE, manifest.data, read_member(bundle, "manifest.sig")
    ):
        raise ArchiveError(f"manifest.sig: the manifest is not signed by {exporter.body.name}")
    return found[0]


def _cards(bundle: zipfile.ZipFile, manifest: Manifest) -> tuple[bytes, list[SignedCard]]:
    """Step 2: two cards, each under its fingerprint, whose link is the manifest's."""
    names = sorted(n for n in bundle.namelist() if n.startswith("cards/"))
    if len(names) != 2:
        raise ArchiveError(f"a bundle holds two cards; this one holds {len(names)}")
    cards = []
    for name in names:
        try:
            card = parse_card(read_member(bundle, name).decode("utf-8"))
        except (CardError, UnicodeDecodeError) as exc:
            raise ArchiveError(f"{name}: {exc}") from None
        if name != f"cards/{card.fingerprint.hex()}.card":
            raise ArchiveError(f"{name} holds the card of {card.fingerprint.hex()}")
        cards.append(card)
    first, second = sorted(cards, key=lambda c: c.fingerprint)
    link_id = link_id_for(first.identity, second.identity)
    if manifest.link_id != link_id.hex():
        raise ArchiveError("the cards are not those of the link the manifest names")
    return link_id, [first, second]


class _Check:
    """Steps 4 to 10, in order: the chains first (chains.py), then every statement held against
    them."""

    def __init__(
        self,
        bundle: zipfile.ZipFile,
        link_id: bytes,
        cards: list[SignedCard],
        exporter: int,
        span: tuple[int | None, int | None] | None,
    ) -> None:
        self.bundle, self.link_id = bundle, link_id
        self.signers: dict[int, PublicIdentity] = {d: c.identity for d, c in enumerate(cards)}
        self.chains = Chains(link_id, self.signers, exporter, span)
        names = {d: c.body.name for d, c in enumerate(cards)}
        self.result = Verified(link_id, names, self.chains.heads, names[exporter], span is not None)
        self.exporter = exporter  # its direction: its annotations, its recordings are carried
        self.version = MEMCON_VERSION  # the manifest's: a memcon needs version 4
        self.digests: dict[str, str] = {}  # members read whole, by name: their SHA-256

    def envelopes(self) -> None:
        fields = {"direction": DIRECTION, "lane": LANE, "seq": SEQ}
        self.chains.read(self._records("envelopes.jsonl", fields))
        self.result.envelopes, self.result.calls = self.chains.count, self.chains.calls

    def receipts(self) -> None:
        """At most one: the peer's, for the exporter's envelopes."""
        for number, record, signed in self._records("receipts.jsonl", {"direction": DIRECTION}):
            direction = record["direction"]
            where = f"receipt for direction {direction} (receipts.jsonl line {number})"
            if number > 1:
                raise ArchiveError(f"{where}: a bundle holds one receipt at most")
            if direction != self.exporter:
                raise ArchiveError(f"{where}: not for the exporter's envelopes")
            try:  # the receiver signs a receipt for the envelopes it holds
                receipt = Receipt.verify(canonical(signed), self.signers[1 - direction])
            except (ProtocolError, ValueError) as exc:
                raise ArchiveError(f"{where}: {exc}") from None
            self._names(where, receipt.body.link_id, receipt.body.direction, direction)
            self.chains.covered(where, receipt.body.heads, direction)
            self.result.receipts += 1

    def checkpoints(self) -> None:
        newest: dict[int, Checkpoint] = {}
        fields = {"signer_direction": DIRECTION}
        for number, record, signed in self._records("checkpoints.jsonl", fields):
            signer = record["signer_direction"]
            where = f"checkpoint by direction {signer} (checkpoints.jsonl line {number})"
            try:
                checkpoint = Checkpoint.verify(canonical(signed), self.signers[signer])
            except (ProtocolError, ValueError) as exc:
                raise ArchiveError(f"{where}: {exc}") from None
            body = checkpoint.body
            self._names(where, body.link_id, body.direction, signer)
            self.chains.covered(where, body.outbound, signer)
            self.chains.covered(where, body.inbound, 1 - signer)
            if signer not in newest or body.issued_ns >= newest[signer].body.issued_ns:
                newest[signer] = checkpoint
            self.result.checkpoints += 1
        if len(newest) == 2:  # step 13
            zero, one = newest[0].body, newest[1].body
            self.result.agreed = (zero.outbound, zero.inbound) == (one.inbound, one.outbound)
            self.result.agreement = "agreed" if self.result.agreed else "differ"

    def annotations(self) -> None:
        """The exporter's: about a message it received that is not an acknowledgement (machine
        drafts, translations), or about a call record of its own (memcons); their reviews and
        certifications under the workflow's rules (workflow.py). Each signed by the exporter."""
        workflow = Workflow()
        for number, _record, signed in self._records("annotations.jsonl", {}):
            where = f"annotation (annotations.jsonl line {number})"
            try:
                a = Annotation.decode(canonical(signed))
            except (ProtocolError, ValueError) as exc:
                raise ArchiveError(f"{where}: {exc}") from None
            body = a.body
            if body.direction not in (0, 1):
                raise ArchiveError(f"{where}: it names no direction")
            what = f"{a.kind.name.lower()} of {body.direction}/{_lane(body.lane)} {body.seq}"
            where = f"{what} (annotations.jsonl line {number})"
            self._annotates(where, a)
            try:
                a.check_signature(self.signers[self.exporter])
            except ProtocolError as exc:
                raise ArchiveError(f"{where}: {exc}") from None
            problem = workflow.take(a)
            if problem is not None:
                raise ArchiveError(f"{where}: {problem}")
            self.result.annotations += 1
        self.result.certified = workflow.certified
        self.result.memcons = workflow.memcons
        self.result.memcons_certified = workflow.certified_memcons
        self.result.withdrawn = len(workflow.withdrawn)

    def _annotates(self, where: str, a: Annotation) -> None:
        """What an annotation may be about: an envelope in the bundle; for a machine draft, a
        translation or a withdrawal (of version 5) the peer's, not an acknowledgement; for a
        memcon a call record of the exporter's, in a bundle of version 4. (A review, a
        certification or a withdrawal is about what it names: the workflow holds it to that.)"""
        body = a.body
        at = (body.direction, body.lane, body.seq)
        if body.link_id != self.link_id or self.chains.hashes.get(at) != body.envelope_hash:
            raise ArchiveError(f"{where}: names an envelope that is not in the bundle")
        if a.kind == Kind.MEMCON:
            if self.version < MEMCON_VERSION:
                raise ArchiveError(f"{where}: a record of conversation in a bundle of version "
                                   f"{self.version}; it needs {MEMCON_VERSION}")  # fmt: skip
            if body.direction != self.exporter or at not in self.chains.call_records:
                raise ArchiveError(f"{where}: not about a call record of the exporter's")
        elif a.kind == Kind.WITHDRAWAL and self.version < WITHDRAWAL_VERSION:
            raise ArchiveError(f"{where}: a withdrawal in a bundle of version {self.version}; "
                               f"it needs {WITHDRAWAL_VERSION}")  # fmt: skip
        if a.kind in (Kind.MACHINE, Kind.TRANSLATION, Kind.WITHDRAWAL):
            if body.direction == self.exporter:
                raise ArchiveError(f"{where}: about a message the exporter sent")
            if at in self.chains.acknowledgements:
                raise ArchiveError(f"{where}: an acknowledgement is not annotated")

    def held(self) -> None:
        """Each Held statement signed by the receiver, for a file its envelope names; "out" for
        a file the exporter sent, "in" for one it received."""
        for number, record, signed in self._records("held.jsonl", {"side": _SIDE}):
            where = f"held statement (held.jsonl line {number})"
            try:
                held = Held.decode(canonical(signed))
                body = held.body
                held.check_signature(self._receiver(body.direction))
            except (ProtocolError, ValueError) as exc:
                raise ArchiveError(f"{where}: {exc}") from None
            key = (body.direction, body.lane, body.seq)
            files = self.chains.named.get(key, ())
            if (
                body.link_id != self.link_id
                or self.chains.hashes.get(key) != body.envelope_hash
                or not 0 <= body.index < len(files)
                or files[body.index] != (body.sha256, body.size)
            ):
                raise ArchiveError(
                    f"{where}: names file {body.index} of {body.direction}/{_lane(body.lane)} "
                    f"{body.seq}, which is not in the bundle"
                )
            side = "out" if body.direction == self.exporter else "in"
            if record["side"] != side:
                raise ArchiveError(f"{where}: its side is {record['side']!r}, not {side!r}")
            self.result.held += 1

    def files(self) -> None:
        """Each file in files/ hashes to its name, and an envelope names it."""
        named = {sha for files in self.chains.named.values() for sha, _ in files}
        for name in sorted(self.bundle.namelist()):
            match = FILE.fullmatch(name)
            if match is None:
                continue
            if bytes.fromhex(match.group(1)) not in named:
                raise ArchiveError(f"{name}: no envelope in the bundle names this file")
            if hash_member(self.bundle, name) != match.group(1):
                raise ArchiveError(f"{name}: its bytes do not hash to its name")
            self.result.files += 1

    def recordings(self, missing: dict[str, str]) -> None:
        """The exporter's recordings: each as its record names it, or listed as missing."""
        claims = self.chains.claims
        self.result.recordings = check_recordings(self.bundle, claims, missing, self.digests)
        self.result.missing_recordings = missing

    # -- helpers ---------------------------------------------------------------------------------

    def _receiver(self, direction: int) -> PublicIdentity:
        """The station that received envelopes sent in `direction`: it signs what it holds."""
        if direction not in (0, 1):
            raise ProtocolError("it names no direction")
        return self.signers[1 - direction]

    def _records(
        self, name: str, fields: Mapping[str, Field]
    ) -> Iterator[tuple[int, dict[str, Any], bytes]]:
        return read_records(self.bundle, name, fields, self.digests)

    def _names(self, where: str, link_id: bytes, direction: int, expected: int) -> None:
        if link_id != self.link_id or direction != expected:
            raise ArchiveError(f"{where}: its signed body names another link or direction")


def _lane(lane: object) -> str:
    return Lane(lane).name if isinstance(lane, int) and lane in LANES else repr(lane)
