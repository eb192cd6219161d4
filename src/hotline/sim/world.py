"""The simulated world: a virtual clock, a queue of timed events, and one seeded random source.

Everything in a simulation run draws from `World.rng`, so a seed replays the same run. Time is
virtual: nothing sleeps, and a minute of link time passes in milliseconds.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["MS", "SECOND", "START_NS", "World"]

MS = 1_000_000
SECOND = 1_000_000_000
START_NS = 1_800_000_000 * SECOND  # a fixed epoch, far from zero like a real clock


@dataclass(slots=True)
class World:
    seed: int
    rng: random.Random = field(init=False)
    now: int = START_NS
    _queue: list[tuple[int, int, Callable[[], None]]] = field(default_factory=list)
    _counter: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - reproducible on purpose: a simulation

    def random_bytes(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def at(self, when_ns: int, action: Callable[[], None]) -> None:
        self._counter += 1  # ties run in the order they were scheduled: deterministic
        heapq.heappush(self._queue, (max(when_ns, self.now), self._counter, action))

    def after(self, delay_ns: int, action: Callable[[], None]) -> None:
        self.at(self.now + delay_ns, action)

    def run_until(self, deadline_ns: int, done: Callable[[], bool] = lambda: False) -> bool:
        """Run events until `done()` holds (True) or the deadline passes (False)."""
        while self._queue and self._queue[0][0] <= deadline_ns:
            when, _, action = heapq.heappop(self._queue)
            self.now = when
            action()
            if done():
                return True
        self.now = max(self.now, deadline_ns)
        return done()
