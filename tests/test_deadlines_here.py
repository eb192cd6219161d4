"""Deadlines at the receiving side (issue 15 item 6), through the console's routes and the
station's discipline in this test's event loop: an incoming principal message shows its
deadline; past it the overdue alarm is raised here (no later than the sender's, which counts
from the same moment) and escalates; a restart tells the webhook nothing it was told before,
and the link tests go on with their numbers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hotline.console.app import make_console_app
from hotline.crypto.identity import StationIdentity
from hotline.protocol.envelope import Lane, MessageType, decode_envelope
from hotline.station.discipline import RESTART_GRACE_NS, Discipline
from hotline.station.launch import StationProcess
from hotline.station.runtime import Station
from tests import test_console as tc
from tests.inprocess import london_and_identity, running

S = 1_000_000_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pair(tmp_path: Path) -> tuple[StationProcess, StationIdentity]:
    return london_and_identity(tmp_path)


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012 - one test's mailbox

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received.clear()
    yield f"http://127.0.0.1:{server.server_port}/alarms"
    server.shutdown()
    server.server_close()


async def _told(discipline: Discipline) -> list[tuple[str, str]]:
    """What the webhook has been told so far: (event, alarm id), once every post is done."""
    await asyncio.gather(*discipline._webhooks)
    return [(r["event"], r["alarm"]["id"]) for r in _Hook.received]


@pytest.mark.anyio
async def test_the_receiver_shows_the_deadline_and_raises_the_overdue_alarm_first(
    pair: tuple[StationProcess, StationIdentity],
) -> None:
    async with running(*pair) as station:
        app = make_console_app(station, station.config.console, tls=False)
        seq = await tc.arrived(station, "ответьте, пожалуйста", lane=Lane.IMMEDIATE)
        officer, csrf, _ = await tc.signed_in(app, station, "operator")
        traffic = (await officer.get("/console/traffic/moscow")).json()
        [row] = [m for m in traffic["inbox"] if m["lane"] == "IMMEDIATE" and m["seq"] == seq]
        immediate = station.config.console.deadlines.immediate * S
        assert row["deadline_ns"] == row["sent_ns"] + immediate, "counted from when it was sent"
        assert row["overdue"] is False
        due = row["deadline_ns"]

        # The sender counts from when it accepted the message, which is no earlier than when it
        # signed it (sent_ns): the alarm here is raised no later than the sender's.
        discipline = station.discipline
        alarm_id = f"overdue:moscow:in:IMMEDIATE:{seq}"
        await discipline.review(due - S)
        assert alarm_id not in discipline.alarms
        await discipline.review(due + S)
        alarm = discipline.alarms[alarm_id]
        assert alarm.kind == "overdue"
        assert alarm.raised_ns == due
        assert alarm.message is not None
        assert alarm.message["direction"] == "in"
        assert alarm.message["deadline_ns"] == due
        assert "not acknowledged by a person here" in alarm.text
        board = (await officer.get("/console/board")).json()
        assert alarm_id in {a["id"] for a in board["alarms"]}

        escalate = station.config.console.escalate_after_s * S
        await discipline.review(due + escalate + 2 * S)
        assert discipline.alarms[alarm_id].level == 2, "escalated here"

        acked = await officer.post(
            f"/console/inbox/moscow/IMMEDIATE/{seq}/ack", headers={"X-CSRF-Token": csrf}
        )
        assert acked.status_code == 201
        await discipline.review(due + escalate + 3 * S)
        assert alarm_id not in discipline.alarms, "acknowledged here: the alarm clears"
        traffic = (await officer.get("/console/traffic/moscow")).json()
        [row] = [m for m in traffic["inbox"] if m["lane"] == "IMMEDIATE" and m["seq"] == seq]
        assert row["overdue"] is False

        # A FLASH is an alarm from its arrival until acknowledged: past its deadline it is
        # marked overdue, and raises no second alarm.
        flash = await tc.arrived(station, "FLASH", lane=Lane.FLASH)
        traffic = (await officer.get("/console/traffic/moscow")).json()
        [row] = [m for m in traffic["inbox"] if m["lane"] == "FLASH" and m["seq"] == flash]
        flash_due = station.config.console.deadlines.flash * S
        assert row["deadline_ns"] == row["sent_ns"] + flash_due
        await discipline.review(row["deadline_ns"] + S)
        about = {"direction": "in", "lane": "FLASH", "seq": flash}
        kinds = [
            a.kind
            for a in discipline.alarms.values()
            if a.message and {k: a.message[k] for k in about} == about
        ]
        assert kinds == ["flash"]


@pytest.mark.anyio
async def test_an_incoming_message_that_needs_no_person_has_no_deadline(
    pair: tuple[StationProcess, StationIdentity],
) -> None:
    async with running(*pair) as station:
        app = make_console_app(station, station.config.console, tls=False)
        officer, _, _ = await tc.signed_in(app, station, "operator")
        await station.discipline.review(time.time_ns())  # our link test goes; none comes
        traffic = (await officer.get("/console/traffic/moscow")).json()
        tests = [m for m in traffic["outbox"] if m["type"] == "test"]
        assert tests
        assert all(m["deadline_ns"] is None for m in tests)


@pytest.mark.anyio
async def test_a_restart_does_not_tell_the_webhook_again_of_a_standing_alarm(
    pair: tuple[StationProcess, StationIdentity], webhook: str
) -> None:
    async with running(*pair) as station:
        discipline = station.discipline
        discipline.settings = msgspec.structs.replace(discipline.settings, webhook=webhook)
        seq = await tc.arrived(station, "срочно", lane=Lane.IMMEDIATE)
        later = time.time_ns() + (station.config.console.deadlines.immediate + 5) * S
        await discipline.review(later)
        first = await _told(discipline)
    alarm_id = f"overdue:moscow:in:IMMEDIATE:{seq}"
    assert ("raised", alarm_id) in first
    standing = {alarm for event, alarm in first if event == "raised"}
    assert len(standing) >= 2, "the overdue message, and the link down since the start"

    _Hook.received.clear()
    async with running(*pair) as station:  # the restart
        discipline = station.discipline
        discipline.settings = msgspec.structs.replace(discipline.settings, webhook=webhook)
        await discipline.review(later + S)
        assert alarm_id in discipline.alarms, "still standing, and on the board"
        again = [(e, a) for e, a in await _told(discipline) if a in standing]
        assert again == [], "told before the restart: not again"

        app = make_console_app(station, station.config.console, tls=False)
        officer, csrf, _ = await tc.signed_in(app, station, "operator")
        acked = await officer.post(
            f"/console/inbox/moscow/IMMEDIATE/{seq}/ack", headers={"X-CSRF-Token": csrf}
        )
        assert acked.status_code == 201
        await discipline.review(later + 2 * S)
        assert ("cleared", alarm_id) in await _told(discipline)
        _Hook.received.clear()
        # An alarm told of before the restart whose cause went while the station was down
        # is said to have cleared, once, after the station's first seconds.
        discipline._told = {**(discipline._told or {}), "gone:moscow": {"id": "gone:moscow"}}
        await discipline.review(station.started_ns + RESTART_GRACE_NS + S)
        await discipline.review(station.started_ns + RESTART_GRACE_NS + 2 * S)
        assert [e for e in await _told(discipline) if e[1] == "gone:moscow"] == [
            ("cleared", "gone:moscow")
        ]

    _Hook.received.clear()
    async with running(*pair) as station:  # another webhook: another listener, told afresh
        discipline = station.discipline
        elsewhere = webhook.replace("/alarms", "/elsewhere")
        discipline.settings = msgspec.structs.replace(discipline.settings, webhook=elsewhere)
        await discipline.review(later + 3 * S)
        assert ("raised", "link_down:moscow") in await _told(discipline)


async def _last_test_text(station: Station) -> str:
    assert station.store is not None
    link_id = station.links["moscow"].link.config.link_id
    last = await station.store.call(lambda s: s.last_sent(link_id, MessageType.TEST))
    assert last is not None
    lane, seq = last[0], last[1]
    data = await station.store.call(lambda s: s.outbound(link_id, lane, seq))
    assert data is not None
    return decode_envelope(bytes(data), None).body.text


@pytest.mark.anyio
async def test_link_tests_keep_their_numbers_across_a_restart(
    pair: tuple[StationProcess, StationIdentity],
) -> None:
    async with running(*pair) as station:
        await station.discipline.review(time.time_ns())
        first = await _last_test_text(station)
        interval = station.config.console.test_interval_s * S
    assert first.startswith("LINK TEST 1 from London")
    async with running(*pair) as station:  # the restart
        await station.discipline.review(time.time_ns() + interval + S)
        second = await _last_test_text(station)
    assert second.startswith("LINK TEST 2 from London"), second
