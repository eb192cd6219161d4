"""The service API's calls: place, answer, decline, end and list them, and the local media
connection through which a person takes part (a WebSocket under the same bearer token).

The media connection carries 48 kHz mono signed 16-bit little-endian PCM, one call frame per
binary message, both ways: what the person says, and what they should hear (the peer and the other
local speakers, never their own voice). Text messages are JSON notices: `joined` first (with the
frame size), `ended` last. The console's browser phone joins over WebRTC instead
(`station/webrtc.py`), as a participant of the same kind.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field

from hotline.errors import CallRefused
from hotline.protocol.envelope import Lane
from hotline.station.calls import CallDesk, call_json
from hotline.station.doors import audit_api_act
from hotline.station.participants import Participant, Role

if TYPE_CHECKING:
    from hotline.station.runtime import Station

__all__ = ["act_on_call", "add_call_routes", "find_call", "keep_newest"]

LaneName = Literal["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"]
RoleName = Literal["principal", "interpreter", "listener"]
OUTBOUND_FRAMES = 25  # half a second of audio may wait for a slow client; then the oldest go


class NewCall(BaseModel):
    precedence: LaneName = "ROUTINE"
    person: str = Field(min_length=1, max_length=200)
    role: str = Field(default="principal", min_length=1, max_length=200)


class Answer(BaseModel):
    person: str = Field(min_length=1, max_length=200)
    role: str = Field(default="principal", min_length=1, max_length=200)


class Reason(BaseModel):
    reason: str = Field(default="hung up", min_length=1, max_length=200)


def _desk(station: Station, name: str) -> CallDesk:
    runtime = station.links.get(name)
    if runtime is None or runtime.calls is None:
        raise HTTPException(404, f"no link named {name!r}")
    return runtime.calls


def _call_id(call_id: str) -> bytes:
    try:
        return bytes.fromhex(call_id)
    except ValueError:
        raise HTTPException(404, "no such call") from None


def find_call(station: Station, call_id: str) -> tuple[CallDesk, bytes]:
    """The desk of the link a call is on, and the call's id as bytes; 404 if there is none."""
    raw = _call_id(call_id)
    for runtime in station.links.values():
        desk = runtime.calls
        if desk is not None and desk.table.get(raw) is not None:
            return desk, raw
    raise HTTPException(404, "no such call")


def add_call_routes(app: FastAPI, station: Station) -> None:
    @app.post("/api/v1/links/{name}/calls", status_code=201)
    async def place_call(name: str, body: NewCall, request: Request) -> dict[str, Any]:
        """Ring the peer: the call is invited with its precedence, and says whether it is
        recorded before anyone answers."""
        desk = _desk(station, name)
        try:
            call = await desk.place(Lane[body.precedence], body.person, body.role)
        except CallRefused as exc:
            raise HTTPException(409, str(exc)) from None
        what = f"{body.precedence} call {call.call_id.hex()[:8]} to {name} by {body.person}"
        await audit_api_act(station, request, "call placed", what)
        return {**call_json(call), "link": name}

    @app.get("/api/v1/calls")
    async def list_calls() -> dict[str, Any]:
        """Calls in progress, then the most recent that ended, per link; and missed calls."""
        calls: list[dict[str, Any]] = []
        missed: list[dict[str, Any]] = []
        for runtime in station.links.values():
            if runtime.calls is not None:
                calls += [{**c, "link": runtime.link.name} for c in runtime.calls.calls()]
                missed += [
                    {**c.to_json(), "link": runtime.link.name}
                    for c in runtime.calls.missed.values()
                ]
        return {"calls": calls, "missed": missed}

    @app.get("/api/v1/calls/{call_id}")
    async def get_call(call_id: str) -> dict[str, Any]:
        desk, raw = find_call(station, call_id)
        status = desk.status(raw)
        if status is None:
            call = desk.table.get(raw)
            assert call is not None
            return {**call_json(call), "link": desk.name}
        return status

    @app.post("/api/v1/calls/{call_id}/answer")
    async def answer_call(call_id: str, body: Answer, request: Request) -> dict[str, Any]:
        desk, raw = find_call(station, call_id)
        answered = act_on_call(lambda: desk.answer(raw, body.person, body.role), desk)
        what = f"call {call_id[:8]} by {body.person}"
        await audit_api_act(station, request, "call answered", what)
        return answered

    @app.post("/api/v1/calls/{call_id}/decline")
    async def decline_call(call_id: str, body: Reason, request: Request) -> dict[str, Any]:
        desk, raw = find_call(station, call_id)
        declined = act_on_call(lambda: desk.decline(raw, body.reason), desk)
        await audit_api_act(station, request, "call declined", f"call {call_id[:8]}")
        return declined

    @app.post("/api/v1/calls/{call_id}/end")
    async def end_call(call_id: str, body: Reason, request: Request) -> dict[str, Any]:
        desk, raw = find_call(station, call_id)
        ended = act_on_call(lambda: desk.end(raw, body.reason), desk)
        await audit_api_act(station, request, "call ended", f"call {call_id[:8]}")
        return ended

    @app.post("/api/v1/calls/{call_id}/missed/acknowledge")
    async def acknowledge_missed(call_id: str, request: Request) -> dict[str, Any]:
        """A person has seen the missed call: its alarm clears (for good: it is kept in the
        store until then, across restarts, long after the call table has forgotten the call)."""
        raw = _call_id(call_id)
        desks = [r.calls for r in station.links.values() if r.calls is not None]
        if not any([await desk.acknowledge_missed(raw) for desk in desks]):
            raise HTTPException(404, "no missed call of that id waits for acknowledgement")
        await audit_api_act(station, request, "missed call seen", f"call {call_id[:8]}")
        return {"id": call_id, "acknowledged": True}

    @app.websocket("/api/v1/calls/{call_id}/media")
    async def call_media(
        websocket: WebSocket, call_id: str, person: str, role: RoleName = "principal"
    ) -> None:
        await _media_connection(station, websocket, call_id, person, role)


