"""Calls in the simulator: a call desk per station incarnation, driven as station/calls.py drives
the real one, and the people who place, answer, decline and hang up.

The desk holds the real pure `CallTable`: it applies the call frames the link core hands over
(`CallFrameReceived`), writes the table's frames on the carrier session, ticks it with the core,
and starts each answered call's media (`sim/media.py`) with keys derived by the real
`media_keys` from the shares the invite and the answer carried. When a call ends it writes the
call record into its chain as the station does: an envelope of type CALL_RECORD in the ROUTINE
lane, language "zxx", the text `encode_record(build_record(...))`. A call in progress is noted in
the store (`set_open_call`) when placed, when it rings, when answered and every few seconds; a
crash loses the desk and its table, and the next start writes a record for every noted call
("station stopped during the call"), as the station's start does.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from hotline.errors import CallError, CallRefused
from hotline.protocol.callframes import CallEnd, CallFrame, CallInvite, CallMedia
from hotline.protocol.callrecord import CallRecord, encode_record
from hotline.protocol.calls import (
    Call,
    CallAnswered,
    CallEnded,
    CallIncoming,
    CallMediaReceived,
    CallMissed,
    CallPeerUdp,
    CallTable,
    Effects,
)
from hotline.protocol.envelope import Lane, MessageType
from hotline.protocol.media import MediaOpener, MediaSealer, media_keys, peek_receiver_index
from hotline.sim.callchecks import records_of
from hotline.sim.media import SimMedia
from hotline.sim.world import MS, SECOND
from hotline.station.callrecords import INTERRUPTED, build_record, interrupted_record, note_of

if TYPE_CHECKING:
    from hotline.sim.callplan import People
    from hotline.sim.node import Node

__all__ = ["DEAD_AFTER_NS", "CallDesk"]

DEAD_AFTER_NS = 3 * SECOND  # as the station: an answered call silent this long lost its peer
NOTE_EVERY_NS = 5 * SECOND  # as the station: a call in progress is noted this often
NO_RECORDINGS = Path(os.devnull) / "recordings"  # the simulated stations record no call


class CallDesk:
    """The calls of the simulated link at one station, for one incarnation of it."""

    def __init__(self, node: Node, people: People) -> None:
        assert node.store is not None
        self.node, self.people, self.world = node, people, node.world
        self.store, self.link_id = node.store, node.config.link_id
        self.table = CallTable()
        self.media: dict[bytes, SimMedia] = {}
        self.by_index: dict[int, SimMedia] = {}  # our receiver index: the call's media
        self.alive = True
        self.writing = 0  # records due, not yet committed
        self._noted_ns = 0
        # Calls a killed incarnation left open: their records are written first thing.
        notes = self.store.open_calls(self.link_id)
        self.noted = {bytes.fromhex(call_id) for call_id, _ in notes}
        in_chain = records_of(node)
        self.earlier = in_chain.keys() | self.noted  # calls of earlier incarnations
        for call_id, note in notes:
            if bytes.fromhex(call_id) in in_chain:
                # Committed, then killed before the note was cleared. station/calls.py writes a
                # second record here (it commits the record and clears the note in two
                # transactions); the simulator does what it should (docs/link.md section 9).
                self.store.set_open_call(self.link_id, call_id, None)
                self.noted.discard(bytes.fromhex(call_id))
                continue
            self._write_record(bytes.fromhex(call_id), interrupted_record(note, NO_RECORDINGS))

    @property
    def quiet(self) -> bool:
        """No call live, and every record written."""
        return self.table.live is None and not self.writing and not self.noted

    def lose(self) -> None:
        """The station died: the table, the media and the records not yet written are gone."""
        self.alive = False
        for media in self.media.values():
            media.stop()
        live = self.table.live
        if live is not None and live.answered_ns is not None:
            self.people.oracle.cut_short.append((self.node.name, live.call_id, self.world.now))

    # -- people's acts (CallRefused when the act is not allowed, as at a console) ---------------

    def place(self, lane: Lane, person: str, role: str) -> bytes:
        core = self.node.core
        if core is None or core.carrier() is None:
            raise CallRefused("the link is not up: the call cannot ring")
        call_id, index = self.world.random_bytes(16), self._free_index()
        effects = self.table.place(
            call_id, lane, person, role, False, self.world.random_bytes(32), index,
            self.people.frame_ms, self.world.now,
        )  # fmt: skip
        self._note(call_id)  # before the invite leaves, as the station does
        self._apply(effects)
        return call_id

    def answer(self, call_id: bytes, person: str, role: str) -> None:
        share, index = self.world.random_bytes(32), self._free_index()
        self._apply(self.table.answer(call_id, person, role, share, index, self.world.now))

    def decline(self, call_id: bytes, reason: str) -> None:
        self._apply(self.table.decline(call_id, reason, self.world.now))

    def end(self, call_id: bytes, reason: str) -> None:
        self._apply(self.table.end(call_id, reason, self.world.now))

    # -- the peer and the clock ------------------------------------------------------------------

    def on_frame(self, frame: CallFrame) -> None:
        if isinstance(frame, CallMedia):  # as the station: straight to the call's media
            media = self.media.get(frame.call_id)
            if media is not None:
                media.on_tcp(frame.datagram)
            return
        if isinstance(frame, CallInvite) and frame.call_id in self.earlier:
            # A copy of an invite an earlier incarnation rang for (its table died with it, and
            # its record of the call is written): ringing again would make a second record of
            # one call. station/calls.py rings; the simulator ends it (docs/link.md section 9).
            self.node.write_frames([CallEnd(frame.call_id, INTERRUPTED)])
            return
        try:
            effects = self.table.receive(frame, self.world.now)
        except CallError:
            self.people.oracle.refused += 1  # e.g. keepalives for a call a crash made us forget
            return
        self._apply(effects)

    def on_datagram(self, data: bytes) -> None:
        index = peek_receiver_index(data)
        media = self.by_index.get(index) if index is not None else None
        if media is not None:
            media.on_datagram(data)

    def tick(self, now_ns: int) -> None:
        for call_id, media in self.media.items():
            call = self.table.get(call_id)
            if call is not None:
                call.udp_heard = media.udp_heard(now_ns)
        self._apply(self.table.tick(now_ns, self.people.ring_timeout_ns, DEAD_AFTER_NS))
        if now_ns - self._noted_ns >= NOTE_EVERY_NS and (live := self.table.live) is not None:
            self._noted_ns = now_ns
            self._note(live.call_id)

    def _apply(self, effects: Effects) -> None:
        if effects.frames:
            self.node.write_frames(list(effects.frames))
        for event in effects.events:
            match event:
                case CallIncoming(call=call):
                    self._note(call.call_id)
                    self.people.ringing(self.node, call)
                case CallAnswered(call=call):
                    self._start_media(call)
                    self._note(call.call_id)
                    self.people.answered(self.node, call)
                case CallEnded(call=call):
                    self._finish(call)
                case CallMissed():
                    self.people.oracle.missed += 1
                case CallMediaReceived(call=call, datagram=datagram):
                    if (media := self.media.get(call.call_id)) is not None:
                        media.on_tcp(datagram)
                case CallPeerUdp(call=call, heard=heard):
                    if (media := self.media.get(call.call_id)) is not None:
                        media.peer_wants_tcp = not heard

    # -- media -----------------------------------------------------------------------------------

    def _start_media(self, call: Call) -> None:
        assert call.local_share is not None
        assert call.peer_share is not None
        assert call.local_index is not None
        assert call.peer_index is not None
        shares = (call.local_share, call.peer_share)
        keys = media_keys(call.call_id, *(shares if call.outgoing else shares[::-1]))
        send, receive = (keys.caller_to_callee, keys.callee_to_caller)
        if not call.outgoing:
            send, receive = receive, send
        call_id, oracle, name = call.call_id, self.people.oracle, self.node.name
        media = SimMedia(
            self.world,
            name,
            (MediaSealer(send, call.peer_index), MediaOpener(receive, call.local_index)),
            call.frame_ms,
            self.people.routes,
            lambda datagram: self.node.write_frames([CallMedia(call_id, datagram)]),
            lambda playout: oracle.play(name, call_id, playout),
            self.world.rng.randint(50, 200),
        )
        self.media[call_id], self.by_index[call.local_index] = media, media
        media.start()

    # -- the end of a call -----------------------------------------------------------------------

    def _finish(self, call: Call) -> None:
        media = self.media.pop(call.call_id, None)
        if media is not None:
            media.stop()
            self.by_index.pop(call.local_index or 0, None)
        self._write_record(call.call_id, self._record(call, media))

    def _record(self, call: Call, media: SimMedia | None) -> CallRecord:
        if call.ended_ns is None:  # a note: the call as it stands, ending now
            call = dataclasses.replace(call, ended_ns=self.world.now)
        own, peer = self.node.name, self.people.peer_of(self.node.name)
        record = build_record(call, own, peer, None, [], [])
        if media is None:
            return record
        figures, transport = media.record_figures(), media.transport_used()
        return msgspec.structs.replace(record, media=figures, transport=transport)

    def _write_record(self, call_id: bytes, record: CallRecord) -> None:
        """As the station's task does, a moment later: commit the record, then clear the note."""
        self.writing += 1
        text = encode_record(record)

        def write() -> None:
            if not self.alive:
                return
            self.writing -= 1
            output = self.node.act(
                lambda core: core.send(
                    Lane.ROUTINE, MessageType.CALL_RECORD, "zxx", text, self.world.now
                )
            )
            if output is None:
                return  # died on the way: the note stays, and the next start writes it
            self.store.set_open_call(self.link_id, call_id.hex(), None)
            self.noted.discard(call_id)

        self.world.after(self.world.rng.randint(0, 20 * MS), write)

    def _note(self, call_id: bytes) -> None:
        call = self.table.get(call_id)
        if call is None:
            return
        note = note_of(self._record(call, self.media.get(call_id)))
        self.store.set_open_call(self.link_id, call_id.hex(), note)
        self.noted.add(call_id)
        self.people.oracle.noted[self.node.name].add(call_id)

    def _free_index(self) -> int:
        while (index := self.world.rng.getrandbits(32)) in self.by_index:
            pass
        return index


def desk_maker(people: People) -> Callable[[Node], CallDesk]:
    return functools.partial(CallDesk, people=people)
