"""Call signalling: the frames (strictly decoded), the call table's rules one by one, and two
tables driven against each other in memory through the real packet codec (docs/calls.md)."""

from __future__ import annotations

import copy
import os
import struct
from collections.abc import Callable

import msgspec
import pytest

from hotline.crypto.identity import StationIdentity
from hotline.crypto.session import link_id_for
from hotline.errors import CallError, CallRefused, ProtocolError
from hotline.protocol.callframes import (
    CALL_FRAME_TYPES,
    MAX_DATAGRAM,
    CallAnswer,
    CallBusy,
    CallDecline,
    CallEnd,
    CallFrame,
    CallInvite,
    CallKeepalive,
    CallMedia,
    CallRinging,
)
from hotline.protocol.calls import (
    KEEP_ENDED_NS,
    KEEPALIVE_NS,
    MAX_ENDED,
    MAX_SENDS,
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
from hotline.protocol.envelope import Lane
from hotline.protocol.frames import PACKET_VERSION, Frame, decode_packet, encode_packets
from hotline.protocol.link import SECOND, LinkCore
from hotline.protocol.state import CallFrameReceived, LinkConfig, LinkState, ProtocolViolation

T0 = 1_800_000_000 * SECOND
MS = SECOND // 1000
RING = 30 * SECOND
DEAD = 3 * SECOND
ID, ID2 = bytes(range(16)), bytes(range(1, 17))
SHARE_A, SHARE_B = b"\xa1" * 32, b"\xb2" * 32

INVITE = CallInvite(ID, 0, "Иванов", "principal", True, SHARE_A, 7, 20)
RINGING = CallRinging(ID)
ANSWER = CallAnswer(ID, "Smith", "interpreter", SHARE_B, 9)
DECLINE = CallDecline(ID, "in a meeting")
BUSY = CallBusy(ID)
END = CallEnd(ID, "hung up")
KEEPALIVE = CallKeepalive(ID, True)
MEDIA = CallMedia(ID, b"\x01" * 80)

# --- the frames on the wire ----------------------------------------------------------------------


def _wire(frames: list[CallFrame]) -> list[CallFrame]:
    """Frames as the peer decodes them: through the real packets, strictly."""
    if not frames:
        return []
    decoded = [f for p in encode_packets(list[Frame](frames)) for f in decode_packet(p)]
    assert decoded == frames
    return [f for f in decoded if isinstance(f, CALL_FRAME_TYPES)]


def _packet(*items: object) -> bytes:
    chunks = [msgspec.msgpack.encode(i) for i in items]
    return bytes([PACKET_VERSION]) + b"".join(struct.pack(">H", len(c)) + c for c in chunks)


EVERY_FRAME: list[CallFrame] = [INVITE, RINGING, ANSWER, DECLINE, BUSY, END, KEEPALIVE, MEDIA]


def test_every_call_frame_round_trips_with_its_kind() -> None:
    for kind, frame in enumerate(EVERY_FRAME, start=12):
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(frame))[0] == kind
    assert _wire(EVERY_FRAME) == EVERY_FRAME


def test_bounds_are_accepted_at_their_limits() -> None:
    limits: list[CallFrame] = [
        CallInvite(ID, 3, "ж" * 200, "r" * 200, False, SHARE_A, 2**32 - 1, 10),
        CallAnswer(ID, "a", "b", SHARE_B, 0),
        CallDecline(ID, ""),
        CallEnd(ID, "x" * 200),
        CallMedia(ID, b"\x00" * MAX_DATAGRAM),
    ]
    assert _wire(limits) == limits


INV = [12, ID, 0, "Ivanov", "principal", True, SHARE_A, 7, 20]  # an invite, field by field
ANS = [14, ID, "Smith", "interpreter", SHARE_B, 9]


def _with(frame: list[object], index: int, value: object) -> list[object]:
    changed = list(frame)
    changed[index] = value
    return changed


