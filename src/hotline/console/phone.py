"""The console's phone: place, answer, decline and end calls, and take part in one from the page
through WebRTC to this station (hotline.station.webrtc). Who may do what is in the role table
(docs/console.md): `call` places and answers principal calls (no two-person rule: a leader does
not wait for a second signature to speak), `interpret` joins as interpreter, `listen` as a muted
note-taker. Every join and leave is audited; the call record lists them."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from hotline.console.auth import Session
from hotline.console.security import ConsoleDep, SignedIn, Viewer, allowed
from hotline.errors import CallRefused
from hotline.protocol.calls import CallState
from hotline.protocol.envelope import Lane
from hotline.station.call_api import act_on_call, find_call
from hotline.station.calls import CallDesk, call_json
from hotline.station.participants import Role
from hotline.station.webrtc import BrowserLeg

__all__ = ["router"]

router = APIRouter(prefix="/console")
Caller = Annotated[Session, Depends(allowed("call"))]
JOIN_PERMISSION: dict[Role, str] = {"principal": "call", "interpreter": "interpret",
                                    "listener": "listen"}  # fmt: skip
MAX_SDP = 20_000
_AUDITS: set[asyncio.Task[None]] = set()  # audits of leaving, written after the request


class NewCall(BaseModel):
    link: str = Field(min_length=1, max_length=100)
    precedence: Literal["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"] = "ROUTINE"


class Decline(BaseModel):
    reason: str = Field(default="declined", min_length=1, max_length=200)


class Join(BaseModel):
    sdp: str = Field(min_length=10, max_length=MAX_SDP)
    role: Role = "principal"


def _desk(console: Any, call_id: str) -> tuple[CallDesk, bytes]:
    return find_call(console.station, call_id)


@router.get("/ringing")
async def ringing(console: ConsoleDep) -> dict[str, Any]:
    """Without signing in: whether a call rings here, and whether one of them is FLASH (never
    who calls), so that a console nobody is signed in to still rings."""
    desks = [r.calls for r in console.station.links.values() if r.calls is not None]
    calls = [
        call
        for desk in desks
        if (call := desk.table.live) is not None and call.state == CallState.RINGING_IN
    ]
    return {"ringing": len(calls), "flash": any(c.lane == Lane.FLASH for c in calls)}


@router.get("/calls")
async def calls(_: Viewer, console: ConsoleDep) -> dict[str, Any]:
    result: list[dict[str, Any]] = []
    for name, runtime in console.station.links.items():
        if runtime.calls is not None:
            result += [{**c, "link": name} for c in runtime.calls.calls()]
    return {"calls": result}


@router.post("/calls", status_code=201)
async def place(new: NewCall, session: Caller, console: ConsoleDep) -> dict[str, Any]:
    runtime = console.station.links.get(new.link)
    if runtime is None or runtime.calls is None:
        raise HTTPException(404, f"no link named {new.link!r}")
    try:
        call = await runtime.calls.place(Lane[new.precedence], session.operator, "principal")
    except CallRefused as exc:
        raise HTTPException(409, str(exc)) from None
    await console.audit(
        session.operator, "call placed", f"{new.precedence} call to {new.link}", new.link
    )
    return {**call_json(call), "link": new.link}


@router.post("/calls/{call_id}/answer")
async def answer(call_id: str, session: Caller, console: ConsoleDep) -> dict[str, Any]:
    desk, raw = _desk(console, call_id)
    result = act_on_call(lambda: desk.answer(raw, session.operator, "principal"), desk)
    await console.audit(
        session.operator, "call answered", f"call {call_id[:8]}", desk.runtime.link.name
    )
    return result


@router.post("/calls/{call_id}/decline")
async def decline(
    call_id: str, body: Decline, session: Caller, console: ConsoleDep
) -> dict[str, Any]:
    desk, raw = _desk(console, call_id)
    result = act_on_call(lambda: desk.decline(raw, body.reason), desk)
    await console.audit(
        session.operator, "call declined", f"call {call_id[:8]}", desk.runtime.link.name
    )
    return result


@router.post("/calls/{call_id}/end")
async def end(call_id: str, session: Caller, console: ConsoleDep) -> dict[str, Any]:
    desk, raw = _desk(console, call_id)
    result = act_on_call(lambda: desk.end(raw, "hung up"), desk)
    await console.audit(
        session.operator, "call ended", f"call {call_id[:8]}", desk.runtime.link.name
    )
    return result


@router.post("/calls/{call_id}/join")
async def join(
    call_id: str, body: Join, request: Request, session: SignedIn, console: ConsoleDep
) -> dict[str, str]:
    """The page's WebRTC offer (its candidates gathered); the station's answer. The person
    takes part as `role` if their role table allows it."""
    if JOIN_PERMISSION[body.role] not in session.permissions:
        raise HTTPException(403, f"the {session.role.value} role may not join as {body.role}")
    desk, raw = _desk(console, call_id)
    call = desk.table.get(raw)
    if call is None or call.state == CallState.ENDED:
        raise HTTPException(409, "the call has ended")
    try:
        leg = BrowserLeg(desk, raw, session.operator, body.role, 48 * call.frame_ms)
    except CallRefused as exc:
        raise HTTPException(409, str(exc)) from None
    client = request.client.host if request.client is not None else "127.0.0.1"
    sdp = await leg.answer(body.sdp, client)
    person = session.operator
    link = desk.runtime.link.name
    await console.audit(person, "call joined", f"call {call_id[:8]} as {body.role}", link)

    def left() -> None:
        task = asyncio.get_running_loop().create_task(
            console.audit(person, "call left", f"call {call_id[:8]}", link)
        )
        _AUDITS.add(task)
        task.add_done_callback(_AUDITS.discard)

    leg.on_close = left
    return {"sdp": sdp, "type": "answer", "participant": leg.participant.id}
