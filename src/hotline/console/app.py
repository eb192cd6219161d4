"""The console's web application: the static page, its JSON routes (routes.py), and the event
stream that keeps the page live. Every answer carries a strict Content-Security-Policy: the page
runs only its own script and style, and talks only to its own station."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hotline.console import views
from hotline.console.auth import SessionBook
from hotline.console.calllog import router as call_log_router
from hotline.console.memcons import router as memcon_router
from hotline.console.messages import router as message_router
from hotline.console.phone import router as phone_router
from hotline.console.queue import router as queue_router
from hotline.console.routes import router
from hotline.console.security import (
    COOKIE,
    Console,
    ConsoleDep,
    Viewer,
    account_holds,
    allowed_hosts,
)
from hotline.station.api import refuse_invalid
from hotline.station.datadir import ConsoleSection
from hotline.station.webrtc import only_host_candidates

if TYPE_CHECKING:
    from hotline.station.runtime import Station

__all__ = ["make_console_app"]

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
BOARD_EVERY_S = 5.0  # the board anyway, for RTT and "since" times
BOARD_AT_MOST_S = 1.0  # when paths flap, the board at most this often; alarms go at once
NUDGE_AT_MOST_S = 1.0  # "reload the traffic / the drafts": at most this often, however busy
# An open stream reads its account again this often: one disabled or reset anywhere (the CLI
# writes the store) stops receiving within 10 s (issue 13, item 13), a tick and a read included.
EVENTS_RECHECK_S = 5.0
_BOARD_EVENTS = frozenset({"path", "link", "alarms", "session_ready", "session_closed"})
_MESSAGE_EVENTS = frozenset({"message", "receipted", "acknowledged", "overdue"})
# What a page is nudged to reload: its messages, its drafts, an open message's details (a file
# moved, a translation was signed).
_NUDGES = {
    **dict.fromkeys(_MESSAGE_EVENTS, "message"),
    "drafts": "draft",
    "attachment": "detail",
    "annotation": "detail",
}


class HostCheck:
    """Answers 421 to a request whose Host is not the console's own address (DNS rebinding)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.hosts = frozenset(h.encode() for h in hosts) if hosts is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hosts is not None and scope["type"] in ("http", "websocket"):
            host = next((v for k, v in scope["headers"] if k == b"host"), b"")
            if host not in self.hosts:
                refusal = PlainTextResponse("this console answers only at its own address", 421)
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """The same strict headers on every answer, the page and the JSON alike."""

    def __init__(self, app: ASGIApp, tls: bool) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", CSP.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cache-control", b"no-store"),
        ]
        if tls:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, with_headers)


def make_console_app(station: Station, settings: ConsoleSection, tls: bool) -> FastAPI:
    host = settings.listen.rpartition(":")[0].strip("[]")
    if host not in ("0.0.0.0", "::"):  # noqa: S104 - recognising a wildcard, not binding it
        only_host_candidates(host)  # the browser phone's media: the console's own address only
    app = FastAPI(title="Hotline console", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_exception_handler(RequestValidationError, refuse_invalid)
    app.add_middleware(HostCheck, hosts=allowed_hosts(settings.listen))
    app.add_middleware(SecurityHeaders, tls=tls)  # added last, so outermost: on every answer
    app.state.console = Console(station, settings, SessionBook(settings.idle_timeout_s), tls)
    app.include_router(router)
    app.include_router(message_router)
    app.include_router(phone_router)
    app.include_router(call_log_router)
    app.include_router(memcon_router)
    app.include_router(queue_router)
    app.add_api_route("/", _page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/console/events", _events, methods=["GET"])
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def _events(request: Request, session: Viewer, console: ConsoleDep) -> StreamingResponse:
    token = request.cookies.get(COOKIE)
    stream = _stream(console, token, request, session.operator)
    return StreamingResponse(stream, media_type="text/event-stream")


async def _stream(
    console: Console, token: str | None, request: Request, me: str
) -> AsyncIterator[str]:
    """The board at once when the alarms change; when a link or a path changes, at most once a
    second; every few seconds anyway. A nudge when messages or drafts change. Ends with the
    session, and within 10 s of its account being disabled or reset, wherever that was done. What
    became of a draft of `me`'s (rejected, and why) is told to `me` only."""
    station = console.station
    queue = station.hub.listen()
    try:
        yield _sse("board", views.board(station))
        last_board, board_due = time.monotonic(), False
        last_nudge, nudges = 0.0, set()  # "message", "draft", "detail": each reload costs queries
        while (
            not await request.is_disconnected()
            and await _still_open(console, token)
            and station.hub.listening(queue)  # dropped for falling behind: the page reconnects
        ):
            try:
                event = await asyncio.wait_for(queue.get(), 0.25)
            except TimeoutError:
                event = {"type": "tick"}
            kind = event.get("type")
            if passed := _passed_on(event, me):
                yield _sse(passed, event)
            elif kind in _NUDGES:
                nudges.add(_NUDGES[kind])
            elif kind == "alarms":  # raised, cleared, silenced: at once, never held back
                board_due, last_board = True, 0.0
            elif kind in _BOARD_EVENTS:
                board_due = True
            if nudges and time.monotonic() - last_nudge >= NUDGE_AT_MOST_S:
                for nudge in sorted(nudges):
                    yield _sse(nudge, {})
                last_nudge, nudges = time.monotonic(), set()
            since = time.monotonic() - last_board
            if (board_due and since >= BOARD_AT_MOST_S) or since >= BOARD_EVERY_S:
                yield _sse("board", views.board(station))
                last_board, board_due = time.monotonic(), False
    finally:
        station.hub.forget(queue)


def _passed_on(event: dict[str, Any], me: str) -> str | None:
    """The events a page is given whole, at once: a call's (it rings, is answered, ends; its
    figures), and what became of a draft, to its author only (rejected, by whom and why)."""
    kind = event.get("type")
    if kind in ("call", "call_stats"):
        return str(kind)
    if kind == "draft_decided" and event.get("author") == me:
        return "draft_notice"
    return None


async def _still_open(console: Console, token: str | None) -> bool:
    session = console.sessions.peek_session(token)
    return session is not None and await account_holds(console, token, session, EVENTS_RECHECK_S)


def _sse(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
