"""Enrolment in a real browser (issue 13, item 10): an admin adds a supervisor and is shown only a
one-time code; the person opens the console's enrolment page with it, chooses a password, is
shown the TOTP secret there (as a QR code drawn by the station, issue 15 item 17), confirms a code
and is signed in; the admin's list shows the account as new, not yet allowed to release. The
admin's page changes a role, and refuses to leave the station without an active admin."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyotp
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, expect

from hotline.console.accounts import qr_image
from hotline.station.launch import StationProcess, make_pair
from hotline.station.runtime import open_store
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
    admin.select_option("#op-language", "ru")
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
    asked: list[str] = []
    person.on("request", lambda r: asked.append(r.url))
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
    qr = person.locator("#enrol-qr")
    expect(qr).to_be_visible()
    assert qr.get_attribute("src") == qr_image(shown[0]), "the QR code of the address shown"
    assert qr.evaluate("i => i.complete && i.naturalWidth > 0"), "drawn in the page"
    assert all(url.startswith((london.console, "data:")) for url in asked), asked  # no CDN
    person.fill("#enrol-totp", pyotp.TOTP(shown[1]).now())
    person.click("#enrol-submit")
    expect(person.locator("#app")).to_be_visible()
    expect(person.locator("#operator-name")).to_have_text("lena")
    expect(person.locator("#nav")).to_contain_text("Черновики")  # in the language she was given
    assert errors == []

    show(admin, "operators")  # loaded again
    expect(admin.locator('[data-operator="lena"]')).to_contain_text("cannot release until")


def _accept(dialogs: list[str]) -> Callable[[Dialog], None]:
    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    return accept


def test_an_admin_changes_a_role_and_the_last_admin_cannot_be_disabled_or_demoted(
    browser: Browser, desk: tuple[StationProcess, Person]
) -> None:
    """Issue 15, item 17: a role changed on the admin's page (audited); the last active admin
    is refused, with the reason in the page, whether disabling or demoting themself."""
    london, _ada = desk
    people = staff(london, [("max", "admin"), ("petr", "operator")])
    admin = open_console(browser, people["max"])
    errors = _errors(admin)
    dialogs: list[str] = []
    admin.on("dialog", _accept(dialogs))
    show(admin, "operators")

    admin.locator('[data-operator="petr"] select.role').select_option("translator")
    expect(admin.locator("#message-line")).to_contain_text("petr")
    expect(admin.locator('[data-operator="petr"] select.role')).to_have_value("translator")
    assert any("petr" in d for d in dialogs), "asked first"

    admin.locator('[data-operator="ada"] button.disable').click()  # max is still an admin
    expect(admin.locator('[data-operator="ada"] button.enable')).to_be_visible()
    mine = admin.locator('[data-operator="max"]')
    mine.locator("button.disable").click()
    expect(admin.locator("#message-line")).to_contain_text("max is the last active admin")
    expect(mine.locator("button.disable")).to_be_visible()
    mine.locator("select.role").select_option("supervisor")
    expect(admin.locator("#message-line")).to_contain_text("max is the last active admin")
    expect(mine.locator("select.role")).to_have_value("admin")
    expect(admin.locator("#app")).to_be_visible()  # still signed in, still the admin

    store = open_store(london.data, london.data.config())
    try:
        roles = {o.name: (o.role, o.disabled) for o in store.operators()}
        audit = [(who, act, detail) for _i, _at, who, act, detail, _l in store.audit_log()]
    finally:
        store.close()
    assert roles["petr"] == ("translator", False)
    assert roles["max"] == ("admin", False)
    assert roles["ada"] == ("admin", True)
    assert ("max", "role changed", "petr: operator to translator") in audit
    assert errors == []