BAD_FRAMES = [
    pytest.param(_with(INV, 1, ID[:15]), "call id must be 16 bytes", id="id-15"),
    pytest.param(_with(INV, 1, ID + b"\x00"), "call id must be 16 bytes", id="id-17"),
    pytest.param([13, b""], "call id must be 16 bytes", id="ringing-empty-id"),
    pytest.param([13, "0123456789abcdef"], "Expected `bytes`, got `str`", id="id-as-text"),
    pytest.param(_with(INV, 2, 4), "bad lane", id="lane-4"),
    pytest.param(_with(INV, 2, -1), "bad lane", id="lane-negative"),
    pytest.param(_with(INV, 2, True), "Expected `int`, got `bool`", id="lane-bool"),
    pytest.param(_with(INV, 8, 30), "10 or 20 ms", id="frame-30ms"),
    pytest.param(_with(INV, 8, 0), "10 or 20 ms", id="frame-0ms"),
    pytest.param(_with(INV, 5, 1), "Expected `bool`, got `int`", id="recorded-int"),
    pytest.param(_with(INV, 3, ""), "names no caller", id="caller-empty"),
    pytest.param(_with(INV, 3, "x" * 201), "names no caller", id="caller-201"),
    pytest.param(_with(INV, 4, ""), "names no caller or role", id="role-empty"),
    pytest.param(_with(INV, 4, "chief\nof staff"), "names no caller or role", id="role-control"),
    pytest.param(_with(INV, 6, SHARE_A[:31]), "key share must be 32 bytes", id="share-31"),
    pytest.param(_with(INV, 7, 2**32), "fit 32 bits", id="index-2^32"),
    pytest.param(_with(INV, 7, -1), "fit 32 bits", id="index-negative"),
    pytest.param(INV[:-1], "at least length 9", id="invite-missing-field"),
    pytest.param([*INV, 0], "Expected `array` of at most length", id="invite-extra"),
    pytest.param(_with(ANS, 2, ""), "names no answerer", id="answerer-empty"),
    pytest.param(_with(ANS, 4, SHARE_B + b"\x00"), "key share must be 32", id="answer-share-33"),
    pytest.param(_with(ANS, 5, 2**32), "fit 32 bits", id="answer-index"),
    pytest.param([15, ID, "x" * 201], "reason is too long", id="decline-reason-201"),
    pytest.param([17, ID, "bye\x00"], "not printable", id="end-reason-control"),
    pytest.param([17, ID], "at least length 3", id="end-no-reason"),
    pytest.param([18, ID, 1], "Expected `bool`, got `int`", id="keepalive-int"),
    pytest.param([19, ID, b""], "empty or over 1200", id="media-empty"),
    pytest.param([19, ID, b"\x00" * 1201], "empty or over 1200", id="media-1201"),
    pytest.param([16, ID, "busy"], "Expected `array` of at most length", id="busy-extra"),
    pytest.param([20, ID], "Invalid value 20", id="kind-20"),
]


