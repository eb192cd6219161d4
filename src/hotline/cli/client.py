"""The commands that talk to a running station through its service API: send, inbox, outbox,
ack, status, paths. They read the API address from station.toml and the token from api.token."""

from __future__ import annotations

import json
import mimetypes
import re
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from hotline.cli.common import (
    DATA_DIR_OPTION,
    JSON_OPTION,
    cli_actor,
    console,
    data_dir,
    err_console,
    match_link,
    peer,
)
from hotline.errors import ConfigError, HotlineError, LocalError
from hotline.protocol.textsafety import shown
from hotline.station.languages import valid_language_problem

LANES = ["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"]
TYPES = ["principal", "service", "test"]  # exercise messages come from the console's exercise
SEND_KEY = r"[\x21-\x7e]{1,255}"  # as the API's Idempotency-Key
_BAR = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
TIMEOUT_S = 30.0


class ApiError(HotlineError):
    """The station answered with an error, or could not be reached."""


class Refused(ApiError, LocalError):
    """The station refused what was asked (4xx): a bad argument, exit status 2."""


class Unreachable(ApiError):
    """No answer came: the station is down, starting, a standby, or the answer was lost."""


# Answers that say "not now" rather than "no": a standby node, or a station still starting.
_NOT_NOW = {502, 503, 504}


def _call(
    data: Path | None,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    content: Iterator[bytes] | None = None,
) -> Any:
    """The station's answer, as JSON (`_answered`)."""
    return _answered(data, method, path, body, content).json()


