"""The API's own page at /docs: every route, its method and summary, and a link to the
schema at /openapi.json, in one page with nothing fetched from elsewhere.

A station is often offline, and FastAPI's interactive page loads its scripts from a CDN, so
it shows a blank page there; this one is plain HTML written from the same schema."""

from __future__ import annotations

import html
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

_METHODS = ("get", "post", "put", "patch", "delete")

_STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em}"
    "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ccc;"
    "padding:.3em .5em;text-align:left;vertical-align:top}code{font-size:14px}"
    ".m{font-weight:bold;text-transform:uppercase}"
)


def add_docs_page(app: FastAPI) -> None:
    """GET /docs: the page (not in the schema itself, and open without the token, like
    /openapi.json, since it says no more than the schema does)."""

    async def docs() -> HTMLResponse:
        return HTMLResponse(docs_page(app.openapi()))

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)


def docs_page(schema: dict[str, Any]) -> str:
    info = schema.get("info", {})
    title = html.escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    rows = []
    for path, operations in sorted(schema.get("paths", {}).items()):
        for method in _METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            summary = operation.get("summary") or operation.get("description") or ""
            token = "bearer token" if operation.get("security") else "open"
            rows.append(
                f'<tr><td class="m">{method}</td><td><code>{html.escape(path)}</code></td>'
                f"<td>{html.escape(summary.splitlines()[0] if summary else '')}</td>"
                f"<td>{token}</td></tr>"
            )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1>"
        "<p>The full description of every route, its parameters and answers is the OpenAPI "
        'schema at <a href="/openapi.json"><code>/openapi.json</code></a>: load it into any '
        "OpenAPI viewer or client generator. Routes marked <em>bearer token</em> want "
        "<code>Authorization: Bearer &lt;token&gt;</code> with the station's API token.</p>"
        "<table><thead><tr><th>Method</th><th>Path</th><th>What it does</th><th>Access</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></body></html>"
    )