@pytest.mark.parametrize(("frame", "message"), BAD_FRAMES)
def test_malformed_call_frame_refuses_the_packet(frame: list[object], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_packet(_packet([4, 1, 2], frame))  # a good ping first: refused whole all the same


def test_link_core_hands_call_frames_to_the_driver_and_closes_on_malformed_ones() -> None:
    a, b = StationIdentity.from_random(os.urandom(96)), StationIdentity.from_random(os.urandom(96))
    config = LinkConfig(link_id_for(a.public, b.public), a, b.public)
    core = LinkCore(config, LinkState.new(config), T0)
    core.session_opened(1, T0)
    output = core.receive(1, encode_packets([INVITE, KEEPALIVE])[0], T0)
    assert output.events == [CallFrameReceived(1, INVITE), CallFrameReceived(1, KEEPALIVE)]
    assert not output.close
    assert not output.batch  # nothing of a call is committed by the link core
    bad = core.receive(1, _packet(_with(INV, 8, 30)), T0)
    assert [type(e) for e in bad.events][:1] == [ProtocolViolation]
    assert bad.close


# --- the rules, one by one ------------------------------------------------------------------------


def _place(table: CallTable, call_id: bytes = ID, now: int = T0) -> Effects:
    return table.place(call_id, Lane.FLASH, "Иванов", "principal", True, SHARE_A, 7, 20, now)


def _answer(table: CallTable, now: int = T0) -> Effects:
    return table.answer(ID, "Smith", "interpreter", SHARE_B, 9, now)


def _table(*steps: Callable[[CallTable], object]) -> CallTable:
    table = CallTable()
    for step in steps:
        step(table)
    return table


SETUPS: dict[str, Callable[[], CallTable]] = {
    "idle": CallTable,
    "inviting": lambda: _table(_place),
    "ringing_out": lambda: _table(_place, lambda t: t.receive(RINGING, T0)),
    "active_out": lambda: _table(
        _place, lambda t: t.receive(RINGING, T0), lambda t: t.receive(ANSWER, T0)
    ),
    "ended_out": lambda: _table(
        _place, lambda t: t.receive(ANSWER, T0), lambda t: t.end(ID, "done", T0)
    ),
    "ringing_in": lambda: _table(lambda t: t.receive(INVITE, T0)),
    "active_in": lambda: _table(lambda t: t.receive(INVITE, T0), _answer),
    "ended_in": lambda: _table(lambda t: t.receive(INVITE, T0), lambda t: t.decline(ID, "no", T0)),
}
ACTIVE, ENDED = CallState.ACTIVE, CallState.ENDED
LATER = T0 + 100 * MS

TRANSITIONS = [
    # setup, frame, state after, end reason, events, frames sent back
    ("idle", INVITE, CallState.RINGING_IN, None, [CallIncoming], [RINGING]),
    ("inviting", RINGING, CallState.RINGING_OUT, None, [CallRingingEvent], []),
    ("inviting", ANSWER, ACTIVE, None, [CallAnswered], []),  # the ringing is still on its way
    ("ringing_out", ANSWER, ACTIVE, None, [CallAnswered], []),
    ("inviting", DECLINE, ENDED, "declined: in a meeting", [CallEnded], []),
    ("ringing_out", DECLINE, ENDED, "declined: in a meeting", [CallEnded], []),
    ("inviting", BUSY, ENDED, "busy", [CallEnded], []),
    ("inviting", END, ENDED, "ended by peer: hung up", [CallEnded], []),
    ("ringing_out", END, ENDED, "ended by peer: hung up", [CallEnded], []),
    ("active_out", END, ENDED, "ended by peer: hung up", [CallEnded], []),
    ("active_in", END, ENDED, "ended by peer: hung up", [CallEnded], []),
    ("ringing_in", END, ENDED, "ended by peer: hung up", [CallEnded, CallMissed], []),
    ("active_out", KEEPALIVE, ACTIVE, None, [CallPeerUdp], []),
    ("active_in", MEDIA, ACTIVE, None, [CallMediaReceived], []),
    ("active_out", RINGING, ACTIVE, None, [], []),  # came after the answer, by a slower path
    # The callee answered, and the answer is still on its way (or comes again): nothing yet.
    ("inviting", KEEPALIVE, CallState.OUTGOING, None, [], []),
    ("ringing_out", MEDIA, CallState.RINGING_OUT, None, [], []),
    ("ended_out", END, ENDED, "ended here: done", [], []),  # both hung up at once
    ("ended_out", KEEPALIVE, ENDED, "ended here: done", [], []),  # in flight at the end
    ("ended_out", MEDIA, ENDED, "ended here: done", [], []),
]


@pytest.mark.parametrize(
    ("setup", "frame", "state", "reason", "events", "sent"),
    TRANSITIONS,
    ids=[f"{t[0]}-{type(t[1]).__name__}" for t in TRANSITIONS],
)
def test_a_peer_frame_moves_the_call_as_the_rules_say(
    setup: str,
    frame: CallFrame,
    state: CallState,
    reason: str | None,
    events: list[type],
    sent: list[CallFrame],
) -> None:
    table = SETUPS[setup]()
    effects = table.receive(frame, LATER)
    call = table.get(ID)
    assert call is not None
    assert (call.state, call.end_reason) == (state, reason)
    assert [type(e) for e in effects.events] == events
    assert all(e.call is call for e in effects.events)
    assert effects.frames == sent
    if state is ENDED and events:
        assert call.ended_ns == LATER


@pytest.mark.parametrize(
    ("setup", "frame"),
    [(t[0], t[1]) for t in TRANSITIONS if not isinstance(t[1], CallKeepalive | CallMedia)],
    ids=[f"{t[0]}-{type(t[1]).__name__}" for t in TRANSITIONS if t[1] not in (KEEPALIVE, MEDIA)],
)
def test_the_same_frame_again_is_ignored(setup: str, frame: CallFrame) -> None:
    table = SETUPS[setup]()
    table.receive(frame, LATER)
    before = copy.deepcopy(table.calls)
    again = table.receive(frame, LATER + SECOND)
    assert again.events == []
    # ANS repeated invite is answered again (the caller did not hear us), and nothing else.
    assert again.frames == ([RINGING] if frame == INVITE else [])
    assert table.calls == before


OTHER_ANSWER = CallAnswer(ID, "Jones", "principal", SHARE_B, 9)
OTHER_INVITE = CallInvite(ID, 3, "Иванов", "principal", True, SHARE_A, 7, 20)
OUT_OF_BOUNDS = CallInvite(ID[:15], 0, "x", "y", False, SHARE_A, 1, 20)

REFUSALS = [
    *[("idle", f, "not known") for f in EVERY_FRAME if f is not INVITE],
    ("idle", OUT_OF_BOUNDS, "call id must be 16 bytes"),
    ("inviting", INVITE, "reuses the id"),  # an invite naming a call we placed
    ("ringing_out", BUSY, "which is ringing_out"),  # it rang: it was not busy
    ("active_out", OTHER_ANSWER, "which is active"),  # a second answer that differs
    ("active_out", DECLINE, "which is active"),
    ("active_out", BUSY, "which is active"),
    ("ringing_in", OTHER_INVITE, "reuses the id"),
    ("ringing_in", RINGING, "a call the peer placed"),
    ("ringing_in", ANSWER, "a call the peer placed"),  # the peer cannot answer its own call
    ("ringing_in", DECLINE, "a call the peer placed"),
    ("ringing_in", BUSY, "a call the peer placed"),
    ("ringing_in", KEEPALIVE, "not answered"),
    ("ringing_in", MEDIA, "not answered"),
    ("active_in", ANSWER, "a call the peer placed"),
    ("ended_out", OTHER_ANSWER, "which has ended"),
    ("ended_out", DECLINE, "which has ended"),
    ("ended_out", INVITE, "reuses the id"),
    ("ended_in", ANSWER, "which has ended"),
    ("ended_in", RINGING, "which has ended"),
]


@pytest.mark.parametrize(
    ("setup", "frame", "message"),
    REFUSALS,
    ids=[f"{r[0]}-{type(r[1]).__name__}-{i}" for i, r in enumerate(REFUSALS)],
)
def test_a_refused_frame_changes_nothing(setup: str, frame: CallFrame, message: str) -> None:
    table = SETUPS[setup]()
    before = copy.deepcopy(table.calls)
    with pytest.raises(CallError, match=message):
        table.receive(frame, LATER)
    assert table.calls == before


def test_call_error_is_not_a_protocol_error() -> None:
    # The link core closes a session on a ProtocolError; a call's mistake must not do that.
    assert not issubclass(CallError, ProtocolError)


ACTS: list[tuple[str, Callable[[CallTable], object], str]] = [
    ("inviting", lambda t: _place(t, ID2), "another call is inviting"),
    ("ringing_in", lambda t: _place(t, ID2), "another call is ringing_in"),
    ("active_out", lambda t: _place(t, ID2), "another call is active"),
    ("ended_out", _place, "was used already"),
    ("idle", lambda t: _place(t, ID[:15]), "call id must be 16 bytes"),
    ("idle", lambda t: t.place(ID, 4, "a", "b", False, SHARE_A, 1, 20, T0), "bad lane"),
    ("idle", lambda t: t.place(ID, 0, "", "b", False, SHARE_A, 1, 20, T0), "no caller"),
    ("idle", lambda t: t.place(ID, 0, "a", "b", False, SHARE_A, 1, 30, T0), "10 or 20"),
    ("idle", lambda t: t.place(ID, 0, "a", "b", False, SHARE_A[:8], 1, 20, T0), "key share"),
    ("idle", _answer, "no such call"),
    ("inviting", _answer, "the call is inviting"),
    ("active_in", _answer, "the call is active"),
    ("ended_in", _answer, "the call is ended"),
    ("ringing_in", lambda t: t.answer(ID, "a", "b", SHARE_B, 2**32, T0), "32 bits"),
    ("ringing_out", lambda t: t.decline(ID, "no", T0), "the call is ringing_out"),
    ("active_in", lambda t: t.decline(ID, "no", T0), "the call is active"),
    ("ringing_in", lambda t: t.decline(ID, "x" * 201, T0), "reason is too long"),
    ("ended_out", lambda t: t.end(ID, "again", T0), "the call is ended"),
    ("idle", lambda t: t.end(ID, "bye", T0), "no such call"),
]


@pytest.mark.parametrize(("setup", "act", "message"), ACTS, ids=[str(i) for i in range(len(ACTS))])
def test_a_refused_act_changes_nothing(
    setup: str, act: Callable[[CallTable], object], message: str
) -> None:
    table = SETUPS[setup]()
    before = copy.deepcopy(table.calls)
    with pytest.raises(CallRefused, match=message):
        act(table)
    assert table.calls == before


@pytest.mark.parametrize("setup", ["inviting", "ringing_out", "ringing_in", "active_out"])
def test_end_is_allowed_in_every_live_state(setup: str) -> None:
    table = SETUPS[setup]()
    effects = table.end(ID, "hung up", LATER)
    assert effects.frames == [CallEnd(ID, "hung up")]
    assert [type(e) for e in effects.events] == [CallEnded]
    assert table.get(ID) is not None
    assert table.live is None


# --- two stations, driven against each other ----------------------------------------------------


class Pair:
    """ANS caller's table and a callee's, each frame carried through the real packet codec."""

    def __init__(self) -> None:
        self.a, self.b = CallTable(), CallTable()
        self.events: dict[int, list[object]] = {id(self.a): [], id(self.b): []}
        self.sent: dict[int, list[CallFrame]] = {id(self.a): [], id(self.b): []}

    def other(self, table: CallTable) -> CallTable:
        return self.b if table is self.a else self.a

    def flow(self, src: CallTable, effects: Effects, now: int, lose: bool = False) -> None:
        """Deliver what `src` sends (unless lost), and the answers, until the wire is quiet."""
        queue = [(src, effects)]
        while queue:
            sender, out = queue.pop(0)
            self.events[id(sender)] += out.events
            self.sent[id(sender)] += out.frames
            receiver = self.other(sender)
            for frame in [] if lose else _wire(out.frames):
                queue.append((receiver, receiver.receive(frame, now)))

    def tick(self, now: int, *tables: CallTable) -> None:
        for table in tables or (self.a, self.b):
            self.flow(table, table.tick(now, RING, DEAD), now)

    def kinds(self, table: CallTable) -> list[type]:
        return [type(e) for e in self.events[id(table)]]

    def answered(self) -> Pair:
        self.flow(self.a, _place(self.a), T0)
        self.flow(self.b, _answer(self.b, T0 + SECOND), T0 + SECOND)
        return self


def _state(table: CallTable) -> tuple[CallState, str | None]:
    call = table.get(ID)
    assert call is not None
    return call.state, call.end_reason


def test_answered_call_keeps_alive_and_the_caller_hangs_up() -> None:
    p = Pair()
    p.flow(p.a, _place(p.a), T0)
    assert p.kinds(p.b) == [CallIncoming]
    assert p.kinds(p.a) == [CallRingingEvent]
    p.flow(p.b, _answer(p.b, T0 + SECOND), T0 + SECOND)
    assert p.kinds(p.a)[-1] is CallAnswered
    caller, callee = p.a.get(ID), p.b.get(ID)
    assert caller is not None
    assert callee is not None
    # Each side holds the other's key share and receiver index: enough to key the media.
    assert (caller.peer_share, caller.peer_index) == (callee.local_share, callee.local_index)
    assert (callee.peer_share, callee.peer_index) == (caller.local_share, caller.local_index)
    assert (caller.answerer, caller.answerer_role) == ("Smith", "interpreter")
    assert caller.lane is Lane.FLASH
    assert callee.recorded

    for step in range(1, 81):  # 20 s of keepalives, far past the 3 s a silent peer is given
        p.tick(T0 + SECOND + step * 250 * MS)
    assert _state(p.a) == _state(p.b) == (ACTIVE, None)
    keepalives = [f for f in p.sent[id(p.a)] if isinstance(f, CallKeepalive)]
    assert len(keepalives) == 40  # one every 500 ms

    p.flow(p.a, p.a.end(ID, "conversation over", T0 + 30 * SECOND), T0 + 30 * SECOND)
    assert _state(p.a) == (ENDED, "ended here: conversation over")
    assert _state(p.b) == (ENDED, "ended by peer: conversation over")
    assert p.kinds(p.b)[-1] is CallEnded
    assert p.a.live is None
    assert p.b.live is None


def test_the_callee_hangs_up() -> None:
    p = Pair().answered()
    p.flow(p.b, p.b.end(ID, "line noisy", T0 + 5 * SECOND), T0 + 5 * SECOND)
    assert _state(p.b) == (ENDED, "ended here: line noisy")
    assert _state(p.a) == (ENDED, "ended by peer: line noisy")
    assert CallMissed not in p.kinds(p.b)  # it was answered


def test_declined_call() -> None:
    p = Pair()
    p.flow(p.a, _place(p.a), T0)
    p.flow(p.b, p.b.decline(ID, "principal unavailable", T0 + SECOND), T0 + SECOND)
    assert _state(p.a) == _state(p.b) == (ENDED, "declined: principal unavailable")
    assert p.kinds(p.a) == [CallRingingEvent, CallEnded]
    assert p.kinds(p.b) == [CallIncoming, CallEnded]


def test_both_calling_at_once_gets_busy_on_both_sides_and_both_are_logged() -> None:
    p = Pair()
    invite_a, invite_b = _place(p.a, ID), _place(p.b, ID2)
    # The invites cross on the wire: each arrives while its receiver's own call is inviting.
    answer_b = p.b.receive(_wire(invite_a.frames)[0], T0)
    answer_a = p.a.receive(_wire(invite_b.frames)[0], T0)
    p.flow(p.a, answer_a, T0)
    p.flow(p.b, answer_b, T0)
    for table, own, theirs in ((p.a, ID, ID2), (p.b, ID2, ID)):
        mine, other = table.get(own), table.get(theirs)
        assert mine is not None
        assert other is not None
        assert (mine.state, mine.end_reason, mine.outgoing) == (ENDED, "busy", True)
        assert (other.state, other.end_reason, other.outgoing) == (ENDED, "busy", False)
        assert p.kinds(table) == [CallEnded, CallEnded]
    assert [f for f in p.sent[id(p.a)] if isinstance(f, CallBusy)] == [CallBusy(ID2)]


def test_busy_while_in_a_call_leaves_that_call_alone() -> None:
    p = Pair().answered()
    before = copy.deepcopy(p.b.get(ID))
    effects = p.b.receive(CallInvite(ID2, 0, "Петров", "principal", False, SHARE_A, 3, 20), T0)
    assert effects.frames == [CallBusy(ID2)]
    assert [type(e) for e in effects.events] == [CallEnded]
    assert effects.events[0].call.end_reason == "busy"
    assert p.b.get(ID) == before


def test_missed_call_when_the_callee_times_out_first() -> None:
    p = Pair()
    p.flow(p.a, _place(p.a), T0)
    p.tick(T0 + RING - SECOND)
    assert _state(p.b) == (CallState.RINGING_IN, None)
    p.tick(T0 + RING, p.b)  # the callee's timer: it rings no longer, and says so
    assert _state(p.b) == (ENDED, "no answer")
    assert p.kinds(p.b)[-2:] == [CallEnded, CallMissed]
    assert _state(p.a) == (ENDED, "ended by peer: no answer")
    p.tick(T0 + RING + SECOND)  # the caller's timer finds nothing left to do
    assert _state(p.a) == (ENDED, "ended by peer: no answer")


def test_missed_call_when_the_caller_gives_up_first() -> None:
    p = Pair()
    p.flow(p.a, _place(p.a), T0)
    p.tick(T0 + RING, p.a)
    assert _state(p.a) == (ENDED, "no answer")
    assert p.sent[id(p.a)][-1] == CallEnd(ID, "no answer")
    assert _state(p.b) == (ENDED, "ended by peer: no answer")
    assert p.kinds(p.b)[-2:] == [CallEnded, CallMissed]  # it rang here: the alarm goes off


def test_an_answered_call_whose_peer_goes_silent_ends_peer_lost() -> None:
    p = Pair().answered()
    start = T0 + SECOND
    for step in range(1, 13):  # the callee's station stopped: only the caller ticks
        p.tick(start + step * 250 * MS, p.a)
    assert _state(p.a) == (ENDED, "peer lost")
    assert p.kinds(p.a)[-1] is CallEnded
    call = p.a.get(ID)
    assert call is not None
    assert call.ended_ns == start + DEAD


def test_media_over_tcp_reaches_the_driver_and_keeps_the_call_alive() -> None:
    p = Pair().answered()
    call = p.a.get(ID)
    assert call is not None
    for step in range(1, 30):  # media over TCP every 200 ms, no keepalive at all
        now = T0 + SECOND + step * 200 * MS
        effects = p.a.receive(CallMedia(ID, bytes([step]) * 60), now)
        assert effects.events == [CallMediaReceived(call, bytes([step]) * 60)]
        p.a.tick(now, RING, DEAD)
    assert _state(p.a) == (ACTIVE, None)


def test_an_unheard_invite_is_sent_again_a_bounded_number_of_times() -> None:
    p = Pair()
    p.flow(p.a, _place(p.a), T0, lose=True)  # the session carrying it died
    resent: list[int] = []
    for step in range(1, 101):
        now = T0 + step * 100 * MS
        effects = p.a.tick(now, RING, DEAD)
        if effects.frames:
            assert effects.frames == [INVITE_FLASH]
            resent.append((now - T0) // MS)
            p.flow(p.a, effects, now, lose=True)
    assert resent == [2000, 3000, 4000, 5000][: MAX_SENDS - 1]
    # The last copy gets through; a repeat of it rings nothing new, it hears the ringing again.
    p.flow(p.a, Effects([INVITE_FLASH]), T0 + 11 * SECOND)
    assert p.kinds(p.b) == [CallIncoming]
    assert p.kinds(p.a) == [CallRingingEvent]
    assert p.b.receive(INVITE_FLASH, T0 + 12 * SECOND) == Effects([RINGING])
    assert p.kinds(p.b) == [CallIncoming]
    assert p.a.tick(T0 + 13 * SECOND, RING, DEAD) == Effects()  # it rang: no more copies


def test_an_answer_lost_with_its_session_is_sent_again_until_the_caller_is_heard() -> None:
    p = Pair()
    p.flow(p.a, _place(p.a), T0)
    p.flow(p.b, _answer(p.b, T0 + SECOND), T0 + SECOND, lose=True)
    assert _state(p.a) == (CallState.RINGING_OUT, None)
    for step in range(1, 13):  # the callee's keepalives reach a caller still ringing: ignored
        p.tick(T0 + SECOND + step * 250 * MS)
    assert _state(p.a) == _state(p.b) == (ACTIVE, None)
    answers = [f for f in p.sent[id(p.b)] if isinstance(f, CallAnswer)]
    assert answers == [ANSWER, ANSWER]  # sent again once, 1 s after, and no more once heard
    assert p.kinds(p.a)[:2] == [CallRingingEvent, CallAnswered]


def test_an_answer_nobody_hears_is_sent_a_few_times_then_the_peer_is_lost() -> None:
    p = Pair()
    p.flow(p.a, _place(p.a), T0)
    p.flow(p.b, _answer(p.b, T0 + SECOND), T0 + SECOND, lose=True)
    copies: list[int] = []
    for step in range(1, 41):  # the caller's station is gone: only the callee ticks
        now = T0 + SECOND + step * 100 * MS
        effects = p.b.tick(now, RING, DEAD)
        copies += [(now - T0 - SECOND) // MS for f in effects.frames if f == ANSWER]
    assert copies == [1000, 2000]  # then DEAD (3 s) ends it
    assert _state(p.b) == (ENDED, "peer lost")


INVITE_FLASH = CallInvite(ID, 0, "Иванов", "principal", True, SHARE_A, 7, 20)


def test_keepalives_carry_whether_udp_gets_through() -> None:
    p = Pair().answered()
    caller = p.a.get(ID)
    assert caller is not None
    now = T0 + SECOND
    heard: list[bool] = []
    for flag in (False, False, True, True, False):
        caller.udp_heard = flag
        now += KEEPALIVE_NS
        p.tick(now, p.a)
        heard += [e.heard for e in p.events[id(p.b)] if isinstance(e, CallPeerUdp)][len(heard) :]
    assert heard == [False, True, False]  # told when it changes
    callee = p.b.get(ID)
    assert callee is not None
    assert callee.peer_udp_heard is False


def test_ended_calls_are_remembered_for_a_while_and_boundedly() -> None:
    p = Pair().answered()
    for n in range(3 * MAX_ENDED):  # a peer flooding invites while the line is in a call
        invite = CallInvite(n.to_bytes(16, "big"), 0, "x", "y", False, SHARE_A, n, 20)
        effects = p.b.receive(invite, T0 + 2 * SECOND)
        assert effects.frames == [CallBusy(invite.call_id)]
        assert [(type(e), e.call.end_reason) for e in effects.events] == [(CallEnded, "busy")]
    assert len(p.b.calls) == 1 + MAX_ENDED
    assert _state(p.b) == (ACTIVE, None)
    p.flow(p.b, p.b.end(ID, "done", T0 + 3 * SECOND), T0 + 3 * SECOND)
    p.b.tick(T0 + 3 * SECOND + KEEP_ENDED_NS - 1, RING, DEAD)
    assert p.b.get(ID) is not None  # a late frame of it is still recognised
    assert p.b.receive(KEEPALIVE, T0 + 3 * SECOND + KEEP_ENDED_NS - 1) == Effects()
    p.b.tick(T0 + 3 * SECOND + KEEP_ENDED_NS, RING, DEAD)
    assert p.b.calls == {}
    with pytest.raises(CallError, match="not known"):
        p.b.receive(END, T0 + 4 * SECOND + KEEP_ENDED_NS)


def test_a_new_call_may_follow_an_ended_one() -> None:
    p = Pair().answered()
    p.flow(p.a, p.a.end(ID, "done", T0 + 2 * SECOND), T0 + 2 * SECOND)
    p.flow(p.b, p.b.place(ID2, Lane.ROUTINE, "Smith", "principal", False, SHARE_B, 5, 10,
                          T0 + 3 * SECOND), T0 + 3 * SECOND)  # fmt: skip
    second = p.a.get(ID2)
    assert second is not None
    assert (second.state, second.lane, second.frame_ms) == (CallState.RINGING_IN, Lane.ROUTINE, 10)
