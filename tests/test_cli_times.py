"""`hotline inbox` and `hotline outbox` name each time they show (issue 15, item 12): the peer's
date of a message (its own clock's word) and when it arrived here; when ours was sent (accepted)
and when the peer's station receipted it. Two real stations, the commands as a person runs them."""

from __future__ import annotations

import re
import time

from hotline.station.launch import StationProcess
from tests.consoledriver import wait_up
from tests.test_cli import hotline

_STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def _row(table: str, text: str) -> str:
    return next(line for line in table.splitlines() if text in line)


def test_inbox_and_outbox_name_each_time(stations: tuple[StationProcess, StationProcess]) -> None:
    london, moscow = stations
    for station in stations:
        station.start()
    wait_up(london)
    env = {"COLUMNS": "250"}
    sent = hotline("send", "--data-dir", str(london.data.path), "Times, named.", env=env)
    assert sent.returncode == 0, sent.stderr
    deadline = time.monotonic() + 60
    while not any(m["text"] == "Times, named." and m["state"] != "accepted"
                  for m in london.call("GET", "/api/v1/links/moscow/outbox")):  # fmt: skip
        assert time.monotonic() < deadline, "Moscow never receipted it"
        time.sleep(0.2)

    inbox = hotline("inbox", "--data-dir", str(moscow.data.path), env=env)
    assert inbox.returncode == 0, inbox.stderr
    assert "sent (UTC, their clock)" in inbox.stdout
    assert "received (UTC)" in inbox.stdout
    assert len(re.findall(_STAMP, _row(inbox.stdout, "Times, named."))) == 2, "sent and received"

    outbox = hotline("outbox", "--data-dir", str(london.data.path), env=env)
    assert outbox.returncode == 0, outbox.stderr
    assert "sent (UTC)" in outbox.stdout
    assert "receipted there (UTC)" in outbox.stdout
    assert len(re.findall(_STAMP, _row(outbox.stdout, "Times, named."))) == 2, "sent, receipted"
