"""The simulated network: paths that can be cut, and connections on them that lose, duplicate,
delay, reorder and corrupt what they carry.

A connection (`Pipe`) carries whole messages (a Noise handshake or transport message) between
two ends. Each message is subject to its path's faults independently, so messages can overtake
one another. Closing one end tells the other, unless that notice is lost too: then the other end
finds out by silence, as on a real network.

Beside each path runs a datagram route (`Datagrams`), as a station has a UDP socket beside each
TCP path for call media: each datagram on its own, with the route's own faults and cuts (and the
path's cuts too), so datagrams are lost, copied, corrupted and overtake one another.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from hotline.sim.world import MS, World

__all__ = ["Datagrams", "Faults", "Path", "Pipe"]


@dataclass(slots=True)
class Faults:
    loss: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    min_delay_ns: int = 1 * MS
    max_delay_ns: int = 20 * MS

    def calm(self) -> None:
        """No more faults: used once traffic stops, so the run can converge."""
        self.loss = self.duplicate = self.corrupt = 0.0


@dataclass(slots=True)
class Path:
    index: int
    faults: Faults
    cut_until_ns: int = 0  # a partition: nothing crosses this path before then

    def is_cut(self, now_ns: int) -> bool:
        return now_ns < self.cut_until_ns


def _faulty_copies(world: World, faults: Faults, data: bytes) -> list[tuple[int, bytes]]:
    """What the network makes of one message: (delay, bytes) for each copy that arrives."""
    copies = 2 if world.rng.random() < faults.duplicate else 1
    arriving = []
    for _ in range(copies):
        if world.rng.random() < faults.loss:
            continue
        message = data
        if message and world.rng.random() < faults.corrupt:
            position = world.rng.randrange(len(message))
            flipped = message[position] ^ (1 << world.rng.randrange(8))
            message = message[:position] + bytes([flipped]) + message[position + 1 :]
        arriving.append((world.rng.randint(faults.min_delay_ns, faults.max_delay_ns), message))
    return arriving


Receiver = Callable[["Pipe", bytes], None]
Closer = Callable[["Pipe"], None]


class Pipe:
    """One connection: `ends[0]` dialled, `ends[1]` answered."""

    def __init__(self, world: World, path: Path, dialer: str, listener: str) -> None:
        self.world = world
        self.path = path
        self.ends = (dialer, listener)
        self.open = {dialer: True, listener: True}
        self.receivers: dict[str, Receiver] = {}
        self.closers: dict[str, Closer] = {}

    def other(self, end: str) -> str:
        return self.ends[1] if end == self.ends[0] else self.ends[0]

    def send(self, from_end: str, data: bytes) -> None:
        to_end = self.other(from_end)
        if not self.open[from_end] or self.path.is_cut(self.world.now):
            return
        for delay, message in _faulty_copies(self.world, self.path.faults, data):
            self.world.after(delay, functools.partial(self._deliver, to_end, message))

    def _deliver(self, to_end: str, data: bytes) -> None:
        if self.open[to_end] and not self.path.is_cut(self.world.now) and to_end in self.receivers:
            self.receivers[to_end](self, data)

    def close(self, end: str) -> None:
        """Close our end; the other end hears of it unless the notice is lost."""
        if not self.open[end]:
            return
        self.open[end] = False
        other = self.other(end)
        if self.world.rng.random() < 0.8 and not self.path.is_cut(self.world.now):
            delay = self.world.rng.randint(
                self.path.faults.min_delay_ns, self.path.faults.max_delay_ns
            )
            self.world.after(delay, lambda: self._notify_closed(other))

    def _notify_closed(self, end: str) -> None:
        if self.open[end]:
            self.open[end] = False
            if end in self.closers:
                self.closers[end](self)


class Datagrams:
    """The datagram route beside one path between two ends: no connection, no order, no notice.
    A receiver gets (path index, datagram)."""

    def __init__(self, world: World, path: Path, faults: Faults, ends: tuple[str, str]) -> None:
        self.world = world
        self.path = path
        self.faults = faults
        self.ends = ends
        self.cut_until_ns = 0  # this route alone is blocked (a firewall dropping UDP) until then
        self.receivers: dict[str, Callable[[int, bytes], None]] = {}

    def is_cut(self, now_ns: int) -> bool:
        return now_ns < self.cut_until_ns or self.path.is_cut(now_ns)

    def send(self, from_end: str, data: bytes) -> None:
        to_end = self.ends[1] if from_end == self.ends[0] else self.ends[0]
        if self.is_cut(self.world.now):
            return
        for delay, datagram in _faulty_copies(self.world, self.faults, data):
            self.world.after(delay, functools.partial(self._deliver, to_end, datagram))

    def _deliver(self, to_end: str, data: bytes) -> None:
        receiver = self.receivers.get(to_end)
        if receiver is not None and not self.is_cut(self.world.now):
            receiver(self.path.index, data)
