"""The peer's clock (issue 13, item 7): an envelope's `sent_ns` is its sender's word, not a time
this station measured. A peer whose clock is wrong (or that lies) can date a message 2554 or
1970, and nothing in the envelope can be checked against it.

So `sent_ns` is never what a station orders, ranges or alarms by: it uses its own clock, the time
it received a peer's envelope (or accepted its own). And an envelope whose `sent_ns` differs
from the receiver's clock on arrival by more than a bound is a **clock fault**: held and
receipted like any other (refusing a signed envelope the peer has chained would wedge the link,
the peer sending it forever), but recorded, alarmed and marked wherever it is shown
(docs/link.md §5, docs/security.md). Pure: both times are parameters.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["CLOCK_FAULT_NS", "clock_fault", "skew_text", "utc_text"]

SECOND = 1_000_000_000
# Five minutes: well above what NTP leaves between two stations, or a message's time in flight
# on a slow path, and well below what would let a dated message mislead a person.
CLOCK_FAULT_NS = 300 * SECOND


def clock_fault(sent_ns: int, at_ns: int, bound_ns: int = CLOCK_FAULT_NS) -> bool:
    """Whether an envelope dated `sent_ns`, received (by our clock) at `at_ns`, is a clock
    fault: more than `bound_ns` ahead of our clock or behind it."""
    return abs(sent_ns - at_ns) > bound_ns


def utc_text(ns: int) -> str:
    """A time as people read it, "2554-07-21 23:34:33 UTC", from any u64 of nanoseconds."""
    try:
        when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
    except OverflowError:
        return f"{ns} ns since 1970"
    return f"{when:%Y-%m-%d %H:%M:%S} UTC"


def skew_text(skew_ns: int) -> str:
    """How far a sender's clock is from ours, in the largest unit that says it: "534 years
    ahead", "12 min behind"."""
    size, way = abs(skew_ns) // SECOND, "ahead" if skew_ns > 0 else "behind"
    for unit, seconds in (("years", 31_557_600), ("days", 86_400), ("h", 3_600), ("min", 60)):
        if size >= 2 * seconds:
            return f"{size // seconds} {unit} {way}"
    return f"{size} s {way}"
