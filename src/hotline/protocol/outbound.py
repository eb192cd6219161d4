"""Our side of the chains: sequence numbers, the unreceipted envelopes, and which session each one
is travelling on. Everything here is about what we sent; link.py ties it to sessions and frames.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hotline.errors import ProtocolError
from hotline.protocol.envelope import LANES, Envelope, Lane
from hotline.protocol.statements import Head, Heads, Receipt

__all__ = ["Outbound"]

# Per session, at most this many ROUTINE and PRIORITY envelopes travel unreceipted; FLASH and
# IMMEDIATE bypass the window, so a backlog never holds them up.
WINDOW = 256
_WINDOWED = frozenset({Lane.PRIORITY, Lane.ROUTINE})


@dataclass(slots=True)
class Outbound:
    heads: list[Head]  # per lane, the last envelope accepted
    receipted: list[Head]  # per lane, the last envelope the peer's receipts cover
    pending: list[dict[int, Envelope]]  # per lane, unreceipted envelopes by seq (in order)
    # (lane, seq) -> (session id, when sent): each pending envelope travels on one session at most
    travelling: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    windowed: dict[int, int] = field(default_factory=dict)  # sid -> ROUTINE/PRIORITY travelling
    # Per lane, where `due` starts looking: every pending envelope before it is travelling. It
    # keeps a send from rescanning the whole backlog (thousands, behind a window of 256).
    unsent: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.unsent:
            self.unsent = [head.seq + 1 for head in self.receipted]

    @classmethod
    def restore(cls, heads: Heads, receipted: Heads, unreceipted: tuple[Envelope, ...]) -> Outbound:
        pending: list[dict[int, Envelope]] = [{} for _ in LANES]
        for envelope in unreceipted:
            pending[envelope.body.lane][envelope.seq] = envelope
        return cls(list(heads), list(receipted), pending)

    def next_seq(self, lane: Lane) -> int:
        return self.heads[lane].seq + 1

    def accept(self, envelope: Envelope) -> None:
        lane = envelope.body.lane
        self.heads[lane] = Head(envelope.seq, envelope.hash)
        self.pending[lane][envelope.seq] = envelope

    def due(self, sid: int, peer_held: list[int], in_flight: int, now_ns: int) -> list[Envelope]:
        """The envelopes to put on session `sid` now: FLASH first, each lane in order, none that
        is already travelling or that the peer said it holds."""
        out: list[Envelope] = []
        for lane in LANES:
            pending = self.pending[lane]
            start = seq = max(self.unsent[lane], peer_held[lane] + 1)
            last = self.heads[lane].seq
            while seq <= last:
                envelope = pending.get(seq)
                if envelope is not None and (lane, seq) not in self.travelling:
                    if lane in _WINDOWED:
                        if in_flight >= WINDOW:
                            break
                        in_flight += 1
                        self.windowed[sid] = self.windowed.get(sid, 0) + 1
                    self.travelling[(lane, seq)] = (sid, now_ns)
                    out.append(envelope)
                seq += 1
            if start == self.unsent[lane]:  # all before `seq` travel now (or are receipted)
                self.unsent[lane] = seq
        return out

    def in_flight(self, sid: int) -> int:
        """How many windowed envelopes travel on `sid` (FLASH and IMMEDIATE do not count)."""
        return self.windowed.get(sid, 0)

    def _arrived_or_lost(self, key: tuple[int, int]) -> None:
        """`key` no longer travels: a receipt covered it, or it must go again."""
        travelling = self.travelling.pop(key, None)
        if travelling is not None and key[0] in _WINDOWED:
            self.windowed[travelling[0]] -= 1

    def session_lost(self, sid: int) -> None:
        """Whatever travelled on a lost session goes again on another: the peer's dedupe makes
        a second copy harmless."""
        self._send_again([k for k, (s, _) in self.travelling.items() if s == sid])
        self.windowed.pop(sid, None)

    def expire(self, now_ns: int, timeout_ns: int) -> None:
        """Send again what no receipt covered in time. A session can stay up and still not
        deliver: over several paths an envelope can overtake its predecessor, and the peer, which
        only accepts a chain in order, drops it and waits for it to come again."""
        self._send_again(
            [k for k, (_, sent) in self.travelling.items() if now_ns - sent >= timeout_ns]
        )

    def _send_again(self, keys: list[tuple[int, int]]) -> None:
        """Mark `keys` to go again, and with each one everything after it in its lane: the peer
        drops what arrives before its predecessor, so those later copies would be wasted and
        each would wait for its own timer (a lane would trail by a resend interval for good)."""
        first: dict[int, int] = {}
        for lane, seq in keys:
            first[lane] = min(seq, first.get(lane, seq))
        for lane, seq in first.items():
            self.unsent[lane] = min(self.unsent[lane], seq)
        for key in [k for k in self.travelling if k[0] in first and k[1] >= first[k[0]]]:
            self._arrived_or_lost(key)

    def apply_receipt(self, receipt: Receipt) -> list[tuple[Lane, int]]:
        """Check a receipt against what we sent; return the (lane, seq) it newly covers.

        Raises:
            ProtocolError: the receipt covers envelopes we never sent, names a hash that is not
                ours, or goes back on an earlier receipt in one lane while advancing another.
        """
        advanced = [h.seq > r.seq for h, r in zip(receipt.heads, self.receipted, strict=True)]
        behind = [h.seq < r.seq for h, r in zip(receipt.heads, self.receipted, strict=True)]
        if any(behind):
            if any(advanced):
                raise ProtocolError("receipt goes back in one lane and forward in another")
            return []  # an older receipt arriving late on another path
        for lane in LANES:
            self._check_receipted_head(lane, receipt.heads[lane])
        covered: list[tuple[Lane, int]] = []
        for lane in LANES:
            head = receipt.heads[lane]
            pending = self.pending[lane]
            covered_seqs = list(itertools.takewhile(head.seq.__ge__, pending))
            for seq in covered_seqs:
                del pending[seq]
                self._arrived_or_lost((lane, seq))
                covered.append((lane, seq))
            self.receipted[lane] = head
        return covered

    def _check_receipted_head(self, lane: Lane, head: Head) -> None:
        if head.seq > self.heads[lane].seq:
            raise ProtocolError(f"receipt covers {lane.name} {head.seq}, which we never sent")
        if head.seq == self.receipted[lane].seq:
            ours = self.receipted[lane].hash
        elif head.seq in self.pending[lane]:
            ours = self.pending[lane][head.seq].hash
        else:
            raise ProtocolError(f"receipt names {lane.name} {head.seq}, which is not pending")
        if head.hash != ours:
            raise ProtocolError(f"receipt for {lane.name} {head.seq} names another envelope")

    def check_peer_claim(self, lane: Lane, head: Head) -> None:
        """The peer says it holds our lane up to `head` (in a hello or a checkpoint)."""
        # Holding less than an earlier receipt said is no proof of loss: over several paths a
        # hello or checkpoint can be older than a receipt that overtook it.
        if head.seq > self.heads[lane].seq:
            raise ProtocolError(f"peer claims {lane.name} {head.seq}, which we never sent")
        ours = self.pending[lane].get(head.seq)
        known = (
            ours.hash
            if ours
            else (self.receipted[lane].hash if head.seq == self.receipted[lane].seq else None)
        )
        if known is not None and known != head.hash:
            raise ProtocolError(f"peer holds another envelope at {lane.name} {head.seq}")
