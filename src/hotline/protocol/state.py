"""What flows between the link core and its driver: configuration, the state a store restores,
the batch a store must commit, the events people see, and the output of every call.

The contract (docs/link.md): for every `Output`, the driver first commits `batch` in one
transaction, and only then sends `packets`, closes `close` and shows `events`. If the commit fails,
the driver throws the core away and rebuilds it from the store, exactly as after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hotline.crypto.identity import PublicIdentity, StationIdentity
from hotline.protocol.callframes import CallFrame
from hotline.protocol.envelope import LANES, Envelope, Lane, genesis_hash
from hotline.protocol.frames import Frame, TransferFrame, encode_packets
from hotline.protocol.statements import Checkpoint, Head, Heads, Receipt

__all__ = [
    "Acknowledged",
    "AuditRecord",
    "Batch",
    "CallFrameReceived",
    "CheckpointReceived",
    "ClockFault",
    "Event",
    "LinkConfig",
    "LinkState",
    "MessageReceived",
    "Output",
    "ProtocolViolation",
    "Receipted",
    "RttMeasured",
    "SessionClosed",
    "SessionReady",
    "TransferReceived",
    "empty_heads",
]


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """One side's view of a link: its keys and the peer it pinned."""

    link_id: bytes
    identity: StationIdentity
    peer: PublicIdentity
    # 0 for the station whose fingerprint sorts first, 1 for the other: the same on both sides.
    direction: int = field(init=False)
    peer_direction: int = field(init=False)

    def __post_init__(self) -> None:
        direction = 0 if self.identity.public.fingerprint < self.peer.fingerprint else 1
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "peer_direction", 1 - direction)


def empty_heads(link_id: bytes, direction: int) -> Heads:
    return tuple(Head(0, genesis_hash(link_id, direction, lane)) for lane in LANES)


@dataclass(frozen=True, slots=True)
class LinkState:
    """Everything a core needs to resume, as the store holds it durably."""

    outbound: Heads  # per lane, the last envelope we accepted
    receipted: Heads  # per lane, the last of ours the peer's newest receipt covers
    unreceipted: tuple[Envelope, ...]  # ours, accepted but not yet receipted, in seq order
    inbound: Heads  # per lane, the last of the peer's envelopes we hold
    last_inbound_hash: bytes  # the last envelope we received, in any lane (or 32 zero bytes)
    checkpoint: Checkpoint | None  # our newest checkpoint
    peer_checkpoint: tuple[Heads, Heads] | None  # the heads of the peer's newest checkpoint

    @classmethod
    def new(cls, config: LinkConfig) -> LinkState:
        ours = empty_heads(config.link_id, config.direction)
        theirs = empty_heads(config.link_id, config.peer_direction)
        return cls(ours, ours, (), theirs, bytes(32), None, None)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Something a person must be able to find later: a refusal, and the evidence for it."""

    action: str
    detail: str
    evidence: bytes = b""
    actor: str = "link"  # the link itself; or the door a person's act came in by ("api", "cli:...")


@dataclass(slots=True)
class Batch:
    """What the driver must commit in one transaction before acting on an Output."""

    outbound: list[Envelope] = field(default_factory=list)
    inbound: list[Envelope] = field(default_factory=list)
    receipt: Receipt | None = None  # the peer's newest receipt: our proof of delivery
    checkpoints: list[tuple[str, Checkpoint]] = field(default_factory=list)  # ("local"|"peer", cp)
    audit: list[AuditRecord] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.outbound or self.inbound or self.receipt or self.checkpoints or self.audit)

    def merge(self, other: Batch) -> None:
        self.outbound += other.outbound
        self.inbound += other.inbound
        self.receipt = other.receipt or self.receipt
        self.checkpoints += other.checkpoints
        self.audit += other.audit


# -- events: what the station shows people and records ---------------------------------------


@dataclass(frozen=True, slots=True)
class MessageReceived:
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class ClockFault:
    """The peer's envelope, just held, is dated more than the bound (`Timing.clock_fault_ns`)
    from our clock: `skew_ns` = its `sent_ns` minus our time of arrival (hotline.protocol.clock).
    It is held like any other; this says that its date is not to be believed."""

    envelope: Envelope
    skew_ns: int


@dataclass(frozen=True, slots=True)
class Receipted:
    """The peer station durably holds our envelope (lane, seq)."""

    lane: Lane
    seq: int


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """A person at the peer acknowledged our envelope (lane, seq)."""

    lane: Lane
    seq: int
    by: Envelope


@dataclass(frozen=True, slots=True)
class CheckpointReceived:
    checkpoint: Checkpoint
    agreed: bool  # the peer's heads are exactly ours, seen from the other side


@dataclass(frozen=True, slots=True)
class SessionReady:
    sid: int


@dataclass(frozen=True, slots=True)
class SessionClosed:
    sid: int
    reason: str


@dataclass(frozen=True, slots=True)
class RttMeasured:
    sid: int
    rtt_ns: int
    clock_offset_ns: int


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    sid: int
    reason: str


@dataclass(frozen=True, slots=True)
class TransferReceived:
    """An attachment frame from the peer: files are moved by the driver (hotline.protocol.transfer
    has the rules), beside the chains, without a commit per chunk."""

    sid: int
    frame: TransferFrame


@dataclass(frozen=True, slots=True)
class CallFrameReceived:
    """A call signalling frame from the peer: the driver applies it to its call table
    (hotline.protocol.calls); a call's rules never close the link's session."""

    sid: int
    frame: CallFrame


Event = (
    MessageReceived
    | ClockFault
    | Receipted
    | Acknowledged
    | CheckpointReceived
    | SessionReady
    | SessionClosed
    | RttMeasured
    | ProtocolViolation
    | TransferReceived
    | CallFrameReceived
)


@dataclass(slots=True)
class Output:
    batch: Batch = field(default_factory=Batch)
    frames: list[tuple[int, Frame]] = field(default_factory=list)  # (session id, frame)
    close: list[tuple[int, str]] = field(default_factory=list)  # (session id, reason)
    events: list[Event] = field(default_factory=list)

    @property
    def packets(self) -> list[tuple[int, bytes]]:
        """The frames packed per session, as few packets as fit: merging the outputs of many
        sends (group commit) also puts their envelopes in one packet, so the peer commits and
        receipts them together."""
        by_session: dict[int, list[Frame]] = {}
        for sid, frame in self.frames:
            by_session.setdefault(sid, []).append(frame)
        return [(sid, p) for sid, frames in by_session.items() for p in encode_packets(frames)]

    def merge(self, other: Output) -> Output:
        self.batch.merge(other.batch)
        self.frames += other.frames
        self.close += other.close
        self.events += other.events
        return self
