"""TCP paths: dialling the peer's addresses, accepting on ours, the hotline handshake on each new
connection, then carrying its transport messages to and from the link core.

The station whose direction is 0 dials each of the peer's addresses and keeps each one up,
reconnecting promptly with a short jittered backoff (`redial`); the other accepts. The dialer's
first message carries a MAC keyed from the link's public material (docs/protocol.md §3.9): the
acceptor checks it before any Noise work or store read, which also tells it the link. What it
refuses (a bad MAC, a failed handshake, no whole first message in time, a connection past the
caps) is counted, logged and audited within the bounds of `refusals` (a flood costs counters,
not disk); connections that have not finished their handshake are capped per listener and per
source address (`limits`). Each path's socket has a bounded send buffer (SEND_BUFFER).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from itertools import count

from hotline.crypto.handshake_mac import (
    MAC_LEN,
    MESSAGE1_MIN_LEN,
    add_mac,
    initiator_mac_key,
    match_mac,
    responder_mac_key,
)
from hotline.crypto.session import (
    DEFAULT_MAX_SKEW_NS,
    MAX_NOISE_MESSAGE,
    Initiator,
    Responder,
    Session,
)
from hotline.errors import HandshakeError, ProtocolError, TransportError
from hotline.protocol.link import LinkCore
from hotline.protocol.state import Output
from hotline.station.limits import Gate, Ticket, source_of
from hotline.station.link_runtime import Connection, LinkRuntime
from hotline.station.redial import Backoff, connect
from hotline.station.refusals import Refusals
from hotline.station.wire import read_message, write_message
from hotline.store.base import SqlStore

__all__ = ["PathManager"]

log = logging.getLogger("hotline.paths")
HANDSHAKE_TIMEOUT_S = 5.0
# Sessions REKEY every 65,536 messages; a fresh handshake every hour adds forward secrecy in time
# (keys of an older session cannot be recovered from a later compromise) and heals after one.
REHANDSHAKE_AFTER_S = 3600.0
FIRST_MIN, FIRST_MAX = MESSAGE1_MIN_LEN + MAC_LEN, MAX_NOISE_MESSAGE + MAC_LEN
_LENGTH = struct.Struct(">I")
NO_MAC = "no valid first-message MAC (not a station of this link, or of an older version)"
REPLAYED = "handshake replayed: this first message was already accepted"
# The kernel's send buffer of a path's socket, as asked (Linux doubles it). Unbounded, it grows
# to 4 MiB, and a FLASH written behind that much (file chunks, a backlog) waits for all of it to
# cross the path: seconds on a slow or lossy one. 256 KiB (the core's window of ROUTINE and
# PRIORITY bytes, and what the file transfers let queue in user space) still lets a path carry
# about 5 MB/s at an RTT of 100 ms.
SEND_BUFFER = 256 * 1024
FAILURE_LOG_EVERY_S = 60.0  # a path that stays down is logged again this often, not every dial


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class PathManager:
    def __init__(self, links: list[LinkRuntime]) -> None:
        self.links = links
        self._sids = count(1)
        self._last_handshake_ns = 0
        self.tasks: set[asyncio.Task[None]] = set()
        # Set when the station stops. The loops below check it as well as being cancelled:
        # on Python 3.11 asyncio.wait_for can swallow a cancellation that meets a completed
        # read, and a dial loop that missed its cancel kept a station from exiting.
        self.stopping = False
        self.gate = Gate()
        self.refusals = Refusals(self._audit)
        self.checked = 0  # first messages with a valid MAC, given to the Noise responder
        self.accepted = 0
        self._mac_keys = [responder_mac_key(link.link.keys) for link in links]
        self._audits: set[asyncio.Future[None]] = set()

    # -- dialling --------------------------------------------------------------------------------

    async def dial_forever(self, link: LinkRuntime, address: str) -> None:
        """Keep a session up on `address`: dial it again whenever it is down, promptly
        (`redial`: a pause of at most 0.5 s for the first minute down, 5 s after that)."""
        backoff = Backoff()
        failure = _FailureLog(link.link.name, address)
        while not self.stopping:
            try:
                lasted = await self._dial(link, address, backoff, failure.note)
            except (
                OSError,
                TimeoutError,
                asyncio.IncompleteReadError,
                HandshakeError,
                ProtocolError,
            ) as exc:
                failure.note(exc)
                await asyncio.sleep(backoff.pause())
                continue
            if lasted is not None:
                failure.reset()
                await asyncio.sleep(backoff.session_ended(lasted))

    async def _dial(
        self,
        link: LinkRuntime,
        address: str,
        backoff: Backoff,
        failed: Callable[[BaseException], None],
    ) -> float | None:
        """One session on `address`, from the dial to its end: how long it lived (None if the
        station stopped before a connection was made)."""
        host, port = _split(address)
        connected = await connect(host, port, backoff, failed, lambda: self.stopping)
        if connected is None:
            return None
        reader, writer = connected
        try:
            initiator = Initiator(link.link.keys, rng=os.urandom)
            self._last_handshake_ns = max(time.time_ns(), self._last_handshake_ns + 1)
            message1 = initiator.start(self._last_handshake_ns)
            write_message(writer, add_mac(initiator_mac_key(link.link.keys), message1))
            reply = await asyncio.wait_for(read_message(reader), HANDSHAKE_TIMEOUT_S)
            session = initiator.finish(reply, time.time_ns()).session
            started = time.monotonic()
            await self._run(link, address, session, reader, writer)
            return time.monotonic() - started
        finally:
            writer.close()

    # -- accepting -------------------------------------------------------------------------------

    async def accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local: str
    ) -> None:
        source = source_of(writer.get_extra_info("peername"))
        ticket = self.gate.enter(local, source, writer.close)
        if ticket is None:
            writer.close()
            self.refusals.refuse(source, local, "limit", "too many connections in their handshake")
            return
        try:
            opened = await self._handshake(reader, writer, ticket)
        finally:
            self.gate.leave(ticket)
        try:
            if opened is not None:
                await self._run(opened[0], local, opened[1], reader, writer)
        finally:
            writer.close()

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ticket: Ticket
    ) -> tuple[LinkRuntime, Session] | None:
        """Read and answer the first message, or refuse it (counted, not stored: `refusals`)."""
        source, local = ticket.source, ticket.listener
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):  # cheaper than wait_for, per flood
                framed = await _read_first(reader)
        except ProtocolError as exc:
            self.refusals.refuse(source, local, "mac", str(exc))
            return None
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            self.refusals.refuse(source, local, *_unfinished(exc, ticket))
            return None
        ticket.waiting = False
        found = match_mac(self._mac_keys, framed)  # a few HMACs: before any Noise or store work
        if found is None:
            self.refusals.refuse(source, local, "mac", NO_MAC, framed)
            return None
        link, message1 = self.links[found[0]], found[1]
        self.checked += 1
        try:
            session, reply = await self._respond(link, message1)
        except HandshakeError as exc:
            self.refusals.refuse(source, local, "handshake", str(exc), message1)
            return None
        write_message(writer, reply)
        self.accepted += 1
        return link, session

    async def _respond(self, link: LinkRuntime, message: bytes) -> tuple[Session, bytes]:
        """Answer a first message, accepting it for good in the link's replay record first
        (docs/protocol.md §3.6, check 8): one transaction, so the same first message arriving on
        two paths at once opens one session, and genuine ones may arrive in any order."""
        link_id = link.link.config.link_id
        floor = await link.store.call(functools.partial(_floor, link_id=link_id))
        responder = Responder(link.link.keys, rng=os.urandom, floor_ns=floor)
        now_ns = time.time_ns()
        result, reply = responder.respond(message, now_ns)
        accept = functools.partial(
            _accept,
            link_id=link_id,
            ephemeral=result.peer_ephemeral,
            peer_ns=result.peer_time_ns,
            now_ns=now_ns,
        )
        if not await link.store.call(accept):
            raise HandshakeError(REPLAYED)
        return result.session, reply

    def _audit(self, action: str, detail: str, evidence: bytes) -> None:
        """One audit row about refusals (`refusals` decides when, and how many: a few an hour at
        most). Written off the handshake's way; a store that cannot write it (a full disk)
        costs a log line, never the station."""
        if not self.links:
            return
        work = functools.partial(
            _audit_row, action=action, detail=detail, evidence=evidence, now_ns=time.time_ns()
        )
        task = asyncio.ensure_future(self.links[0].store.call(work))
        self._audits.add(task)
        task.add_done_callback(self._audited)

    def _audited(self, task: asyncio.Future[None]) -> None:
        self._audits.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a refusal could not be written to the audit table: %s", task.exception())

    # -- a live session --------------------------------------------------------------------------

    async def _run(
        self,
        link: LinkRuntime,
        path: str,
        session: Session,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        sid = next(self._sids)
        _bound_send_buffer(writer)
        link.connections[sid] = Connection(sid, path, session, writer)
        reason = "connection closed"
        expires = time.monotonic() + REHANDSHAKE_AFTER_S
        try:
            await link.act(lambda core: core.session_opened(sid, time.time_ns()))
            while sid in link.connections and not self.stopping:
                try:
                    async with asyncio.timeout(expires - time.monotonic()):
                        message = await read_message(reader)
                except TimeoutError:
                    reason = "session renewed: a fresh handshake gives fresh keys"
                    break
                try:
                    packet = session.open(message)
                except TransportError as exc:
                    reason = str(exc)
                    log.warning("link %s path %s: %s", link.link.name, path, exc)
                    break
                await link.act(functools.partial(_receive, sid=sid, packet=packet))
        except (OSError, asyncio.IncompleteReadError, ProtocolError) as exc:
            reason = str(exc) or type(exc).__name__
        finally:
            with contextlib.suppress(Exception):
                await link.act(lambda core: core.session_closed(sid, reason))
            link.connections.pop(sid, None)


class _FailureLog:
    """The dial failures of one path, logged when the reason changes and once a minute while it
    stays the same: a down path is dialled every half second."""

    def __init__(self, link: str, address: str) -> None:
        self.link, self.address = link, address
        self._last: tuple[str, float] | None = None

    def note(self, exc: BaseException) -> None:
        reason, now = str(exc) or type(exc).__name__, time.monotonic()
        if (
            self._last is None
            or self._last[0] != reason
            or now - self._last[1] >= FAILURE_LOG_EVERY_S
        ):
            log.info("link %s path %s: %s", self.link, self.address, reason)
            self._last = (reason, now)

    def reset(self) -> None:
        self._last = None


def _bound_send_buffer(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)


async def _read_first(reader: asyncio.StreamReader) -> bytes:
    """A framed message 1 (`message1 || mac1`); a length no message 1 can have is refused
    unread (a short one is read: it is refused by its MAC, with its first bytes as a sample)."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if not 0 < length <= FIRST_MAX:
        raise ProtocolError(
            f"a first message of {length} bytes (one is {FIRST_MIN} to {FIRST_MAX})"
        )
    return await reader.readexactly(length)


def _unfinished(exc: BaseException, ticket: Ticket) -> tuple[str, str]:
    if ticket.evicted:
        return "limit", "closed to make room: too many connections in their handshake"
    if isinstance(exc, TimeoutError):
        return "incomplete", f"no whole first message within {HANDSHAKE_TIMEOUT_S:.0f} s"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "incomplete", "closed before a whole first message"
    return "incomplete", str(exc) or type(exc).__name__


def _audit_row(store: SqlStore, action: str, detail: str, evidence: bytes, now_ns: int) -> None:
    store.audit(None, action, detail, evidence, now_ns)


def _floor(store: SqlStore, link_id: bytes) -> int:
    return store.handshake_floor_ns(link_id)


def _accept(store: SqlStore, link_id: bytes, ephemeral: bytes, peer_ns: int, now_ns: int) -> bool:
    return store.accept_handshake(link_id, ephemeral, peer_ns, now_ns, DEFAULT_MAX_SKEW_NS)


def _receive(core: LinkCore, sid: int, packet: bytes) -> Output:
    return core.receive(sid, packet, time.time_ns())
