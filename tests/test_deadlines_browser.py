"""Deadlines at the receiving side (issue 15 item 6), in a real browser against two real station
processes: Moscow sends London an IMMEDIATE message; London's console shows its deadline counting
down, then raises the overdue alarm, which escalates; Moscow's console sees its own overdue alarm
too, raised no earlier than London's."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, expect

from hotline.station.launch import StationProcess, make_pair
from tests.consoledriver import open_console, show, staff, wait_up

DEADLINE_S = 12  # [console.deadlines] immediate, at both stations
ESCALATE_S = 4
WAIT_MS = 60_000


def _short_deadlines(station: StationProcess) -> None:
    config = station.data.config_file
    text = config.read_text()
    for old, new in (("immediate = 900", f"immediate = {DEADLINE_S}"),
                     ("escalate_after_s = 300", f"escalate_after_s = {ESCALATE_S}")):  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    config.write_text(text)


def _overdue(station: StationProcess) -> list[dict[str, object]]:
    alarms = station.call("GET", "/api/v1/status")["alarms"]
    return [a for a in alarms if a["kind"] == "overdue"]


def test_the_receiver_counts_down_and_is_alarmed_at_the_deadline_the_sender_too(
    tmp_path: Path, browser: Browser
) -> None:
    london, moscow = make_pair(tmp_path)
    for station in (london, moscow):
        _short_deadlines(station)
    people = staff(london, [("olga", "operator")]) | staff(moscow, [("ivan", "operator")])
    london.start()
    moscow.start()
    try:
        wait_up(london)
        sent = moscow.call(
            "POST", "/api/v1/links/london/messages", {"text": "Please confirm", "lane": "IMMEDIATE"}
        )
        olga = open_console(browser, people["olga"])
        show(olga, "traffic")
        row = olga.locator(f'#inbox tbody tr[data-lane="IMMEDIATE"][data-seq="{sent["seq"]}"]')
        due = row.locator(".due")
        expect(due).to_have_count(1)
        expect(due).to_contain_text("Deadline")
        expect(due.locator("time .ago")).to_contain_text("in ")  # counting down
        expect(due).not_to_have_class("due due-late")

        # Past the deadline: late in the list and an alarm on London's board, which escalates.
        expect(row.locator(".due-late")).to_contain_text("overdue", timeout=WAIT_MS)
        expect(row).to_have_class("overdue")
        show(olga, "board")
        alarm = olga.locator('#alarms li[data-kind="overdue"]')
        expect(alarm).to_have_count(1)
        expect(alarm.locator(".alarm-text")).to_contain_text("not acknowledged by a person here")
        expect(alarm).to_have_attribute("data-level", "2", timeout=WAIT_MS)

        # The sender sees its own overdue alarm, raised no earlier than the receiver's.
        ivan = open_console(browser, people["ivan"])
        expect(ivan.locator('#alarms li[data-kind="overdue"]')).to_have_count(1, timeout=WAIT_MS)
        [here] = _overdue(london)
        [there] = _overdue(moscow)
        assert here["message"]["direction"] == "in"  # type: ignore[index]
        assert there["message"]["direction"] == "out"  # type: ignore[index]
        assert int(here["raised_ns"]) <= int(there["raised_ns"])  # type: ignore[call-overload]
    finally:
        london.close()
        moscow.close()
