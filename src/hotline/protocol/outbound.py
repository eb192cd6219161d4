"""Our side of the chains: sequence numbers, the unreceipted envelopes, and where each one is
travelling. Everything here is about what we sent; link.py ties it to sessions and frames.

FLASH and IMMEDIATE go on every ready session at once, each session getting its own copy of
every pending envelope of those lanes, in order (docs/link.md §5, "Sending"): a path that died
without a word then costs them nothing while another is up, and the receiver drops the copies
it already holds by sequence. ROUTINE and PRIORITY travel on one session (the carrier), within
a window of envelopes and of bytes, so they never fill the socket buffers ahead of a FLASH.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hotline.errors import ProtocolError
from hotline.protocol.envelope import LANES, Envelope, Lane
from hotline.protocol.statements import Head, Heads, Receipt

__all__ = ["URGENT", "WINDOW", "WINDOW_BYTES", "Outbound"]

# Per session, at most this many ROUTINE and PRIORITY envelopes, and this many of their bytes,
# travel unreceipted (always at least one envelope). The bytes bound what a FLASH written after
# them can find queued ahead of it: 256 envelopes of 32 KiB would be 8 MiB in the socket's
# buffers. FLASH and IMMEDIATE are never counted: a backlog never holds them up.
WINDOW = 256
WINDOW_BYTES = 256 * 1024
URGENT = (Lane.FLASH, Lane.IMMEDIATE)  # on every ready session; the other lanes on one
_WINDOWED = (Lane.PRIORITY, Lane.ROUTINE)

Key = tuple[int, int]  # (lane, seq)


def _size(envelope: Envelope) -> int:
    return len(envelope.body_bytes) + len(envelope.signature)


@dataclass(slots=True)
class Outbound:
    heads: list[Head]  # per lane, the last envelope accepted
    receipted: list[Head]  # per lane, the last envelope the peer's receipts cover
    pending: list[dict[int, Envelope]]  # per lane, unreceipted envelopes by seq (in order)
    # ROUTINE and PRIORITY: (lane, seq) -> (session id, when sent), on one session at most
    travelling: dict[Key, tuple[int, int]] = field(default_factory=dict)
    windowed: dict[int, int] = field(default_factory=dict)  # sid -> ROUTINE/PRIORITY travelling
    windowed_bytes: dict[int, int] = field(default_factory=dict)  # sid -> their bytes
    # FLASH and IMMEDIATE: sid -> per urgent lane, {seq: when sent} of the copies travelling on
    # that session, always the lane's pending envelopes from some seq on, in order
    copies: dict[int, list[dict[int, int]]] = field(default_factory=dict)
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

    def due(self, sid: int, peer_held: list[int], now_ns: int, carrier: bool) -> list[Envelope]:
        """The envelopes to put on session `sid` now: FLASH first, each lane in order, none that
        is already travelling on it or that the peer said it holds. ROUTINE and PRIORITY only
        on the `carrier`, within its window."""
        out: list[Envelope] = []
        for lane in URGENT:
            self._copies_due(out, sid, lane, peer_held[lane], now_ns)
        if carrier:
            self._windowed_due(out, sid, peer_held, now_ns)
        return out

    def _copies_due(
        self, out: list[Envelope], sid: int, lane: Lane, held: int, now_ns: int
    ) -> None:
        sent = self.copies.setdefault(sid, [{} for _ in URGENT])[lane]
        last = next(reversed(sent)) if sent else 0
        pending = self.pending[lane]
        for seq in range(max(last, held, self.receipted[lane].seq) + 1, self.heads[lane].seq + 1):
            envelope = pending.get(seq)
            if envelope is not None:
                sent[seq] = now_ns
                out.append(envelope)

    def _windowed_due(
        self, out: list[Envelope], sid: int, peer_held: list[int], now_ns: int
    ) -> None:
        count, size = self.windowed.get(sid, 0), self.windowed_bytes.get(sid, 0)
        full = False
        for lane in _WINDOWED:
            pending = self.pending[lane]
            start = seq = max(self.unsent[lane], peer_held[lane] + 1)
            last = self.heads[lane].seq
            while seq <= last:
                envelope = pending.get(seq)
                if envelope is not None and (lane, seq) not in self.travelling:
                    grows = _size(envelope)
                    full = count >= WINDOW or (count > 0 and size + grows > WINDOW_BYTES)
                    if full:
                        break
                    count, size = count + 1, size + grows
                    self.travelling[(lane, seq)] = (sid, now_ns)
                    out.append(envelope)
                seq += 1
            if start == self.unsent[lane]:  # all before `seq` travel now (or are receipted)
                self.unsent[lane] = seq
            if full:  # PRIORITY waiting for room: ROUTINE does not slip past it
                break
        self.windowed[sid], self.windowed_bytes[sid] = count, size

    def in_flight(self, sid: int) -> int:
        """How many windowed envelopes travel on `sid` (FLASH and IMMEDIATE do not count)."""
        return self.windowed.get(sid, 0)

    def in_flight_bytes(self, sid: int) -> int:
        """Their bytes (body and signature)."""
        return self.windowed_bytes.get(sid, 0)

    def _arrived_or_lost(self, key: Key) -> None:
        """`key` (ROUTINE or PRIORITY) no longer travels: a receipt covered it, or it must go
        again."""
        travelling = self.travelling.pop(key, None)
        if travelling is not None:
            sid = travelling[0]
            self.windowed[sid] -= 1
            self.windowed_bytes[sid] -= _size(self.pending[key[0]][key[1]])

    def session_lost(self, sid: int) -> None:
        """Whatever travelled on a lost session goes again on another: the peer's dedupe makes
        a second copy harmless. Its FLASH and IMMEDIATE copies are forgotten, so a session that
        comes back gets them all again."""
        self._send_again([k for k, (s, _) in self.travelling.items() if s == sid])
        self.windowed.pop(sid, None)
        self.windowed_bytes.pop(sid, None)
        self.copies.pop(sid, None)

    def expire(self, now_ns: int, timeout_ns: int) -> None:
        """Send again what no receipt covered in time. A session can stay up and still not
        deliver: over several paths an envelope can overtake its predecessor, and the peer, which
        only accepts a chain in order, drops it and waits for it to come again."""
        self._send_again(
            [k for k, (_, sent) in self.travelling.items() if now_ns - sent >= timeout_ns]
        )
        for lanes in self.copies.values():
            for sent in lanes:  # the oldest copy first: it and all after it go again, in order
                if sent and now_ns - next(iter(sent.values())) >= timeout_ns:
                    sent.clear()

    def _send_again(self, keys: list[Key]) -> None:
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
                self._arrived_or_lost((lane, seq))
                del pending[seq]
                covered.append((lane, seq))
            self.receipted[lane] = head
            if lane in URGENT and covered_seqs:
                self._copies_arrived(lane, head.seq)
        return covered

    def _copies_arrived(self, lane: Lane, seq: int) -> None:
        """A receipt covers `lane` up to `seq`: no session's copies up to there travel now."""
        for lanes in self.copies.values():
            sent = lanes[lane]
            for covered in list(itertools.takewhile(seq.__ge__, sent)):
                del sent[covered]

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
