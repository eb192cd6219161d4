"""A flood of FLASH in a real browser (issue 13, item 8), against two real station processes:
London sends more FLASH than the board names, 32 KB each; Moscow's screen shows the oldest, its
text fetched by the id its alarm names, says exactly how many more wait, and one press silences
them all. (tests/test_alarm_flood.py holds the station's side to its numbers.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from hotline.console.views import FLASH_SHOWN
from hotline.station.launch import StationProcess, make_pair
from tests.consoledriver import Person, open_console, staff, wait_up

FLOOD = FLASH_SHOWN + 5


@pytest.fixture(scope="module")
def desks(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[StationProcess, dict[str, Person]]]:
    london, moscow = make_pair(tmp_path_factory.mktemp("flood-browser"))
    people = staff(moscow, [("ivan", "operator")])
    for station in (london, moscow):
        station.start()
    wait_up(london)
    yield london, people
    for station in (london, moscow):
        station.close()


def test_a_flood_of_flash_is_shown_counted_and_silenced_at_once(
    desks: tuple[StationProcess, dict[str, Person]], browser: Browser
) -> None:
    london, moscow = desks
    receiver = open_console(browser, moscow["ivan"])
    device = [c for c in receiver.context.cookies() if c["name"] == "hotline_device"]
    assert len(device) == 1, "the browser is known for its next sign-in (issue 13, item 11)"
    assert device[0]["httpOnly"]
    assert device[0]["path"] == "/console/login"
    for n in range(FLOOD):
        text = f"FLOOD {n}: " + "я" * 16_000
        london.call("POST", "/api/v1/links/moscow/messages", {"text": text, "lane": "FLASH"})
    expect(receiver.locator("#flash-alarm")).to_be_visible()
    expect(receiver.locator("#flash-more")).to_contain_text(str(FLOOD - 1))
    expect(receiver.locator("#flash-text")).to_contain_text("FLOOD 0: яяя")
    expect(receiver.locator("#flash-ref")).to_have_text("FLASH 1")
    receiver.click("#flash-silence")
    expect(receiver.locator("#flash-silenced")).to_be_visible()
    expect(receiver.locator("#flash-silence")).to_be_hidden()
    expect(receiver.locator("#alarms")).to_contain_text("more")
