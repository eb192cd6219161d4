"""`hotline serve` as an operator starts it, without --verbose (issue 15 item 22): it says where
the console and the API are, and its warnings are things to worry about, not a link coming up."""

from __future__ import annotations

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
        moscow.kill(signal.SIGTERM)
        _wait(lambda: _link_state(london) == "DOWN", "link down")
        _wait(lambda: "link moscow is DOWN" in output.read_text(), "warning of the link down")
    finally:
        london.kill(signal.SIGTERM)
    config = london.data.config()
    lines = output.read_text().splitlines()
    assert f"  console  http://{config.console.listen}" in lines
    assert any(line.startswith(f"  API      http://{config.api.listen}") for line in lines)
    assert [line for line in lines if " is UP" in line] == [], "coming up is no warning"
    down = [line for line in lines if "link moscow is DOWN" in line]
    assert len(down) == 1
    assert " WARNING " in down[0]
