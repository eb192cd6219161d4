"""The call state machine: one `CallTable` per link at each station (docs/calls.md §3).

Pure, like the link core: frames and acts in, `Effects` out (the frames to send to the peer and
the events to show and record); time is passed in as now_ns. The station feeds it the call frames
the link core hands over (`CallFrameReceived`), its operators' acts, and a tick a few times a
second, and sends the frames it returns on the link's sessions.

    table.place(call_id, lane, person, role, recorded, key_share, index, frame_ms, now)
    table.receive(frame, now)                  # a call frame from the peer
    table.answer(call_id, person, role, key_share, index, now)
    table.decline(call_id, reason, now) / table.end(call_id, reason, now)
    table.tick(now, ring_timeout_ns, dead_after_ns)

One call per link at a time. A peer frame that breaks a rule raises CallError and changes
nothing: the station logs it, and the link's session stays open (a confused call is not a reason
to cut the line). A local act that is not allowed raises CallRefused. An exact copy of a frame
already applied (the same frame sent again on another path) is ignored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeVar

from hotline.errors import CallError, CallRefused, ProtocolError
from hotline.protocol.callframes import (
    CallAnswer,
    CallBusy,
    CallDecline,
    CallEnd,
    CallFrame,
    CallInvite,
    CallKeepalive,
    CallMedia,
    CallRinging,
    check_call_frame,
)
from hotline.protocol.envelope import Lane

__all__ = [
    "ANSWER_RESEND_AFTER_NS",
    "INVITE_RESEND_AFTER_NS",
    "KEEPALIVE_NS",
    "KEEP_ENDED_NS",
    "MAX_ENDED",
    "MAX_SENDS",
    "RESEND_EVERY_NS",
    "Call",
    "CallAnswered",
    "CallEnded",
    "CallEvent",
    "CallIncoming",
    "CallMediaReceived",
    "CallMissed",
    "CallPeerUdp",
    "CallRingingEvent",
    "CallState",
    "CallTable",
    "Effects",
]

_F = TypeVar("_F", bound=CallFrame)
MS = 1_000_000
SECOND = 1_000 * MS
INVITE_RESEND_AFTER_NS = 2 * SECOND  # no ringing heard this long after the invite: send it again
ANSWER_RESEND_AFTER_NS = 1 * SECOND  # the caller silent this long after our answer: send it again
RESEND_EVERY_NS = 1 * SECOND  # and again at most this often
MAX_SENDS = 5  # the frame and at most four copies; a link that stays down is the timers' to end
KEEPALIVE_NS = 500 * MS  # a keepalive this often in an answered call
KEEP_ENDED_NS = 60 * SECOND  # an ended call is remembered this long, so late frames are recognised
MAX_ENDED = 32  # and at most this many of them (a peer flooding invites fills no memory)


class CallState(enum.StrEnum):
    OUTGOING = "inviting"  # we sent the invite and have heard nothing yet
    RINGING_OUT = "ringing_out"  # the peer rings
    RINGING_IN = "ringing_in"  # the peer's invite arrived: we ring
    ACTIVE = "active"  # answered
    ENDED = "ended"


@dataclass(slots=True, kw_only=True)
class Call:
    call_id: bytes
    outgoing: bool  # we placed it
    lane: Lane  # precedence
    caller: str
    caller_role: str
    answerer: str | None = None
    answerer_role: str | None = None
    recorded: bool  # the caller's station records it (the callee's may too, its own choice)
    frame_ms: int
    local_share: bytes | None = None  # our key share (the callee's: once it answers)
    peer_share: bytes | None = None
    local_index: int | None = None  # how our station recognises this call's datagrams
    peer_index: int | None = None
    invited_ns: int  # the invite sent (outgoing) or received (incoming), on our clock
    rung_ns: int | None = None
    answered_ns: int | None = None
    ended_ns: int | None = None
    end_reason: str | None = None
    state: CallState
    # Set by the driver: an authentic UDP datagram of this call arrived lately (sent in keepalives).
    udp_heard: bool = False
    peer_udp_heard: bool | None = None  # the peer's last keepalive said so (None: none yet)
    last_heard_ns: int = 0  # the peer's last keepalive or media frame (ACTIVE only)
    heard: bool = False  # ACTIVE: a keepalive or media frame of the peer's has arrived
    keepalive_sent_ns: int = 0
    sent_ns: int = 0  # our invite (outgoing) or answer (incoming): when last sent
    sends: int = 0  # and how many times
    reply: CallFrame | None = None  # incoming: our reply to the invite, sent again to a copy
    applied: set[CallFrame] = field(default_factory=set)  # the signalling frames applied

    @property
    def live(self) -> bool:
        return self.state is not CallState.ENDED


# -- events: what the station shows people, rings, records -----------------------------------


@dataclass(frozen=True, slots=True)
class CallIncoming:
    call: Call


@dataclass(frozen=True, slots=True)
class CallRingingEvent:
    call: Call


@dataclass(frozen=True, slots=True)
class CallAnswered:
    call: Call


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over (`call.end_reason` says why): the station writes its call record."""

    call: Call


