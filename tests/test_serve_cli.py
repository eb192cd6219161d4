"""`hotline serve` as an operator starts it, without --verbose (issue 15 item 22): it says where
the console and the API are, and its warnings are things to worry about, not a link coming up.
`hotline paths` then shows a path that went down with its reason and its last figures as stale
(item 13)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

from hotline.station.launch import StationProcess

WAIT_S = 60.0


def _wait(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {WAIT_S:.0f} s")


def _link_state(station: StationProcess) -> str:
    try:
        status = station.call("GET", "/api/v1/status")
    except httpx.HTTPError:
        return ""
    return str(status["links"][0]["state"])


def _measured(station: StationProcess) -> bool:
    paths = station.call("GET", "/api/v1/status")["links"][0]["paths"]
    return all(p["rtt_ms"] is not None and p["clock_offset_ms"] is not None for p in paths)


def test_serve_prints_both_addresses_and_warns_of_a_link_down_not_up(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    moscow.start()
    output = london.log_file.with_suffix(".out")
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "hotline", "serve",
             "--data-dir", str(london.data.path), "--passphrase-file", str(london.passphrase_file)],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        london.process = process
        london.wait_ready()
        _wait(lambda: _link_state(london) == "UP", "link up")
        _wait(lambda: _measured(london), "round trips measured on both paths")
        moscow.kill(signal.SIGTERM)
        _wait(lambda: _link_state(london) == "DOWN", "link down")
        _wait(lambda: "link moscow is DOWN" in output.read_text(), "warning of the link down")
        shown = subprocess.run(  # a wide terminal: rich folds a narrow table's cells
            [sys.executable, "-m", "hotline", "paths", "--data-dir", str(london.data.path)],
            capture_output=True, text=True, timeout=60, check=True,
            env={**os.environ, "COLUMNS": "250"},
        ).stdout  # fmt: skip
    finally:
        london.kill(signal.SIGTERM)
    # The last round trip and offset are not shown as if current; the reason is given.
    rows = [line for line in shown.splitlines() if "127.0.0.1:" in line]
    assert len(rows) == 2, shown
    for row in rows:
        assert "DOWN: peer closed: station shutting down" in row
        assert row.count("(stale, measured ") == 2, row
    config = london.data.config()
    lines = output.read_text().splitlines()
    assert f"  console  http://{config.console.listen}" in lines
    assert any(line.startswith(f"  API      http://{config.api.listen}") for line in lines)
    assert [line for line in lines if " is UP" in line] == [], "coming up is no warning"
    down = [line for line in lines if "link moscow is DOWN" in line]
    assert len(down) == 1
    assert " WARNING " in down[0]
