"""A TCP proxy for tests: stands for one network path, records what the client sends first, and
can be cut (every connection reset, nothing accepted any more) to kill the path mid-stream, can
hold each direction to a rate (a slow path, so a test can act in the middle of a transfer), and
can delay every byte each way by a fixed time (a long path, or a relay far away)."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable

__all__ = ["TcpProxy"]


class TcpProxy:
    def __init__(
        self, target: tuple[str, int], rate: float | None = None, delay: float = 0.0
    ) -> None:
        self.target = target
        self.rate = rate  # bytes per second, each direction of each connection
        self.delay = delay  # seconds each chunk waits before it goes on, each way
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.first_messages: list[bytes] = []  # the first bytes each client sent
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False
        self.last_moved = 0.0  # when bytes last went through, either way (time.monotonic)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def path(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def _accept(self) -> None:
        while not self._cut:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._cut:
                client.close()
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._cut:  # cut while we connected: these were never seen by cut()
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        first = from_client
        started, moved = time.monotonic(), 0
        send = self._delayed(sink) if self.delay else sink.sendall
        try:
            while data := source.recv(65536):
                if first:
                    self.first_messages.append(data)
                    first = False
                send(data)
                moved += len(data)
                if len(data) > 4096:  # more than heartbeats: traffic
                    self.last_moved = time.monotonic()
                if self.rate is not None:  # sleep until the bytes moved fit the rate
                    time.sleep(max(0.0, started + moved / self.rate - time.monotonic()))
        except OSError:
            pass
        finally:
            if self.delay:
                send(b"")  # the end goes on after the bytes before it, delayed as they are
            else:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)

    def _delayed(self, sink: socket.socket) -> Callable[[bytes], None]:
        """A sender that passes each chunk on `delay` seconds after it came, in order, without
        holding up the reading (latency, not a lower rate); an empty chunk ends the direction."""
        chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def forward() -> None:
            while True:
                due, data = chunks.get()
                time.sleep(max(0.0, due - time.monotonic()))
                try:
                    if not data:
                        sink.shutdown(socket.SHUT_WR)
                        return
                    sink.sendall(data)
                except OSError:
                    return

        threading.Thread(target=forward, daemon=True).start()
        return lambda data: chunks.put((time.monotonic() + self.delay, data))

    def moved_recently(self, within_s: float = 0.5) -> bool:
        """Whether traffic (not only heartbeats) went through in the last `within_s`."""
        return time.monotonic() - self.last_moved < within_s

    def cut(self) -> None:
        """The path dies: stop accepting and reset every connection."""
        self._cut = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):  # already reset by the other side
                    s.shutdown(socket.SHUT_RDWR)  # wakes the pumps; the stations see the end
                s.close()