@dataclass(frozen=True, slots=True)
class CallMissed:
    """An incoming call rang here and ended unanswered: the missed-call alarm."""

    call: Call


@dataclass(frozen=True, slots=True)
class CallMediaReceived:
    call: Call
    datagram: bytes  # sealed: the media layer opens it and drops copies


@dataclass(frozen=True, slots=True)
class CallPeerUdp:
    """The peer says whether our UDP datagrams reach it: if not, send media on TCP as well."""

    call: Call
    heard: bool


CallEvent = (
    CallIncoming
    | CallRingingEvent
    | CallAnswered
    | CallEnded
    | CallMissed
    | CallMediaReceived
    | CallPeerUdp
)


@dataclass(slots=True)
class Effects:
    frames: list[CallFrame] = field(default_factory=list)  # to the peer, in order
    events: list[CallEvent] = field(default_factory=list)

    def merge(self, other: Effects) -> Effects:
        self.frames += other.frames
        self.events += other.events
        return self


class CallTable:
    """The calls of one link: at most one live, and the recently ended ones."""

    def __init__(self) -> None:
        self.calls: dict[bytes, Call] = {}

    @property
    def live(self) -> Call | None:
        """The call not yet ended, if any (there is at most one)."""
        return next((c for c in self.calls.values() if c.live), None)

    def get(self, call_id: bytes) -> Call | None:
        """A live call, or an ended one still remembered."""
        return self.calls.get(call_id)

    # -- local acts ------------------------------------------------------------------------------

    def place(
        self,
        call_id: bytes,
        lane: Lane | int,
        person: str,
        role: str,
        recorded: bool,
        key_share: bytes,
        receiver_index: int,
        frame_ms: int,
        now_ns: int,
    ) -> Effects:
        """Invite the peer. Raises CallRefused if a call is live on this link, the id was used,
        or an argument is out of bounds."""
        lane = int(lane) if isinstance(lane, Lane) else lane  # the frame holds a plain int
        invite = _local(
            CallInvite(call_id, lane, person, role, recorded, key_share, receiver_index, frame_ms)
        )
        if call_id in self.calls:
            raise CallRefused("this call id was used already")
        if (live := self.live) is not None:
            raise CallRefused(f"another call is {live.state} on this link")
        call = Call(
            call_id=call_id, outgoing=True, lane=Lane(lane), caller=person, caller_role=role,
            recorded=recorded, frame_ms=frame_ms, local_share=key_share,
            local_index=receiver_index, invited_ns=now_ns, state=CallState.OUTGOING,
            sent_ns=now_ns, sends=1,
        )  # fmt: skip
        self._add(call)
        return Effects([invite])

    def answer(
        self,
        call_id: bytes,
        person: str,
        role: str,
        key_share: bytes,
        receiver_index: int,
        now_ns: int,
    ) -> Effects:
        call = self._acting_on(call_id, CallState.RINGING_IN)
        frame = _local(CallAnswer(call_id, person, role, key_share, receiver_index))
        call.state, call.answered_ns, call.reply = CallState.ACTIVE, now_ns, frame
        call.answerer, call.answerer_role = person, role
        call.local_share, call.local_index = key_share, receiver_index
        call.last_heard_ns = call.keepalive_sent_ns = call.sent_ns = now_ns
        call.sends = 1
        return Effects([frame], [CallAnswered(call)])

    def decline(self, call_id: bytes, reason: str, now_ns: int) -> Effects:
        call = self._acting_on(call_id, CallState.RINGING_IN)
        frame = _local(CallDecline(call_id, reason))
        call.reply = frame
        return Effects([frame], [self._finish(call, f"declined: {reason}", now_ns)])

    def end(self, call_id: bytes, reason: str, now_ns: int) -> Effects:
        """Hang up, or give up inviting: allowed in every state but ENDED."""
        call = self._acting_on(call_id, *(s for s in CallState if s is not CallState.ENDED))
        frame = _local(CallEnd(call_id, reason))
        if not call.outgoing:
            call.reply = frame
        return Effects([frame], [self._finish(call, f"ended here: {reason}", now_ns)])

    # -- the peer's frames -----------------------------------------------------------------------

    def receive(self, frame: CallFrame, now_ns: int) -> Effects:
        """Apply a call frame from the peer.

        Raises:
            CallError: the frame breaks a rule (docs/calls.md §3); nothing changed.
        """
        try:
            check_call_frame(frame)
        except ProtocolError as exc:
            raise CallError(str(exc)) from None
        call = self.calls.get(frame.call_id)
        if isinstance(frame, CallInvite):
            return self._on_invite(call, frame, now_ns)
        what = f"{type(frame).__name__} for call {frame.call_id.hex()}"
        if call is None:
            raise CallError(f"{what}, which is not known")
        if frame in call.applied:
            return Effects()  # the same frame again, by another path
        if not call.live:
            if isinstance(frame, CallEnd | CallKeepalive | CallMedia):
                return Effects()  # in flight when the call ended, or both ended it at once
            raise CallError(f"{what}, which has ended ({call.end_reason})")
        if isinstance(frame, CallKeepalive | CallMedia):
            return self._on_flow(call, frame, now_ns, what)
        effects = self._on_signal(call, frame, now_ns, what)
        call.applied.add(frame)
        return effects

    def _on_invite(self, call: Call | None, invite: CallInvite, now_ns: int) -> Effects:
        if call is not None:
            if call.outgoing or invite not in call.applied:
                raise CallError(f"invite reuses the id of another call {invite.call_id.hex()}")
            # The caller heard nothing from us (a session was lost): it hears our answer again.
            return Effects([call.reply] if call.reply is not None else [])
        call = Call(
            call_id=invite.call_id, outgoing=False, lane=Lane(invite.lane), caller=invite.caller,
            caller_role=invite.role, recorded=invite.recorded, frame_ms=invite.frame_ms,
            peer_share=invite.key_share, peer_index=invite.receiver_index, invited_ns=now_ns,
            state=CallState.RINGING_IN, rung_ns=now_ns,
        )  # fmt: skip
        call.applied.add(invite)
        if self.live is not None:  # one call at a time; the busy one is logged like any other
            call.rung_ns, call.reply = None, CallBusy(invite.call_id)
            ended = self._finish(call, "busy", now_ns)
            self._add(call)
            return Effects([call.reply], [ended])
        call.reply = CallRinging(invite.call_id)
        self._add(call)
        return Effects([call.reply], [CallIncoming(call)])

    def _on_signal(self, call: Call, frame: CallFrame, now_ns: int, what: str) -> Effects:
        """Ringing, answer, decline, busy, end for a live call: check everything, then act."""
        if isinstance(frame, CallEnd):
            missed = call.state is CallState.RINGING_IN
            call.reply = None  # the peer knows: nothing to tell it again
            ended = self._finish(call, f"ended by peer: {frame.reason}", now_ns)
            return Effects([], [ended, CallMissed(call)] if missed else [ended])
        if not call.outgoing:  # these come from the callee, and here the callee is us
            raise CallError(f"{what}, a call the peer placed")
        ringing = call.state in (CallState.OUTGOING, CallState.RINGING_OUT)
        match frame:
            case CallRinging():
                if call.state is CallState.OUTGOING:
                    call.state, call.rung_ns = CallState.RINGING_OUT, now_ns
                    return Effects([], [CallRingingEvent(call)])
                return Effects()  # the answer came first, by a faster path
            case CallAnswer() if ringing:
                call.state, call.answered_ns = CallState.ACTIVE, now_ns
                call.answerer, call.answerer_role = frame.answerer, frame.role
                call.peer_share, call.peer_index = frame.key_share, frame.receiver_index
                call.last_heard_ns = call.keepalive_sent_ns = now_ns
                return Effects([], [CallAnswered(call)])
            case CallDecline() if ringing:
                return Effects([], [self._finish(call, f"declined: {frame.reason}", now_ns)])
            case CallBusy() if call.state is CallState.OUTGOING:
                return Effects([], [self._finish(call, "busy", now_ns)])
        raise CallError(f"{what}, which is {call.state}")

    def _on_flow(
        self, call: Call, frame: CallKeepalive | CallMedia, now_ns: int, what: str
    ) -> Effects:
        if call.state is not CallState.ACTIVE:
            if call.outgoing:  # the callee answered: the answer is on its way, or comes again
                return Effects()
            raise CallError(f"{what}, which is not answered")
        call.last_heard_ns, call.heard = max(call.last_heard_ns, now_ns), True
        if isinstance(frame, CallMedia):
            return Effects([], [CallMediaReceived(call, frame.datagram)])
        if frame.udp_heard == call.peer_udp_heard:
            return Effects()
        call.peer_udp_heard = frame.udp_heard
        return Effects([], [CallPeerUdp(call, frame.udp_heard)])

    # -- time ------------------------------------------------------------------------------------

    def tick(self, now_ns: int, ring_timeout_ns: int, dead_after_ns: int) -> Effects:
        """Send unheard invites and answers again, end calls nobody answered or whose peer went
        silent, send keepalives, forget old ended calls."""
        effects = Effects()
        for call in list(self.calls.values()):
            if call.state is CallState.ACTIVE:
                if now_ns - call.last_heard_ns >= dead_after_ns:
                    effects.merge(self._time_out(call, "peer lost", now_ns))
                    continue
                # The caller says nothing: our answer may have been lost with a session.
                if not (call.outgoing or call.heard) and _resend_due(
                    call, now_ns, call.answered_ns, ANSWER_RESEND_AFTER_NS
                ):
                    effects.frames.append(self._resend(call, now_ns))
                if now_ns - call.keepalive_sent_ns >= KEEPALIVE_NS:
                    call.keepalive_sent_ns = now_ns
                    effects.frames.append(CallKeepalive(call.call_id, call.udp_heard))
            elif call.live and now_ns - call.invited_ns >= ring_timeout_ns:
                effects.merge(self._time_out(call, "no answer", now_ns))
            elif call.state is CallState.OUTGOING and _resend_due(
                call, now_ns, call.invited_ns, INVITE_RESEND_AFTER_NS
            ):
                effects.frames.append(self._resend(call, now_ns))
        self._prune(now_ns)
        return effects

    def _resend(self, call: Call, now_ns: int) -> CallFrame:
        """Our invite (outgoing) or answer (incoming) once more: the peer dedupes copies."""
        call.sent_ns, call.sends = now_ns, call.sends + 1
        if call.outgoing:
            return _invite(call)
        assert isinstance(call.reply, CallAnswer)
        return call.reply

    def _time_out(self, call: Call, reason: str, now_ns: int) -> Effects:
        """End a call on a timer, and tell the peer (if it can still hear us) so both agree."""
        missed = call.state is CallState.RINGING_IN
        frame = CallEnd(call.call_id, reason)
        if not call.outgoing:
            call.reply = frame
        ended = self._finish(call, reason, now_ns)
        return Effects([frame], [ended, CallMissed(call)] if missed else [ended])

    # -- helpers ---------------------------------------------------------------------------------

    def _acting_on(self, call_id: bytes, *states: CallState) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise CallRefused("no such call on this link")
        if call.state not in states:
            raise CallRefused(f"the call is {call.state}")
        return call

    def _finish(self, call: Call, reason: str, now_ns: int) -> CallEnded:
        call.state, call.ended_ns, call.end_reason = CallState.ENDED, now_ns, reason
        return CallEnded(call)

    def _add(self, call: Call) -> None:
        self.calls[call.call_id] = call
        self._prune(None)

    def _prune(self, now_ns: int | None) -> None:
        """Forget ended calls older than KEEP_ENDED_NS, and all but the MAX_ENDED newest."""
        ended = sorted((c for c in self.calls.values() if not c.live), key=_ended_ns)
        for number, call in enumerate(ended):
            too_old = now_ns is not None and now_ns - _ended_ns(call) >= KEEP_ENDED_NS
            if too_old or number < len(ended) - MAX_ENDED:
                del self.calls[call.call_id]


def _ended_ns(call: Call) -> int:
    return call.ended_ns or 0


def _resend_due(call: Call, now_ns: int, first_ns: int | None, after_ns: int) -> bool:
    return (
        call.sends < MAX_SENDS
        and now_ns - (first_ns or 0) >= after_ns
        and now_ns - call.sent_ns >= RESEND_EVERY_NS
    )


def _invite(call: Call) -> CallInvite:
    assert call.local_share is not None
    assert call.local_index is not None
    return CallInvite(
        call.call_id, int(call.lane), call.caller, call.caller_role, call.recorded,
        call.local_share, call.local_index, call.frame_ms,
    )  # fmt: skip


def _local(frame: _F) -> _F:
    """A frame we are about to send, checked as the peer will check it."""
    try:
        check_call_frame(frame)
    except ProtocolError as exc:
        raise CallRefused(str(exc)) from None
    return frame
