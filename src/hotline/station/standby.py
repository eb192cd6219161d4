"""What a standby node serves (node.py): on its API's address, 503 naming the active node, and
this node's status and metrics to the bearer of the API token; on its console's address, a
redirect to the active node's console (or, when none is known, a page that says so).

People and scripts that reach a standby are thus told where to go, and nothing of the side's
state is served from a node that does not hold the lease: a standby's view of the store would be
a moment late, and its console cannot act (a standby commits nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
from collections.abc import Iterator
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import Receive, Scope, Send

from hotline.errors import ConfigError
from hotline.station.api import bears
from hotline.station.datadir import DataDir, StationConfig
from hotline.station.node import Leadership, node_metrics

__all__ = ["StandbyApi", "StandbyConsole", "StandbyServers"]

RETRY_AFTER_S = "1"
_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


class _NodeCollector(Collector):
    def __init__(self, leadership: Leadership) -> None:
        self.leadership = leadership

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from node_metrics(self.leadership)


def _active(leadership: Leadership) -> dict[str, Any] | None:
    seen = leadership.seen
    if seen is None or not seen.live or seen.node == leadership.name:
        return None
    return {"node": seen.node, "epoch": seen.epoch, "api": seen.api, "console": seen.console}


def _where(leadership: Leadership) -> str:
    active = _active(leadership)
    if active is None:
        return f"node {leadership.name!r} is a standby, and no node of this side is active now"
    return (
        f"node {leadership.name!r} is a standby: the active node is {active['node']!r} "
        f"(epoch {active['epoch']}), its API at {active['api']}"
    )


async def _answer(
    send: Send, status: int, body: bytes, content_type: bytes, *extra: tuple[bytes, bytes]
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class StandbyApi:
    """The API of a standby: 503 with the active node, but for the node's own status."""

    def __init__(self, leadership: Leadership, token: str) -> None:
        self.leadership = leadership
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})  # try again later
            return
        if scope["type"] != "http":
            return
        path, json_type = scope["path"], b"application/json"
        if path == "/api/v1/node" and bears(scope, self.token):
            body = json.dumps(self.leadership.status()).encode()
            await _answer(send, 200, body, json_type)
            return
        if path == "/metrics" and bears(scope, self.token):
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_NodeCollector(self.leadership))
            await _answer(send, 200, generate_latest(registry), CONTENT_TYPE_LATEST.encode())
            return
        answer = {
            "detail": _where(self.leadership),
            "standby": self.leadership.name,
            "active": _active(self.leadership),
        }
        retry = (b"retry-after", RETRY_AFTER_S.encode())
        await _answer(send, 503, json.dumps(answer).encode(), json_type, retry)


class StandbyConsole:
    """The console's address on a standby: people are sent to the active node's console."""

    def __init__(self, leadership: Leadership) -> None:
        self.leadership = leadership

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})
            return
        if scope["type"] != "http":
            return
        active = _active(self.leadership)
        security = (b"content-security-policy", _CSP.encode())
        if active is not None and active["console"] and scope["method"] in ("GET", "HEAD"):
            query = scope.get("query_string", b"")
            target = active["console"] + scope["path"] + ("?" if query else "")
            location = target.encode() + query
            await _answer(send, 307, b"", b"text/plain", (b"location", location), security)
            return
        text = html.escape(_where(self.leadership))
        page = (
            "<!doctype html><meta charset=utf-8><title>Hotline: standby node</title>"
            f"<p>{text}.</p><p>Sign in at the active node's console; this page does not "
            "refresh itself.</p>"
        ).encode()
        retry = (b"retry-after", RETRY_AFTER_S.encode())
        await _answer(send, 503, page, b"text/html; charset=utf-8", retry, security)


class _QuietServer(uvicorn.Server):
    """The node, not uvicorn, handles SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class StandbyServers:
    """The standby's API and console servers, on the addresses the station uses when active."""

    def __init__(self, config: StationConfig, data: DataDir, leadership: Leadership) -> None:
        self.config = config
        self.apps: list[tuple[Any, str, str, str]] = [
            (StandbyApi(leadership, data.api_token()), config.api.listen, "", "")
        ]
        console = config.console
        if console.listen:
            self.apps.append(
                (StandbyConsole(leadership), console.listen, console.tls_cert, console.tls_key)
            )
        self._servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(self) -> None:
        for app, listen, cert, key in self.apps:
            host, _, port = listen.rpartition(":")
            server = _QuietServer(
                uvicorn.Config(
                    app,
                    host=host.strip("[]"),
                    port=int(port),
                    log_level="warning",
                    lifespan="off",
                    access_log=False,
                    proxy_headers=False,
                    ssl_certfile=cert or None,
                    ssl_keyfile=key or None,
                    timeout_graceful_shutdown=1,
                    timeout_keep_alive=5,
                    limit_concurrency=100,
                )
            )
            task = asyncio.create_task(server.serve())
            while not server.started:
                if task.done():
                    await self.stop()
                    task.result()
                    raise ConfigError(f"cannot serve the standby's answers on {listen}")
                await asyncio.sleep(0.01)
            self._servers.append((server, task))

    async def stop(self) -> None:
        """Stop serving, and wait until the addresses are free for the station."""
        for server, _task in self._servers:
            server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(t for _, t in self._servers)), 5)
        self._servers.clear()
