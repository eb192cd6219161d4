"""The local service API: what the console and the `hotline` commands call. JSON over HTTP on
loopback; everything under /api/ and /metrics is behind the bearer token in the data directory's
api.token. FastAPI writes the OpenAPI schema (at /openapi.json) from these declarations.

Sending is the hot route: SendFastPath answers it before FastAPI sees it (the route is still
declared to FastAPI, for the schema and as its fallback), and the token is checked by a small
ASGI middleware rather than a dependency on every route."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal, cast

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from hotline import __version__
from hotline.errors import ProtocolError, StoreError
from hotline.protocol.envelope import (
    MAX_ATTACHMENTS,
    Attachment,
    Lane,
    MessageType,
    decode_envelope,
)
from hotline.station.apidocs import add_docs_page
from hotline.station.call_api import add_call_routes
from hotline.station.doors import ACTOR_HEADER, acknowledged_by, audit_api_act, door
from hotline.station.events import arrival_json, envelope_json
from hotline.station.files import FileStore, FileTooLarge
from hotline.station.languages import link_language_problem
from hotline.station.link_runtime import AlreadyAcknowledged, KeyReused
from hotline.station.metrics import metrics_text

if TYPE_CHECKING:
    from hotline.crypto.identity import PublicIdentity
    from hotline.station.link_runtime import LinkRuntime
    from hotline.station.runtime import Station
    from hotline.store.backend import Row

__all__ = ["make_app"]

LaneName = Literal["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"]
TypeName = Literal["principal", "service", "test"]


class FileRef(BaseModel):
    """A file uploaded to this station (POST /api/v1/attachments), to send with a message."""

    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    name: str = Field(min_length=1, max_length=255)
    media_type: str = Field(default="application/octet-stream", min_length=3, max_length=127)


# A client's key for a send: 1 to 255 visible ASCII characters (a UUID is a good one).
SEND_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
SEND_KEY_HEADER = "Idempotency-Key"


class NewMessage(BaseModel):
    text: str = Field(min_length=1, max_length=32 * 1024)
    lane: LaneName = "ROUTINE"
    type: TypeName = "principal"
    language: str = Field(
        default="en",
        min_length=1,
        max_length=35,
        description="A BCP 47 tag, one of the link's languages (link.toml `languages`); "
        "unsaid: the link's first language.",
    )
    attachments: list[FileRef] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    idempotency_key: str | None = Field(
        default=None,
        pattern=SEND_KEY_PATTERN,
        description="The client's name for this send (or the Idempotency-Key header): a repeat "
        "with the same key is answered with the message the first made (200), never sent again.",
    )


class Uploaded(BaseModel):
    sha256: str
    size: int


class Acknowledgement(BaseModel):
    text: str = Field(default="Acknowledged", min_length=1, max_length=1000)
    language: str = Field(
        default="en",
        min_length=1,
        max_length=35,
        description="A BCP 47 tag, one of the link's languages (link.toml `languages`); "
        "unsaid: the link's first language.",
    )


class Accepted(BaseModel):
    link: str
    lane: LaneName
    seq: int
    hash: str
    state: Literal["accepted"] = "accepted"


def _guarded(path: str) -> bool:
    return path.startswith("/api/") or path == "/metrics"


def bears(scope: Scope, token: bytes) -> bool:
    """Whether the request carries `Authorization: Bearer <token>`."""
    presented = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
    scheme, _, credentials = presented.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(credentials, token)


class BearerToken:
    """Answers 401 to any request for a guarded path without `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guarded = scope["type"] in ("http", "websocket") and _guarded(scope["path"])
        if guarded and not bears(scope, self.token):
            refusal = JSONResponse(
                {"detail": "a valid bearer token is required"},
                401,
                {"WWW-Authenticate": "Bearer"},
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _document_the_token(app: FastAPI) -> None:
    """The token is checked outside FastAPI, so say in the schema which routes want it."""
    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain_openapi()
            components = schema.setdefault("components", {})
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path, operations in schema["paths"].items():
                if _guarded(path):
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
                        operation.setdefault("responses", {})["401"] = {
                            "description": "no valid bearer token"
                        }
        return app.openapi_schema or plain_openapi()

    app.openapi = openapi  # type: ignore[method-assign]


def refusal(message: NewMessage, sends: str) -> str | None:
    """Why the token may not send this alone, or None. The token is the station host's, not a
    person's (docs/security.md, "The API token"): with `[api] sends = "service"` it sends only
    what the console sends without a release, service and test messages outside the FLASH lane;
    a principal message, or anything in the FLASH lane, is drafted and released at the console."""
    if sends == "any" or (message.type in ("service", "test") and message.lane != "FLASH"):
        return None
    return (
        f"this station's API token may send only service and test messages outside the FLASH "
        f"lane ([api] sends = {sends!r}): draft a {message.type} {message.lane} message at the "
        "console, where a supervisor releases it"
    )


async def accept_message(  # noqa: PLR0911 - each refusal its own answer
    runtime: LinkRuntime,
    name: str,
    body: bytes,
    sends: str = "any",
    key: str | None = None,
    actor: str = "api",
) -> tuple[int, bytes]:
    """Send one message from a request's body and its Idempotency-Key header (`key`), if any,
    audited as `actor` (`door`): (HTTP status, JSON answer). 201: sent now; 200: sent before
    under the same key, and this is that message."""
    try:
        message = NewMessage.model_validate_json(body)
    except ValidationError as exc:
        detail = exc.errors(include_url=False, include_context=False, include_input=False)
        return 422, json.dumps({"detail": detail}, default=str).encode()
    if key is not None and not re.fullmatch(SEND_KEY_PATTERN, key):
        return 422, _detail(f"the {SEND_KEY_HEADER} header is 1 to 255 visible ASCII characters")
    if key is not None and message.idempotency_key not in (None, key):
        return 422, _detail(f"the {SEND_KEY_HEADER} header and idempotency_key differ")
    if why := refusal(message, sends):
        return 403, _detail(why)
    if "language" not in message.model_fields_set:  # unsaid: the link's first language
        message.language = runtime.link.languages[0]
    if why := link_language_problem(message.language, runtime.link.languages, name):
        return 422, _detail(why)
    try:
        sent = await runtime.send_once(
            Lane[message.lane],
            MessageType[message.type.upper()],
            message.language,
            message.text,
            key or message.idempotency_key,
            attachments=files_named(runtime, message.attachments),
            door=actor,
        )
    except (ProtocolError, KeyReused) as exc:
        return 422, _detail(str(exc))
    envelope = sent.envelope
    lane = cast("LaneName", envelope.lane.name)  # a repeat's lane is its first's
    accepted = Accepted(link=name, lane=lane, seq=envelope.seq, hash=envelope.hash.hex())
    return 201 if sent.first else 200, accepted.model_dump_json().encode()


def _detail(why: str) -> bytes:
    return json.dumps({"detail": why}).encode()


def files_named(runtime: LinkRuntime, refs: list[FileRef]) -> tuple[Attachment, ...]:
    """The attachments of a new message, each an uploaded file held whole here.

    Raises:
        ProtocolError: a file is not here (never uploaded), or is over the size limit.
    """
    if not refs:
        return ()
    files = runtime.transfers.files if runtime.transfers is not None else None
    attachments = []
    for ref in refs:
        sha256 = bytes.fromhex(ref.sha256)
        size = files.size_of(sha256) if files is not None else None
        if files is None or size is None:
            raise ProtocolError(f"no uploaded file {ref.sha256}: upload it first")
        if size > files.max_size:
            raise ProtocolError(f"file {ref.name!r} is over this station's limit")
        attachments.append(Attachment(ref.name, ref.media_type, size, sha256))
    return tuple(attachments)


_SEND_PATH = re.compile(r"/api/v1/links/([^/]+)/messages")
MAX_SEND_BODY = 256 * 1024  # a 32 KiB text, escaped in JSON at worst, and the other fields


class SendFastPath:
    """The hot route, POST /api/v1/links/{name}/messages, answered without FastAPI's routing,
    dependency and exception machinery, which cost about 40% of the station's CPU per message
    (bench/e2e.py: 210-240 µs, now 115-145 µs): the same token, the same parsing
    (accept_message), the same answers. Anything else, and any request
    here it does not like (no token, an unknown link, an oversized body), goes on to the app,
    which answers it in full."""

    def __init__(self, app: ASGIApp, station: Station, token: str) -> None:
        self.app = app
        self.station = station
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self._target(scope)
        if target is None:
            await self.app(scope, receive, send)
            return
        name, runtime = target
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > MAX_SEND_BODY:
                await _answer(send, 413, b'{"detail":"the request body is too large"}')
                return
        sends, key = self.station.config.api.sends, _header(scope, b"idempotency-key")
        actor = door(_header(scope, b"x-hotline-actor"))
        status, answer = await accept_message(runtime, name, b"".join(chunks), sends, key, actor)
        await _answer(send, status, answer)

    def _target(self, scope: Scope) -> tuple[str, LinkRuntime] | None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        match = _SEND_PATH.fullmatch(scope["path"])
        if match is None:
            return None
        if not bears(scope, self.token):
            return None
        runtime = self.station.links.get(match.group(1))
        return (match.group(1), runtime) if runtime is not None else None


def _header(scope: Scope, name: bytes) -> str | None:
    for header, value in scope["headers"]:
        if header == name:
            return bytes(value).decode("latin-1")
    return None


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def upload_file(files: FileStore, request: Request) -> Uploaded:
    """Take a request's body as a file (the API's and the console's upload)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > files.max_size:
        raise HTTPException(413, f"the file is over this station's limit of {files.max_size} bytes")
    try:
        sha256, size = await files.upload(request.stream())
    except FileTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except ClientDisconnect:
        raise HTTPException(400, "the upload was cut off") from None
    except OSError as exc:
        raise HTTPException(507, f"the station's disk refused the file: {exc.strerror}") from None
    except StoreError as exc:  # a side of several nodes: the file is kept in its store too
        raise HTTPException(503, f"the side's store did not take the file: {exc}") from None
    return Uploaded(sha256=sha256.hex(), size=size)


def download_file(files: FileStore, sha256: str, media_type: str, name: str) -> FileResponse:
    """A file held whole here. Never shown inline but for a few image types that cannot carry
    a script: a received file is the peer's, not ours to trust."""
    if not re.fullmatch("[0-9a-f]{64}", sha256) or files.size_of(bytes.fromhex(sha256)) is None:
        raise HTTPException(404, "no such file held here")
    inline = media_type in INLINE_TYPES
    return FileResponse(
        files.path(bytes.fromhex(sha256)),
        media_type=media_type if inline else "application/octet-stream",
        filename=name,
        content_disposition_type="inline" if inline else "attachment",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=86400"},
    )


INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


async def with_file_states(
    runtime: LinkRuntime, side: str, messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each message's files, with how much of each the receiver holds and whether it signed for
    it; a sent message with files counts as delivered only when every one is held."""
    link_id, transfers = runtime.link.config.link_id, runtime.transfers
    keys = [(Lane[m["lane"]], m["seq"]) for m in messages if m["attachments"]]
    for m in messages:
        m["files_held"] = True  # until a file says otherwise: a message without any is whole
    if not keys:
        return messages
    rows = await runtime.store.call(
        lambda s: {k: s.attachments_of(link_id, side, int(k[0]), k[1]) for k in keys}
    )
    for message in messages:
        states = rows.get((Lane[message["lane"]], message["seq"]), [])
        for attachment, row in zip(message["attachments"], states, strict=False):
            moving = transfers.progress(side, row.sha256) if transfers is not None else None
            attachment["held"] = row.held if row.delivered or moving is None else moving
            attachment["held_whole"] = row.delivered
        message["files_held"] = all(row.delivered for row in states)
    return messages


async def refuse_invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 with what was wrong and where, never the input itself: FastAPI's own answer echoes
    it, and an input it cannot encode back (a lone surrogate) turned a 422 into a 500."""
    assert isinstance(exc, RequestValidationError)
    problems = [{"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(problems)}, 422)


def make_app(station: Station) -> ASGIApp:
    """The API: the hot send route's fast path before the FastAPI app."""
    app = _make_fastapi(station)
    _add_node_route(app, station)
    add_docs_page(app)  # in place of FastAPI's, which loads from a CDN
    return SendFastPath(app, station, station.data.api_token())


def _add_node_route(app: FastAPI, station: Station) -> None:
    @app.get("/api/v1/node")
    async def node() -> dict[str, Any]:
        """This node's role and the side's lease (role "single": the side's only node; a
        standby answers this too, and 503 to everything else: station/standby.py)."""
        return station.node_status() or {"node": "", "role": "single", "lease": None}


def _make_fastapi(station: Station) -> FastAPI:
    # FastAPI's own /docs and /redoc load their scripts from a CDN: blank on an offline station
    app = FastAPI(title="Hotline station API", version=__version__, docs_url=None, redoc_url=None)
    app.add_exception_handler(RequestValidationError, refuse_invalid)
    app.add_middleware(BearerToken, token=station.data.api_token())
    _document_the_token(app)

    def link_of(name: str) -> LinkRuntime:
        runtime = station.links.get(name)
        if runtime is None:
            raise HTTPException(404, f"no link named {name!r}")
        return runtime

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/status")
    async def status() -> dict[str, Any]:
        return {
            "station": station.card.body.name,
            "fingerprint": station.card.fingerprint.hex(),
            "started_ns": station.started_ns,
            "node": station.node_status(),  # None: the side's only node
            "links": [runtime.status() for runtime in station.links.values()],
            "alarms": [a.to_json() for a in station.discipline.alarms.values()],
            "calls": [
                {**status, "link": name}
                for name, runtime in station.links.items()
                if runtime.calls is not None
                for status in runtime.calls.calls()
                if status.get("state") != "ended"
            ],
        }

    @app.post(
        "/api/v1/links/{name}/messages",
        status_code=201,
        response_model=Accepted,
        responses={
            200: {
                "model": Accepted,
                "description": "Sent before under the same Idempotency-Key: the first's message",
            },
            422: {"description": "Out of bounds, or an Idempotency-Key that named another send"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": NewMessage.model_json_schema()}},
            }
        },
    )
    async def send(
        name: str,
        request: Request,
        idempotency_key: str | None = Header(
            None,
            alias=SEND_KEY_HEADER,
            description="The client's name for this send: repeat the request with the same key "
            "until an answer comes; a repeat is answered with the first's message (200) and "
            "sends nothing. Kept as long as the record.",
        ),
    ) -> Response:
        """Send a message; the answer comes once it is durable (accepted). Declared here for
        the schema; SendFastPath answers it first, with the same code."""
        body, sends = await request.body(), station.config.api.sends
        actor = door(request.headers.get(ACTOR_HEADER))
        status, answer = await accept_message(
            link_of(name), name, body, sends, idempotency_key, actor
        )
        return Response(answer, status, media_type="application/json")

    _add_file_routes(app, station)
    _add_ack_route(app, link_of)
    add_call_routes(app, station)

    @app.get("/api/v1/links/{name}/outbox")
    async def outbox(name: str, limit: int = 100) -> list[dict[str, Any]]:
        runtime = link_of(name)
        link_id, me = runtime.link.config.link_id, runtime.link.config.identity.public
        rows = await runtime.store.call(lambda s: s.outbox(link_id, max(1, min(limit, 1000))))
        messages = [
            {
                **envelope_json(decode_envelope(bytes(data), me)),
                "accepted_ns": accepted,
                "receipted_ns": receipted,
                "state": "acknowledged" if acked else "receipted" if receipted else "accepted",
            }
            for _lane, _seq, _type, accepted, receipted, acked, data in rows
        ]
        return await with_file_states(runtime, "out", messages)

    @app.get("/api/v1/links/{name}/outbox/{lane}/{seq}")
    async def sent_message(name: str, lane: LaneName, seq: int) -> dict[str, Any]:
        """One sent message, with how far each of its files has come."""
        runtime = link_of(name)
        link_id, me = runtime.link.config.link_id, runtime.link.config.identity.public
        if not 1 <= seq < 2**63:
            raise HTTPException(404, f"no message {lane} {seq} sent on {name!r}")
        data = await runtime.store.call(lambda s: s.outbound(link_id, Lane[lane], seq))
        if data is None:
            raise HTTPException(404, f"no message {lane} {seq} sent on {name!r}")
        [message] = await with_file_states(
            runtime, "out", [envelope_json(decode_envelope(data, me))]
        )
        return message

    @app.get("/api/v1/links/{name}/inbox")
    async def inbox(name: str, limit: int = 100) -> list[dict[str, Any]]:
        runtime = link_of(name)
        link_id, peer = runtime.link.config.link_id, runtime.link.config.peer
        rows = await runtime.store.call(lambda s: s.inbox(link_id, max(1, min(limit, 1000))))
        bound = station.config.console.clock_fault_s * 1_000_000_000
        return await with_file_states(runtime, "in", [_received(r, peer, bound) for r in rows])

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(metrics_text(station), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/v1/events")
    async def events(request: Request) -> StreamingResponse:
        return StreamingResponse(_event_stream(station, request), media_type="text/event-stream")

    return app


def _add_ack_route(app: FastAPI, link_of: Callable[[str], LinkRuntime]) -> None:
    @app.post("/api/v1/links/{name}/inbox/{lane}/{seq}/ack", status_code=201)
    async def acknowledge(
        name: str, lane: LaneName, seq: int, ack: Acknowledgement, request: Request
    ) -> Accepted:
        runtime = link_of(name)
        if not 1 <= seq < 2**63:
            raise HTTPException(404, f"no message {lane} {seq} in the inbox of {name!r}")
        actor = door(request.headers.get(ACTOR_HEADER))
        # An envelope names no person: a text not given says who, as the console's does.
        text = ack.text if "text" in ack.model_fields_set else acknowledged_by(actor)
        said = "language" in ack.model_fields_set
        language = ack.language if said else runtime.link.languages[0]
        if why := link_language_problem(language, runtime.link.languages, name):
            raise HTTPException(422, why)
        try:  # exactly one acknowledgement: the check is made with the commit (link_runtime)
            envelope = await runtime.acknowledge(Lane[lane], seq, language, text, actor)
        except AlreadyAcknowledged:
            raise HTTPException(
                409, f"{lane} {seq} from {name!r} is acknowledged already"
            ) from None
        except ProtocolError as exc:
            raise HTTPException(422, str(exc)) from None
        if envelope is None:
            raise HTTPException(404, f"no message {lane} {seq} in the inbox of {name!r}")
        return Accepted(link=name, lane=lane, seq=envelope.seq, hash=envelope.hash.hex())


def _add_file_routes(app: FastAPI, station: Station) -> None:
    @app.post(
        "/api/v1/attachments",
        status_code=201,
        response_model=Uploaded,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    )
    async def upload(request: Request) -> Uploaded:
        """Upload a file, to name in a message by its SHA-256. The same bytes uploaded twice
        are one file."""
        uploaded = await upload_file(station.files, request)
        await audit_api_act(
            station, request, "uploaded", f"{uploaded.sha256} ({uploaded.size} bytes)"
        )
        return uploaded

    @app.get("/api/v1/attachments/{sha256}", response_class=FileResponse)
    async def download(sha256: str) -> FileResponse:
        """A file held whole here: sent from here, or received and checked against its hash."""
        return download_file(station.files, sha256, "application/octet-stream", sha256)


def _received(row: Row, peer: PublicIdentity, bound_ns: int) -> dict[str, Any]:
    """One row of the inbox (the store lists them newest arrival first, by our clock)."""
    _lane, _seq, _type, received, acked, data = row
    envelope = decode_envelope(bytes(data), peer)
    return {
        **envelope_json(envelope),
        **arrival_json(envelope, received, bound_ns),
        "acknowledged": bool(acked),
    }


async def _event_stream(station: Station, request: Request) -> AsyncIterator[str]:
    """Server-sent events: one per link event, and a comment every 15 s to keep proxies awake."""
    queue = station.hub.listen()
    try:
        yield ": hotline events\n\n"
        while not await request.is_disconnected():
            try:
                event = await asyncio.wait_for(queue.get(), 15)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            data = json.dumps(event, ensure_ascii=False)
            yield f"event: {event['type']}\ndata: {data}\n\n"
    finally:
        station.hub.forget(queue)
