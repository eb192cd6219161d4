"""Limits on what strangers' connections can hold, on every listener of the station.

Path listeners (`Gate`): at most PER_LISTENER connections per listener, and PER_SOURCE per
source address, that have not finished the handshake (they also time out, HANDSHAKE_TIMEOUT_S in
`connections`). Past a cap, the oldest connection still waiting for its first message is closed
to make room, not the new one: with "close the new one", idle connections held open by someone
kept the authenticated link from ever reconnecting (tests/test_flood.py). A source is an IPv4
address, or the /64 of an IPv6 one (what one host usually holds).

HTTP listeners, the API and the console (`guarded_http`): uvicorn has a keep-alive timeout (idle
time between two requests) but no header timeout, so a connection that sends nothing, or a head a
byte at a time, stayed open forever. Its parsers do not help: h11 bounds the size of an
incomplete head (`h11_max_incomplete_event_size`) but not the time, and httptools (llhttp), which
the station uses, bounds neither. So the station serves HTTP with httptools' protocol and:

* a connection is *waiting* from the moment it opens, and again after each response, until the
  head of its next request is complete; a waiting connection is closed after HEAD_TIMEOUT_S;
* a waiting connection that has sent more than MAX_HEAD_BYTES without completing a head is closed;
* at most MAX_WAITING connections per listener wait at once: one more closes the oldest waiting,
  a new connection before a kept-alive one (a client that already completed a request). A
  request in progress (an event stream, a WebSocket, an upload) is never waiting.

So slow or idle clients hold at most MAX_WAITING connections, well below uvicorn's
`limit_concurrency` (past which it answers 503). And `raise_open_files_limit`, at start, lifts
the soft limit on open files (often 1,024) to the hard one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "HEAD_TIMEOUT_S",
    "MAX_HEAD_BYTES",
    "MAX_WAITING",
    "PER_LISTENER",
    "PER_SOURCE",
    "Gate",
    "HeadWaits",
    "Ticket",
    "guarded_http",
    "raise_open_files_limit",
    "source_of",
]

log = logging.getLogger("hotline.station")
PER_LISTENER = 256  # path connections in their handshake, per listener
PER_SOURCE = 16  # the same from one source, all path listeners together
HEAD_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 64 * 1024
MAX_WAITING = 256  # HTTP connections waiting for a request head, per listener


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit, and return the limit now.

    The usual soft limit is 1,024: a few hundred idle connections to the path ports and the HTTP
    listeners used to exhaust it, and then the link could not reconnect. The hard limit is what
    the machine's administrator allows (systemd: LimitNOFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:  # above the kernel's nr_open, or a platform's own cap
        log.warning("cannot raise the open files limit from %d to %d: %s", soft, target, exc)
        return soft
    return target


def source_of(peername: object) -> str:
    """The address a cap applies to: an IPv4 address, or the /64 of an IPv6 one."""
    if not isinstance(peername, tuple) or not peername:
        return "unknown"
    if ":" not in peername[0]:
        return str(peername[0])  # IPv4, as the kernel wrote it: nothing to parse
    try:
        address = ipaddress.ip_address(str(peername[0]))
    except ValueError:
        return str(peername[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address.exploded}/64", strict=False))
    return str(address)


@dataclass(eq=False, slots=True)
class Ticket:
    listener: str
    source: str
    close: Callable[[], None] = field(repr=False)
    waiting: bool = True  # still reading its first message: may be closed to make room
    evicted: bool = False


class Gate:
    """Connections accepted on path listeners that have not finished their handshake."""

    def __init__(self, per_listener: int = PER_LISTENER, per_source: int = PER_SOURCE) -> None:
        self.per_listener, self.per_source = per_listener, per_source
        self._listeners: dict[str, dict[Ticket, None]] = {}  # insertion order: oldest first
        self._sources: dict[str, dict[Ticket, None]] = {}

    def enter(self, listener: str, source: str, close: Callable[[], None]) -> Ticket | None:
        """A ticket for a new connection; None if every one in its way is already past waiting
        (being answered), so none can be closed for it."""
        if not self._room(self._sources.get(source), self.per_source):
            return None
        if not self._room(self._listeners.get(listener), self.per_listener):
            return None
        ticket = Ticket(listener, source, close)
        self._listeners.setdefault(listener, {})[ticket] = None
        self._sources.setdefault(source, {})[ticket] = None
        return ticket

    def leave(self, ticket: Ticket) -> None:
        for table, key in ((self._listeners, ticket.listener), (self._sources, ticket.source)):
            tickets = table.get(key)
            if tickets is not None:
                tickets.pop(ticket, None)
                if not tickets:
                    del table[key]

    def pending(self, listener: str) -> int:
        """Connections on `listener` that have not finished their handshake."""
        return len(self._listeners.get(listener, ()))

    def _room(self, tickets: dict[Ticket, None] | None, cap: int) -> bool:
        if tickets is None or len(tickets) < cap:
            return True
        oldest = next((t for t in tickets if t.waiting), None)
        if oldest is None:
            return False
        self.leave(oldest)
        oldest.evicted = True
        oldest.close()
        return True


class HeadWaits:
    """The connections of one listener waiting for a request head, oldest first: new ones, and
    kept-alive ones between two requests (those proved to be clients: closed last)."""

    def __init__(self, timeout_s: float = HEAD_TIMEOUT_S, cap: int = MAX_WAITING) -> None:
        self.timeout_s, self.cap = timeout_s, cap
        self._new: dict[asyncio.Transport, asyncio.TimerHandle] = {}
        self._kept: dict[asyncio.Transport, asyncio.TimerHandle] = {}
        self.closed: Counter[str] = Counter()  # why waiting connections were closed

    def start(self, transport: asyncio.Transport, *, kept_alive: bool = False) -> None:
        self.stop(transport)
        if len(self) >= self.cap:
            self._close(next(iter(self._new or self._kept)), "room made")
        timer = asyncio.get_running_loop().call_later(
            self.timeout_s, self._close, transport, "head timeout"
        )
        (self._kept if kept_alive else self._new)[transport] = timer

    def stop(self, transport: asyncio.Transport) -> None:
        timer = self._new.pop(transport, None) or self._kept.pop(transport, None)
        if timer is not None:
            timer.cancel()

    def __contains__(self, transport: object) -> bool:
        return transport in self._new or transport in self._kept

    def __len__(self) -> int:
        return len(self._new) + len(self._kept)

    def close_oversized(self, transport: asyncio.Transport) -> None:
        self._close(transport, "head too large")

    def _close(self, transport: asyncio.Transport, why: str) -> None:
        self.stop(transport)
        self.closed[why] += 1
        transport.close()


def guarded_http(waits: HeadWaits, max_head: int = MAX_HEAD_BYTES) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, with the waits of one listener (pass it as `http=`)."""

    class GuardedHttp(HttpToolsProtocol):
        head_waits: ClassVar[HeadWaits] = waits  # read by the metrics
        _head_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_bytes = 0
            waits.start(transport)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            # Counted after parsing: a head and a body in one read is not an oversized head.
            if self.transport in waits:
                self._head_bytes += len(data)
                if self._head_bytes > max_head:
                    waits.close_oversized(self.transport)

        def on_headers_complete(self) -> None:
            waits.stop(self.transport)
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            pipelined = bool(self.pipeline)  # the next head is already here
            super().on_response_complete()
            if not pipelined and not self.transport.is_closing():
                self._head_bytes = 0
                waits.start(self.transport, kept_alive=True)

        def connection_lost(self, exc: Exception | None) -> None:
            waits.stop(self.transport)
            super().connection_lost(exc)

    return GuardedHttp
