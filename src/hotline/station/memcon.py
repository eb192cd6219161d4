"""The record of conversation (memcon) of a call: after the call, a note-taker writes it at this
station, a second person reviews it and a supervisor certifies it, as a translation is reviewed
and certified (docs/link.md §7, docs/console.md "The calls page").

Each step is an annotation (hotline.protocol.annotation) on the call record this station wrote
in its own chain (an envelope of type CALL_RECORD, docs/calls.md §4), signed by the station and
naming the person:

    memcon          the record, in the station's language (kind 4); a call may have several
                    versions until one is certified, and none after
    review          a second person's check of one memcon: never its author, nor its certifier
    certification   a supervisor's, of a reviewed memcon: never its author nor a reviewer, once;
                    and one certified record of conversation per call

The rules are those of translations (`check_problem`), checked with the annotation's storing as
one step (one at a time per desk), so that two requests at the same instant cannot both pass a
check that only one of them may. `hotline verify` checks them again (archive/workflow.py).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from hotline.errors import LocalError
from hotline.protocol.annotation import Annotation, Kind, check_problem
from hotline.protocol.callrecord import CallRecord, decode_record
from hotline.protocol.envelope import Envelope, Lane, MessageType, decode_envelope
from hotline.protocol.statements import Signed
from hotline.station.annotations import sign_annotation

if TYPE_CHECKING:
    from hotline.station.link_runtime import LinkRuntime

__all__ = ["MemconDesk", "MemconRefused", "NoCallRecord", "memcon_status"]

RECORD_LANE = Lane.ROUTINE  # where a station writes its call records (docs/calls.md §4)


class MemconRefused(LocalError):
    """A record of conversation, review or certification the rules do not allow, or about a
    call record that is not here."""


class NoCallRecord(MemconRefused):
    """No call record of ours where one was named."""


class MemconDesk:
    def __init__(self) -> None:
        self._checking = asyncio.Lock()  # a check and the annotation it allows: one at a time

    # -- reading ---------------------------------------------------------------------------------

    async def record(self, runtime: LinkRuntime, seq: int) -> tuple[Envelope, CallRecord]:
        """Our call record at ROUTINE `seq` of this link, and what it says."""
        config = runtime.link.config
        link_id, me = config.link_id, config.identity.public
        data = await runtime.store.call(lambda s: s.outbound(link_id, int(RECORD_LANE), seq))
        envelope = decode_envelope(data, me) if data is not None else None
        if envelope is None or envelope.body.type != MessageType.CALL_RECORD:
            raise NoCallRecord(f"no call record of ours at ROUTINE {seq} on {runtime.link.name}")
        return envelope, decode_record(envelope.body.text)

    async def annotations(self, runtime: LinkRuntime, seq: int) -> list[Annotation]:
        """The memcons of our call record at ROUTINE `seq`, their reviews and certifications,
        in the order made (not the translations of the peer's envelope at the same place)."""
        found = await self.annotations_of(runtime, [seq])
        return found[seq]

    async def annotations_of(
        self, runtime: LinkRuntime, seqs: list[int]
    ) -> dict[int, list[Annotation]]:
        """The same for several call records, in one visit to the store (the calls page)."""
        config = runtime.link.config
        link_id, me, ours = config.link_id, config.identity.public, config.direction
        lane = int(RECORD_LANE)
        rows = await runtime.store.call(
            lambda s: {seq: s.annotations_of(link_id, lane, seq) for seq in seqs}
        )
        verified = {
            seq: [Annotation.verify(Signed.from_bytes(row), me) for row in found]
            for seq, found in rows.items()
        }
        return {
            seq: [a for a in found if a.body.direction == ours] for seq, found in verified.items()
        }

    # -- writing and checking --------------------------------------------------------------------

    async def write(
        self, runtime: LinkRuntime, seq: int, language: str, text: str, person: str, role: str
    ) -> Annotation:
        """A record of conversation of the call: refused once one of the call's is certified."""
        if not text.strip():
            raise MemconRefused("a record of conversation needs a text")
        async with self._checking:
            envelope, _record = await self.record(runtime, seq)
            if memcon_status(await self.annotations(runtime, seq)) == "certified":
                raise MemconRefused("this call's record of conversation is certified already")
            return await sign_annotation(
                runtime, envelope, Kind.MEMCON, language, text, person, role
            )

    async def check(
        self, kind: Kind, runtime: LinkRuntime, seq: int, refers: bytes, remark: str,
        person: str, role: str,
    ) -> Annotation:  # fmt: skip
        """A review or a certification of one memcon of the call, by translation's rules, and
        no certification once another memcon of the call is certified."""
        if kind not in (Kind.REVIEW, Kind.CERTIFICATION):
            raise ValueError(f"{kind!r} does not check a record of conversation")
        async with self._checking:
            envelope, _record = await self.record(runtime, seq)
            annotations = await self.annotations(runtime, seq)
            memcon = next((a for a in annotations if a.hash == refers), None)
            if memcon is None or memcon.kind != Kind.MEMCON:
                raise MemconRefused("no such record of conversation of this call")
            if problem := check_problem(kind, memcon, annotations, person):
                raise MemconRefused(problem)
            if kind == Kind.CERTIFICATION and memcon_status(annotations) == "certified":
                raise MemconRefused("another record of conversation of this call is certified")
            return await sign_annotation(
                runtime, envelope, kind, memcon.body.language, remark, person, role,
                refers=refers,
            )  # fmt: skip


def memcon_status(annotations: list[Annotation]) -> str:
    """How far the call's record of conversation has come: "none" (nobody has written one),
    "written", "reviewed" (a memcon has a review) or "certified"."""
    memcons = {a.hash for a in annotations if a.kind == Kind.MEMCON}
    checks: dict[Kind, set[bytes]] = {Kind.REVIEW: set(), Kind.CERTIFICATION: set()}
    for a in annotations:
        if a.kind in checks and a.body.refers in memcons:
            checks[a.kind].add(a.body.refers)
    if checks[Kind.CERTIFICATION]:
        return "certified"
    if checks[Kind.REVIEW]:
        return "reviewed"
    return "written" if memcons else "none"
