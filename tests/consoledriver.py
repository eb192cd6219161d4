"""Driving the console in a real browser: Debian's chromium under Playwright (its
`executable_path`; Playwright downloads no browser). Shared by tests/test_console_browser.py and
bench/console.py."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

import pyotp
from playwright.sync_api import Browser, Page, Playwright

from hotline.console.operators import add_operator
from hotline.station.launch import StationProcess
from hotline.station.runtime import open_store

__all__ = ["Person", "chromium", "compose", "open_console", "staff", "wait_up"]

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


def staff(station: StationProcess, people: list[tuple[str, str]]) -> dict[str, Person]:
    """Operator accounts on a station's store (the station may be running)."""
    store = open_store(station.data, station.data.config())
    try:
        made = {
            name: add_operator(store, name, role, time.time_ns(), password=PASSWORD)
            for name, role in people
        }
    finally:
        store.close()
    return {name: Person(station, name, role, made[name].totp_secret) for name, role in people}


def open_console(browser: Browser, person: Person) -> Page:
    """A browser window signed in to `person`'s station console."""
    page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
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
