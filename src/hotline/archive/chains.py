"""Step 4 of docs/archive.md: a bundle's envelopes, every chain checked link by link, and each
envelope's ties to the other station's chain.

Each envelope verifies with its sender's card and follows the body rules of docs/link.md §2
(`decode_envelope` applies them, as a station does on receipt), in its one encoding; it sits at
the place its line says and names its predecessor. Its `sent_ns` is not held against a time range:
the range is on the exporter's clock (when it took each envelope in), which no envelope carries,
and a sender's clock can say anything (hotline.protocol.clock). Then the ties: `peer_head`
names an envelope the sender had received (one of the other direction, or none), and an
acknowledgement names, in its own lane, a message of the other direction that can be
acknowledged. What later steps hold statements against is kept: each envelope's hash by place,
the files each names, the recordings the exporter's call records name.

Lines come sorted by direction, so direction 0's ties to direction 1 wait until direction 1 is
read (each `peer_head` once, by the first envelope naming it); direction 1's are checked at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hotline.archive import ArchiveError
from hotline.archive.recordings import Claim
from hotline.crypto.identity import PublicIdentity
from hotline.errors import ProtocolError
from hotline.protocol.callrecord import decode_record
from hotline.protocol.envelope import (
    LANES,
    Envelope,
    Lane,
    MessageType,
    Ref,
    decode_envelope,
    genesis_hash,
)
from hotline.protocol.statements import Head, Signed

__all__ = ["Chains", "Position", "canonical", "where"]

Position = tuple[int, int, int]  # direction, lane, seq
_NO_PEER_HEAD = bytes(32)  # the sender had received nothing yet


def canonical(data: bytes) -> Signed:
    """The MessagePack [body, signature], in its one encoding (as every station writes it).

    Raises:
        ValueError: not [bytes, bytes], or not in that encoding.
    """
    signed = Signed.from_bytes(data)
    if signed.to_bytes() != data:
        raise ValueError("its [body, signature] is not in the one MessagePack encoding")
    return signed


def where(at: Position) -> str:
    return f"envelope {at[0]}/{Lane(at[1]).name} {at[2]}"


class Chains:
    """The envelopes read so far, and what later steps need of them."""

    def __init__(
        self,
        link_id: bytes,
        signers: dict[int, PublicIdentity],
        exporter: int,
        span: tuple[int | None, int | None] | None,
    ) -> None:
        self.link_id, self.signers, self.exporter, self.span = link_id, signers, exporter, span
        self.heads = {
            d: [Head(0, genesis_hash(link_id, d, lane)) for lane in LANES] for d in (0, 1)
        }
        self.count = 0
        self.calls = 0  # call records, both stations'
        self.hashes: dict[Position, bytes] = {}
        self.direction_of: dict[bytes, int] = {}  # an envelope's hash -> its direction
        self.first: dict[tuple[int, int], int] = {}  # where each lane's piece starts
        self.acknowledgements: set[Position] = set()  # never annotated nor acknowledged
        self.call_records: set[Position] = set()  # never acknowledged
        self.named: dict[Position, tuple[tuple[bytes, int], ...]] = {}  # the files each names
        self.claims: dict[str, list[Claim]] = {}  # the recordings the exporter's records name
        self._heads_named: dict[bytes, Position] = {}  # direction 0's, checked after direction 1
        self._refs_named: list[tuple[Position, Ref]] = []

    def read(self, lines: Iterable[tuple[int, dict[str, Any], bytes]]) -> None:
        """Every line of envelopes.jsonl, then the ties that waited for direction 1."""
        last: Position = (-1, -1, 0)  # before any lane
        for number, record, signed in lines:
            at = (record["direction"], record["lane"], record["seq"])
            place = f"{where(at)} (envelopes.jsonl line {number})"
            if at <= last:
                raise ArchiveError(f"{place}: out of order or repeated")
            self._envelope(place, at, signed, last)
            last = at
        for peer_head, at in self._heads_named.items():
            self._peer_head(at, peer_head)
        for at, ref in self._refs_named:
            self._ref(at, ref)

    def in_piece(self, direction: int, lane: int, seq: int) -> bool:
        """Whether (lane, seq) of `direction` lies within the lane's piece in the bundle."""
        first = self.first.get((direction, lane))
        return first is not None and first <= seq <= self.heads[direction][lane].seq

    def covered(self, place: str, heads: list[Head], direction: int) -> None:
        """Every head names an envelope in the bundle (or the lane's genesis); in a time range,
        one outside its lane's piece is not checked: not in this bundle, by design."""
        for lane, head in zip(LANES, heads, strict=True):
            if self.span is not None and not self.in_piece(direction, lane, head.seq):
                continue
            known = (
                genesis_hash(self.link_id, direction, lane)
                if head.seq == 0
                else self.hashes.get((direction, lane, head.seq))
            )
            if known != head.hash:
                raise ArchiveError(
                    f"{place}: {Lane(lane).name} {head.seq} of direction {direction} is not in "
                    "the bundle"
                )

    def _envelope(self, place: str, at: Position, signed: bytes, last: Position) -> None:
        direction, lane, seq = at
        try:  # the body rules of docs/link.md §2, and the signature
            envelope = decode_envelope(signed, self.signers[direction], words=True)
            canonical(signed)
        except (ProtocolError, ValueError) as exc:
            raise ArchiveError(f"{place}: {exc}") from None
        body = envelope.body
        if (body.link_id, body.direction, body.lane, body.seq) != (self.link_id, *at):
            raise ArchiveError(f"{place}: its signed body says another place")
        starts = last[:2] != (direction, lane)
        expected = last[2] + 1 if not starts else seq if self.span is not None else 1
        if seq != expected:
            raise ArchiveError(f"{place}: {expected} is missing before it")
        if starts:
            self.first[(direction, lane)] = seq
        anchor = starts and self.span is not None and seq > 1  # its predecessor: before the range
        if not anchor and body.prev_hash != self.heads[direction][lane].hash:
            raise ArchiveError(f"{place}: does not name its predecessor's hash")
        self._note(at, envelope)
        self.heads[direction][lane] = Head(seq, envelope.hash)
        self.hashes[at] = envelope.hash
        self.direction_of[envelope.hash] = direction
        self.count += 1

    def _note(self, at: Position, envelope: Envelope) -> None:
        """What later steps need of an envelope: its files, its call record, its ties."""
        body = envelope.body
        if body.attachments:
            self.named[at] = tuple((a.sha256, a.size) for a in body.attachments)
        if body.type == MessageType.ACKNOWLEDGEMENT:
            self.acknowledgements.add(at)
        if body.type == MessageType.CALL_RECORD:  # its text was decoded with the envelope
            self.call_records.add(at)
            self.calls += 1
            if at[0] == self.exporter:  # the peer's record names the peer's files
                for rec in decode_record(body.text).recordings:
                    self.claims.setdefault(rec.name, []).append(Claim(rec, where(at)))
        if at[0] == 1:  # direction 0 is read whole: check now
            self._peer_head(at, body.peer_head)
            if body.ref is not None:
                self._ref(at, body.ref)
        else:
            self._heads_named.setdefault(body.peer_head, at)
            if body.ref is not None:
                self._refs_named.append((at, body.ref))

    def _peer_head(self, at: Position, peer_head: bytes) -> None:
        """`peer_head` is zero or names an envelope of the other station. In a time range one
        that names no envelope in the bundle is not checked: it may lie before the range."""
        if peer_head == _NO_PEER_HEAD:
            return
        found = self.direction_of.get(peer_head)
        if found == at[0] or (found is None and self.span is None):
            raise ArchiveError(f"{where(at)}: its peer_head names no envelope of the other side")

    def _ref(self, at: Position, ref: Ref) -> None:
        """An acknowledgement, in its own lane, names an envelope of the other station that can
        be acknowledged. In a time range one outside the other lane's piece is not checked."""
        if ref.lane != at[1]:
            raise ArchiveError(f"{where(at)}: acknowledges a message of another lane")
        named = (1 - at[0], ref.lane, ref.seq)
        if named not in self.hashes and self.span is not None and not self.in_piece(*named):
            return
        if self.hashes.get(named) != ref.hash:
            raise ArchiveError(
                f"{where(at)}: acknowledges {Lane(ref.lane).name} {ref.seq} of direction "
                f"{named[0]}, which is not in the bundle"
            )
        if named in self.acknowledgements or named in self.call_records:
            raise ArchiveError(f"{where(at)}: acknowledges an acknowledgement or a call record")
