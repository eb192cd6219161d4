"""Dialling a path again when it is down: promptly, for as long as it is configured (issue 16).

A path that went down is tried again at once and then at short, jittered intervals: 50 ms
doubling to at most PROMPT_CAP_S for the first PROMPT_FOR_S of being down, and never more than
CAP_S after that, since a configured path is expected back and a duty officer should not wait
for the dialer's backoff once the cable is in again. Jitter (each pause is drawn from half to all
of its nominal length) keeps the dials of several paths and links from marching in step.

A cut cable does not refuse a connection: it swallows it, and the kernel sends its SYN again
only after 1 s and then 3 s. So an attempt is not waited out before the next: a new one starts
after every pause while the earlier ones still wait for their answer (at most ATTEMPTS at once,
each for at most CONNECT_TIMEOUT_S), and the first to connect wins. A path that comes back is
then found within a pause of it, not within a SYN timer. The cost while a path is down is a SYN
every pause and a few sockets waiting. (On a directly cabled path the kernel must also learn the
peer's hardware address again, asking once a second: docs/operations.md, "Paths coming back".)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "ATTEMPTS",
    "CAP_S",
    "CONNECT_TIMEOUT_S",
    "PROMPT_CAP_S",
    "PROMPT_FOR_S",
    "STABLE_S",
    "Backoff",
    "connect",
]

CONNECT_TIMEOUT_S = 3.0  # one attempt; later ones start meanwhile (above)
# Attempts waiting at once; a new one past that ends the oldest. When a path comes back, every
# attempt still waiting connects at the same moment, and each but the first is closed again: a
# refusal in the peer's log ("closed before a whole first message"). Four keep that to three,
# and let each attempt wait four pauses (1 to 2 s in the first minute, up to CONNECT_TIMEOUT_S
# after it) for a slow path's answer.
ATTEMPTS = 4
FIRST_PAUSE_S = 0.05
PROMPT_CAP_S = 0.5  # the longest pause in the first PROMPT_FOR_S of being down
PROMPT_FOR_S = 60.0
CAP_S = 5.0  # the longest pause ever, for a path that is configured
# A session that lived this long means the path worked: start afresh when it ends. One lost to
# silence lives at least the dead time (1.5 s); one that a peer closes right after the handshake
# (a refusal, a violation) lives milliseconds, and dialling that again at once would be a loop.
STABLE_S = 1.0

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(slots=True)
class Backoff:
    """How long to pause before the next dial of one path."""

    uniform: Callable[[float, float], float] = random.uniform
    clock: Callable[[], float] = time.monotonic
    down_since: float = field(default=0.0)
    failures: int = 0

    def __post_init__(self) -> None:
        self.down_since = self.clock()

    def pause(self) -> float:
        """The next pause, in seconds; each call counts one more try."""
        down_for = self.clock() - self.down_since
        cap = PROMPT_CAP_S if down_for < PROMPT_FOR_S else CAP_S
        nominal = min(cap, FIRST_PAUSE_S * (1 << min(self.failures, 10)))
        self.failures += 1
        return nominal * self.uniform(0.5, 1.0)

    def session_ended(self, lasted_s: float) -> float:
        """A session on the path ended; returns the pause before dialling again. If it had
        lived a while, the path is newly down: dial again at once, and the prompt pauses start
        again. A session that ended at once (a peer that closes right after the handshake)
        counts as one more failure."""
        if lasted_s >= STABLE_S:
            self.down_since, self.failures = self.clock(), 0
            return 0.0
        return self.pause()


async def connect(
    host: str,
    port: int,
    backoff: Backoff,
    failed: Callable[[BaseException], None],
    stopping: Callable[[], bool],
) -> Streams | None:
    """A TCP connection to (host, port), a new attempt every `backoff.pause()` while earlier
    ones wait (at most ATTEMPTS at once: the oldest gives way); `failed` hears each attempt that
    fails. None once `stopping()`."""
    loop = asyncio.get_running_loop()
    attempts: list[asyncio.Task[Streams]] = []  # oldest first
    try:
        while not stopping():
            if len(attempts) >= ATTEMPTS:
                _abandon(attempts.pop(0))
            attempts.append(loop.create_task(_attempt(host, port)))
            deadline = loop.time() + backoff.pause()
            while attempts and (left := deadline - loop.time()) > 0:
                done, _ = await asyncio.wait(
                    attempts, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                attempts = [a for a in attempts if a not in done]
                won = _first_connected(done, failed)
                if won is not None:
                    return won
            if not attempts:  # all failed at once (refused, no route): wait out the pause
                await asyncio.sleep(max(0.0, deadline - loop.time()))
        return None
    finally:
        for task in attempts:
            _abandon(task)


async def _attempt(host: str, port: int) -> Streams:
    return await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)


def _abandon(task: asyncio.Task[Streams]) -> None:
    """Give up an attempt; if it connects all the same (a cancellation can lose the race with
    a connection that completes), close that connection."""
    task.cancel()
    task.add_done_callback(_close_if_connected)


def _close_if_connected(task: asyncio.Task[Streams]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result()[1].close()


def _first_connected(
    done: set[asyncio.Task[Streams]], failed: Callable[[BaseException], None]
) -> Streams | None:
    """The first connection among `done`; any other that connected too is closed."""
    won: Streams | None = None
    for task in done:
        error = task.exception()
        if error is not None:
            failed(error)
        elif won is None:
            won = task.result()
        else:
            task.result()[1].close()
    return won
