"""A TCP proxy for tests: stands for one network path, records what the client sends first, and
can be cut (every connection reset, nothing accepted any more) to kill the path mid-stream, and
can hold each direction to a rate (a slow path, so a test can act in the middle of a transfer)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

__all__ = ["TcpProxy"]


class TcpProxy:
    def __init__(self, target: tuple[str, int], rate: float | None = None) -> None:
        self.target = target
        self.rate = rate  # bytes per second, each direction of each connection
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
        try:
            while data := source.recv(65536):
                if first:
                    self.first_messages.append(data)
                    first = False
                sink.sendall(data)
                moved += len(data)
                if len(data) > 4096:  # more than heartbeats: traffic
                    self.last_moved = time.monotonic()
                if self.rate is not None:  # sleep until the bytes moved fit the rate
                    time.sleep(max(0.0, started + moved / self.rate - time.monotonic()))
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

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
