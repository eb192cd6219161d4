"""The console in a real browser (Debian's chromium, headless, under Playwright) against two real
station processes: a FLASH drafted in London, released by a supervisor, takes over Moscow's
screen until an operator there acknowledges it, and London sees it acknowledged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from hotline.station.launch import make_pair
from tests.consoledriver import (
    Person,
    compose,
    hold_to_acknowledge,
    open_console,
    show,
    staff,
    wait_up,
)


@pytest.fixture(scope="module")
def desks(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Person], dict[str, Person]]]:
    london, moscow = make_pair(tmp_path_factory.mktemp("browser"))
    people = (
        staff(london, [("olga", "operator"), ("sam", "supervisor")]),
        staff(moscow, [("ivan", "operator"), ("nina", "supervisor"), ("vera", "auditor")]),
    )
    for station in (london, moscow):
        station.start()
    wait_up(london)
    yield people
    for station in (london, moscow):
        station.close()


def _no_csp_violations(page: Page, errors: list[str]) -> None:
    def seen(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", seen)
    page.on("pageerror", lambda exc: errors.append(str(exc)))


def test_a_flash_released_in_london_takes_over_moscow_until_acknowledged(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser, tmp_path: Path
) -> None:
    london, moscow = desks
    errors: list[str] = []
    drafter = open_console(browser, london["olga"])
    releaser = open_console(browser, london["sam"])
    receiver = open_console(browser, moscow["ivan"])
    for page in (drafter, releaser, receiver):
        _no_csp_violations(page, errors)
    expect(receiver.locator('[data-link="london"]')).to_have_attribute("data-state", "UP")

    text = "FLASH: please call on the second line now. / Просим срочно связаться по второй линии."
    compose(drafter, "FLASH", "principal", "en", text)
    expect(drafter.locator("#compose-result")).to_contain_text("1")  # waits, as draft 1
    show(releaser, "drafts")
    card = releaser.locator("[data-draft-id]").filter(has_text="second line")
    card.locator("button.release").click()
    released_at = time.monotonic()

    overlay = receiver.locator("#flash-alarm")
    expect(overlay).to_be_visible()
    flash_seconds = time.monotonic() - released_at
    expect(receiver.locator("#flash-text")).to_have_text(text)
    receiver.screenshot(path=str(tmp_path / "flash.png"))
    hold_to_acknowledge(receiver)
    expect(overlay).to_be_hidden()
    station = moscow["ivan"].station
    flash = [m for m in station.call("GET", "/api/v1/links/london/inbox") if m["lane"] == "FLASH"]
    again = httpx.post(
        f"{station.api}/api/v1/links/london/inbox/FLASH/{flash[0]['seq']}/ack",
        json={},
        headers={"Authorization": f"Bearer {station.data.api_token()}"},
    )
    assert again.status_code == 409, "acknowledged once, not twice"

    show(drafter, "traffic")
    row = drafter.locator('tr[data-direction="out"][data-lane="FLASH"]').first
    expect(row).to_have_attribute("data-state", "acknowledged")
    assert flash_seconds < 20  # a bound for the wait, not a speed claim: bench/console.py times it
    assert errors == [], errors


def test_each_person_sees_only_what_their_role_allows(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    _, moscow = desks
    auditor = open_console(browser, moscow["vera"])
    expect(auditor.locator('#nav [data-view="audit"]')).to_be_visible()
    expect(auditor.locator('#nav [data-view="compose"]')).to_be_hidden()
    expect(auditor.locator('#nav [data-view="operators"]')).to_be_hidden()
    show(auditor, "audit")
    expect(auditor.locator('#audit-table tr[data-action="login"]').first).to_contain_text(
        "Signed in"
    )


def test_a_wrong_code_is_refused_in_the_page(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    london, _ = desks
    person = london["olga"]
    page = browser.new_context().new_page()
    page.goto(person.station.console)
    page.fill("#login-name", person.name)
    page.fill("#login-password", "a long enough password")
    page.fill("#login-code", "000000")
    page.click("#login-submit")
    expect(page.locator("#login-error")).not_to_be_empty()
    expect(page.locator("#app")).to_be_hidden()


def test_a_console_nobody_is_signed_in_to_still_shows_a_waiting_flash(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    london, moscow = desks
    sender, receiver = london["olga"].station, moscow["ivan"].station
    page = browser.new_context().new_page()
    page.goto(receiver.console)
    notice = page.locator("#login-flash")
    expect(notice).to_be_hidden()
    flash = {"text": "nightjar at dawn", "lane": "FLASH"}
    sent = sender.call("POST", "/api/v1/links/moscow/messages", flash)
    expect(notice).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("nightjar")  # that one waits, never what
    receiver.call("POST", f"/api/v1/links/london/inbox/FLASH/{sent['seq']}/ack", {})
    expect(notice).to_be_hidden()


def test_an_exercise_shows_on_the_console_and_its_messages_are_marked(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    _, moscow = desks
    supervisor = open_console(browser, moscow["nina"])
    banner = supervisor.locator("#exercise-banner")
    expect(banner).to_be_hidden()
    supervisor.click("#exercise-toggle")
    expect(banner).to_be_visible()
    expect(supervisor.locator("#compose-type")).to_have_value("exercise")
    supervisor.click("#exercise-toggle")
    expect(banner).to_be_hidden()


def test_a_text_that_lies_to_the_eye_is_shown_as_written(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    """Issue 13, item 4: a bidi override from the peer is named, not obeyed, in an isolated
    <bdi>; a word that mixes scripts is marked; in the traffic list and in the message."""
    london, moscow = desks
    text = "strike at \u202e0030\u202c, p\u0430ypal"
    london["olga"].station.call("POST", "/api/v1/links/moscow/messages", {"text": text})
    reader = staff(moscow["ivan"].station, [("lena", "operator")])["lena"]  # a code of her own
    page = open_console(browser, reader)
    show(page, "traffic")
    row = page.locator("#inbox tbody tr", has_text="strike at")
    shown = row.locator("td.short bdi.peer")
    expect(shown).to_have_text("strike at \u2039U+202E RLO\u203a0030\u2039U+202C PDF\u203a, "
                               "p\u0430ypal\u2039mixed Latin+Cyrillic\u203a")  # fmt: skip
    expect(shown.locator("mark.mixed")).to_have_text("p\u0430ypal")
    assert shown.evaluate("e => getComputedStyle(e).unicodeBidi") == "isolate"
    row.click()
    expect(page.locator("#message-body pre.fulltext bdi.peer")).to_contain_text(
        "\u2039U+202E RLO\u203a0030"
    )
