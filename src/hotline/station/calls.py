"""The calls of one link at this station: the pure call table (hotline.protocol.calls) driven with
a real clock, its frames written on the link's sessions, each answered call's media started and
stopped, the people in it, and the call record written to the chain when it ends.

A call in progress is noted in the store as it starts and when it is answered, so a station
killed mid-call still writes its record on the next start ("station stopped during the call").
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from hotline.errors import CallError, CallRefused, StoreError
from hotline.protocol.callframes import CallEnd, CallFrame, CallInvite
from hotline.protocol.callframes import CallMedia as CallMediaFrame
from hotline.protocol.callrecord import CallRecord, decode_record, encode_record
from hotline.protocol.calls import (
    Call,
    CallAnswered,
    CallEnded,
    CallIncoming,
    CallMediaReceived,
    CallMissed,
    CallPeerUdp,
    CallRingingEvent,
    CallState,
    CallTable,
    Effects,
)
from hotline.protocol.envelope import Lane, MessageType, decode_envelope
from hotline.protocol.media import MediaOpener, MediaSealer, media_keys
from hotline.station.callmedia import CallMedia, MediaSettings
from hotline.station.callrecords import INTERRUPTED, build_record, interrupted_record, note_of
from hotline.station.datadir import CallsSection
from hotline.station.missedcalls import MissedCall, forget_missed, keep_missed, missed_calls
from hotline.station.participants import ROLES, Participant, Role
from hotline.station.udp import MediaSockets

if TYPE_CHECKING:
    from hotline.station.link_runtime import LinkRuntime
    from hotline.station.sidefiles import SideFiles
    from hotline.store.base import SqlStore

__all__ = ["CallDesk"]

log = logging.getLogger("hotline.calls")
S = 1_000_000_000
DEAD_AFTER_NS = 3 * S  # an answered call whose peer says nothing this long has lost its peer
RECENT_CALLS = 50  # ended calls kept for the API's list
STATS_EVERY_NS = 1 * S  # a call's figures (per path loss, jitter, round trip) on the event stream
NOTE_EVERY_NS = 5 * S  # a call in progress is noted this often: a restart knows when it was cut


@dataclass(slots=True)
class _Live:
    call: Call
    participants: dict[str, Participant] = field(default_factory=dict)
    media: CallMedia | None = None
    past: list[Participant] = field(default_factory=list)


class CallDesk:
    def __init__(
        self,
        runtime: LinkRuntime,
        sockets: MediaSockets,
        settings: CallsSection,
        data: Path,
        own_name: str,
    ) -> None:
        self.runtime = runtime
        self.own_name = own_name
        self.sockets = sockets
        self.settings = settings
        self.recordings = data / "recordings"
        self.side_files: SideFiles | None = None  # a side of several nodes keeps them in its store
        self.table = CallTable()
        self.live: dict[bytes, _Live] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_CALLS)
        self.missed: dict[bytes, MissedCall] = {}  # missed calls nobody has acknowledged yet
        self.refused = 0  # call frames refused (a rule broken by the peer)
        self.interrupted: set[bytes] = set()  # calls a stop cut short: their records are written
        self._tasks: set[asyncio.Task[None]] = set()
        self._noted_ns = self._stats_ns = 0
        self._effects: deque[Effects] = deque()  # waiting behind a note (_apply)
        self._noting: asyncio.Task[None] | None = None
        # Calls noted before their ringing, answer or busy went out (keyed by what was noted:
        # a call answered here is noted again as answered).
        self._noted_calls: set[tuple[bytes, CallState]] = set()

    @property
    def name(self) -> str:
        return self.runtime.link.name

    @property
    def recorded(self) -> bool:
        own = self.runtime.link.record_calls
        return self.settings.record if own is None else own

    # -- start: calls a killed station left open -------------------------------------------------

    async def start(self) -> None:
        link_id = self.runtime.link.config.link_id
        waiting = await self.runtime.store.call(lambda s: missed_calls(s, link_id))
        self.missed = {m.call_id: m for m in waiting}
        notes = await self.runtime.store.call(lambda s: s.open_calls(link_id))
        written = await self._recorded_calls()
        for call_id, note in notes:
            self.interrupted.add(bytes.fromhex(call_id))
            if call_id in written:  # killed after its record, before its note was cleared
                done = functools.partial(_clear_note, link_id=link_id, call_id=call_id)
                await self.runtime.store.call(done)
                continue
            try:
                record = await asyncio.to_thread(interrupted_record, note, self.recordings)
            except (ValueError, msgspec.ValidationError, msgspec.DecodeError) as exc:
                log.error("link %s: the note of call %s is unreadable: %s", self.name, call_id, exc)
                continue
            log.warning("link %s: call %s was cut short by a stop", self.name, call_id[:8])
            await self._write_record(bytes.fromhex(call_id), record)

    async def _recorded_calls(self) -> set[str]:
        link_id = self.runtime.link.config.link_id
        envelopes = await self.runtime.store.call(lambda s: s.recent_call_records(link_id))
        return {decode_record(decode_envelope(e, None).body.text).call_id for e in envelopes}

    async def shutdown(self, reason: str) -> None:
        """End every call (the peer is told) and write their records."""
        for call_id in list(self.live):
            call = self.table.get(call_id)
            if call is not None and call.state != CallState.ENDED:
                self._apply(self.table.end(call_id, reason, time.time_ns()))
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- people's acts ---------------------------------------------------------------------------

    async def place(self, lane: Lane, person: str, role: str) -> Call:
        """Ring the peer. Raises CallRefused if a call is already on this link or it is down."""
        if self.runtime.core is None or self.runtime.core.carrier() is None:
            raise CallRefused(f"link {self.name} is not up: the call cannot ring")
        call_id = secrets.token_bytes(16)
        effects = self.table.place(
            call_id,
            int(lane),
            person,
            role,
            self.recorded,
            os.urandom(32),
            self._free_index(),
            self.settings.frame_ms,
            time.time_ns(),
        )
        self.live[call_id] = _Live(self._call(call_id))
        await self._note(call_id)
        self._apply(effects)
        return self.live[call_id].call

    def answer(self, call_id: bytes, person: str, role: str) -> Call:
        effects = self.table.answer(
            call_id, person, role, os.urandom(32), self._free_index(), time.time_ns()
        )
        self._apply(effects)
        return self._call(call_id)

    def decline(self, call_id: bytes, reason: str) -> Call:
        self._apply(self.table.decline(call_id, reason, time.time_ns()))
        return self._call(call_id)

    def end(self, call_id: bytes, reason: str) -> Call:
        self._apply(self.table.end(call_id, reason, time.time_ns()))
        return self._call(call_id)

    async def acknowledge_missed(self, call_id: bytes) -> MissedCall | None:
        """A person has seen the missed call: its alarm clears, for good (the store forgets
        it before this returns). None if no missed call of that id waits."""
        missed = self.missed.pop(call_id, None)
        if missed is not None:
            link_id = self.runtime.link.config.link_id
            await self.runtime.store.call(lambda s: forget_missed(s, link_id, call_id))
        return missed

    def join(self, call_id: bytes, person: str, role: Role, sink: Any) -> Participant:
        """A local person joins a call (ringing or answered) through the media connection."""
        live = self.live.get(call_id)
        if live is None or live.call.state == CallState.ENDED:
            raise CallRefused("no such call in progress")
        if role not in ROLES:
            raise CallRefused(f"a participant is one of {', '.join(ROLES)}")
        participant = Participant(secrets.token_hex(4), person, role, sink)
        live.participants[participant.id] = participant
        if live.media is not None:
            live.media.attach(participant)
        log.info("call %s: %s joined as %s", call_id.hex()[:8], person, role)
        self._publish(live.call, "joined", person=person, role=role)
        return participant

    def leave(self, call_id: bytes, participant: Participant) -> None:
        live = self.live.get(call_id)
        participant.left_ns = time.time_ns()
        if live is not None and live.participants.pop(participant.id, None) is not None:
            live.past.append(participant)
            self._publish(live.call, "left", person=participant.person, role=participant.role)

    # -- the peer and the clock ------------------------------------------------------------------

    def on_frame(self, frame: CallFrame) -> None:
        """A call frame from the peer, on any session. A refused one changes nothing: it is
        counted and logged (the session goes on: a call's mistake does not cut the link)."""
        if isinstance(frame, CallInvite) and frame.call_id in self.interrupted:
            # The caller tries again a call this station was in when it stopped: that call has
            # its record here, and ends; it does not ring a second time.
            self._apply(Effects([CallEnd(frame.call_id, INTERRUPTED)], []))
            return
        if isinstance(frame, CallMediaFrame):
            live = self.live.get(frame.call_id)
            if live is not None and live.media is not None:
                live.media.on_tcp(frame.datagram)
            return
        try:
            effects = self.table.receive(frame, time.time_ns())
        except CallError as exc:
            self.refused += 1
            log.warning("link %s: call frame refused: %s", self.name, exc)
            return
        self._apply(effects)

    def tick(self, now_ns: int) -> None:
        for live in self.live.values():
            if live.media is not None:
                live.call.udp_heard = live.media.udp_heard(now_ns)
        ring_ns = self.settings.ring_timeout_s * S
        self._apply(self.table.tick(now_ns, ring_ns, DEAD_AFTER_NS))
        if now_ns - self._stats_ns >= STATS_EVERY_NS:
            self._stats_ns = now_ns
            for call_id, live in self.live.items():
                if live.media is not None and (status := self.status(call_id)) is not None:
                    self.runtime.hub.publish({**status, "type": "call_stats"})
        if now_ns - self._noted_ns >= NOTE_EVERY_NS and self.live:
            self._noted_ns = now_ns
            for call_id in self.live:
                self._spawn(self._note(call_id))

    def _apply(self, effects: Effects) -> None:
        """Send the frames and act on the events, in the order the table made them. A call that
        starts ringing here, is answered here or is refused as busy is noted in the store before
        the frame that tells the peer leaves: a station killed just after it still writes that
        call's record at its next start, as the peer will."""
        self._effects.append(effects)
        if self._noting is None:
            self._run_effects()

    def _run_effects(self) -> None:
        while self._effects:
            first = self._effects[0]
            unnoted = [c for c in _to_note(first) if (c.call_id, c.state) not in self._noted_calls]
            if unnoted:  # the rest waits behind the note, so nothing overtakes this frame
                self._noting = asyncio.create_task(self._note_then_run(unnoted))
                self._tasks.add(self._noting)  # a shutdown waits for it like any bookkeeping
                self._noting.add_done_callback(self._task_done)
                return
            self._effects.popleft()
            self._emit(first)

    async def _note_then_run(self, calls: list[Call]) -> None:
        try:
            for call in calls:
                self.live.setdefault(call.call_id, _Live(call))
                await self._note(call.call_id)
        except Exception as exc:  # the call goes on; only a crash in this moment would lose it
            log.error("link %s: noting a call failed: %s", self.name, exc)
        finally:
            self._noted_calls.update((c.call_id, c.state) for c in calls)
            self._noting = None
            self._run_effects()

    def _emit(self, effects: Effects) -> None:
        runtime = self.runtime
        sid = runtime.core.carrier() if runtime.core is not None else None
        if effects.frames and sid is not None:
            runtime.write_frames(sid, list(effects.frames))
        for event in effects.events:
            self._on_event(event)

    def _on_event(self, event: object) -> None:
        match event:
            case CallIncoming(call=call):
                self.live.setdefault(call.call_id, _Live(call))
                log.warning(
                    "link %s: %s call from %s (%s) ringing",
                    self.name,
                    Lane(call.lane).name,
                    call.caller,
                    call.caller_role,
                )
                self._publish(call, "ringing")
            case CallRingingEvent(call=call):
                self._publish(call, "ringing")
            case CallAnswered(call=call):
                self._start_media(call)
                if call.outgoing:  # the callee noted its answer before sending it
                    self._spawn(self._note(call.call_id))
                self._publish(call, "answered")
            case CallEnded(call=call):
                self._spawn(self._finish(call))
            case CallMissed(call=call):
                missed = self.missed[call.call_id] = MissedCall.of(call)
                link_id = self.runtime.link.config.link_id
                self._spawn(self.runtime.store.call(lambda s: keep_missed(s, link_id, missed)))
                log.warning("link %s: missed call from %s", self.name, call.caller)
            case CallMediaReceived(call=call, datagram=datagram):
                live = self.live.get(call.call_id)
                if live is not None and live.media is not None:
                    live.media.on_tcp(datagram)
            case CallPeerUdp(call=call, heard=heard):
                live = self.live.get(call.call_id)
                if live is not None and live.media is not None:
                    live.media.peer_wants_tcp = not heard

    # -- media -----------------------------------------------------------------------------------

    def _start_media(self, call: Call) -> None:
        live = self.live.setdefault(call.call_id, _Live(call))
        assert call.local_share is not None
        assert call.peer_share is not None
        caller_share, callee_share = (
            (call.local_share, call.peer_share)
            if call.outgoing
            else (call.peer_share, call.local_share)
        )
        keys = media_keys(call.call_id, caller_share, callee_share)
        send, receive = (
            (keys.caller_to_callee, keys.callee_to_caller)
            if call.outgoing
            else (keys.callee_to_caller, keys.caller_to_callee)
        )
        assert call.peer_index is not None
        assert call.local_index is not None
        settings = MediaSettings(
            call.frame_ms,
            self.settings.bitrate,
            self.settings.udp,
            self.settings.all_paths,
            self.settings.jitter_min_ms,
            self.recordings if call.recorded else None,
            constant_bitrate=self.settings.constant_bitrate,
        )
        media = CallMedia(
            call.call_id,
            settings,
            (MediaSealer(send, call.peer_index), MediaOpener(receive, call.local_index)),
            self.sockets,
            [_address(p) for p in self.runtime.media_addresses],
            lambda datagram: self._send_tcp(call.call_id, datagram),
            live.participants,
        )
        live.media = media
        self.sockets.register(call.local_index, media.on_datagram)
        media.start()

    def _send_tcp(self, call_id: bytes, datagram: bytes) -> bool:
        core = self.runtime.core
        sid = core.carrier() if core is not None else None
        return sid is not None and self.runtime.write_frames(
            sid, [CallMediaFrame(call_id, datagram)]
        )

    # -- the end of a call -----------------------------------------------------------------------

    async def _finish(self, call: Call) -> None:
        live = self.live.pop(call.call_id, None)
        self._noted_calls = {k for k in self._noted_calls if k[0] != call.call_id}
        recordings: list[dict[str, Any]] = []
        media = live.media if live else None
        if media is not None:
            if call.local_index is not None:
                self.sockets.unregister(call.local_index)
            recordings = await media.stop()
        people = [*live.past, *live.participants.values()] if live else []
        for participant in people:
            participant.left_ns = participant.left_ns or call.ended_ns
            participant.changed.set()  # their media connections see the end and close
        record = build_record(call, *self._stations(), media, recordings, people)
        self._publish(call, "ended", reason=call.end_reason)
        log.info("link %s: call %s ended: %s", self.name, call.call_id.hex()[:8], call.end_reason)
        await self._write_record(call.call_id, record)

    async def _keep_recordings(self, record: CallRecord) -> None:
        """On a side of several nodes, the recordings a record names into the side's store
        before the record is written. A store that refuses costs the copy, never the record."""
        if self.side_files is None:
            return
        for recording in record.recordings:
            name = f"{self.recordings.name}/{recording.name}"
            try:
                await self.side_files.keep(name, bytes.fromhex(recording.sha256))
            except StoreError as exc:
                log.error("link %s: %s not kept in the side's store: %s", self.name, name, exc)

    async def _write_record(self, call_id: bytes, record: CallRecord) -> None:
        await self._keep_recordings(record)
        text = encode_record(record)
        envelope = await self.runtime.send(Lane.ROUTINE, MessageType.CALL_RECORD, "zxx", text)
        link_id = self.runtime.link.config.link_id
        await self.runtime.store.call(lambda s: s.set_open_call(link_id, call_id.hex(), None))
        self.recent.appendleft({**_call_json(record), "record": {"seq": envelope.seq}})

    async def _note(self, call_id: bytes) -> None:
        """What a restart needs to write this call's record if the station dies during it."""
        live = self.live.get(call_id)
        if live is None:
            return
        call, link_id = live.call, self.runtime.link.config.link_id
        people = [*live.past, *live.participants.values()]
        note = note_of(build_record(call, *self._stations(), live.media, [], people))
        await self.runtime.store.call(lambda s: s.set_open_call(link_id, call_id.hex(), note))

    def _stations(self) -> tuple[str, str]:
        return self.own_name, self.runtime.link.peer_card.body.name

    # -- helpers ---------------------------------------------------------------------------------

    def _free_index(self) -> int:
        while True:
            index = secrets.randbits(32)
            if not self.sockets.in_use(index):
                return index

    def _call(self, call_id: bytes) -> Call:
        call = self.table.get(call_id)
        if call is None:
            raise CallRefused("no such call")
        return call

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("link %s: call bookkeeping failed: %s", self.name, task.exception())

    def _publish(self, call: Call, what: str, **extra: Any) -> None:
        self.runtime.hub.publish(
            {"type": "call", "link": self.name, "event": what, **call_json(call), **extra}
        )

    def status(self, call_id: bytes) -> dict[str, Any] | None:
        live = self.live.get(call_id)
        if live is None:
            return None
        now = time.time_ns()
        return {
            **call_json(live.call),
            "link": self.name,
            "participants": [p.to_json() for p in live.participants.values()],
            "media": live.media.status(now) if live.media is not None else None,
        }

    def calls(self) -> list[dict[str, Any]]:
        return [s for c in self.live if (s := self.status(c)) is not None] + list(self.recent)


def _to_note(effects: Effects) -> list[Call]:
    """The calls whose state must be in the store before these effects' frames go out."""
    calls = []
    for event in effects.events:
        match event:
            case CallIncoming(call=call):
                calls.append(call)
            case CallAnswered(call=call) if not call.outgoing:
                calls.append(call)
            case CallEnded(call=call) if call.end_reason == "busy":
                calls.append(call)
    return calls


def _clear_note(store: SqlStore, link_id: bytes, call_id: str) -> None:
    store.set_open_call(link_id, call_id, None)


def call_json(call: Call) -> dict[str, Any]:
    return {
        "id": call.call_id.hex(),
        "direction": "outgoing" if call.outgoing else "incoming",
        "state": str(call.state),
        "precedence": Lane(call.lane).name,
        "caller": {"person": call.caller, "role": call.caller_role},
        "answerer": (
            {"person": call.answerer, "role": call.answerer_role} if call.answerer else None
        ),
        "recorded": call.recorded,
        "frame_ms": call.frame_ms,
        "invited_ns": call.invited_ns,
        "answered_ns": call.answered_ns,
        "ended_ns": call.ended_ns,
        "end_reason": call.end_reason,
    }


def _call_json(record: CallRecord) -> dict[str, Any]:
    return {"id": record.call_id, "state": "ended", "end_reason": record.end_reason}


def _address(path: str) -> tuple[str, int]:
    host, _, port = path.rpartition(":")
    return host.strip("[]"), int(port)
