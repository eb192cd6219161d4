"""The calls page (docs/console.md, "The calls page"): every call of this station, live ones from
the call desks and past ones from the call records this station wrote in its own chain (not
only the desks' recent memory), with precedence, who called and who answered, duration, end
reason, recordings and how far its record of conversation has come; missed calls, which are
alarms (hotline.station.discipline) until a person here acknowledges them; one record in full;
and its recordings, played in the page by those allowed to hear them.

A recording is served only when a call record of ours names it, from the station's recordings
directory, as `audio/ogg` (with `nosniff`, as every answer of the console: app.py), and only
while its bytes are those the record sealed (their size and SHA-256)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse

from hotline.console.auth import Session
from hotline.console.messages import Number, annotation_json
from hotline.console.security import Acknowledger, ConsoleDep, Viewer, allowed
from hotline.protocol.callrecord import CallRecord, Party, Recording, decode_record
from hotline.protocol.envelope import decode_envelope
from hotline.station.memcon import MemconRefused, memcon_status

if TYPE_CHECKING:
    from hotline.station.link_runtime import LinkRuntime
    from hotline.station.memcon import MemconDesk
    from hotline.station.missedcalls import MissedCall

__all__ = ["is_missed", "record_json", "router"]

router = APIRouter(prefix="/console")
Hearer = Annotated[Session, Depends(allowed("hear"))]
FileName = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[^/\\]+$")]
AUDIO = "audio/ogg"  # Ogg Opus (RFC 7845): what the station records
_AS_RECORDED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime): its SHA-256, checked


def is_missed(record: CallRecord) -> bool:
    """A call that rang here and nobody answered: the ring timed out, or the caller gave up
    (what the call table reports as CallMissed; a declined or busy call was not missed)."""
    return (
        record.direction == "incoming"
        and record.answerer is None
        and (record.end_reason == "no answer" or record.end_reason.startswith("ended by peer:"))
    )


def record_json(
    record: CallRecord, link: str, seq: int, waiting: bool, memcon: str
) -> dict[str, Any]:
    """One ended call, from this station's record of it."""
    answered = record.answered_ns
    return {
        "id": record.call_id,
        "link": link,
        "state": "ended",
        "direction": record.direction,
        "precedence": record.precedence,
        "caller": _party(record.caller),
        "answerer": _party(record.answerer) if record.answerer is not None else None,
        "invited_ns": record.invited_ns,
        "answered_ns": answered,
        "ended_ns": record.ended_ns,
        "duration_ns": record.ended_ns - answered if answered is not None else None,
        "end_reason": record.end_reason,
        "transport": record.transport,
        "recorded": record.recorded,
        "recordings": msgspec.to_builtins(record.recordings),  # [{name, sha256, size}]
        "participants": msgspec.to_builtins(record.participants),
        "missed": is_missed(record),
        "missed_waiting": waiting,  # a missed call nobody here has acknowledged: an alarm
        "record": {"seq": seq},
        "memcon": memcon,
    }


