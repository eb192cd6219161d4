"""The translation desk in a real browser (Debian's chromium under Playwright) against two real
station processes (issue 15, items 10, 15, 9 and 19): the languages offered are the link's, by
name; a translation is withdrawn, saying why, and stays shown as withdrawn; the translators'
queue lists what needs a translation, a review or a certification, most urgent and oldest first;
Traffic marks messages with translations and with files, and says what a number means. Then
the console at 390 px wide: the board, the traffic and a message reflow, with no sideways scroll
of the page."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from hotline.station.launch import StationProcess, make_pair
from tests.consoledriver import Person, open_console, show, staff, wait_up

# Moscow's messages to London, in the order sent: (lane, text). The queue lists them by
# precedence, then age: IMMEDIATE 1, IMMEDIATE 2, PRIORITY 1, ROUTINE 2 (ROUTINE 1 is a link test),
# then ROUTINE 3, which has a file.
SENT = [
    ("ROUTINE", "Подтвердите встречу в полдень"),
    ("PRIORITY", "Делегация прибудет в 14:00"),
    ("IMMEDIATE", "Просим перенести звонок"),
    ("IMMEDIATE", "Повторяем: перенести звонок"),
]


@pytest.fixture(scope="module")
def desk(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Person], StationProcess]]:
    london, moscow = make_pair(tmp_path_factory.mktemp("desk"))
    # Each test signs in its own people: a code signs a person in once.
    people = staff(london, [("nina", "translator"), ("ivan", "translator"),
                            ("olga", "supervisor"), ("vera", "translator"), ("lev", "translator"),
                            ("pavel", "supervisor"), ("sam", "operator"),
                            ("kate", "supervisor"), ("adam", "admin"),
                            ("aud", "auditor")])  # fmt: skip
    for station in (london, moscow):
        station.start()
    wait_up(london)
    for lane, text in SENT:
        moscow.call("POST", "/api/v1/links/london/messages",
                    {"text": text, "lane": lane, "language": "ru"})  # fmt: skip
    token = {"Authorization": f"Bearer {moscow.data.api_token()}"}
    sha = httpx.post(f"{moscow.api}/api/v1/attachments", content=b"%PDF-1.4 agenda",
                     headers=token, timeout=30).json()["sha256"]  # fmt: skip
    files = [{"sha256": sha, "name": "agenda.pdf", "media_type": "application/pdf"}]
    agenda = {"text": "Повестка во вложении", "language": "ru", "attachments": files}
    moscow.call("POST", "/api/v1/links/london/messages", agenda)
    deadline = time.monotonic() + 60
    while len([m for m in london.call("GET", "/api/v1/links/moscow/inbox")
               if m["type"] == "principal"]) < len(SENT) + 1:  # fmt: skip
        assert time.monotonic() < deadline, "Moscow's messages did not arrive"
        time.sleep(0.1)
    yield people, london
    for station in (london, moscow):
        station.close()


def _open(page: Page, lane: str, seq: int) -> None:
    show(page, "traffic")
    page.locator(f'#inbox tbody tr[data-lane="{lane}"][data-seq="{seq}"]').click()
    page.wait_for_selector("#view-message", state="visible")


def _translate(page: Page, lane: str, seq: int, text: str) -> None:
    _open(page, lane, seq)
    page.select_option("#translation-language", "en")
    page.fill("#translation-text", text)
    page.click("#message-body form.translate button[type=submit]")
    expect(page.locator("#message-body .annotation.translation").last).to_contain_text(text)


def test_the_link_s_languages_are_offered_and_a_translation_is_withdrawn(
    desk: tuple[dict[str, Person], StationProcess], browser: Browser
) -> None:
    people, _ = desk
    olga = open_console(browser, people["olga"])
    show(olga, "compose")
    expect(olga.locator("#compose-language option")).to_have_text(["English (en)", "Russian (ru)"])
    olga.click("#lang-switch")
    expect(olga.locator("#compose-language option")).to_have_text(
        ["английский (en)", "русский (ru)"]
    )
    olga.click("#lang-switch")

    nina = open_console(browser, people["nina"])
    _open(nina, "PRIORITY", 1)
    # The original is Russian: the translation goes into the link's other language only.
    expect(nina.locator("#translation-language option")).to_have_text(["English (en)"])
    _translate(nina, "PRIORITY", 1, "The delegation arrives at 4 pm")
    translation = nina.locator("#message-body .annotation.translation")
    nina.locator("#message-body .withdraw button").click()
    expect(nina.locator("#message-line")).to_contain_text("Say why the translation is withdrawn")
    nina.fill("#message-body .withdraw-reason", "wrong time: 14:00 is 2 pm")
    nina.locator("#message-body .withdraw button").click()
    expect(translation).to_have_class("annotation translation withdrawn")
    expect(translation.locator(".withdrawal")).to_contain_text(
        "WITHDRAWN by nina: wrong time: 14:00 is 2 pm"
    )
    expect(translation.locator(".withdraw")).to_have_count(0)
    ivan = open_console(browser, people["ivan"])
    _open(ivan, "PRIORITY", 1)
    withdrawn = ivan.locator("#message-body .annotation.translation.withdrawn")
    expect(withdrawn).to_contain_text("The delegation arrives at 4 pm")
    expect(withdrawn.locator("button")).to_have_count(0)  # no review, no certification


def test_the_queue_lists_the_desk_s_work_most_urgent_and_oldest_first(
    desk: tuple[dict[str, Person], StationProcess], browser: Browser
) -> None:
    people, _ = desk
    vera = open_console(browser, people["vera"])
    _translate(vera, "IMMEDIATE", 2, "Repeat: move the call")
    pavel = open_console(browser, people["pavel"])
    show(pavel, "queue")
    rows = pavel.locator("#queue-table tbody tr")
    expect(rows).to_have_count(5)
    order = [
        (r.get_attribute("data-lane"), r.get_attribute("data-seq"), r.get_attribute("data-needs"))
        for r in rows.all()
    ]
    assert order == [
        ("IMMEDIATE", "1", "translation"),
        ("IMMEDIATE", "2", "review"),
        ("PRIORITY", "1", "translation"),  # its only translation was withdrawn
        ("ROUTINE", "2", "translation"),  # ROUTINE 1 is Moscow's first link test
        ("ROUTINE", "3", "translation"),
    ]
    expect(pavel.locator("#queue-counts")).to_have_text(
        "4 to translate · 1 to review · 0 to certify"
    )
    lev = open_console(browser, people["lev"])
    _open(lev, "IMMEDIATE", 2)
    lev.locator("#message-body .annotation button", has_text="Mark as reviewed").click()
    expect(lev.locator("#message-body .annotation.translation")).to_contain_text("reviewed by")
    show(pavel, "queue")
    expect(pavel.locator('#queue-table tr[data-lane="IMMEDIATE"][data-seq="2"]')).to_have_attribute(
        "data-needs", "certification"
    )
    pavel.locator('#queue-table tr[data-lane="IMMEDIATE"][data-seq="2"]').click()
    pavel.locator("#message-body .annotation button", has_text="Certify").click()
    expect(pavel.locator("#message-body .annotation.translation")).to_contain_text("CERTIFIED")
    show(pavel, "queue")
    expect(rows).to_have_count(4)
    expect(pavel.locator('#queue-table tr[data-lane="IMMEDIATE"][data-seq="2"]')).to_have_count(0)

    # Traffic marks the certified translation, the withdrawn one's message and the file.
    show(pavel, "traffic")
    certified = pavel.locator('#inbox tr[data-lane="IMMEDIATE"][data-seq="2"] .markers')
    expect(certified).to_have_text("translation certified")
    withdrawn = pavel.locator('#inbox tr[data-lane="PRIORITY"][data-seq="1"] .markers')
    expect(withdrawn).to_have_text("needs translation")
    filed = pavel.locator('#inbox tr[data-lane="ROUTINE"][data-seq="3"] .markers')
    expect(filed).to_contain_text("files: 1")
    expect(filed).to_contain_text("needs translation")
    # What a number means (item 9): Moscow's first message is ROUTINE 2, after its link test.
    expect(pavel.locator("#seq-legend")).to_contain_text(
        "Acknowledgements and link tests are numbered too, so a first message may be ROUTINE 2."
    )
    number = pavel.locator('#inbox tr[data-lane="ROUTINE"][data-seq="2"] td.num')
    expect(number).to_have_attribute(
        "title",
        "ROUTINE 2: envelope number 2 in the ROUTINE lane of the peer's chain on link moscow "
        "(acknowledgements and link tests are numbered in their lanes too)",
    )

    # Those who do not translate have no queue.
    sam = open_console(browser, people["sam"])
    expect(sam.locator('#nav [data-view="queue"]')).to_be_hidden()


def _no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at a 390 px viewport"


def test_the_console_works_on_a_390_px_wide_screen(
    desk: tuple[dict[str, Person], StationProcess], browser: Browser, tmp_path: Path
) -> None:
    people, _ = desk
    page = _narrow(browser, people["kate"])
    context = page.context

    expect(page.locator("#board-links .card")).to_be_visible()
    _no_sideways_scroll(page)
    card = page.locator("#board-links .card").bounding_box()
    assert card is not None
    assert 0 <= card["x"] <= card["x"] + card["width"] <= 390
    page.screenshot(path=str(tmp_path / "board-390.png"), full_page=True)

    show(page, "traffic")
    expect(page.locator("#inbox tbody tr").first).to_be_visible()
    _no_sideways_scroll(page)
    # A row's lane, number and text are in view, not cut off to the right.
    row = page.locator('#inbox tbody tr[data-lane="IMMEDIATE"][data-seq="1"]')
    for cell in ("td.lane", "td.short"):
        box = row.locator(cell).bounding_box()
        assert box is not None, cell
        assert box["x"] + box["width"] <= 390, cell
    page.screenshot(path=str(tmp_path / "traffic-390.png"), full_page=True)

    row.click()
    page.wait_for_selector("#view-message", state="visible")
    expect(page.locator("#message-body .fulltext").first).to_contain_text("Просим перенести")
    _no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "message-390.png"), full_page=True)
    for view in ("compose", "drafts", "queue", "calls", "shiftlog"):
        show(page, view)
        _no_sideways_scroll(page)
    context.close()
    # The admin's operators and the auditor's audit log too.
    for name, view in (("adam", "operators"), ("aud", "audit")):
        other = _narrow(browser, people[name])
        show(other, view)
        expect(other.locator(f"#view-{view} tbody tr").first).to_be_visible()
        _no_sideways_scroll(other)
        other.screenshot(path=str(tmp_path / f"{view}-390.png"), full_page=True)
        other.context.close()


def _narrow(browser: Browser, person: Person) -> Page:
    """`person` signed in on a 390 x 844 screen."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(person.station.console)
    _no_sideways_scroll(page)
    page.fill("#login-name", person.name)
    page.fill("#login-password", "a long enough password")
    page.fill("#login-code", person.code())
    page.click("#login-submit")
    page.wait_for_selector("#app", state="visible")
    return page
