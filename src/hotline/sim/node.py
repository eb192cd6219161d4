"""A simulated station: the real link core, the real store and real Noise sessions, driven the way
the station process drives them, with crashes injected at the worst moments.

The driver obeys the core's contract: commit the batch, then send, close and show. A crash can
strike before the commit (the batch is lost: none of it was ever reported), between the commit and
the sending (the peer will ask again), or inside the commit (the store rolls it back). After a
crash the station is rebuilt from its store alone.

Traffic is sent the way a careful client sends it: each send named by a key (store/sendkeys.py),
looked up before the core is asked and committed with the message, so a send repeated because
its answer never came (a crash after the commit) is answered with the first's message.

A node may also keep a call desk (`hotline.sim.calls`): made anew at each start, lost at each
crash like a station's call table, given the call frames the core hands over, ticked with the
core, and writing its frames on the carrier session as the station does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hotline.crypto.session import Initiator, LinkKeys, Responder, Session
from hotline.errors import HandshakeError, StoreError, TransportError
from hotline.protocol.envelope import Envelope, Lane, MessageType, decode_envelope
from hotline.protocol.frames import Frame, encode_packets
from hotline.protocol.link import LinkCore, Timing
from hotline.protocol.state import CallFrameReceived, Event, LinkConfig, Output
from hotline.sim.network import Path, Pipe
from hotline.sim.world import MS, SECOND, World
from hotline.store.base import SqlStore
from hotline.store.sendkeys import KeyedSend, request_digest

if TYPE_CHECKING:
    from hotline.sim.calls import CallDesk

__all__ = ["Node"]

TICK_NS = 250 * MS
HANDSHAKE_TIMEOUT_NS = 2 * SECOND


class Crash(Exception):
    """The station died here; the node drops everything that was not committed."""


@dataclass(slots=True)
class _Conn:
    sid: int
    pipe: Pipe
    path: Path
    initiator: Initiator | None = None
    session: Session | None = None


@dataclass(slots=True)
class Chaos:
    crash_per_output: float = 0.0  # chance of dying at each step of acting on an Output
    store_failure: float = 0.0  # chance that a commit fails inside its transaction
    enabled: bool = True


@dataclass
class Node:
    world: World
    name: str
    config: LinkConfig
    keys: LinkKeys
    open_store: Callable[[], SqlStore]
    paths: list[Path]
    dialer: bool
    peer: Node | None = None
    chaos: Chaos = field(default_factory=Chaos)
    on_event: Callable[[Node, Event], None] = lambda node, event: None
    on_accepted: Callable[[Node, Envelope], None] = lambda node, envelope: None
    make_calls: Callable[[Node], CallDesk] | None = None  # a call desk for each incarnation
    calls: CallDesk | None = None
    up: bool = False
    crashes: int = 0
    store: SqlStore | None = None
    core: LinkCore | None = None
    conns: dict[int, _Conn] = field(default_factory=dict)
    _next_sid: int = 0
    _last_handshake_ns: int = 0
    _incarnation: int = 0

    # -- life and death --------------------------------------------------------------------------

    def start(self) -> None:
        self.store = self.open_store()
        self.core = LinkCore(self.config, self.store.load(self.config), self.world.now, Timing())
        self.up = True
        self._incarnation += 1
        incarnation = self._incarnation
        if self.make_calls is not None:
            self.calls = self.make_calls(self)
        self.world.after(self.world.rng.randint(0, TICK_NS), lambda: self._tick(incarnation))

    def crash(self, downtime_ns: int) -> None:
        if not self.up:
            return
        self.up = False
        self.crashes += 1
        if self.calls is not None:
            self.calls.lose()  # a call table lives in the station's memory only
            self.calls = None
        for conn in list(self.conns.values()):
            conn.pipe.close(self.name)
        self.conns.clear()
        self.core = None
        if self.store is not None:
            self.store.close()
            self.store = None
        self.world.after(downtime_ns, self.start)

    # -- acting on the core's output -------------------------------------------------------------

    def send_keyed(
        self, key: str, lane: Lane, kind: MessageType, language: str, text: str
    ) -> Envelope | None:
        """A client's send named by `key`, as the station's writer makes it: the message sent
        under the key before, or a new one committed with the key; None if no answer came (the
        station is down, or died on the way)."""
        if not self.up or self.store is None:
            return None
        asked = request_digest(lane, kind, language, text)
        made = self.store.keyed_sends(self.config.link_id, [key]).get(key)
        if made is not None:
            if made.request != asked:
                raise AssertionError(f"the key {key} named a different message before")
            return decode_envelope(made.envelope, self.config.identity.public)
        keyed: list[KeyedSend] = []

        def send(core: LinkCore) -> Output:
            output = core.send(lane, kind, language, text, self.world.now)
            envelope = output.batch.outbound[-1]
            keyed.append(KeyedSend(key, asked, envelope.lane, envelope.seq))
            return output

        output = self.act(send, keyed)
        return output.batch.outbound[-1] if output is not None else None

    def act(
        self, make_output: Callable[[LinkCore], Output], keyed: list[KeyedSend] | None = None
    ) -> Output | None:
        """Run one core call and carry out its Output, or die trying. `keyed`: the keys its
        new messages were sent under, filled by `make_output`."""
        if not self.up or self.core is None or self.store is None:
            return None
        try:
            output = make_output(self.core)
            self._maybe_crash()
            self._commit(output, keyed or [])
            for envelope in output.batch.outbound:
                self.on_accepted(self, envelope)  # accepted: durable, so now it may be said
            self._maybe_crash()
            self._deliver(output)
        except Crash:
            self.crash(self.world.rng.randint(100 * MS, 5 * SECOND))
            return None
        return output

    def _commit(self, output: Output, keyed: list[KeyedSend]) -> None:
        assert self.store is not None
        try:
            if output.batch and self._chance(self.chaos.store_failure):
                with self.store.transaction():  # the write starts, then the disk fails
                    self.store._commit_envelopes(self.config.link_id, output.batch, self.world.now)
                    raise StoreError("injected: disk failed during the commit")
            self.store.commit(self.config.link_id, output.batch, self.world.now, keyed)
        except StoreError:
            raise Crash from None

    def _deliver(self, output: Output) -> None:
        for sid, packet in output.packets:
            conn = self.conns.get(sid)
            if conn is not None and conn.session is not None:
                conn.pipe.send(self.name, conn.session.seal(packet))
        for sid, _reason in output.close:
            self._drop(sid)
        for event in output.events:
            if isinstance(event, CallFrameReceived) and self.calls is not None:
                self.calls.on_frame(event.frame)
            self.on_event(self, event)

    def write_frames(self, frames: list[Frame]) -> bool:
        """Frames outside the core (a call's) on the carrier session: False if there is none."""
        sid = self.core.carrier() if self.up and self.core is not None else None
        conn = self.conns.get(sid) if sid is not None else None
        if conn is None or conn.session is None:
            return False
        for packet in encode_packets(frames):
            conn.pipe.send(self.name, conn.session.seal(packet))
        return True

    def _maybe_crash(self) -> None:
        if self._chance(self.chaos.crash_per_output):
            raise Crash

    def _chance(self, p: float) -> bool:
        return self.chaos.enabled and p > 0 and self.world.rng.random() < p

    # -- connections -----------------------------------------------------------------------------

    def _tick(self, incarnation: int) -> None:
        if not self.up or incarnation != self._incarnation:
            return
        self.act(lambda core: core.tick(self.world.now))
        if self.calls is not None:
            self.calls.tick(self.world.now)
        if self.up and self.dialer:
            self._dial_missing_paths()
        self.world.after(TICK_NS, lambda: self._tick(incarnation))

    def _dial_missing_paths(self) -> None:
        used = {conn.path.index for conn in self.conns.values()}
        for path in self.paths:
            if path.index not in used and self.world.rng.random() < 0.5:  # jittered backoff
                self._dial(path)

    def _dial(self, path: Path) -> None:
        assert self.peer is not None
        pipe = Pipe(self.world, path, self.name, self.peer.name)
        conn = self._add_conn(pipe, path)
        conn.initiator = Initiator(self.keys, rng=self.world.random_bytes)
        self._last_handshake_ns = max(self.world.now, self._last_handshake_ns + 1)
        pipe.receivers[self.peer.name] = self.peer._on_first_message
        pipe.send(self.name, conn.initiator.start(self._last_handshake_ns))
        sid, incarnation = conn.sid, self._incarnation
        self.world.after(HANDSHAKE_TIMEOUT_NS, lambda: self._handshake_timeout(sid, incarnation))

    def _handshake_timeout(self, sid: int, incarnation: int) -> None:
        conn = self.conns.get(sid)
        if incarnation == self._incarnation and conn is not None and conn.session is None:
            self._drop(sid)

    def _add_conn(self, pipe: Pipe, path: Path) -> _Conn:
        self._next_sid += 1
        conn = _Conn(self._next_sid, pipe, path)
        self.conns[conn.sid] = conn
        sid = conn.sid
        pipe.receivers[self.name] = lambda _pipe, data: self._on_data(sid, data)
        pipe.closers[self.name] = lambda _pipe: self._on_closed(sid)
        return conn

    def _on_first_message(self, pipe: Pipe, message: bytes) -> None:
        """The listener's side: a new connection's message 1."""
        if not self.up or self.store is None:
            return
        responder = Responder(
            self.keys,
            rng=self.world.random_bytes,
            newest_accepted_ns=self.store.newest_handshake_ns(self.config.link_id),
        )
        try:
            result, reply = responder.respond(message, self.world.now)
            self.store.record_handshake(self.config.link_id, result.peer_time_ns)
        except HandshakeError:
            return  # refused: the dialler times out and tries again
        except StoreError:
            self.crash(self.world.rng.randint(100 * MS, 5 * SECOND))
            return
        conn = self._add_conn(pipe, pipe.path)
        conn.session = result.session
        pipe.send(self.name, reply)
        sid = conn.sid
        self.act(lambda core: core.session_opened(sid, self.world.now))

    def _on_data(self, sid: int, data: bytes) -> None:
        conn = self.conns.get(sid)
        if not self.up or conn is None:
            return
        if conn.session is None:
            self._finish_handshake(conn, data)
            return
        try:
            packet = conn.session.open(data)
        except TransportError as exc:
            self._drop(sid, str(exc))
            return
        self.act(lambda core: core.receive(sid, packet, self.world.now))

    def _finish_handshake(self, conn: _Conn, data: bytes) -> None:
        assert conn.initiator is not None
        try:
            conn.session = conn.initiator.finish(data, self.world.now).session
        except HandshakeError:
            return  # a corrupted message 2: wait for the real one, or time out
        sid = conn.sid
        self.act(lambda core: core.session_opened(sid, self.world.now))

    def _on_closed(self, sid: int) -> None:
        if self.up and sid in self.conns:
            del self.conns[sid]
            self.act(lambda core: core.session_closed(sid, "peer closed the connection"))

    def _drop(self, sid: int, reason: str = "closed") -> None:
        conn = self.conns.pop(sid, None)
        if conn is None:
            return
        conn.pipe.close(self.name)
        if conn.session is not None:
            self.act(lambda core: core.session_closed(sid, reason))