def _answered(
    data: Path | None,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    content: Iterator[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    directory = data_dir(data)
    address = directory.config().api.listen
    token = directory.token_file.read_text().strip() if directory.token_file.exists() else ""
    try:
        response = httpx.request(
            method,
            f"http://{address}{path}",
            json=body,
            content=content,
            headers={
                "Authorization": f"Bearer {token}",
                "X-Hotline-Actor": cli_actor(),  # audited as the host's user (station/doors.py)
                **(headers or {}),
            },
            timeout=TIMEOUT_S if content is None else None,  # an upload takes what it takes
        )
    except httpx.HTTPError as exc:
        raise Unreachable(
            f"station not reachable at {address} ({exc}); is `hotline serve` running?"
        ) from None
    if response.status_code in _NOT_NOW:
        raise Unreachable(
            f"the station at {address} cannot answer now (HTTP {response.status_code})"
        )
    if response.status_code >= 400:
        refused = Refused if response.status_code < 500 else ApiError
        raise refused(f"the station refused: {_why(response)} (HTTP {response.status_code})")
    return response


def _why(response: httpx.Response) -> str:
    """An error answer's detail as one sentence: a validation error's list of problems is
    "field: what is wrong", joined."""
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        return response.text.strip() or "no reason given"
    if isinstance(detail, list):
        return "; ".join(
            f"{_field(d.get('loc', []))}: {d.get('msg', d)}" for d in detail if isinstance(d, dict)
        )
    return str(detail)


def _field(loc: list[object]) -> str:
    """Where a validation error is, without FastAPI's part of the request ("body", "path")."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "path", "query", "header"):
        parts = parts[1:]
    return ".".join(parts) or "the request"


def _when(ns: int | None) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S") if ns else "-"


def _only_link(data: Path | None, link: str | None) -> str:
    """The link named by --link (in any case), or the station's only one, from the data
    directory: known without asking the station, which may be down or starting."""
    return match_link(data_dir(data).link_names(), link)


LINK_OPTION = typer.Option(None, "--link", "-L", help="The link (needed when there are several).")


def send(
    text: str | None = typer.Argument(None, help="The text; else --file, else standard input."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Read the text from this file."),
    precedence: str = typer.Option(
        "ROUTINE", "--precedence", "-p", help="FLASH, IMMEDIATE, PRIORITY or ROUTINE."
    ),
    kind: str = typer.Option("principal", "--type", "-t", help="principal, service or test."),
    lang: str | None = typer.Option(
        None,
        "--lang",
        help="The language of the text: a BCP 47 tag, one of the link's languages (default: "
        "its first, as its link.toml says).",
    ),
    attach: list[Path] = typer.Option(
        [], "--attach", "-a", help="A file to send with it (repeat for more)."
    ),
    wait: bool = typer.Option(
        False, "--wait", "-w", help="Follow the files until the peer holds them all."
    ),
    key: str | None = typer.Option(
        None,
        "--key",
        help="Name this send (1-255 visible ASCII characters; default: a new random one). "
        "Sending again with the same key never sends the message twice.",
    ),
    retry_for: float = typer.Option(
        60.0,
        "--retry-for",
        min=0,
        help="Seconds to keep trying while the station does not answer (0: try once).",
    ),
    link: str | None = LINK_OPTION,
    data: Path | None = DATA_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send a message; returns once the station has made it durable (accepted). Files are
    uploaded to the station first, with a progress bar; --wait then shows each file's way to
    the peer, until the peer has signed for it.

    The send is named by a key, so when no answer comes (the station is restarting, or the
    answer was lost) it is tried again for up to --retry-for seconds without any risk of
    sending it twice; the station answers a repeat with the message the first try made."""
    if precedence.upper() not in LANES:
        raise ConfigError(f"precedence is one of {', '.join(LANES)}, not {precedence!r}")
    if kind.lower() not in TYPES:
        hint = " (exercise messages are composed at the console, in an exercise)"
        raise ConfigError(
            f"--type is one of {', '.join(TYPES)}, not {kind!r}"
            + (hint if kind.lower() == "exercise" else "")
        )
    if lang is not None and (problem := valid_language_problem(lang)):
        raise ConfigError(f"--lang: {problem}")
    for path in attach:
        if not path.is_file():
            raise ConfigError(f"--attach {path}: no such file")
    body = (
        text if text is not None else file.read_text(encoding="utf-8") if file else sys.stdin.read()
    )
    if not body.strip():
        raise ConfigError("the message is empty: give its text, --file FILE, or standard input")
    key = key if key is not None else str(uuid.uuid4())
    if not re.fullmatch(SEND_KEY, key):
        raise ConfigError("--key is 1 to 255 visible ASCII characters (no spaces)")
    name = _only_link(data, link)
    files = [_upload(data, path, quiet=as_json) for path in attach]
    said = {"language": lang} if lang is not None else {}  # unsaid: the link's first
    message = {"text": body, "lane": precedence.upper(), "type": kind.lower(),
               "attachments": files, **said}  # fmt: skip
    route = f"/api/v1/links/{name}/messages"
    answer = _send_until_answered(data, route, message, key, retry_for)
    result = answer.json()
    if as_json:
        print(json.dumps({**result, "key": key, "first": answer.status_code == 201}))
    elif answer.status_code == 201:
        console.print(f"accepted: {result['lane']} {result['seq']} to {name}")
    else:
        console.print(
            f"accepted: {result['lane']} {result['seq']} to {name} (by an earlier try whose "
            "answer was lost; sent once)"
        )
    if wait and files:
        _follow(data, name, result["lane"], result["seq"], quiet=as_json)


def _send_until_answered(
    data: Path | None, path: str, message: dict[str, Any], key: str, retry_for: float
) -> httpx.Response:
    """POST the message under its key until the station answers, for up to `retry_for` s: a
    try that got no answer may or may not have been accepted, and the key makes the next one
    safe either way. Then the truth: the answer, or that nobody knows (and the key to use)."""
    deadline = time.monotonic() + retry_for
    pause = 0.25
    while True:
        try:
            return _answered(data, "POST", path, message, headers={"Idempotency-Key": key})
        except Unreachable as exc:
            if time.monotonic() + pause > deadline:
                raise Unreachable(
                    f"{exc}. Whether the message was accepted is not known: send it again "
                    f"with --key {key} and it is sent once at most"
                ) from None
            err_console.print(f"no answer yet ({exc}); trying again under key {key}", markup=False)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def _upload(data: Path | None, path: Path, quiet: bool) -> dict[str, str]:
    """Stream a file to the station, a megabyte at a time, with a progress bar."""
    size = path.stat().st_size
    with Progress(*_BAR, console=console, disable=quiet) as progress:
        task = progress.add_task(f"upload {escape(shown(path.name))}", total=size)

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as f:
                while block := f.read(1024 * 1024):
                    progress.advance(task, len(block))
                    yield block

        uploaded = _call(data, "POST", "/api/v1/attachments", content=chunks())
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {"sha256": uploaded["sha256"], "name": path.name, "media_type": media_type}


def _follow(data: Path | None, name: str, lane: str, seq: int, quiet: bool) -> None:
    """Show how much of each file the peer holds, until it has signed for every one."""
    with Progress(*_BAR, console=console, disable=quiet) as progress:
        tasks: dict[str, TaskID] = {}
        while True:
            message = _call(data, "GET", f"/api/v1/links/{name}/outbox/{lane}/{seq}")
            for a in message["attachments"]:
                if a["sha256"] not in tasks:
                    tasks[a["sha256"]] = progress.add_task(
                        f"to {escape(name)}: {escape(shown(a['name']))}", total=a["size"]
                    )
                progress.update(tasks[a["sha256"]], completed=a.get("held", 0))
            if message["files_held"]:
                break
            time.sleep(0.25)
    if not quiet:
        console.print(f"delivered: {lane} {seq}; {name} holds every file and signed for each")


def _messages(data: Path | None, link: str | None, box: str, limit: int, as_json: bool) -> None:
    name = _only_link(data, link)
    rows = _call(data, "GET", f"/api/v1/links/{name}/{box}?limit={limit}")
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    # Each time named (issue 15, item 12): the peer's date of a message is its own clock's word,
    # ours is when it arrived; ours are sent when accepted, and held there when receipted.
    times = _TIMES[box]
    table = Table(title=Text(f"{box} of {name}"))
    for column in ("lane", "seq", "type", "lang", *times.values(), "state", "text"):
        table.add_column(column)
    for row in rows:
        when = [_when(row.get(key)) for key in times]
        state = row.get("state") or ("acknowledged" if row.get("acknowledged") else "received")
        text = row["text"] if len(row["text"]) <= 60 else row["text"][:57] + "..."
        table.add_row(  # the peer's strings as Text: never read as markup (issue 13, item 5)
            row["lane"], str(row["seq"]), row["type"], peer(row["language"]), *when, state,
            peer(text),
        )  # fmt: skip
    console.print(table)


_TIMES = {  # a list's times: the field, and its column's header
    "inbox": {"sent_ns": "sent (UTC, their clock)", "received_ns": "received (UTC)"},
    "outbox": {"accepted_ns": "sent (UTC)", "receipted_ns": "receipted there (UTC)"},
}


def inbox(
    link: str | None = LINK_OPTION,
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=1000),
    data: Path | None = DATA_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Messages received from the peer, newest first."""
    _messages(data, link, "inbox", limit, as_json)


def outbox(
    link: str | None = LINK_OPTION,
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=1000),
    data: Path | None = DATA_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Messages sent, newest first, with their state: accepted, receipted, acknowledged."""
    _messages(data, link, "outbox", limit, as_json)


def ack(
    precedence: str = typer.Argument(..., help="The lane of the received message."),
    seq: int = typer.Argument(..., help="Its sequence number."),
    text: str | None = typer.Option(
        None, "--text", help='What to say [default: "Acknowledged by USER at the station host"].'
    ),
    link: str | None = LINK_OPTION,
    data: Path | None = DATA_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Acknowledge a received message: the peer learns that a person here has read it."""
    if precedence.upper() not in LANES:
        raise ConfigError(f"the lane is one of {', '.join(LANES)}, not {precedence!r}")
    if seq < 1:
        raise ConfigError(f"a sequence number is 1 or more, not {seq}")
    name = _only_link(data, link)
    result = _call(
        data,
        "POST",
        f"/api/v1/links/{name}/inbox/{precedence.upper()}/{seq}/ack",
        {"text": text} if text is not None else {},
    )
    if as_json:
        print(json.dumps(result))
    else:
        console.print(f"acknowledged {precedence.upper()} {seq}")


def status(data: Path | None = DATA_DIR_OPTION, as_json: bool = JSON_OPTION) -> None:
    """The station's links and their state: UP, DEGRADED or DOWN, and since when."""
    result = _call(data, "GET", "/api/v1/status")
    if as_json:
        print(json.dumps(result, indent=2))
        return
    console.print(Text.assemble("Station ", peer(result["station"])))
    table = Table()
    for column in ("link", "peer", "state", "since", "unreceipted", "agreement"):
        table.add_column(column)
    for link in result["links"]:
        agreement = "yes" if link["in_agreement"] else "not yet"
        table.add_row(
            Text(link["name"]),
            peer(link["peer"]),
            link["state"],
            _when(link["since_ns"]),
            str(link["unreceipted"]),
            agreement,
        )
    console.print(table)


def paths(data: Path | None = DATA_DIR_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Every path of every link: state, since when, round-trip time, the peer's clock offset."""
    result = _call(data, "GET", "/api/v1/status")
    rows = [{"link": link["name"], **path} for link in result["links"] for path in link["paths"]]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table()
    for column in ("link", "path", "state", "since", "rtt", "clock offset"):
        table.add_column(column)
    for row in rows:
        rtt = f"{row['rtt_ms']:.2f} ms" if row["rtt_ms"] is not None else "-"
        offset = f"{row['clock_offset_ms']:+.1f} ms" if row["clock_offset_ms"] is not None else "-"
        state = Text(row["state"])
        if row["state"] != "UP" and row.get("measured_ns"):  # the last measured: not current
            stale = f" (stale, measured {_when(row['measured_ns'])})"
            rtt, offset = rtt + stale, offset + stale
        if row["state"] != "UP" and row.get("reason"):  # partly the peer's words: as Text
            state = Text.assemble(state, ": ", peer(row["reason"]))
        table.add_row(row["link"], row["address"], state, _when(row["since_ns"]), rtt, offset)
    console.print(table)
