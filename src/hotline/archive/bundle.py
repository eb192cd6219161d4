"""The archive bundle: a link's whole record in one file, and its offline check.

A bundle is a ZIP file (docs/archive.md says it byte by byte):

    manifest.json       format, version, the link id, who exported it and when, the counts
    cards/<hex>.card    both stations' cards, armored, as each was signed
    envelopes.jsonl     every envelope, in order (direction, lane, seq): the exact signed bytes
    receipts.jsonl      the receipts held, as signed
    checkpoints.jsonl   the checkpoints held, as signed, in the order they were stored
    transcript.html     the messages for people to read, in the order sent (not evidence)

`verify` needs nothing but the bundle: no station, no private key. It checks the cards, that
the link id is theirs, every signature, every chain (sequence numbers from 1 without a gap,
each envelope naming its predecessor's hash), that each receipt and checkpoint names envelopes
that are in the bundle, and whether both stations' newest checkpoints agree. It stops at the
first problem and says which envelope or statement, and what failed.
"""

from __future__ import annotations

import base64
import json
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hotline.archive.transcript import TranscriptLine, render
from hotline.crypto.card import SignedCard, parse_card
from hotline.crypto.identity import PublicIdentity
from hotline.crypto.session import link_id_for
from hotline.errors import CardError, ProtocolError, RemoteError
from hotline.protocol.envelope import LANES, Lane, decode_envelope, genesis_hash
from hotline.protocol.statements import Checkpoint, Head, Receipt, Signed
from hotline.store.base import SqlStore

__all__ = ["ArchiveError", "Verified", "export_bundle", "verify_bundle"]

FORMAT = "hotline-archive"
VERSION = 1


# What reading a damaged ZIP member can raise.
_DAMAGE = (OSError, ValueError, EOFError, NotImplementedError, zipfile.BadZipFile, zlib.error)


class ArchiveError(RemoteError):
    """A bundle that does not verify: the message says where and what."""


# -- export ----------------------------------------------------------------------------------------


def export_bundle(
    store: SqlStore,
    ours: SignedCard,
    peer: SignedCard,
    out: Path,
    exported_ns: int,
) -> dict[str, int]:
    """Write the link's record from our store to `out` (a new file); return the counts."""
    link_id = link_id_for(ours.identity, peer.identity)
    our_direction = 0 if ours.fingerprint < peer.fingerprint else 1
    counts = {"envelopes": 0, "receipts": 0, "checkpoints": 0}
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for card in sorted((ours, peer), key=lambda c: c.fingerprint):
            bundle.writestr(f"cards/{card.fingerprint.hex()}.card", card.armored())
        transcript: list[TranscriptLine] = []  # in memory: sorted by time at the end
        with bundle.open("envelopes.jsonl", "w") as lines:
            for direction in (0, 1):
                table = "outbox" if direction == our_direction else "inbox"
                sender = (ours if direction == our_direction else peer).body.name
                for lane, seq, data in store.all_envelopes(link_id, table):
                    lines.write(_line({"direction": direction, "lane": lane, "seq": seq}, data))
                    envelope = decode_envelope(bytes(data), None)
                    transcript.append(TranscriptLine.of(sender, envelope))
                    counts["envelopes"] += 1
        cards = sorted((ours, peer), key=lambda c: c.fingerprint)
        bundle.writestr("transcript.html", render(link_id, cards, transcript))
        with bundle.open("receipts.jsonl", "w") as lines:
            receipt = store.stored_receipt(link_id)
            if receipt is not None:  # the peer's, for our envelopes
                lines.write(_line({"direction": our_direction}, receipt))
                counts["receipts"] += 1
        with bundle.open("checkpoints.jsonl", "w") as lines:
            for origin, data in store.stored_checkpoints(link_id):
                direction = our_direction if origin == "local" else 1 - our_direction
                lines.write(_line({"signer_direction": direction}, data))
                counts["checkpoints"] += 1
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "link_id": link_id.hex(),
            "exported_by": ours.fingerprint.hex(),
            "exported_ns": exported_ns,
            "counts": counts,
        }
        bundle.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
    tmp.replace(out)
    return counts


def _line(fields: dict[str, Any], signed: bytes) -> bytes:
    record = {**fields, "signed": base64.b64encode(bytes(signed)).decode("ascii")}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


# -- verify ----------------------------------------------------------------------------------------


@dataclass
class Verified:
    """What a bundle proves."""

    link_id: bytes
    stations: dict[int, str]  # direction -> station name
    heads: dict[int, list[Head]]  # direction -> the last envelope per lane
    envelopes: int = 0
    receipts: int = 0
    checkpoints: int = 0
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
        check = _Check(bundle, *_cards(bundle, manifest))
        check.envelopes()
        check.receipts()
        check.checkpoints()
        result = check.result
        counts = manifest.get("counts", {})
        found = {"envelopes": result.envelopes, "receipts": result.receipts,
                 "checkpoints": result.checkpoints}  # fmt: skip
        if counts != found:
            raise ArchiveError(f"the manifest counts {counts}, the bundle holds {found}")
    return result


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


def _records(bundle: zipfile.ZipFile, name: str) -> Iterator[tuple[int, dict[str, Any], bytes]]:
    """The member's lines, decoded, one at a time: a record of millions is not read whole."""
    with _open(bundle, name) as member:
        number = 0
        while True:
            try:
                raw = member.readline()
            except _DAMAGE as exc:
                raise ArchiveError(f"{name} is damaged: {exc}") from None
            if not raw:
                return
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


def _cards(
    bundle: zipfile.ZipFile, manifest: dict[str, Any]
) -> tuple[bytes, dict[int, PublicIdentity], dict[int, str]]:
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
    signers = {0: first.identity, 1: second.identity}
    return link_id, signers, {0: first.body.name, 1: second.body.name}


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

    def envelopes(self) -> None:
        """Every chain, in order, each envelope naming its predecessor."""
        last: tuple[int, int, int] = (0, 0, 0)
        for number, record, signed in _records(self.bundle, "envelopes.jsonl"):
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
            expected = last[2] + 1 if last[:2] == (direction, lane) else 1
            if seq != expected:
                raise ArchiveError(f"{where}: {expected} is missing before it")
            heads = self.result.heads[direction]
            if body.prev_hash != heads[lane].hash:  # the predecessor, or the lane's genesis
                raise ArchiveError(f"{where}: does not name its predecessor's hash")
            heads[lane] = Head(seq, envelope.hash)
            self.hashes[(direction, lane, seq)] = envelope.hash
            last = (direction, lane, seq)
            self.result.envelopes += 1

    def receipts(self) -> None:
        for number, record, signed in _records(self.bundle, "receipts.jsonl"):
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
        for number, record, signed in _records(self.bundle, "checkpoints.jsonl"):
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

    def _names(self, where: str, link_id: bytes, direction: int, expected: int) -> None:
        if link_id != self.link_id or direction != expected:
            raise ArchiveError(f"{where}: its signed body names another link or direction")

    def _covered(self, where: str, heads: list[Head], direction: int) -> None:
        """Every head names an envelope in the bundle (or the lane's genesis)."""
        for lane, head in zip(LANES, heads, strict=True):
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


def _lane(lane: object) -> str:
    return Lane(lane).name if isinstance(lane, int) and lane in LANES else repr(lane)
