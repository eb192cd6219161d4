"""Drafts in a real browser (issue 15, item 16): the author withdraws their own draft before it is
released; a supervisor cannot reject one without saying why; the author's open console is told
at once who rejected their draft and why, and their drafts list keeps saying it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from hotline.station.launch import make_pair
from hotline.station.runtime import open_store
from tests.consoledriver import Person, compose, open_console, show, staff


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Person]]:
    london, _moscow = make_pair(tmp_path_factory.mktemp("drafts-browser"))
    # A code signs a person in once: each test has people of its own.
    people = staff(
        london,
        [("olga", "operator"), ("sam", "supervisor"), ("oleg", "operator"), ("sue", "supervisor")],
    )
    london.start()
    yield people
    london.close()


def _errors(page: Page) -> list[str]:
    errors: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", seen)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def _audit(person: Person) -> list[tuple[str, str, str]]:
    store = open_store(person.station.data, person.station.data.config())
    try:
        return [(who, act, detail) for _i, _at, who, act, detail, _l in store.audit_log()]
    finally:
        store.close()


def test_the_author_withdraws_their_own_draft_and_nobody_can_release_it(
    browser: Browser, desk: dict[str, Person]
) -> None:
    author, supervisor = open_console(browser, desk["olga"]), open_console(browser, desk["sam"])
    errors = _errors(author)
    compose(author, "ROUTINE", "principal", "en", "Second thoughts: this goes nowhere.")
    expect(author.locator("#compose-result")).to_contain_text("Waiting for a supervisor")
    show(supervisor, "drafts")
    theirs = supervisor.locator("[data-draft-id]", has_text="Second thoughts")
    expect(theirs).to_be_visible()
    expect(theirs.locator("button.withdraw")).to_have_count(0)  # not the supervisor's to take back

    show(author, "drafts")
    mine = author.locator("[data-draft-id]", has_text="Second thoughts")
    mine.locator("button.withdraw").click()
    expect(author.locator("#message-line")).to_contain_text("withdrawn")
    expect(mine).to_have_count(0)
    expect(theirs).to_have_count(0)  # gone from the supervisor's list too, without a reload
    assert any(who == "olga" and act == "withdrawn" for who, act, _ in _audit(desk["olga"]))
    assert errors == []


def test_a_rejection_needs_a_reason_and_the_author_is_told_it_at_once(
    browser: Browser, desk: dict[str, Person]
) -> None:
    author, supervisor = open_console(browser, desk["oleg"]), open_console(browser, desk["sue"])
    errors = _errors(author)
    compose(author, "PRIORITY", "principal", "en", "Please confirm the 09:00 call.")
    expect(author.locator("#compose-result")).to_contain_text("Waiting for a supervisor")
    show(author, "board")  # the author is elsewhere when the decision comes

    show(supervisor, "drafts")
    card = supervisor.locator("[data-draft-id]", has_text="09:00 call")
    draft_id = card.get_attribute("data-draft-id")
    card.locator("button.reject").click()  # no reason given: nothing happens but a request for one
    expect(supervisor.locator("#message-line")).to_contain_text("Say why")
    expect(card).to_be_visible()
    card.locator("input.reject-reason").fill("The call is at 10:00; correct the time.")
    card.locator("button.reject").click()
    expect(card).to_have_count(0)

    notice = author.locator("#message-line")
    expect(notice).to_contain_text("rejected by sue: The call is at 10:00; correct the time.")
    show(author, "drafts")
    mine = author.locator('[data-draft-id][data-state="rejected"]', has_text="09:00 call")
    expect(mine).to_contain_text("Rejected by sue: The call is at 10:00; correct the time.")
    expect(mine.locator("button")).to_have_count(0)
    expect(author.locator("#drafts-count")).to_be_hidden()  # nothing waits
    said = f"draft {draft_id} by oleg: The call is at 10:00; correct the time."
    assert ("sue", "rejected", said) in _audit(desk["oleg"])
    assert errors == []
