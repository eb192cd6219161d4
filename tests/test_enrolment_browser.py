"""Enrolment in a real browser (issue 13, item 10): an admin adds a supervisor and is shown only a
one-time code; the person opens the console's enrolment page with it, chooses a password, is
shown the TOTP secret there, confirms a code and is signed in; the admin's list shows the account
as new, not yet allowed to release."""

from __future__ import annotations

from collections.abc import Iterator

import pyotp
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from hotline.station.launch import StationProcess, make_pair
from tests.consoledriver import PASSWORD, TIMEOUT_MS, Person, open_console, show, staff


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StationProcess, Person]]:
    london, _moscow = make_pair(tmp_path_factory.mktemp("enrolment-browser"))
    admin = staff(london, [("ada", "admin")])["ada"]
    london.start()
    yield london, admin
    london.close()


def _errors(page: Page) -> list[str]:
    """Script errors and CSP violations (not the 401 of the first look for a session)."""
    errors: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", seen)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def test_a_new_supervisor_enrols_with_the_code_alone_and_the_admin_sees_no_secret(
    browser: Browser, desk: tuple[StationProcess, Person]
) -> None:
    london, ada = desk
    admin = open_console(browser, ada)
    show(admin, "operators")
    admin.fill("#op-name", "lena")
    admin.select_option("#op-role", "supervisor")
    admin.click("#op-submit")
    box = admin.locator("#op-secret")
    expect(box).to_be_visible()
    code = box.locator("dd .mono").inner_text().strip()
    assert len(code.replace("-", "")) == 24
    assert "otpauth" not in box.inner_text(), "the admin is shown no TOTP secret"
    expect(admin.locator('[data-operator="lena"]')).to_contain_text("waiting for enrolment")

    person = browser.new_context().new_page()
    person.set_default_timeout(TIMEOUT_MS)
    errors = _errors(person)
    person.goto(f"{london.console}/#enrol")  # the address the admin may give with the code
    expect(person.locator("#enrol")).to_be_visible()
    person.fill("#enrol-name", "lena")
    person.fill("#enrol-code", code.lower())  # as a person may type it
    person.fill("#enrol-password", PASSWORD)
    person.fill("#enrol-password2", PASSWORD)
    person.click("#enrol-submit")
    expect(person.locator("#enrol-step2")).to_be_visible()
    shown = person.locator("#enrol-secret dd .mono").all_inner_texts()
    assert shown[0].startswith("otpauth://totp/")
    person.fill("#enrol-totp", pyotp.TOTP(shown[1]).now())
    person.click("#enrol-submit")
    expect(person.locator("#app")).to_be_visible()
    expect(person.locator("#operator-name")).to_have_text("lena")
    assert errors == []

    show(admin, "operators")  # loaded again
    expect(admin.locator('[data-operator="lena"]')).to_contain_text("cannot release until")
