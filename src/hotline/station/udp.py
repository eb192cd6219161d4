"""The station's media sockets: one UDP socket beside each TCP path it listens on.

Path i of a call is this station's listen address i and the peer's card address i (the same
host and port numbers as the TCP paths, for UDP: docs/calls.md, "Media"). A datagram is handed to
the call whose receiver index it names (chosen by us in the invite or answer), before any
cryptography; the call authenticates it. Nothing here decrypts, so a flood of garbage costs a
dictionary look-up per datagram, and its logging is rate-limited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from hotline.errors import ConfigError
from hotline.protocol.media import peek_receiver_index

__all__ = ["DatagramHandler", "MediaSockets"]

log = logging.getLogger("hotline.media")
# (path index, datagram, source address)
DatagramHandler = Callable[[int, bytes, tuple[Any, ...]], None]
LOG_EVERY_NS = 10 * 1_000_000_000


class _PathProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: MediaSockets, index: int) -> None:
        self.owner = owner
        self.index = index

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.owner.received(self.index, data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" from a peer that is not listening yet: the call's probes and
        # its keepalive decide whether the path is usable; nothing to do here.
        pass


class MediaSockets:
    """UDP sockets on a station's listen addresses, and the calls they feed."""

    def __init__(self, listen: list[str]) -> None:
        self.listen = listen
        self.transports: list[asyncio.DatagramTransport | None] = [None] * len(listen)
        self._handlers: dict[int, DatagramHandler] = {}
        self.unroutable = 0  # datagrams naming no call of ours
        self._logged_ns = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for index, address in enumerate(self.listen):
            host, _, port = address.rpartition(":")
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda i=index: _PathProtocol(self, i),  # type: ignore[misc]
                    local_addr=(host.strip("[]"), int(port)),
                )
            except OSError as exc:
                raise ConfigError(
                    f"cannot open the media socket (UDP) on {address}: {exc.strerror or exc}"
                ) from None
            self.transports[index] = transport

    def close(self) -> None:
        for transport in self.transports:
            if transport is not None:
                transport.close()
        self.transports = [None] * len(self.listen)

    def register(self, receiver_index: int, handler: DatagramHandler) -> None:
        self._handlers[receiver_index] = handler

    def unregister(self, receiver_index: int) -> None:
        self._handlers.pop(receiver_index, None)

    def in_use(self, receiver_index: int) -> bool:
        return receiver_index in self._handlers

    def send(self, index: int, datagram: bytes, address: tuple[Any, ...]) -> bool:
        """Send on path `index` (its socket, or the first one if we listen on fewer paths)."""
        if not self.transports:
            return False
        transport = self.transports[index % len(self.transports)]
        if transport is None or transport.is_closing():
            return False
        try:
            transport.sendto(datagram, address)
        except OSError:
            return False
        return True

    def received(self, index: int, data: bytes, addr: tuple[Any, ...]) -> None:
        receiver = peek_receiver_index(data)
        handler = self._handlers.get(receiver) if receiver is not None else None
        if handler is None:
            self.unroutable += 1
            self._log_rarely(f"media datagram from {addr} names no call ({self.unroutable} so far)")
            return
        handler(index, data, addr)

    def _log_rarely(self, text: str) -> None:
        now = time.monotonic_ns()
        if now - self._logged_ns >= LOG_EVERY_NS:
            self._logged_ns = now
            log.info("%s", text)
