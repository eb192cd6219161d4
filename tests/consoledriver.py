"""Driving the console in a real browser: Debian's chromium under Playwright (its
`executable_path`; Playwright downloads no browser). Shared by tests/test_console_browser.py and
bench/console.py."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

import pyotp
from playwright.sync_api import Browser, Page, Playwright

from hotline.console.auth import new_totp_secret
from hotline.console.operators import add_operator, complete_enrolment
from hotline.station.launch import StationProcess
from hotline.station.runtime import open_store

__all__ = [
    "Person",
    "chromium",
    "compose",
    "hold_to_acknowledge",
    "open_console",
    "staff",
    "wait_up",
]

PASSWORD = "a long enough password"
TIMEOUT_MS = 20_000


def wait_up(station: StationProcess) -> None:
    """Until the station's (first) link is UP, at most a minute."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if station.call("GET", "/api/v1/status")["links"][0]["state"] == "UP":
            return
        time.sleep(0.1)
    raise RuntimeError("the link did not come UP")


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "the console's browser tests need Debian's chromium: apt-get install -y chromium"
    )


def chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True)


@dataclass(frozen=True)
class Person:
    station: StationProcess
    name: str
    role: str
    secret: str

    def code(self) -> str:
        """The code for now (each code signs a person in once)."""
        totp = pyotp.TOTP(self.secret)
        return totp.now()


SETTLED_NS = 1_000_000_000 * 10**9  # enrolled in 2001: long past any hold on new accounts


def staff(station: StationProcess, people: list[tuple[str, str]]) -> dict[str, Person]:
    """Staff of long standing on a station's store (the station may be running): each account
    made as any is, and taken up with its enrolment code as the enrolment page does it (a secret
    and the password PASSWORD of the person's own), then dated as enrolled long ago, before any
    hold on new accounts (tests/test_enrolment.py holds the hold)."""
    store = open_store(station.data, station.data.config())
    secrets = {name: new_totp_secret() for name, _ in people}
    try:
        for name, role in people:
            now = time.time_ns()
            made = add_operator(store, name, role, now, "test")
            assert complete_enrolment(store, name, made.code, PASSWORD, secrets[name], now)
            store.update_operator(name, enrolled_ns=SETTLED_NS)
    finally:
        store.close()
    return {name: Person(station, name, role, secrets[name]) for name, role in people}


def open_console(browser: Browser, person: Person, init_script: str = "") -> Page:
    """A browser window signed in to `person`'s station console. An `init_script` runs in the
    page before the console's own (the page's CSP is then bypassed for it: a benchmark's
    instruments, never the console's code)."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 860}, bypass_csp=bool(init_script)
    )
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(person.station.console)
    page.fill("#login-name", person.name)
    page.fill("#login-password", PASSWORD)
    page.fill("#login-code", person.code())
    page.click("#login-submit")
    page.wait_for_selector("#app", state="visible")
    return page


def show(page: Page, view: str) -> None:
    page.click(f'#nav [data-view="{view}"]')
    page.wait_for_selector(f"#view-{view}", state="visible")


def compose(page: Page, lane: str, kind: str, language: str, text: str) -> None:
    show(page, "compose")
    page.select_option("#compose-lane", lane)
    page.select_option("#compose-type", kind)
    page.select_option("#compose-language", language)
    page.fill("#compose-text", text)
    page.click("#compose-submit")


def hold_to_acknowledge(page: Page) -> None:
    """Acknowledge the FLASH on the overlay as a person must: press the button and hold it
    until the overlay goes (a click, or a press begun before the overlay showed, does not)."""
    page.locator("#flash-ack").hover()
    page.mouse.down()
    try:
        page.wait_for_selector("#flash-alarm", state="hidden")
    finally:
        page.mouse.up()