@router.get("/call-log")
async def call_log(
    _: Viewer, console: ConsoleDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> dict[str, Any]:
    """Calls in progress, then the newest `limit` ended ones of every link, newest first, from
    our call records; and the missed calls waiting for a person to acknowledge them."""
    live: list[dict[str, Any]] = []
    ended: list[dict[str, Any]] = []
    missed: list[dict[str, Any]] = []
    for name, runtime in console.station.links.items():
        desk = runtime.calls
        if desk is None:
            continue
        live += [_live(runtime, s) for c in desk.live if (s := desk.status(c)) is not None]
        ended += await _records(console.station.translation.memcons, runtime, limit)
        missed += [{**c.to_json(), "link": name} for c in desk.missed.values()]
    ended.sort(key=lambda c: c["invited_ns"], reverse=True)
    return {"calls": live + ended[:limit], "missed": missed}


@router.post("/calls/{call_id}/missed/acknowledge")
async def acknowledge_missed(
    call_id: str, session: Acknowledger, console: ConsoleDep
) -> dict[str, Any]:
    """A person here has seen the missed call: its alarm clears now (not at the next review)."""
    found = _missed(console, call_id)
    if found is None:
        raise HTTPException(404, "no missed call of that id waits for acknowledgement")
    name, call = found
    runtime = console.link(name)
    assert runtime.calls is not None
    await runtime.calls.acknowledge_missed(call.call_id)
    await console.audit(
        session.operator, "missed call acknowledged",
        f"{name}: {call.lane.name} call {call_id[:8]} from {call.caller} ({call.caller_role})",
        name,
    )  # fmt: skip
    await console.station.discipline.review(time.time_ns())
    return {"id": call_id, "link": name, "acknowledged": True}


@router.get("/call-records/{name}/{seq}")
async def call_record(name: str, seq: Number, _: Viewer, console: ConsoleDep) -> dict[str, Any]:
    """One call in full, from our record of it, with its records of conversation, their reviews
    and certifications (oldest first)."""
    runtime = console.link(name)
    desk = console.station.translation.memcons
    try:
        _envelope, record = await desk.record(runtime, seq)
    except MemconRefused as exc:
        raise HTTPException(404, str(exc)) from None
    annotations = await desk.annotations(runtime, seq)
    waiting = runtime.calls is not None and bytes.fromhex(record.call_id) in runtime.calls.missed
    shown = record_json(record, name, seq, waiting, memcon_status(annotations))
    return {**shown, "annotations": [annotation_json(a) for a in annotations]}


@router.get("/call-records/{name}/{seq}/recordings/{file}")
async def recording(
    name: str, seq: Number, file: FileName, request: Request, session: Hearer,
    console: ConsoleDep,
) -> FileResponse:  # fmt: skip
    """A recording our record of the call names, as recorded, to play in the page. Each time
    it is played from the start is audited (a player asks again for the parts it seeks to)."""
    runtime = console.link(name)
    try:
        _envelope, record = await console.station.translation.memcons.record(runtime, seq)
    except MemconRefused as exc:
        raise HTTPException(404, str(exc)) from None
    named = next((r for r in record.recordings if r.name == file), None)
    if named is None or runtime.calls is None:
        raise HTTPException(404, "the record of this call names no such recording")
    path = runtime.calls.recordings / named.name  # a bare name (decode_record refuses a path)
    if not await asyncio.to_thread(_as_recorded, path, named):
        raise HTTPException(404, "the station holds no such recording as it was recorded")
    if request.headers.get("range", "bytes=0-").startswith("bytes=0-"):
        await console.audit(
            session.operator, "recording played", f"{name} {seq}: {named.name}", name
        )
    return FileResponse(
        path, media_type=AUDIO, filename=named.name, content_disposition_type="inline"
    )


# -- helpers -------------------------------------------------------------------------------------


def _party(party: Party) -> dict[str, str]:
    return {"station": party.station, "person": party.person, "role": party.role}


def _live(runtime: LinkRuntime, status: dict[str, Any]) -> dict[str, Any]:
    """A call in progress, in the shape of an ended one (the stations named)."""
    peer = runtime.link.peer_card.body.name
    here = runtime.calls.own_name if runtime.calls is not None else ""
    caller, answerer = (here, peer) if status["direction"] == "outgoing" else (peer, here)
    answered = status["answerer"]
    return {
        **status,
        "caller": {**status["caller"], "station": caller},
        "answerer": {**answered, "station": answerer} if answered is not None else None,
        "duration_ns": None,
        "missed": False,
        "missed_waiting": False,
        "record": None,
        "memcon": "none",
    }


async def _records(desk: MemconDesk, runtime: LinkRuntime, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` call records of ours on a link, each with its memcon's standing."""
    link_id, name = runtime.link.config.link_id, runtime.link.name
    stored = await runtime.store.call(lambda s: s.recent_call_records(link_id, limit))
    envelopes = [decode_envelope(bytes(e), None) for e in stored]
    annotations = await desk.annotations_of(runtime, [e.seq for e in envelopes])
    missed = runtime.calls.missed if runtime.calls is not None else {}
    shown = []
    for envelope in envelopes:
        record = decode_record(envelope.body.text)
        waiting = bytes.fromhex(record.call_id) in missed
        status = memcon_status(annotations[envelope.seq])
        shown.append(record_json(record, name, envelope.seq, waiting, status))
    return shown


def _missed(console: ConsoleDep, call_id: str) -> tuple[str, MissedCall] | None:
    """The link and the missed call of that id, if one waits for acknowledgement."""
    try:
        raw = bytes.fromhex(call_id)
    except ValueError:
        return None
    for name, runtime in console.station.links.items():
        if runtime.calls is not None and (call := runtime.calls.missed.get(raw)) is not None:
            return name, call
    return None


def _as_recorded(path: FilePath, named: Recording) -> bool:
    """Whether the file is the one the record sealed: its size and SHA-256 (read once per
    version of the file: a player asks for it again and again as it plays and seeks)."""
    try:
        stat = path.stat()
    except OSError:
        return False
    if stat.st_size != named.size:
        return False
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _AS_RECORDED:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        if len(_AS_RECORDED) > 256:  # a few hundred files checked: start again
            _AS_RECORDED.clear()
        _AS_RECORDED[key] = digest.hexdigest()
    return _AS_RECORDED[key] == named.sha256
