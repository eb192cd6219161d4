"""`hotline node status`: which node of this side is active, at which epoch, until when.

It reads the lease from the side's PostgreSQL store itself, not from a node: it answers whether or
not any node runs, and from any machine that reaches the store with this data directory's
station.toml. Every time is the database server's, as the nodes decide by it (store/lease.py).
A station on SQLite is its side's only node: there is no lease to show.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from hotline.cli.common import DATA_DIR_OPTION, JSON_OPTION, console, data_dir
from hotline.store.lease import Lease, LeaseTable

__all__ = ["app", "status"]

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
    table = LeaseTable(config.store.url)
    try:
        lease, history = table.read(), table.history(5)
    finally:
        table.close()
    answer = {
        "node": this,
        "store": "postgresql",
        "lease": lease.to_json() if lease is not None else None,
        "history": [{"at_ns": at, "detail": detail} for at, detail in history],
    }
    _print(answer, as_json, lease)


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
    if lease is None:
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


def _s(ns: int) -> str:
    return f"{ns / 1e9:.1f} s"


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
