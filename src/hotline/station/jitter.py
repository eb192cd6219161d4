"""The jitter buffer of a call: it reorders the peer's packets, and for each frame period says
what to play: the packet, the frame rebuilt from the next packet's FEC, or concealment. Pure: time
(`now_ns`, `arrival_ns`) is a parameter and it decodes nothing (the station renders a `Playout`
with its `OpusDecoder`), so the simulator plays calls through the same buffer.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from hotline.station.audio import RATE, frame_samples, packet_has_fec

__all__ = ["GRACE_SHARE", "JitterBuffer", "Playout"]


@dataclass(frozen=True, slots=True)
class Playout:
    """What to play for one frame period: a packet, an FEC recovery from the next packet (`opus`
    is then that next packet), or concealment (`opus` is None). `seq` is the frame's sequence
    number (for concealment, the one expected). `OpusDecoder.play` renders it."""

    kind: Literal["packet", "fec", "plc"]
    seq: int
    opus: bytes | None = None


@dataclass(slots=True)
class _Entry:
    seq: int
    opus: bytes


_WINDOW_MS = 4000  # the delays the target follows: long enough for a percentile, short to recover
_QUANTILE = 0.99  # cover 99% of recent delays; rarer stragglers are concealed, then refused late
_HOLD_NS = 500_000_000  # an excess must last this long before a (quiet) frame is dropped
_FORCE_NS = 1_000_000_000  # and then, if no frame was quiet (speech pauses often), any frame
# A gap in the sequence seen this recently keeps the target at a frame or more: a lost frame is
# rebuilt from the next packet's FEC only if that packet is there in its turn.
_LOSS_MEMORY_NS = 10_000_000_000
_HORIZON_MS = 1000  # beyond the playout point by more than max delay + this: refused as "early"
_PAUSE_NS = 60_000_000  # nothing for the target delay and this long: a pause, played as silence
_SEEN = 1024  # sequence numbers remembered to tell a duplicate from a late packet
# A playout clock waits this share of a frame for a packet `awaiting_next` says is on its way.
GRACE_SHARE = 0.5


class JitterBuffer:
    """Reorders packets by timestamp (48 kHz samples) and plays one frame per `pop`.

    The target delay is the 99th percentile of recent transit times (4 s) above the fastest
    (clamped to [min, max]; and at least a frame for 10 s after a gap in the sequence, so that
    the packet after a lost one is there in time to rebuild it from its FEC). It grows by
    itself: a frame whose packet is not there yet is concealed without moving on (the delay
    grows by a frame); it shrinks by dropping a frame once the buffer has held more than target
    + one frame for `_HOLD_NS`: a quiet one (`is_quiet`; by default a packet half the median
    size or less), or any after `_FORCE_NS`. So clock drift between stations never grows the
    delay without bound.
    Counters: `received` (accepted), `late`, `duplicate`, `early`, `played`, `lost` (never there
    in time, FEC-recovered ones included), `concealed`, `recovered_fec`, `dropped`, `paused`
    (times playing stopped because nothing came: a pause, or a path gone quiet).
    """

    def __init__(
        self,
        frame_ms: int = 20,
        min_delay_ms: int = 20,
        max_delay_ms: int = 200,
        has_fec: Callable[[bytes], bool] = packet_has_fec,
        is_quiet: Callable[[bytes], bool] | None = None,
    ) -> None:
        if not 0 <= min_delay_ms <= max_delay_ms:
            raise ValueError("need 0 <= min_delay_ms <= max_delay_ms")
        self.frame_ms, self.min_delay_ms, self.max_delay_ms = frame_ms, min_delay_ms, max_delay_ms
        self._frame = frame_samples(frame_ms)
        self._has_fec = has_fec
        self._is_quiet = is_quiet or self._small
        self._buf: dict[int, _Entry] = {}
        self._next_ts: int | None = None  # the slot to play next; older packets are late
        self._playing = False
        self._start_ns = 0  # when buffering began (first arrival after silence)
        self._last_seq: int | None = None
        self._dry = 0  # frames concealed in a row while waiting for the next packet
        self._excess_since: int | None = None
        self._seen: set[int] = set()
        self._newest_seq: int | None = None
        self._newest_ts: int | None = None
        self._gap_ns: int | None = None  # when a packet last came with frames missing before it
        self._transits: deque[int] = deque(maxlen=_WINDOW_MS // frame_ms)
        self._ordered: list[int] = []  # the same transits, kept sorted as they come and go
        self._sizes: deque[int] = deque(maxlen=_WINDOW_MS // frame_ms)  # of recent packets
        self._target_ns = min_delay_ms * 1_000_000
        self._jitter_ns = 0.0
        self._delay_ns = 0
        self.received = self.late = self.duplicate = self.early = self.played = 0
        self.lost = self.concealed = self.recovered_fec = self.dropped = self.paused = 0

    @property
    def target_delay_ms(self) -> float:
        return self._target_ns / 1e6

    @property
    def delay_ms(self) -> float:
        """The delay the buffer adds: when the last frame played, after the fastest transit."""
        return self._delay_ns / 1e6

    @property
    def jitter_ms(self) -> float:
        """The interarrival jitter of RFC 3550 §6.4.1, a figure for the call record."""
        return self._jitter_ns / 1e6

    @property
    def playing(self) -> bool:
        return self._playing

    def due_ns(self) -> int | None:
        """When the next frame should play: its timestamp's time, plus the fastest recent transit,
        plus the target delay (by then 99% of recent packets had come). While waiting to start,
        when `pop` will start (the first packet's arrival plus the target). A playout clock beats
        near this rather than wherever it happens to fall, which would add up to a frame of delay.
        None when there is nothing to play."""
        if not self._playing:
            return self._start_ns + self._target_ns if self._buf else None
        assert self._next_ts is not None
        return self._next_ts * 1_000_000_000 // RATE + self._ordered[0] + self._target_ns

    def awaiting_next(self) -> bool:
        """Whether the next frame's packet is not here yet but probably on its way: playing, none
        concealed for it yet, and less than the target buffered behind it (what `pop` would
        conceal in place). A playout clock may wait a little for it rather than conceal a frame
        of speech at once: one concealed frame costs a 10 s utterance about 0.15 of PESQ, where a
        frame handed a few ms late costs nothing that a listener's own buffer does not absorb."""
        return (
            self._playing
            and self._dry == 0
            and self._next_ts not in self._buf
            and self._ahead_ns() < self._target_ns
        )

    def figures(self) -> dict[str, int]:
        """The counters and delays (ms), for the station's status and the call record."""
        counters = ("received", "played", "lost", "concealed", "recovered_fec", "late")
        more = ("duplicate", "early", "dropped", "paused")
        delays = {"delay_ms": self._delay_ns, "target_delay_ms": self._target_ns}
        return {
            **{name: getattr(self, name) for name in counters + more},
            **{name: round(ns / 1e6) for name, ns in delays.items()},
            "jitter_ms": round(self._jitter_ns / 1e6),
        }

    def push(self, seq: int, timestamp: int, opus: bytes, arrival_ns: int) -> str:
        """Offer a packet: "accepted", "duplicate", "late" (its time has passed) or "early".
        A 32-bit timestamp on the wire wraps after 24.8 hours: it is unwrapped here."""
        if self._newest_ts is not None:  # the nearest value congruent modulo 2**32
            timestamp = self._newest_ts + (timestamp - self._newest_ts + 2**31) % 2**32 - 2**31
        if seq in self._seen or timestamp in self._buf:
            self.duplicate += 1
            return "duplicate"
        newest = seq if self._newest_seq is None else max(self._newest_seq, seq)
        if (self._next_ts is not None and timestamp < self._next_ts) or seq < newest - _SEEN:
            self._observe(timestamp, arrival_ns)  # the stragglers are what the target must cover
            self.late += 1
            return "late"
        ref = self._next_ts if self._playing else None
        ref = min(self._buf, default=timestamp) if ref is None else ref
        horizon = (self.max_delay_ms + _HORIZON_MS) * RATE // 1000
        if timestamp - ref > horizon or len(self._buf) >= horizon // self._frame:
            self.early += 1
            return "early"
        if self._newest_seq is not None and seq > self._newest_seq + 1:
            self._gap_ns = arrival_ns  # one or more frames before it missing, for now
        self._observe(timestamp, arrival_ns)
        if not self._buf and not self._playing:
            self._start_ns = arrival_ns
        self._buf[timestamp] = _Entry(seq, opus)
        self._sizes.append(len(opus))
        self._seen.add(seq)
        self._newest_seq = newest
        self._newest_ts = max(timestamp, self._newest_ts or timestamp)
        if len(self._seen) > 2 * _SEEN:
            self._seen = {s for s in self._seen if s > newest - _SEEN}
        self.received += 1
        return "accepted"

    def pop(self, now_ns: int) -> Playout | None:
        """What to play for the next frame period; None means silence (nothing yet, or a pause)."""
        if not self._playing:
            if not self._buf or now_ns - self._start_ns < self._target_ns:
                return None
            self._playing, self._next_ts, self._dry = True, min(self._buf), 0
        assert self._next_ts is not None
        self._maybe_drop(now_ns)
        ts = self._next_ts
        self._delay_ns = now_ns - ts * 1_000_000_000 // RATE - self._ordered[0]
        head = self._buf.pop(ts, None)
        if head is None:
            # Missing: while less than the target is buffered behind it, it is probably on its
            # way, so conceal in place (the delay grows a frame); past that, it is lost. With
            # nothing buffered for the target and _PAUSE_NS more, the other side has paused.
            waited_ns = self._dry * self.frame_ms * 1_000_000
            if self._ahead_ns() < self._target_ns and waited_ns < self._target_ns + _PAUSE_NS:
                self._dry += 1
                self.concealed += 1
                return Playout("plc", (self._last_seq or 0) + 1)
            if not self._buf:
                self._playing = False
                self.paused += 1
                return None
        self._next_ts = ts + self._frame
        for stale in [t for t in self._buf if t < self._next_ts]:  # misaligned timestamps
            del self._buf[stale]
        self._dry = 0
        if head is not None:
            self.played += 1
            return Playout("packet", self._advance(head.seq), head.opus)
        nxt = self._buf.get(self._next_ts)
        if nxt is not None and self._has_fec(nxt.opus):
            self.recovered_fec += 1
            self.lost += 1
            return Playout("fec", self._advance(nxt.seq - 1), nxt.opus)
        self.concealed += 1
        return Playout("plc", (self._last_seq or 0) + 1)

    def _advance(self, seq: int) -> int:
        """Count the frames skipped since the last one played as lost (a pause has no gap)."""
        if self._last_seq is not None and seq > self._last_seq:
            self.lost += seq - self._last_seq - 1
        self._last_seq = seq
        return seq

    def _ahead_ns(self) -> int:
        """How far the newest buffered packet is beyond the one to play next (-1: none)."""
        if not self._buf or self._next_ts is None:
            return -1
        return (max(self._buf) - self._next_ts) * 1_000_000_000 // RATE

    def _maybe_drop(self, now_ns: int) -> None:
        assert self._next_ts is not None
        if self._ahead_ns() < self._target_ns + self.frame_ms * 1_000_000:
            self._excess_since = None
            return
        if self._excess_since is None:
            self._excess_since = now_ns
        waited = now_ns - self._excess_since
        head = self._buf.get(self._next_ts)
        if head is None or waited < _HOLD_NS:
            return
        if waited >= _FORCE_NS or self._is_quiet(head.opus):
            del self._buf[self._next_ts]
            self._last_seq = head.seq  # dropped on purpose: not a loss
            self._next_ts += self._frame
            self.dropped += 1
            self._excess_since = now_ns

    def _small(self, opus: bytes) -> bool:
        """Quiet by its length, at a variable bit rate: Opus spends far fewer bytes on
        near-silence (17 against 60-90 for voice at 32 kb/s). At a constant bit rate every
        packet is as long: the station passes `is_quiet`, which decodes."""
        return 2 * len(opus) <= statistics.median(self._sizes)

    def _observe(self, timestamp: int, arrival_ns: int) -> None:
        transit = arrival_ns - timestamp * 1_000_000_000 // RATE
        if self._transits:  # RFC 3550 §6.4.1: J += (|D| - J) / 16
            self._jitter_ns += (abs(transit - self._transits[-1]) - self._jitter_ns) / 16
        ordered = self._ordered
        if len(self._transits) == self._transits.maxlen:  # the oldest leaves the window
            del ordered[bisect_left(ordered, self._transits[0])]
        self._transits.append(transit)
        insort(ordered, transit)
        spread = ordered[int(_QUANTILE * (len(ordered) - 1))] - ordered[0]
        floor = self.min_delay_ms * 1_000_000
        if self._gap_ns is not None and arrival_ns - self._gap_ns < _LOSS_MEMORY_NS:
            floor = max(floor, self.frame_ms * 1_000_000)
        self._target_ns = min(max(spread, floor), self.max_delay_ms * 1_000_000)
