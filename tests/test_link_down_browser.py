"""A link down on the console's board (issue 15 item 13), in a real browser against two real
station processes: when Moscow stops, London's board says DOWN and why, shows the last round
trip and clock offset as stale with their age (not as if current), and raises one alarm for the
outage, its reason on it, not one for the link and one for each path."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from playwright.sync_api import Browser, expect

from hotline.station.launch import StationProcess, make_pair
from tests.consoledriver import open_console, staff, wait_up

REASON = "peer closed: station shutting down"
REVIEWS_MS = 3_000  # the alarm review runs every second: three more find nothing new


def _measured(london: StationProcess) -> bool:
    paths = london.call("GET", "/api/v1/status")["links"][0]["paths"]
    return all(p["rtt_ms"] is not None and p["clock_offset_ms"] is not None for p in paths)


def test_a_stopped_peer_shows_down_with_its_reason_stale_figures_and_one_alarm(
    tmp_path: Path, browser: Browser
) -> None:
    london, moscow = make_pair(tmp_path)
    people = staff(london, [("olga", "operator")])
    london.start()
    moscow.start()
    try:
        wait_up(london)
        deadline = time.monotonic() + 30
        while not _measured(london) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _measured(london), "round trips measured on both paths"
        page = open_console(browser, people["olga"])
        card = page.locator('#board-links [data-link="moscow"]')
        expect(card).to_have_attribute("data-state", "UP")
        expect(card.locator("td.stale")).to_have_count(0)
        expect(card.locator(".down-reason")).to_have_count(0)

        moscow.kill(signal.SIGTERM)
        expect(card).to_have_attribute("data-state", "DOWN")
        expect(card.locator(".state-word")).to_have_text("DOWN")
        expect(card.locator(".down-reason")).to_contain_text(REASON)
        rows = card.locator("tbody tr[data-path]")
        expect(rows).to_have_count(2)
        for row in rows.all():
            expect(row).to_have_attribute("data-state", "DOWN")
            stale = row.locator("td.stale")
            expect(stale).to_have_count(2)  # the round trip and the clock offset
            for cell in stale.all():
                expect(cell.locator(".stale-word")).to_have_text("stale")
                expect(cell.locator("time[data-ns] .ago")).to_have_count(1)  # its age
                assert cell.locator(".stale-value").inner_text() != "—"

        alarm = page.locator('#alarms li[data-kind="link_down"]')
        expect(alarm).to_have_count(1)
        expect(alarm.locator(".alarm-text")).to_contain_text(REASON)
        page.wait_for_timeout(REVIEWS_MS)
        expect(page.locator("#alarms li[data-alarm]")).to_have_count(1)
        expect(page.locator('#alarms li[data-kind="path_down"]')).to_have_count(0)
        alarms = london.call("GET", "/api/v1/status")["alarms"]
        assert [a["kind"] for a in alarms] == ["link_down"]
        assert alarms[0]["text"] == f"link moscow is DOWN: {REASON}"

        page.click("#lang-switch")  # the same board in Russian
        expect(card.locator(".state-word")).to_have_text("НЕТ СВЯЗИ")  # noqa: RUF001
        expect(card.locator(".stale-word").first).to_have_text("устарело")
        expect(card.locator(".down-reason")).to_contain_text("Причина:")
        expect(card.locator(".down-reason")).to_contain_text(REASON)
    finally:
        london.close()
        moscow.close()
