"""Refused connections on the path ports: counted, summarised, never stored whole.

Every refusal is counted by kind (the metrics). Beyond the count, what a refusal may cost is
bounded whatever the flood (docs/operations.md, "Floods"):

* the log: the first refusal of each source and kind in a minute, at once (with its reason and
  its first 32 bytes), and, if more followed, one summary line as the minute ends; at most
  MAX_SOURCES sources a minute are named, the rest are counted together as OTHERS;
* the audit table: the same per 10 minutes, per source for refused handshakes (a valid MAC:
  someone who knows the link's public material, or a replay), for all sources together for first
  messages without a valid MAC (anyone); and at most AUDIT_ROWS_PER_HOUR rows an hour in all.
  A row holds a 32-byte sample at most, never the message.

Sources are what `limits.source_of` makes of an address. Time comes from the clocks passed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["AUDITED", "AUDIT_ROWS_PER_HOUR", "KINDS", "Ledger", "Refusals", "Tally"]

log = logging.getLogger("hotline.paths")
LOG_WINDOW_S = 60.0
AUDIT_WINDOW_S = 600.0
AUDIT_ROWS_PER_HOUR = 60  # rows written because of unauthenticated input, whatever the flood
MAX_SOURCES = 16  # sources named apart in one window; the rest are counted as OTHERS
OTHERS = "other addresses"
ANY = "any address"
SAMPLE_LEN = 32  # the first bytes of a refused message: its ephemeral key, if it is one
# "mac": no valid first-message MAC (anyone); "handshake": a valid MAC, refused by Noise or the
# replay guard; "incomplete": no whole first message in time; "limit": closed by a cap. Only
# the first two reach the audit table.
KINDS = ("mac", "handshake", "incomplete", "limit")
AUDITED = frozenset({"mac", "handshake"})
_LABELS = {
    "mac": "first messages without a valid MAC",
    "handshake": "handshakes",
    "incomplete": "connections without a whole first message",
    "limit": "connections closed by a limit",
}


@dataclass(slots=True)
class Tally:
    kind: str
    source: str  # what is counted: an address, OTHERS or ANY
    first: str  # the address of the first refusal
    local: str
    reason: str
    sample: bytes
    first_ns: int  # wall clock at the first refusal
    count: int = 1
    addresses: set[str] = field(default_factory=set)  # up to MAX_SOURCES + 1 of them


class Ledger:
    """Refusals counted per (source, kind) in fixed windows of `window_s`: `first` hears of the
    first of each in a window, `summary` (as the window ends) of each that had more."""

    def __init__(
        self, window_s: float, first: Callable[[Tally], None], summary: Callable[[Tally], None]
    ) -> None:
        self.window_s = window_s
        self._first, self._summary = first, summary
        self._window: int | None = None
        self._tallies: dict[tuple[str, str], Tally] = {}

    def add(self, now: float, wall_ns: int, source: str, address: str, kind: str, local: str,
            reason: str, sample: bytes) -> None:  # fmt: skip
        self.roll(now)
        self._window = int(now // self.window_s)
        key = (source, kind)
        if key not in self._tallies and len(self._tallies) >= MAX_SOURCES:
            key = (OTHERS, kind)
        tally = self._tallies.get(key)
        if tally is None:
            tally = Tally(kind, key[0], address, local, reason, sample[:SAMPLE_LEN], wall_ns)
            self._tallies[key] = tally
            self._first(tally)
        else:
            tally.count += 1
        if len(tally.addresses) <= MAX_SOURCES:
            tally.addresses.add(address)

    def roll(self, now: float) -> None:
        """End the window if its time is over: a summary for each tally that counted more."""
        if self._window is None or int(now // self.window_s) == self._window:
            return
        tallies, self._tallies, self._window = self._tallies, {}, None
        for tally in tallies.values():
            if tally.count > 1:
                self._summary(tally)

    def ends_in(self, now: float) -> float | None:
        return None if self._window is None else (self._window + 1) * self.window_s - now


class Refusals:
    """Counts, log lines and audit rows for refused connections, each bounded."""

    def __init__(
        self,
        audit: Callable[[str, str, bytes], None],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], int] = time.time_ns,
    ) -> None:
        self.counts: Counter[str] = Counter()
        self.unaudited = 0  # audit rows not written because of the hourly limit
        self._audit, self._clock, self._wall = audit, clock, wall
        self._log = Ledger(LOG_WINDOW_S, _log_first, _log_summary)
        self._audited = Ledger(AUDIT_WINDOW_S, self._audit_first, self._audit_summary)
        self._hour, self._rows = -1, 0
        self._timer: asyncio.TimerHandle | None = None

    def refuse(self, source: str, local: str, kind: str, reason: str, sample: bytes = b"") -> None:
        self.counts[kind] += 1
        now, wall = self._clock(), self._wall()
        self._log.add(now, wall, source, source, kind, local, reason, sample)
        if kind in AUDITED:
            counted = ANY if kind == "mac" else source
            self._audited.add(now, wall, counted, source, kind, local, reason, sample)
        if self._timer is None:
            self._arm(now)

    def _arm(self, now: float) -> None:
        """Summaries are due when a window ends, even if no refusal comes after it."""
        ends = [e for e in (self._log.ends_in(now), self._audited.ends_in(now)) if e is not None]
        if ends:
            with contextlib.suppress(RuntimeError):  # no loop: they come with the next refusal
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(max(min(ends), 0) + 0.05, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self._clock()
        self._log.roll(now)
        self._audited.roll(now)
        self._arm(now)

    def _audit_first(self, t: Tally) -> None:
        self._write(
            "handshake refused",
            f"from {t.first} on {t.local}: {t.reason}; ephemeral key {t.sample.hex()}. More "
            f"refused like it from {t.source} within 10 minutes are counted, and summarised here "
            "once, not recorded one by one",
            t.sample,
        )

    def _audit_summary(self, t: Tally) -> None:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t.first_ns / 1e9))
        named = sorted(t.addresses)[:5]
        more = ", ..." if len(t.addresses) > len(named) else ""
        self._write(
            "handshakes refused",
            f"{t.count} {_LABELS[t.kind]} refused on {t.local} in the 10 minutes from {when}, "
            f"from {_count(t)} ({', '.join(named)}{more}); the first: {t.reason}",
            t.sample,
        )

    def _write(self, action: str, detail: str, evidence: bytes) -> None:
        hour = int(self._clock() // 3600)
        if hour != self._hour:
            self._hour, self._rows = hour, 0
        if self._rows >= AUDIT_ROWS_PER_HOUR:
            self.unaudited += 1
            return
        self._rows += 1
        if self._rows == AUDIT_ROWS_PER_HOUR:
            action, evidence = "handshake refusals not recorded", b""
            detail = (
                f"the limit of {AUDIT_ROWS_PER_HOUR} rows an hour for refused handshakes is "
                "reached: until the hour ends they are only counted (log summaries, metrics)"
            )
        self._audit(action, detail, evidence)


def _count(t: Tally) -> str:
    n = len(t.addresses)
    return f"more than {MAX_SOURCES} addresses" if n > MAX_SOURCES else f"{n} address(es)"


def _log_first(t: Tally) -> None:
    if t.kind in AUDITED:
        log.warning(
            "handshake from %s on %s refused: %s; ephemeral key %s (more from %s this minute "
            "are counted, then summarised)", t.first, t.local, t.reason, t.sample.hex(), t.source
        )  # fmt: skip
    else:
        log.info("connection from %s on %s: %s", t.first, t.local, t.reason)


def _log_summary(t: Tally) -> None:
    level = logging.WARNING if t.kind in AUDITED else logging.INFO
    log.log(
        level, "%d %s from %s on %s in the last minute; the first: %s",
        t.count, _LABELS[t.kind], t.source, t.local, t.reason,
    )  # fmt: skip
