"""TCP paths: dialling the peer's addresses, accepting on ours, the hotline handshake on each new
connection, then carrying its transport messages to and from the link core.

The station whose direction is 0 dials each of the peer's addresses and keeps each one up,
reconnecting with jittered backoff; the other accepts. A connection that fails the handshake is
refused and logged with what it presented (its ephemeral key and address) and an audit record.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import time
from itertools import count

from hotline.crypto.session import Initiator, Responder, Session
from hotline.errors import HandshakeError, ProtocolError, TransportError
from hotline.protocol.link import LinkCore
from hotline.protocol.state import Output
from hotline.station.link_runtime import Connection, LinkRuntime
from hotline.station.wire import read_message, write_message
from hotline.store.base import SqlStore

__all__ = ["PathManager"]

log = logging.getLogger("hotline.paths")
CONNECT_TIMEOUT_S = 3.0
HANDSHAKE_TIMEOUT_S = 5.0
MAX_BACKOFF_S = 10.0
# Sessions REKEY every 65,536 messages; a fresh handshake every hour adds forward secrecy in time
# (keys of an older session cannot be recovered from a later compromise) and heals after one.
REHANDSHAKE_AFTER_S = 3600.0


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

    # -- dialling --------------------------------------------------------------------------------

    async def dial_forever(self, link: LinkRuntime, address: str) -> None:
        failures = 0
        while not self.stopping:
            try:
                await self._dial(link, address)
                failures = 0
            except (
                OSError,
                TimeoutError,
                asyncio.IncompleteReadError,
                HandshakeError,
                ProtocolError,
            ) as exc:
                failures += 1
                log.info("link %s path %s: %s", link.link.name, address, exc or type(exc).__name__)
            delay = min(MAX_BACKOFF_S, 0.25 * 2 ** min(failures, 6)) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
            await asyncio.sleep(delay)

    async def _dial(self, link: LinkRuntime, address: str) -> None:
        host, port = _split(address)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
        )
        try:
            initiator = Initiator(link.link.keys, rng=os.urandom)
            self._last_handshake_ns = max(time.time_ns(), self._last_handshake_ns + 1)
            write_message(writer, initiator.start(self._last_handshake_ns))
            reply = await asyncio.wait_for(read_message(reader), HANDSHAKE_TIMEOUT_S)
            session = initiator.finish(reply, time.time_ns()).session
            await self._run(link, address, session, reader, writer)
        finally:
            writer.close()

    # -- accepting -------------------------------------------------------------------------------

    async def accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local: str
    ) -> None:
        peer = writer.get_extra_info("peername")
        try:
            first = await asyncio.wait_for(read_message(reader), HANDSHAKE_TIMEOUT_S)
            link, session, reply = await self._respond(first, peer)
            write_message(writer, reply)
            await self._run(link, local, session, reader, writer)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ProtocolError) as exc:
            log.info("connection from %s on %s: %s", peer, local, exc or type(exc).__name__)
        except HandshakeError as exc:
            await self._refused(first, peer, local, str(exc))
        finally:
            writer.close()

    async def _respond(self, message: bytes, peer: object) -> tuple[LinkRuntime, Session, bytes]:
        """Find the link whose keys open this message 1 (trial decryption: a few links at most)."""
        reasons = []
        for link in self.links:
            link_id = link.link.config.link_id
            newest = await link.store.call(functools.partial(_newest, link_id=link_id))
            responder = Responder(link.link.keys, rng=os.urandom, newest_accepted_ns=newest)
            try:
                result, reply = responder.respond(message, time.time_ns())
            except HandshakeError as exc:
                reasons.append(str(exc))
                continue
            record = functools.partial(_record, link_id=link_id, peer_ns=result.peer_time_ns)
            await link.store.call(record)
            return link, result.session, reply
        raise HandshakeError(reasons[0] if len(set(reasons)) == 1 else "no paired link accepts it")

    async def _refused(self, message: bytes, peer: object, local: str, reason: str) -> None:
        presented = message[:32].hex()
        detail = f"handshake from {peer} on {local} refused: {reason}; ephemeral key {presented}"
        log.warning("%s", detail)
        if self.links:
            await self.links[0].store.call(
                lambda s: s.audit(None, "handshake refused", detail, message, time.time_ns())
            )

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


def _newest(store: SqlStore, link_id: bytes) -> int:
    return store.newest_handshake_ns(link_id)


def _record(store: SqlStore, link_id: bytes, peer_ns: int) -> None:
    store.record_handshake(link_id, peer_ns)


def _receive(core: LinkCore, sid: int, packet: bytes) -> Output:
    return core.receive(sid, packet, time.time_ns())
