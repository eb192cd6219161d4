"""What each path does for a call: copies sent and received, how many frames it delivered first,
its loss, jitter (RFC 3550 §6.4.1, on the frames' own clock) and round trip (probes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PathStats"]

MS = 1_000_000
QUIET_NS = 1000 * MS  # a path we heard nothing on for this long is shown as silent


@dataclass(slots=True)
class PathStats:
    index: int
    sent: int = 0
    received: int = 0  # authentic audio datagrams, first copies or not
    first: int = 0  # frames this path delivered before any other path
    rtt_ns: int | None = None
    answered_ns: int = 0  # when a probe on this path was last answered
    jitter_ns: float = 0.0
    last_heard_ns: int = 0
    _lowest: int | None = None
    _highest: int = -1
    _transit: int | None = None
    _frame_ns: int = 20 * MS

    def audio(self, seq: int, now_ns: int, *, first: bool, frame_ns: int = 20 * MS) -> None:
        self.received += 1
        self.first += first
        self.last_heard_ns = now_ns
        self._frame_ns = frame_ns
        if self._lowest is None:
            self._lowest = seq
        self._highest = max(self._highest, seq)
        transit = now_ns - seq * frame_ns  # the sender's clock cancels out of the differences
        if self._transit is not None:
            self.jitter_ns += (abs(transit - self._transit) - self.jitter_ns) / 16
        self._transit = transit

    def rtt(self, rtt_ns: int, now_ns: int) -> None:
        self.rtt_ns, self.answered_ns = rtt_ns, now_ns

    @property
    def loss(self) -> float:
        """The share of frames sent since the first one heard that never came on this path."""
        if self._lowest is None:
            return 0.0
        expected = self._highest - self._lowest + 1
        return max(0.0, 1 - self.received / expected) if expected > 0 else 0.0

    def rank(self, now_ns: int, dead_after_ns: int) -> tuple[bool, int]:
        """For a call restricted to one path: a path whose probes were answered lately, with the
        lowest round trip; one whose answers stopped comes after every live one."""
        answered = self.rtt_ns is not None and now_ns - self.answered_ns < dead_after_ns
        return (not answered, self.rtt_ns or 0)

    def to_json(self, now_ns: int) -> dict[str, Any]:
        return {
            "path": self.index,
            "sent": self.sent,
            "received": self.received,
            "first": self.first,
            "loss": round(self.loss, 4),
            "jitter_ms": round(self.jitter_ns / MS, 2),
            "rtt_ms": round(self.rtt_ns / MS, 2) if self.rtt_ns is not None else None,
            "live": now_ns - self.last_heard_ns < QUIET_NS,
        }
