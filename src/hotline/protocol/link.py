"""The link state machine: one per link at each station. Pure: bytes and time in, an Output out.

    core = LinkCore(config, store.load(config), now_ns)
    out  = core.session_opened(sid, now)          # a session (one path) is up: say hello
    out  = core.receive(sid, plaintext, now)      # a packet arrived on that session
    out  = core.send(lane, type, language, text, now)   # an operator's message
    out  = core.tick(now)                          # heartbeats, liveness, checkpoints
    out  = core.session_closed(sid, now)

For every Output the driver commits `out.batch` first, then sends `out.packets`, closes
`out.close` and shows `out.events` (see hotline.protocol.state). Every rule about what the peer
may send lives here and in outbound.py; docs/link.md draws the flows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hotline.errors import ProtocolError
from hotline.protocol.callframes import (
    CallAnswer,
    CallBusy,
    CallDecline,
    CallEnd,
    CallInvite,
    CallKeepalive,
    CallMedia,
    CallRinging,
)
from hotline.protocol.clock import CLOCK_FAULT_NS, skew_text, utc_text
from hotline.protocol.envelope import (
    ENVELOPE_VERSION,
    LANES,
    Attachment,
    Envelope,
    EnvelopeBody,
    Lane,
    MessageType,
    Ref,
)
from hotline.protocol.frames import (
    CheckpointFrame,
    Close,
    EnvelopeFrame,
    Frame,
    Hello,
    Ping,
    Pong,
    ReceiptFrame,
    decode_packet,
)
from hotline.protocol.outbound import Outbound
from hotline.protocol.state import (
    Acknowledged,
    AuditRecord,
    CallFrameReceived,
    CheckpointReceived,
    ClockFault,
    LinkConfig,
    LinkState,
    MessageReceived,
    Output,
    ProtocolViolation,
    Receipted,
    RttMeasured,
    SessionClosed,
    SessionReady,
    TransferReceived,
)
from hotline.protocol.statements import Checkpoint, Head, Heads, Receipt, Signed

__all__ = ["LinkCore", "Timing"]

MS = 1_000_000
SECOND = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Timing:
    heartbeat_ns: int = 1 * SECOND  # a ping this often on every session
    dead_after_ns: int = 5 * SECOND  # a session silent this long is closed
    checkpoint_idle_ns: int = 2 * SECOND  # traffic paused this long: exchange checkpoints
    resend_after_ns: int = 3 * SECOND  # an envelope no receipt covered by then goes again
    checkpoint_retry_ns: int = 10 * SECOND  # still not in agreement: offer ours again
    clock_fault_ns: int = CLOCK_FAULT_NS  # an envelope dated further from our clock: a fault


@dataclass(slots=True)
class _Session:
    sid: int
    opened_ns: int
    last_heard_ns: int
    ready: bool = False  # the peer's hello arrived: we know what it holds
    peer_held: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    ping_sent_ns: int = 0
    ping_nonce: int = 0
    rtt_ns: int | None = None


class LinkCore:
    def __init__(
        self, config: LinkConfig, state: LinkState, now_ns: int, timing: Timing = Timing()
    ) -> None:
        self.config = config
        self.timing = timing
        self.out = Outbound.restore(state.outbound, state.receipted, state.unreceipted)
        self.inbound: list[Head] = list(state.inbound)
        self.last_inbound_hash = state.last_inbound_hash
        self.sessions: dict[int, _Session] = {}
        self.last_activity_ns = now_ns
        self.now_ns = now_ns  # the latest time any call told us
        self.own_checkpoint = state.checkpoint
        self._checkpoint_sent_ns = 0
        self.peer_checkpoint_heads = state.peer_checkpoint
        self._carrier: int | None = None  # the session our traffic goes on (_best_session)

    @property
    def in_agreement(self) -> bool:
        """Both stations have signed the same eight chain heads (DESIGN invariant 5): the peer's
        newest checkpoint is our own view of the link, seen from its side."""
        return self.peer_checkpoint_heads == (tuple(self.inbound), tuple(self.out.heads))

    @property
    def unreceipted(self) -> int:
        return sum(len(lane) for lane in self.out.pending)

    # -- operators -------------------------------------------------------------------------------

    def send(
        self,
        lane: Lane,
        type: MessageType,
        language: str,
        text: str,
        now_ns: int,
        ref: Ref | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> Output:
        """Accept a message: it is durable, and may be reported accepted, once the batch commits.

        Raises:
            ProtocolError: the message is out of bounds (too long, bad language tag, ...).
        """
        self.now_ns = max(self.now_ns, now_ns)
        head = self.out.heads[lane]
        body = EnvelopeBody(
            ENVELOPE_VERSION,
            self.config.link_id,
            self.config.direction,
            int(lane),
            head.seq + 1,
            now_ns,
            int(type),
            language,
            text,
            head.hash,
            self.last_inbound_hash,
            ref,
            attachments,
        )
        envelope = Envelope.create(body, self.config.identity)
        self.out.accept(envelope)
        self.last_activity_ns = now_ns
        output = Output()
        output.batch.outbound.append(envelope)
        return self._pump(output)

    def acknowledge(self, received: Envelope, language: str, text: str, now_ns: int) -> Output:
        """A person acknowledged a message they received; the peer learns it like any message,
        in the same lane, so a FLASH acknowledgement does not wait either.

        Raises:
            ProtocolError: `received` is a call record, which is never acknowledged.
        """
        if received.body.type == MessageType.CALL_RECORD:
            raise ProtocolError("a call record is not acknowledged")
        ref = Ref(received.body.lane, received.seq, received.hash)
        return self.send(received.lane, MessageType.ACKNOWLEDGEMENT, language, text, now_ns, ref)

    # -- sessions --------------------------------------------------------------------------------

    def session_opened(self, sid: int, now_ns: int) -> Output:
        self.now_ns = max(self.now_ns, now_ns)
        self.sessions[sid] = _Session(sid, now_ns, now_ns)
        hello = Hello(
            self.config.link_id, list(self.inbound), [self.out.next_seq(lane) for lane in LANES]
        )
        return self._frames(Output(), sid, [hello])

    def session_closed(self, sid: int, reason: str = "closed") -> Output:
        output = Output()
        if self.sessions.pop(sid, None) is not None:
            self.out.session_lost(sid)
            output.events.append(SessionClosed(sid, reason))
        return self._pump(output)

    def shutdown(self, reason: str) -> Output:
        """The station is stopping: say so on every session, then forget them."""
        output = Output()
        for sid in list(self.sessions):
            self._frames(output, sid, [Close(0, reason[:200])])
            output.close.append((sid, reason))
            output.merge(self.session_closed(sid, reason))
        return output

    def receive(self, sid: int, packet: bytes, now_ns: int) -> Output:
        """Act on one packet from session `sid`. A packet that does not decode is refused whole;
        a frame that breaks a rule closes the session with the reason, after the valid frames
        before it have been applied."""
        self.now_ns = max(self.now_ns, now_ns)
        output = Output()
        session = self.sessions.get(sid)
        if session is None:
            return output
        try:
            frames = decode_packet(packet)
        except ProtocolError as exc:
            return self._violation(output, sid, str(exc), packet)
        session.last_heard_ns = now_ns
        need_receipt = False
        for frame in frames:
            try:
                need_receipt |= self._on_frame(output, session, frame, now_ns)
            except ProtocolError as exc:
                return self._violation(output, sid, str(exc), _evidence(frame))
            if sid not in self.sessions:
                return output  # the peer closed it
        if need_receipt:
            self._frames(output, sid, [self._receipt_frame(now_ns)])
        return self._pump(output)

    def tick(self, now_ns: int) -> Output:
        self.now_ns = max(self.now_ns, now_ns)
        output = Output()
        for session in list(self.sessions.values()):
            silent = now_ns - session.last_heard_ns
            if silent >= self.timing.dead_after_ns:
                reason = f"peer silent for {silent / SECOND:.1f} s"
                output.close.append((session.sid, reason))
                output.merge(self.session_closed(session.sid, reason))
            elif session.ready and now_ns - session.ping_sent_ns >= self.timing.heartbeat_ns:
                session.ping_nonce += 1
                session.ping_sent_ns = now_ns
                self._frames(output, session.sid, [Ping(session.ping_nonce, now_ns)])
        self._maybe_checkpoint(output, now_ns)
        self.out.expire(now_ns, self.timing.resend_after_ns)
        return self._pump(output)

    # -- frames ----------------------------------------------------------------------------------

    def _on_frame(self, output: Output, session: _Session, frame: Frame, now_ns: int) -> bool:
        """Apply one frame; True when a receipt should follow."""
        match frame:
            case Hello():
                self._on_hello(output, session, frame)
            case EnvelopeFrame():
                self._on_envelope(output, frame, now_ns)
                return True
            case ReceiptFrame():
                self._on_receipt(output, frame)
            case Ping():
                self._frames(output, session.sid, [Pong(frame.nonce, frame.sent_ns, now_ns)])
            case Pong():
                self._on_pong(output, session, frame, now_ns)
            case CheckpointFrame():
                self._on_checkpoint(output, session.sid, frame)
            case Close():
                reason = f"peer closed: {frame.reason}"
                output.close.append((session.sid, reason))
                output.merge(self.session_closed(session.sid, reason))
            case (
                CallInvite()
                | CallRinging()
                | CallAnswer()
                | CallDecline()
                | CallBusy()
                | CallEnd()
                | CallKeepalive()
                | CallMedia()
            ):  # a call's signalling: the driver's call table applies it (protocol/calls.py)
                output.events.append(CallFrameReceived(session.sid, frame))
            case _:  # a file's bytes or word of it: the driver's to move
                output.events.append(TransferReceived(session.sid, frame))
        return False

    def _on_hello(self, output: Output, session: _Session, hello: Hello) -> None:
        if hello.link_id != self.config.link_id:
            raise ProtocolError("hello names another link")
        for lane in LANES:
            self.out.check_peer_claim(lane, hello.held[lane])
        if session.ready:
            raise ProtocolError("second hello on one session")
        session.ready = True
        session.peer_held = [h.seq for h in hello.held]
        output.events.append(SessionReady(session.sid))
        frames: list[Frame] = [self._receipt_frame(session.last_heard_ns)]
        if self.own_checkpoint is not None:  # the peer may have missed it on a lost session
            signed = self.own_checkpoint.signed
            frames.append(CheckpointFrame(signed.body_bytes, signed.signature))
        self._frames(output, session.sid, frames)

    def _on_envelope(self, output: Output, frame: EnvelopeFrame, now_ns: int) -> None:
        envelope = Envelope.from_parts(frame.body, frame.signature, self.config.peer)
        body = envelope.body
        if body.link_id != self.config.link_id or body.direction != self.config.peer_direction:
            raise ProtocolError("envelope for another link or direction")
        head = self.inbound[body.lane]
        if envelope.seq <= head.seq:
            return  # a copy of what we hold (a resend after a lost session): the receipt says so
        if envelope.seq > head.seq + 1:
            return  # the one before it is still on its way on another path; it comes again
        if body.prev_hash != head.hash:
            raise ProtocolError(
                f"envelope {envelope.lane.name} {envelope.seq} does not continue the chain"
            )
        self.inbound[body.lane] = Head(envelope.seq, envelope.hash)
        self.last_inbound_hash = envelope.hash
        self.last_activity_ns = now_ns
        output.batch.inbound.append(envelope)
        output.events.append(MessageReceived(envelope))
        if body.type == MessageType.ACKNOWLEDGEMENT and body.ref is not None:
            output.events.append(Acknowledged(Lane(body.ref.lane), body.ref.seq, envelope))
        self._check_clock(output, envelope, now_ns)

    def _check_clock(self, output: Output, envelope: Envelope, now_ns: int) -> None:
        """Held all the same: the peer has chained it, and refusing it would have the peer send
        it forever. Recorded with it, in the same batch, and raised (hotline.protocol.clock)."""
        skew = envelope.body.sent_ns - now_ns
        if abs(skew) <= self.timing.clock_fault_ns:
            return
        detail = (
            f"{envelope.lane.name} {envelope.seq} is dated {utc_text(envelope.body.sent_ns)} by "
            f"the peer's clock, received {utc_text(now_ns)} by ours: {skew_text(skew)}"
        )
        output.batch.audit.append(AuditRecord("clock fault", detail, envelope.hash))
        output.events.append(ClockFault(envelope, skew))

    def _on_receipt(self, output: Output, frame: ReceiptFrame) -> None:
        receipt = Receipt.verify(Signed(frame.body, frame.signature), self.config.peer)
        if receipt.body.link_id != self.config.link_id:
            raise ProtocolError("receipt for another link")
        if receipt.body.direction != self.config.direction:
            raise ProtocolError("receipt for the wrong direction")
        covered = self.out.apply_receipt(receipt)
        if covered:
            output.batch.receipt = receipt
            output.events.extend(Receipted(lane, seq) for lane, seq in covered)

    def _on_pong(self, output: Output, session: _Session, pong: Pong, now_ns: int) -> None:
        if pong.nonce != session.ping_nonce or pong.echo_ns != session.ping_sent_ns:
            return  # an answer to an older ping: no measurement
        session.rtt_ns = now_ns - pong.echo_ns
        offset = pong.peer_ns - (pong.echo_ns + now_ns) // 2
        output.events.append(RttMeasured(session.sid, session.rtt_ns, offset))

    def _on_checkpoint(self, output: Output, sid: int, frame: CheckpointFrame) -> None:
        checkpoint = Checkpoint.verify(Signed(frame.body, frame.signature), self.config.peer)
        body = checkpoint.body
        if body.link_id != self.config.link_id or body.direction != self.config.peer_direction:
            raise ProtocolError("checkpoint for another link or direction")
        heads = (checkpoint.outbound, checkpoint.inbound)
        if heads == self.peer_checkpoint_heads:
            # The peer offers the same checkpoint again: it is not in agreement yet, and may lack
            # ours. Answer with ours if it is still our view, but not more than once a heartbeat:
            # two stations whose views differ (traffic in flight) would otherwise answer each
            # other's answers as fast as the wire allows. The retry in tick() goes on regardless.
            if self.now_ns - self._checkpoint_sent_ns >= self.timing.heartbeat_ns:
                self._offer_checkpoint(output, sid)
            return
        if self.peer_checkpoint_heads and _not_newer(heads, self.peer_checkpoint_heads):
            return  # an older checkpoint that another path delivered late
        for lane in LANES:
            self.out.check_peer_claim(lane, checkpoint.inbound[lane])
            ours = self.inbound[lane]
            theirs = checkpoint.outbound[lane]
            if theirs.seq == ours.seq and theirs.hash != ours.hash:
                raise ProtocolError(f"checkpoint shows another history of {lane.name}")
        agreed = checkpoint.outbound == tuple(self.inbound) and checkpoint.inbound == tuple(
            self.out.heads
        )
        self.peer_checkpoint_heads = heads
        output.batch.checkpoints.append(("peer", checkpoint))
        output.events.append(CheckpointReceived(checkpoint, agreed))
        if not agreed:  # the peer may have missed our newest checkpoint on a lost session
            self._offer_checkpoint(output, sid)

    def _offer_checkpoint(self, output: Output, sid: int) -> None:
        """Send our newest checkpoint again, if it still states where we are."""
        own = self.own_checkpoint
        if own is not None and (own.outbound, own.inbound) == self._heads():
            self._checkpoint_sent_ns = self.now_ns
            signed = own.signed
            self._frames(output, sid, [CheckpointFrame(signed.body_bytes, signed.signature)])

    # -- helpers ---------------------------------------------------------------------------------

    def _receipt_frame(self, now_ns: int) -> ReceiptFrame:
        receipt = Receipt.create(
            self.config.identity,
            self.config.link_id,
            self.config.peer_direction,
            tuple(self.inbound),
            now_ns,
        )
        return ReceiptFrame(receipt.signed.body_bytes, receipt.signed.signature)

    def _heads(self) -> tuple[Heads, Heads]:
        return tuple(self.out.heads), tuple(self.inbound)

    def _maybe_checkpoint(self, output: Output, now_ns: int) -> None:
        heads = self._heads()
        session = self._best_session()
        latest = self.own_checkpoint
        if session is None:
            return
        if latest and heads == (latest.outbound, latest.inbound):
            if not self.in_agreement and (
                now_ns - self._checkpoint_sent_ns >= self.timing.checkpoint_retry_ns
            ):
                self._offer_checkpoint(output, session.sid)
            return
        if now_ns - self.last_activity_ns < self.timing.checkpoint_idle_ns:
            return
        checkpoint = Checkpoint.create(
            self.config.identity,
            self.config.link_id,
            self.config.direction,
            heads[0],
            heads[1],
            now_ns,
        )
        self.own_checkpoint = checkpoint
        self._checkpoint_sent_ns = now_ns
        output.batch.checkpoints.append(("local", checkpoint))
        signed = checkpoint.signed
        self._frames(output, session.sid, [CheckpointFrame(signed.body_bytes, signed.signature)])

    def carrier(self) -> int | None:
        """The session our traffic goes on now, if any is ready."""
        session = self._best_session()
        return session.sid if session is not None else None

    def _best_session(self) -> _Session | None:
        """The session that carries our traffic: the one it is on, for as long as that one is
        ready and heard from lately; else the ready session with the lowest RTT, preferring
        those heard from lately (a path that went silent keeps its last RTT, and must not keep
        the traffic until declared dead).

        Traffic does not follow every change of RTT: under load the busy session's heartbeats
        wait behind the data, its RTT rises, and a switch lets envelopes on the new session
        overtake those still queued on the old one, which the peer drops until they come again
        (a resend interval later). So it moves only when it must."""
        quiet_ns = 2 * self.timing.heartbeat_ns
        carrier = self.sessions.get(self._carrier) if self._carrier is not None else None
        if carrier and carrier.ready and self.now_ns - carrier.last_heard_ns <= quiet_ns:
            return carrier
        ready = [s for s in self.sessions.values() if s.ready]
        if not ready:
            return None

        def rank(s: _Session) -> tuple[bool, bool, int, int]:
            silent = self.now_ns - s.last_heard_ns > quiet_ns
            return (silent, s.rtt_ns is None, s.rtt_ns or 0, s.sid)

        best = min(ready, key=rank)
        self._carrier = best.sid
        return best

    def _pump(self, output: Output) -> Output:
        """Put what is due on the wire: FLASH and IMMEDIATE on every ready session (each gets
        its own copy, in order; the peer keeps the first and drops the rest by seq), so a path
        that died without a word costs them nothing while another is up; ROUTINE and PRIORITY
        on the carrier only, within its window (outbound.py)."""
        carrier = self._best_session()
        if carrier is None:
            return output
        for session in self.sessions.values():
            if not session.ready:
                continue
            due = self.out.due(session.sid, session.peer_held, self.now_ns, session is carrier)
            if due:
                frames: list[Frame] = [EnvelopeFrame(e.body_bytes, e.signature) for e in due]
                self._frames(output, session.sid, frames)
        return output

    def _frames(self, output: Output, sid: int, frames: list[Frame]) -> Output:
        output.frames.extend((sid, frame) for frame in frames)
        return output

    def _violation(self, output: Output, sid: int, reason: str, evidence: bytes) -> Output:
        """Refuse, close the session with the reason, and keep the evidence."""
        output.batch.audit.append(AuditRecord("protocol violation", reason, evidence))
        output.events.append(ProtocolViolation(sid, reason))
        output.close.append((sid, reason))
        self._frames(output, sid, [Close(1, reason[:200])])
        output.merge(self.session_closed(sid, reason))
        return output


def _not_newer(heads: tuple[Heads, Heads], than: tuple[Heads, Heads]) -> bool:
    """Chains only grow: a checkpoint with no head beyond another's was made before it."""
    return all(
        new.seq <= old.seq
        for new_side, old_side in zip(heads, than, strict=True)
        for new, old in zip(new_side, old_side, strict=True)
    )


def _evidence(frame: Frame) -> bytes:
    body = getattr(frame, "body", b"")
    signature = getattr(frame, "signature", b"")
    return body + signature if isinstance(body, bytes) else b""
