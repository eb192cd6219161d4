"""`hotline node status`: which node of this side is active, at which epoch, until when.

It reads the lease from the side's PostgreSQL store itself, not from a node: it answers whether or
not any node runs, and from any machine that reaches the store with this data directory's
station.toml. Every time is the database server's, as the nodes decide by it (store/lease.py).
A station on SQLite is its side's only node: there is no lease to show.

With `[node] patroni` (the REST APIs of the Patronis that run the store's database servers) it
also asks each of them for the cluster as Patroni sees it (GET /cluster, a short wait each) and
shows every database server's role (leader, sync_standby, replica), state, timeline and lag; a
Patroni that does not answer is shown as such. When the store cannot be reached, the lease is
shown as unknown and the servers' roles still are (the exit status is then 1).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import typer

from hotline.cli.common import DATA_DIR_OPTION, JSON_OPTION, console, data_dir
from hotline.errors import StoreError
from hotline.store.lease import Lease, LeaseTable

__all__ = ["app", "ask_patroni", "status"]

PATRONI_TIMEOUT_S = 2.0  # per Patroni asked: a machine that is gone must not hold the command

app = typer.Typer(
    help="A side on several machines: its nodes and their lease (docs/operations.md).",
    no_args_is_help=True,
)


@app.command("status")
def status(data: Path | None = DATA_DIR_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Which node is active, its epoch, the lease's expiry, and the last changes of node."""
    config = data_dir(data).config()
    this = config.node.name
    if not config.store.url:
        _print({"node": this, "store": "sqlite", "lease": None, "history": []}, as_json)
        return
    lease: Lease | None = None
    history: list[tuple[int, str]] = []
    failed = ""
    try:
        table = LeaseTable(config.store.url)
        try:
            lease, history = table.read(), table.history(5)
        finally:
            table.close()
    except StoreError as exc:
        if not config.node.patroni:
            raise
        failed = str(exc)  # the servers' roles say more than the error alone: shown below
    answer: dict[str, Any] = {
        "node": this,
        "store": "postgresql",
        "lease": lease.to_json() if lease is not None else None,
        "history": [{"at_ns": at, "detail": detail} for at, detail in history],
    }
    if failed:
        answer["store_error"] = failed
    if config.node.patroni:
        answer["patroni"] = ask_patroni(config.node.patroni)
    _print(answer, as_json, lease)
    if failed:
        raise typer.Exit(1)


def ask_patroni(addresses: list[str], timeout: float = PATRONI_TIMEOUT_S) -> dict[str, Any]:
    """Ask each Patroni for the cluster (GET /cluster): `asked`, one entry per address (whether
    it answered, else why not), and `members`, the database servers as the first Patroni that
    answered reports them (empty when none did)."""
    asked: list[dict[str, Any]] = []
    members: list[dict[str, Any]] = []
    for address in addresses:
        try:
            reply = httpx.get(f"{address.rstrip('/')}/cluster", timeout=timeout)
            reply.raise_for_status()
            body = reply.json()
            found = body.get("members") if isinstance(body, dict) else None
            if not isinstance(found, list):
                raise ValueError("the answer is not Patroni's /cluster")
        except httpx.HTTPStatusError as exc:
            asked.append({"address": address, "answered": False,
                          "error": f"HTTP {exc.response.status_code}"})  # fmt: skip
            continue
        except (httpx.HTTPError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            asked.append({"address": address, "answered": False, "error": reason})
            continue
        asked.append({"address": address, "answered": True, "error": None})
        if not members:
            members = [_member(entry) for entry in found if isinstance(entry, dict)]
    return {"asked": asked, "members": members}


def _member(entry: dict[str, Any]) -> dict[str, Any]:
    """One database server from Patroni's /cluster, the fields shown; lag in bytes (None: the
    leader, or Patroni does not know)."""
    lag = entry.get("lag")
    return {
        "name": str(entry.get("name", "?")),
        "role": str(entry.get("role", "?")),
        "state": str(entry.get("state", "?")),
        "host": f"{entry.get('host', '?')}:{entry.get('port', '?')}",
        "timeline": entry.get("timeline"),
        "lag": lag if isinstance(lag, int) else None,
        "lag_text": _lag(entry),
    }


def _lag(entry: dict[str, Any]) -> str:
    if entry.get("role") == "leader":
        return "-"
    lag = entry.get("lag")
    if isinstance(lag, int):
        return f"{lag} B"
    return str(lag) if lag is not None else "unknown"


def _print(answer: dict[str, Any], as_json: bool, lease: Lease | None = None) -> None:
    if as_json:
        print(json.dumps(answer, indent=2))
        return
    this = answer["node"] or "(the side's only node)"
    if answer["store"] == "sqlite":
        console.print(f"This node    {this}")
        console.print("Lease        none: a SQLite store is one node's (the data directory's lock)")
        return
    role = "active" if lease is not None and lease.live and lease.node == answer["node"] else ""
    console.print(f"This node    {this}{f' ({role})' if role else ''}")
    if answer.get("store_error"):
        console.print(f"Active node  unknown: {answer['store_error']}", markup=False)
    elif lease is None:
        console.print("Active node  none: no node of this side has held the lease yet")
    elif not lease.live:
        gone = "given up on a clean stop" if lease.expires_ns == 0 else "expired"
        ago = "" if lease.expires_ns == 0 else f" {_s(lease.now_ns - lease.expires_ns)} ago"
        console.print(f"Active node  none: the lease of node {lease.node!r} {gone}{ago}")
        console.print(f"Epoch        {lease.epoch}")
    else:
        console.print(f"Active node  {lease.node}, epoch {lease.epoch}")
        console.print(
            f"Lease        ends in {_s(lease.expires_ns - lease.now_ns)} (renewed "
            f"{_s(lease.now_ns - lease.renewed_ns)} ago; the database server's clock)"
        )
        console.print(f"API          {lease.api}")
        console.print(f"Console      {lease.console or '(none)'}")
        console.print(f"Active since {_utc(lease.taken_ns)}: {lease.why()}")
    if answer["history"]:
        console.print("Changes of active node, newest first:")
        for entry in answer["history"]:
            console.print(f"  {_utc(entry['at_ns'])}  {entry['detail']}")
    if "patroni" in answer:
        _print_patroni(answer["patroni"])


def _print_patroni(patroni: dict[str, Any]) -> None:
    members = patroni["members"]
    if members:
        console.print("Database servers, as Patroni reports them:")
        rows = [("member", "role", "state", "address", "timeline", "lag")]
        rows += [
            (m["name"], m["role"], m["state"], m["host"], str(m["timeline"] or "-"), m["lag_text"])
            for m in members
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            console.print(f"  {line.rstrip()}", markup=False)
    else:
        console.print("Database servers unknown: no Patroni answered")
    for entry in patroni["asked"]:
        if not entry["answered"]:
            console.print(
                f"Patroni at {entry['address']} unreachable: {entry['error']}", markup=False
            )


def _s(ns: int) -> str:
    return f"{ns / 1e9:.1f} s"


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
