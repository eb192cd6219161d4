"""A UDP relay on loopback that stands between two stations' media sockets, one pair of ports per
path, and drops what a test tells it to: a share of the datagrams on a path (random loss, seeded),
or all of them (a cut). Each station is told (link.toml `media`) to send to the relay's port that
faces it, and sees the peer's datagrams come from that same port, as from a NAT.

It runs in a thread until `close()`; it forwards nothing but loopback datagrams."""

from __future__ import annotations

import contextlib
import random
import select
import socket
import threading
from dataclasses import dataclass, field

__all__ = ["UdpRelay"]

Address = tuple[str, int]


@dataclass
class _Path:
    toward_b: socket.socket  # A sends here; forwarded to B's real address
    toward_a: socket.socket  # B sends here; forwarded to A's real address
    a_real: Address
    b_real: Address
    loss: float = 0.0
    forwarded: int = 0
    dropped: int = 0
    last_toward_b: bytes = b""  # the newest datagram A sent toward B, as it came
    to_a: int = 0  # datagrams of B's forwarded to A


@dataclass
class UdpRelay:
    a_real: list[Address]
    b_real: list[Address]
    seed: int = 1
    paths: list[_Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        for a, b in zip(self.a_real, self.b_real, strict=True):
            sockets = []
            for _ in range(2):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", 0))
                sockets.append(s)
            self.paths.append(_Path(sockets[0], sockets[1], a, b))
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def for_a(self) -> list[str]:
        """The media addresses station A should send to, one per path."""
        return [f"127.0.0.1:{p.toward_b.getsockname()[1]}" for p in self.paths]

    def for_b(self) -> list[str]:
        return [f"127.0.0.1:{p.toward_a.getsockname()[1]}" for p in self.paths]

    def set_loss(self, path: int, loss: float) -> None:
        self.paths[path].loss = loss

    def rebind(self, path: int) -> None:
        """The port facing B moves, as a NAT's mapping does: A's datagrams now reach B from a
        new source, and what B sends to the old port is lost until B follows."""
        fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fresh.bind(("127.0.0.1", 0))
        with self._lock:
            old, self.paths[path].toward_a = self.paths[path].toward_a, fresh
        old.close()

    def _routes(self) -> dict[socket.socket, tuple[_Path, socket.socket, Address]]:
        routes = {}
        with self._lock:
            for path in self.paths:
                routes[path.toward_b] = (path, path.toward_a, path.b_real)
                routes[path.toward_a] = (path, path.toward_b, path.a_real)
        return routes

    def _run(self) -> None:
        while not self._stop.is_set():
            routes = self._routes()
            try:
                readable, _, _ = select.select(list(routes), [], [], 0.05)
            except (OSError, ValueError):  # a socket closed by rebind(): look again
                continue
            for sock in readable:
                path, out, target = routes[sock]
                try:
                    data, _ = sock.recvfrom(2048)
                except OSError:
                    continue
                if sock is path.toward_b:
                    path.last_toward_b = data
                if path.loss and self._random.random() < path.loss:
                    path.dropped += 1
                    continue
                path.forwarded += 1
                path.to_a += sock is path.toward_a
                with contextlib.suppress(OSError):
                    out.sendto(data, target)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for path in self.paths:
            path.toward_a.close()
            path.toward_b.close()
