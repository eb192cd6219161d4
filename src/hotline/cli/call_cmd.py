"""`hotline call`: a softphone on the command line, headless. Call the peer with a precedence, or
answer the call that rings (`--answer`); speak a WAV file, keep what is heard in a WAV file; hang up
when the file has been spoken (or after `--duration`), or when the peer does."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer
from rich.text import Text

from hotline.cli.client import LANES, LINK_OPTION, ApiError, _call, _only_link
from hotline.cli.common import DATA_DIR_OPTION, console, data_dir, peer
from hotline.cli.softphone import Softphone, read_speech
from hotline.errors import ConfigError

POLL_S = 0.02
TAIL_S = 1.0  # after the last word, wait this long for the peer's last words before hanging up


def call(
    data: Path | None = DATA_DIR_OPTION,
    link: str | None = LINK_OPTION,
    precedence: str = typer.Option(
        "ROUTINE", "--precedence", "-p", help="FLASH, IMMEDIATE, PRIORITY or ROUTINE."
    ),
    person: str = typer.Option("operator", "--person", help="Who speaks, as the peer sees it."),
    role: str = typer.Option("principal", "--role", help="principal, interpreter or listener."),
    play: Path | None = typer.Option(None, "--play", help="A WAV file to speak (any rate)."),
    record_to: Path | None = typer.Option(None, "--record-to", help="Write what is heard here."),
    answer: bool = typer.Option(False, "--answer", help="Answer the call that rings instead."),
    wait_s: float = typer.Option(60.0, "--wait", help="Seconds to wait to ring or be answered."),
    duration: float | None = typer.Option(None, "--duration", help="Hang up after this long."),
) -> None:
    """Place or answer a call, speak a WAV file and keep what is heard."""
    if precedence.upper() not in LANES:
        raise ConfigError(f"precedence {precedence!r}: choose one of {', '.join(LANES)}")
    speech = read_speech(play) if play is not None else None
    name = _only_link(data, link)
    call_id = _ring_in(data, wait_s) if answer else _ring_out(data, name, precedence, person, role)
    if answer:
        _call(data, "POST", f"/api/v1/calls/{call_id}/answer", {"person": person, "role": role})
    directory = data_dir(data)
    token = directory.token_file.read_text().strip()
    phone = Softphone(directory.config().api.listen, token, call_id, person, role)
    try:
        if not answer:
            _wait_answered(data, call_id, wait_s)
        console.print(f"in call {call_id[:8]} on link {name}", markup=False)
        phone.start(speech)
        _hold(phone, speech, duration)
        if not phone.ended.is_set():
            _call(data, "POST", f"/api/v1/calls/{call_id}/end", {"reason": "hung up"})
            phone.ended.wait(5)
    finally:
        phone.close()
    if record_to is not None:
        from hotline.station.recording import WavWriter  # noqa: PLC0415 - PyAV only when needed

        writer = WavWriter(record_to)
        for frame in phone.heard.frames:
            writer.write(frame)
        writer.close()
    status = _call(data, "GET", f"/api/v1/calls/{call_id}")
    heard_s = len(phone.heard.audio()) / 48000
    console.print(
        Text.assemble(
            f"call {call_id[:8]} ended: ",
            peer(status.get("end_reason") or "ended"),
            f"; heard {heard_s:.1f} s of audio",
        )
    )


def _ring_out(data: Path | None, name: str, precedence: str, person: str, role: str) -> str:
    body = {"precedence": precedence.upper(), "person": person, "role": role}
    placed = _call(data, "POST", f"/api/v1/links/{name}/calls", body)
    console.print(f"ringing {name} ({precedence.upper()} call {placed['id'][:8]})", markup=False)
    return str(placed["id"])


def _ring_in(data: Path | None, wait_s: float) -> str:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for entry in _call(data, "GET", "/api/v1/calls")["calls"]:
            if entry["direction"] == "incoming" and entry["state"] == "ringing_in":
                caller = entry["caller"]
                console.print(
                    Text.assemble(
                        f"answering {entry['precedence']} call from ",
                        peer(caller["person"]),
                        " (",
                        peer(caller["role"]),
                        f"){', recorded' if entry['recorded'] else ''}",
                    )
                )
                return str(entry["id"])
        time.sleep(POLL_S * 5)
    raise ApiError(f"no call rang within {wait_s:.0f} s")


def _wait_answered(data: Path | None, call_id: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        state = _call(data, "GET", f"/api/v1/calls/{call_id}")
        if state["state"] == "active":
            return
        if state["state"] == "ended":
            raise ApiError(f"the call was not answered: {state.get('end_reason')}")
        time.sleep(POLL_S)
    _call(data, "POST", f"/api/v1/calls/{call_id}/end", {"reason": "no answer"})
    raise ApiError(f"no answer within {wait_s:.0f} s")


def _hold(phone: Softphone, speech: np.ndarray | None, duration: float | None) -> None:
    if duration is None:
        duration = len(speech) / 48000 + TAIL_S if speech is not None else float("inf")
    phone.ended.wait(duration if duration != float("inf") else None)