def keep_newest(queue: asyncio.Queue[bytes], item: bytes) -> None:
    """Queue what a participant should hear without ever waiting: when their client is slow
    (or stuck) and the queue is full, the oldest goes, so they hear the newest audio, not a
    backlog growing without bound, and the call's media loop is never held up by them."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


def act_on_call(act: Any, desk: CallDesk) -> dict[str, Any]:
    """Answer, decline or end a call on `desk` (`act` does it): the call as it now stands, or
    409 with the reason the call table refused."""
    try:
        call = act()
    except CallRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return {**call_json(call), "link": desk.name}


async def _media_connection(
    station: Station, websocket: WebSocket, call_id: str, person: str, role: Role
) -> None:
    try:
        desk, raw = find_call(station, call_id)
    except HTTPException:
        await websocket.close(code=4404, reason="no such call")
        return
    outbound: asyncio.Queue[bytes] = asyncio.Queue(OUTBOUND_FRAMES)

    def sink(frame: np.ndarray) -> None:
        keep_newest(outbound, frame.astype("<i2").tobytes())

    try:
        participant = desk.join(raw, person[:200], role, sink)
    except CallRefused as exc:
        await websocket.close(code=4409, reason=str(exc))
        return
    await websocket.accept()
    call = desk.table.get(raw)
    if call is None:  # forgotten meanwhile: ended long enough ago
        await websocket.close(code=4404, reason="no such call")
        return
    samples = 48 * call.frame_ms
    await websocket.send_json({"type": "joined", "participant": participant.to_json(),
                               "sample_rate": 48000, "frame_samples": samples})  # fmt: skip
    sender = asyncio.create_task(_send_frames(websocket, outbound, participant))
    try:
        await _receive_frames(websocket, participant, samples)
    except WebSocketDisconnect:
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
        desk.leave(raw, participant)
        with contextlib.suppress(Exception):
            await websocket.close()


async def _receive_frames(websocket: WebSocket, participant: Participant, samples: int) -> None:
    while not participant.changed.is_set():
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data and len(data) == 2 * samples:
            participant.mic(np.frombuffer(data, dtype="<i2").astype(np.int16))
        elif message.get("text") == '{"type":"mute"}':
            participant.self_muted = True
        elif message.get("text") == '{"type":"unmute"}':
            participant.self_muted = False


async def _send_frames(
    websocket: WebSocket, outbound: asyncio.Queue[bytes], participant: Participant
) -> None:
    """The frames this person hears, as they come; at the call's end, say so and close. One
    waiter for the end puts an empty item in the queue, rather than a task per frame."""

    async def end_marker() -> None:
        await participant.changed.wait()
        keep_newest(outbound, b"")

    ended = asyncio.create_task(end_marker())
    try:
        while frame := await outbound.get():
            await websocket.send_bytes(frame)
        await websocket.send_json({"type": "ended"})
        await websocket.close()
    finally:
        ended.cancel()
