"""An offline station's pages: nothing the API or the console serves loads from another host
(issue 15 item 5: FastAPI's interactive /docs fetched its scripts from a CDN and was blank)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.console.app import make_console_app
from hotline.station.api import make_app
from hotline.station.launch import StationProcess
from hotline.station.runtime import Station
from tests.inprocess import london_and_identity, running

STATIC = Path(__file__).parent.parent / "src" / "hotline" / "console" / "static"

# Any absolute or scheme-relative address in a page, a script or a style sheet.
ADDRESS = re.compile(r"""(?:https?:)?//([A-Za-z0-9.-]+\.[A-Za-z]{2,}|\[[0-9a-fA-F:]+\])""")
# Names, not places: the SVG namespace a script passes to createElementNS is never fetched.
NAMESPACES = {"www.w3.org"}


def outside_hosts(text: str) -> set[str]:
    return {host for host in ADDRESS.findall(text) if host not in NAMESPACES}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def station(tmp_path: Path) -> AsyncIterator[Station]:
    london: StationProcess
    london, identity = london_and_identity(tmp_path)
    async with running(london, identity) as station:
        yield station


def _client(app: Any, base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


@pytest.mark.anyio
async def test_the_api_docs_page_names_the_schema_and_loads_nothing_from_elsewhere(
    station: Station,
) -> None:
    async with _client(make_app(station), "http://127.0.0.1") as api:
        page = await api.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert outside_hosts(page.text) == set()
        assert "<script" not in page.text
        assert "<link" not in page.text
        assert 'href="/openapi.json"' in page.text
        assert "/api/v1/links/{name}/messages" in page.text, "the routes are listed"
        assert (await api.get("/openapi.json")).status_code == 200
        assert (await api.get("/redoc")).status_code == 404, "ReDoc loads from a CDN too"
        assert (await api.get("/docs/oauth2-redirect")).status_code == 404


@pytest.mark.anyio
async def test_no_page_the_station_serves_references_an_outside_host(station: Station) -> None:
    token = station.data.api_token()
    pages: dict[str, str] = {}
    async with _client(make_app(station), "http://127.0.0.1") as api:
        schema = (await api.get("/openapi.json")).json()
        plain = [p for p, ops in schema["paths"].items() if "get" in ops and "{" not in p]
        for path in [*plain, "/docs", "/openapi.json"]:
            if path == "/api/v1/events":
                continue  # an endless stream of JSON events, no page
            answer = await api.get(path, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, path
            pages[f"api {path}"] = answer.text
    console = make_console_app(station, station.config.console, tls=False)
    async with _client(console, f"http://{station.config.console.listen}") as browser:
        assert (await browser.get("/docs")).status_code == 404
        pages["console /"] = (await browser.get("/")).text
        for file in sorted(STATIC.iterdir()):
            answer = await browser.get(f"/static/{file.name}")
            assert answer.status_code == 200, file.name
            pages[f"console /static/{file.name}"] = answer.text
    assert len(pages) > 10
    found = {name: outside_hosts(text) for name, text in pages.items() if outside_hosts(text)}
    assert found == {}
