"""One link inside the station process: its core, its live connections, its paths' states.

Every core call goes through `act`, which holds the link's lock, commits the Output's batch on
the store's single writer thread, and only then writes packets, closes connections and publishes
events: the core's contract (hotline.protocol.state). Operators' messages are gathered by a writer
task and accepted many per transaction (group commit), so "accepted" costs one fsync per batch,
not per message. A message is acknowledged exactly once: the writer looks for an earlier
acknowledgement under the same lock as the commit that would add one, and the store's unique index
on what an acknowledgement names refuses a second row within that commit's transaction. A send
named by a client's key (store/sendkeys.py) is made at most once the same way: the writer looks
the key up under the lock, and the key is committed with the message it made.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hotline.crypto.session import Session
from hotline.errors import LocalError, ProtocolError, StoreError
from hotline.protocol.envelope import Attachment, Envelope, Lane, MessageType, decode_envelope
from hotline.protocol.frames import Frame, encode_packets
from hotline.protocol.link import MS, LinkCore, Timing
from hotline.protocol.state import (
    AuditRecord,
    CallFrameReceived,
    ClockFault,
    Event,
    MessageReceived,
    Output,
    RttMeasured,
    SessionClosed,
    SessionReady,
    TransferReceived,
)
from hotline.station.events import EventHub, describe
from hotline.station.links import Link
from hotline.station.storethread import StoreThread
from hotline.station.wire import write_message
from hotline.store.sendkeys import KeyedSend, request_digest

if TYPE_CHECKING:
    from hotline.station.calls import CallDesk
    from hotline.station.transfers import Transfers

__all__ = ["AlreadyAcknowledged", "Connection", "KeyReused", "LinkRuntime", "PathState", "Sent"]

log = logging.getLogger("hotline.link")
# A path that dies without a word (a cut cable) is noticed within 1.5 s, so traffic moves to the
# other path within the 2 s an operator expects; heartbeats twice a second make that safe.
STATION_TIMING = Timing(heartbeat_ns=500 * MS, dead_after_ns=1500 * MS, resend_after_ns=1500 * MS)
MAX_WRITE_BUFFER = 8 * 1024 * 1024  # a peer that stops reading is cut off, not buffered for
SEND_BATCH = 500
_RANK = {"DOWN": 0, "DEGRADED": 1, "UP": 2}  # a link's state getting better is logged as info


class AlreadyAcknowledged(LocalError):
    """A person here has acknowledged that message already: each gets one acknowledgement."""


class KeyReused(LocalError):
    """A send named by a key that an earlier, different send was named by: nothing is sent."""


@dataclass(frozen=True, slots=True)
class Sent:
    """The message a send made, and whether this request made it (False: an earlier request
    under the same key did, and this is its message)."""

    envelope: Envelope
    first: bool = True


@dataclass(slots=True)
class Connection:
    sid: int
    path: str
    session: Session
    writer: asyncio.StreamWriter


RTT_HISTORY_EVERY_NS = 10 * 1_000_000_000  # one point per 10 s: an hour is 360 points
RTT_HISTORY_POINTS = 360


@dataclass(slots=True)
class PathState:
    address: str
    state: str = "DOWN"
    since_ns: int = field(default_factory=time.time_ns)
    rtt_ms: float | None = None  # the last measured: stale once the path is not UP
    clock_offset_ms: float | None = None
    measured_ns: int | None = None  # when rtt_ms and clock_offset_ms were measured
    reason: str = ""  # why the path went down, e.g. "peer closed: station shutting down"
    # The last hour of round trips, for the console's chart: (when, ms).
    rtt_history: deque[tuple[int, float]] = field(
        default_factory=lambda: deque(maxlen=RTT_HISTORY_POINTS)
    )

    def measured(self, rtt_ms: float, clock_offset_ms: float, now_ns: int) -> None:
        self.rtt_ms, self.clock_offset_ms, self.measured_ns = rtt_ms, clock_offset_ms, now_ns
        if not self.rtt_history or now_ns - self.rtt_history[-1][0] >= RTT_HISTORY_EVERY_NS:
            self.rtt_history.append((now_ns, round(rtt_ms, 3)))


@dataclass(slots=True)
class _SendRequest:
    lane: Lane
    type: MessageType
    language: str
    text: str
    acknowledges: Envelope | None
    attachments: tuple[Attachment, ...]
    done: asyncio.Future[Sent]
    key: str | None = None  # the client's name for this send, if it gave one
    door: str | None = None  # who sent it through the API ("api", "cli:..."), audited with it

    def digest(self) -> bytes:
        files = [(a.name, a.sha256) for a in self.attachments]
        return request_digest(self.lane, self.type, self.language, self.text, files)


def _audited(request: _SendRequest, envelope: Envelope) -> AuditRecord:
    """The audit row of a send or an acknowledgement made through the API, by its door."""
    where, door = f"{envelope.lane.name} {envelope.seq}", request.door or "api"
    ref = request.acknowledges
    if ref is not None:
        return AuditRecord("acknowledged", f"{ref.lane.name} {ref.seq} (as {where})", actor=door)
    return AuditRecord("sent", f"{where}, {request.type.name.lower()}", actor=door)


class LinkRuntime:
    def __init__(
        self,
        link: Link,
        store: StoreThread,
        hub: EventHub,
        paths: list[str],
        timing: Timing = STATION_TIMING,
        nodes: list[list[str]] | None = None,
    ) -> None:
        self.link = link
        self.timing = timing
        self.store = store
        self.hub = hub
        self.core: LinkCore | None = None
        self.connections: dict[int, Connection] = {}
        self.paths = {address: PathState(address) for address in paths}
        # The paths by the peer's node, when its side runs on several (links.py): only the
        # active one answers, so the others' paths are STANDBY, not DOWN (no alarm), and the
        # link is UP when every path of one node is.
        self.nodes = nodes or []
        self.peer_node: int | None = None  # which of them answered last (its index)
        # The peer's side moved to another node: (from, to, when); its alarm stands a day.
        self.peer_failover: tuple[int, int, int] | None = None
        self.state = "DOWN"
        self.since_ns = time.time_ns()
        self._lock = asyncio.Lock()
        self._sends: asyncio.Queue[_SendRequest] = asyncio.Queue()
        self.transfers: Transfers | None = None  # set by the station: files beside the chains
        self.calls: CallDesk | None = None  # set by the station: this link's calls
        # Called when a commit fails: the core is then ahead of the store and must not go on;
        # the station stops, and its next start rebuilds the core from the store.
        self.on_fatal: Callable[[BaseException], None] = lambda exc: None

    @property
    def media_addresses(self) -> list[str]:
        """The peer's UDP address per path, for a call's media: link.toml's `media` where it
        names them (a relay or a NAT between the stations); with a peer of several nodes, the
        paths of the node that answered last, where its calls are; else its card's paths."""
        if self.link.media:
            return list(self.link.media)
        if self.nodes and self.peer_node is not None:
            return list(self.nodes[self.peer_node])
        return list(self.link.peer_card.body.paths)

    async def start(self) -> None:
        state = await self.store.call(lambda s: s.load(self.link.config))
        self.core = LinkCore(self.link.config, state, time.time_ns(), self.timing)

    # -- the one way into the core ---------------------------------------------------------------

    async def act(self, call: Callable[[LinkCore], Output]) -> Output:
        async with self._lock:
            return await self._act_locked(call)

    async def _act_locked(
        self, call: Callable[[LinkCore], Output], keyed: list[KeyedSend] | None = None
    ) -> Output:
        """`keyed` is filled by `call` with the keys its new messages were named by."""
        if self.core is None:
            raise StoreError(f"link {self.link.name} stopped after a failed commit")
        output = call(self.core)
        if output.batch:
            link_id, batch, now = self.link.config.link_id, output.batch, time.time_ns()
            keys = keyed or []
            try:
                await self.store.call(lambda s: s.commit(link_id, batch, now, keys))
            except StoreError as exc:
                log.critical("link %s: the store failed a commit: %s", self.link.name, exc)
                self.core = None
                self.on_fatal(exc)
                raise
        self._deliver(output)
        return output

    def _deliver(self, output: Output) -> None:
        for sid, packet in output.packets:
            self._write(sid, packet)
        for sid, reason in output.close:
            connection = self.connections.get(sid)
            if connection is not None:
                log.info(
                    "link %s path %s: closing session: %s", self.link.name, connection.path, reason
                )
                connection.writer.close()
        for event in output.events:
            self._on_event(event)

    def write_frames(self, sid: int, frames: list[Frame]) -> bool:
        """Send frames on a session outside the core (attachments): False if it is gone."""
        return all(self._write(sid, packet) for packet in encode_packets(frames))

    def _write(self, sid: int, packet: bytes) -> bool:
        connection = self.connections.get(sid)
        if connection is None or connection.writer.transport.is_closing():
            return False  # its reader will report the end, and the core sends again elsewhere
        try:
            write_message(connection.writer, connection.session.seal(packet))
        except (ConnectionError, RuntimeError) as exc:  # uvloop: "the handler is closed"
            log.info("link %s path %s: write failed: %s", self.link.name, connection.path, exc)
            connection.writer.close()
            return False
        if connection.writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning(
                "link %s path %s: peer not reading, closing", self.link.name, connection.path
            )
            connection.writer.close()
            return False
        return True

    def _beside_the_chains(self, event: Event) -> bool:
        """Frames for the file transfers and the calls, which move outside the core."""
        if isinstance(event, CallFrameReceived):
            if self.calls is not None:
                self.calls.on_frame(event.frame)
            return True
        if isinstance(event, TransferReceived):
            if self.transfers is not None:
                self.transfers.on_frame(event.sid, event.frame)
            return True
        return False

    def _on_event(self, event: Event) -> None:
        transfers = self.transfers
        if self._beside_the_chains(event):
            return
        match event:
            case SessionReady(sid=sid) if sid in self.connections:
                self._set_path(self.connections[sid].path, "UP")
                if transfers is not None:
                    transfers.session_ready(sid)
            case SessionClosed(sid=sid, reason=reason) if sid in self.connections:
                path = self.connections.pop(sid).path
                if not any(c.path == path for c in self.connections.values()):
                    self._set_path(path, "DOWN", reason)
                if transfers is not None:
                    transfers.session_lost(sid)
            case MessageReceived(envelope=envelope) if envelope.body.attachments:
                if transfers is not None:
                    transfers.message_received(envelope)
            case ClockFault(envelope=envelope, skew_ns=skew):
                log.warning(
                    "link %s: clock fault: %s %s dated %.0f s from our clock",
                    self.link.name, envelope.lane.name, envelope.seq, skew / 1e9,
                )  # fmt: skip
            case RttMeasured(sid=sid, rtt_ns=rtt, clock_offset_ns=offset) if (
                sid in self.connections
            ):
                path_state = self.paths.get(self.connections[sid].path)
                if path_state is not None:
                    path_state.measured(rtt / 1e6, offset / 1e6, time.time_ns())
        self.hub.publish(describe(self.link.name, event))

    def _set_path(self, address: str, state: str, reason: str = "") -> None:
        path = self.paths.setdefault(address, PathState(address))
        if path.state != state:
            path.state, path.since_ns = state, time.time_ns()
            path.reason = "" if state == "UP" else reason
            log.log(
                logging.INFO if state == "UP" else logging.WARNING,  # coming up is no warning
                "link %s path %s is %s%s",
                self.link.name,
                address,
                state,
                f": {reason}" if reason else "",
            )
            self.hub.publish(
                {
                    "type": "path",
                    "link": self.link.name,
                    "path": address,
                    "state": state,
                    "reason": reason,
                }
            )
        link_state = self._standby_paths() if self.nodes else None
        if link_state is None:
            up = sum(1 for p in self.paths.values() if p.state == "UP")
            link_state = "UP" if up == len(self.paths) else "DEGRADED" if up else "DOWN"
        if link_state != self.state:
            better = _RANK.get(link_state, 0) > _RANK.get(self.state, 0)
            self.state, self.since_ns = link_state, time.time_ns()
            log.log(
                logging.INFO if better else logging.WARNING,
                "link %s is %s",
                self.link.name,
                link_state,
            )
            self.hub.publish({"type": "link", "link": self.link.name, "state": link_state})

    def _standby_paths(self) -> str:
        """With a peer of several nodes: mark the paths of the nodes that do not answer while
        another does as STANDBY (DOWN again when none answers); the link's state by the node
        that answers best."""
        ups = [sum(self.paths[a].state == "UP" for a in node) for node in self.nodes]
        answering = any(ups)
        if answering:  # only the peer's active node answers a handshake
            active = max(range(len(ups)), key=ups.__getitem__)
            if self.peer_node is not None and active != self.peer_node:
                self.peer_failover = (self.peer_node, active, time.time_ns())
                log.warning(
                    "link %s: the peer's side failed over from its node %d to node %d",
                    self.link.name, self.peer_node + 1, active + 1,
                )  # fmt: skip
            self.peer_node = active
        for node, up in zip(self.nodes, ups, strict=True):
            for address in node:
                path = self.paths[address]
                want = "STANDBY" if answering and not up else "DOWN"
                if path.state not in ("UP", want):
                    path.state, path.since_ns = want, time.time_ns()
        full = any(up == len(node) for node, up in zip(self.nodes, ups, strict=True))
        return "UP" if full else "DEGRADED" if answering else "DOWN"

    # -- operators' messages, accepted in groups -------------------------------------------------

    async def send(
        self,
        lane: Lane,
        type: MessageType,
        language: str,
        text: str,
        acknowledges: Envelope | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> Envelope:
        """Returns once the message is durable (accepted). Raises ProtocolError if out of bounds."""
        sent = await self.send_once(lane, type, language, text, None, acknowledges, attachments)
        return sent.envelope

    async def send_once(
        self,
        lane: Lane,
        type: MessageType,
        language: str,
        text: str,
        key: str | None,
        acknowledges: Envelope | None = None,
        attachments: tuple[Attachment, ...] = (),
        door: str | None = None,
    ) -> Sent:
        """`send`, named by a client's key: a repeat under the same key is answered with the
        message the first made, and sends nothing. `door`: the API's caller, audited in the
        same transaction as the message (the console audits its own people's acts).

        Raises:
            KeyReused: the key named a different send before.
            ProtocolError: out of bounds.
        """
        done: asyncio.Future[Sent] = asyncio.get_running_loop().create_future()
        request = _SendRequest(
            lane, type, language, text, acknowledges, attachments, done, key, door
        )
        await self._sends.put(request)
        return await done

    async def run_sender(self) -> None:
        while True:
            requests = [await self._sends.get()]
            while not self._sends.empty() and len(requests) < SEND_BATCH:
                requests.append(self._sends.get_nowait())
            accepted: list[tuple[_SendRequest, Sent]] = []
            keyed: list[KeyedSend] = []
            try:
                async with self._lock:  # the checks, and the commit they allow, as one step
                    acknowledged = await self._acknowledged_already(requests)
                    earlier = await self._keyed_already(requests)
                    send = functools.partial(
                        self._send_all, requests, accepted, acknowledged, earlier, keyed
                    )
                    await self._act_locked(send, keyed)
            except Exception as exc:
                for request in requests:  # the check or the commit failed: none was accepted
                    if not request.done.done():
                        request.done.set_exception(exc)
                raise
            for request, sent in accepted:
                request.done.set_result(sent)

    async def _acknowledged_already(self, requests: list[_SendRequest]) -> set[tuple[int, int]]:
        """Which of the messages these requests acknowledge a person here acknowledged before."""
        named = [(int(r.acknowledges.lane), r.acknowledges.seq) for r in requests if r.acknowledges]
        if not named:
            return set()
        link_id = self.link.config.link_id
        return await self.store.call(
            lambda s: {ref for ref in named if s.acknowledged_here(link_id, *ref)}
        )

    async def _keyed_already(
        self, requests: list[_SendRequest]
    ) -> dict[str, tuple[bytes, Envelope]]:
        """The sends made before under the keys these requests are named by: what each asked
        (its digest) and the message it made."""
        keys = [r.key for r in requests if r.key is not None]
        if not keys:
            return {}
        link_id, me = self.link.config.link_id, self.link.config.identity.public
        found = await self.store.call(lambda s: s.keyed_sends(link_id, keys))
        return {k: (made.request, decode_envelope(made.envelope, me)) for k, made in found.items()}

    def _send_all(
        self,
        requests: list[_SendRequest],
        accepted: list[tuple[_SendRequest, Sent]],
        acknowledged: set[tuple[int, int]],
        earlier: dict[str, tuple[bytes, Envelope]],
        keyed: list[KeyedSend],
        core: LinkCore,
    ) -> Output:
        output = Output()
        for request in requests:
            digest = request.digest() if request.key is not None else b""
            if request.key is not None and request.key in earlier:
                asked, made = earlier[request.key]  # before, or earlier in this same batch
                if asked == digest:
                    accepted.append((request, Sent(made, first=False)))
                else:
                    request.done.set_exception(
                        KeyReused(f"the key {request.key!r} named a different message before")
                    )
                continue
            ref = request.acknowledges
            if ref is not None and (int(ref.lane), ref.seq) in acknowledged:
                request.done.set_exception(
                    AlreadyAcknowledged(f"{ref.lane.name} {ref.seq} is acknowledged already")
                )
                continue
            try:
                output.merge(self._one_send(core, request))
            except ProtocolError as exc:  # out of bounds: refused before signing, nothing changed
                request.done.set_exception(exc)
                continue
            envelope = output.batch.outbound[-1]
            accepted.append((request, Sent(envelope)))
            if request.key is not None:  # a repeat in this same batch is answered with it
                keyed.append(KeyedSend(request.key, digest, envelope.lane, envelope.seq))
                earlier[request.key] = (digest, envelope)
            if request.door is not None:
                output.batch.audit.append(_audited(request, envelope))
            if ref is not None:  # a second request for it in this same batch is refused too
                acknowledged.add((int(ref.lane), ref.seq))
        return output

    def _one_send(self, core: LinkCore, request: _SendRequest) -> Output:
        now = time.time_ns()
        if request.acknowledges is not None:
            return core.acknowledge(request.acknowledges, request.language, request.text, now)
        return core.send(
            request.lane,
            request.type,
            request.language,
            request.text,
            now,
            attachments=request.attachments,
        )

    async def acknowledge(
        self, lane: int, seq: int, language: str, text: str, door: str | None = None
    ) -> Envelope | None:
        """A person here acknowledges the peer's envelope (lane, seq); None if there is none.

        Raises:
            AlreadyAcknowledged: a person here acknowledged it before; nothing is sent.
            ProtocolError: it is an acknowledgement or a call record, which are not acknowledged.
        """
        link_id = self.link.config.link_id
        data = await self.store.call(lambda s: s.inbound(link_id, lane, seq))
        if data is None:
            return None
        received = decode_envelope(data, self.link.config.peer)
        if received.body.type == MessageType.ACKNOWLEDGEMENT:
            raise ProtocolError("an acknowledgement is not itself acknowledged")
        sent = await self.send_once(
            received.lane, MessageType.ACKNOWLEDGEMENT, language, text, None, received, door=door
        )
        return sent.envelope

    def down_reason(self) -> str:
        """Why the link is not UP: the reason its latest path to go down went down ("" if UP)."""
        if self.state == "UP":
            return ""
        down = [p for p in self.paths.values() if p.state == "DOWN" and p.reason]
        return max(down, key=lambda p: p.since_ns).reason if down else ""

    def status(self) -> dict[str, Any]:
        core = self.core
        return {
            "name": self.link.name,
            "peer": self.link.peer_card.body.name,
            "peer_fingerprint": self.link.peer_card.fingerprint.hex(),
            "state": self.state,
            "since_ns": self.since_ns,
            "unreceipted": core.unreceipted if core else None,
            "in_agreement": core.in_agreement if core else None,
            "paths": [
                {
                    "address": p.address,
                    "state": p.state,
                    "since_ns": p.since_ns,
                    "rtt_ms": p.rtt_ms,
                    "clock_offset_ms": p.clock_offset_ms,
                    "measured_ns": p.measured_ns,
                    "reason": p.reason,
                }
                for p in self.paths.values()
            ],
            "reason": self.down_reason(),
        }
