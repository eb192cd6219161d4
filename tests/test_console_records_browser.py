"""The audit log and the traffic as people search them (issue 15, items 11, 12 and 18), in a
real browser (Debian's chromium under Playwright) against two real station processes, in
Russian: the audit's rows in words with their link, its filters, pages and CSV export; the
traffic's search and pages; each time of a message named."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from hotline.station.launch import StationProcess, make_pair
from hotline.station.runtime import open_store
from tests.consoledriver import Person, hold_to_acknowledge, open_console, show, staff, wait_up


@pytest.fixture(scope="module")
def desks(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Person], dict[str, Person]]]:
    london, moscow = make_pair(tmp_path_factory.mktemp("records"))
    people = (
        staff(london, [("olga", "operator")]),
        staff(moscow, [("ivan", "operator"), ("yuri", "operator"), ("vera", "auditor")]),
    )
    for station in (london, moscow):
        station.start()
    wait_up(london)
    yield people
    for station in (london, moscow):
        station.close()


def _send(station: StationProcess, text: str, lane: str = "ROUTINE") -> int:
    sent = station.call("POST", "/api/v1/links/moscow/messages", {"text": text, "lane": lane})
    return int(sent["seq"])


def _arrived(station: StationProcess, count: int) -> None:
    """Until `count` messages from London are in Moscow's inbox, at most a minute."""
    deadline = time.monotonic() + 60
    while len(station.call("GET", "/api/v1/links/london/inbox?limit=1000")) < count:
        assert time.monotonic() < deadline, "London's messages did not all arrive"
        time.sleep(0.2)


def _in_russian(page: Page) -> None:
    if page.evaluate("document.documentElement.lang") != "ru":
        page.click("#lang-switch")
    expect(page.locator("html")).to_have_attribute("lang", "ru")


def test_the_audit_in_russian_in_words_with_its_link_filtered_paged_and_exported(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    london, moscow = desks
    here = moscow["ivan"].station
    store = open_store(here.data, here.data.config())
    try:  # a long record: more rows than a page
        for n in range(60):
            store.audit_person("pager", "shift note", f"note {n}", time.time_ns())
    finally:
        store.close()
    seq = _send(london["olga"].station, "Срочно: подтвердите.", "FLASH")
    officer = open_console(browser, moscow["ivan"])
    hold_to_acknowledge(officer)  # audited at Moscow as "acknowledged london FLASH <seq>"

    page = open_console(browser, moscow["vera"])
    _in_russian(page)
    show(page, "audit")
    acked = page.locator('#audit-table tr[data-action="acknowledged"]').first
    expect(acked).to_contain_text("Сообщение подтверждено")
    expect(acked).to_contain_text(f"FLASH {seq} от london")
    expect(acked.locator(".audit-link")).to_have_text("london")
    expect(page.locator('#audit-table tr[data-action="login"]').first).to_contain_text("Вход")

    page.select_option("#audit-action", "acknowledged")
    page.click('#audit-filters button[type="submit"]')
    expect(page.locator("#audit-table tbody tr")).to_have_count(1)
    expect(page.locator("#audit-table tbody tr")).to_contain_text("ivan")

    page.click("#audit-clear")
    page.select_option("#audit-actor", "pager")
    page.click('#audit-filters button[type="submit"]')
    expect(page.locator("#audit-table tbody tr")).to_have_count(50)
    expect(page.locator("#audit-table tbody tr").first).to_contain_text("note 59")
    expect(page.locator("#audit-pager .page-newer")).to_be_disabled()
    page.click("#audit-pager .page-older")
    expect(page.locator("#audit-table tbody tr")).to_have_count(10)
    expect(page.locator("#audit-table tbody tr").last).to_contain_text("note 0")
    expect(page.locator("#audit-pager .page-older")).to_be_disabled()
    page.click("#audit-pager .page-newer")
    expect(page.locator("#audit-table tbody tr")).to_have_count(50)
    expect(page.locator("#audit-table tbody tr").first).to_contain_text("note 59")

    page.click("#audit-clear")
    page.fill("#audit-q", "подтверждено")  # the Russian words are searched, not only the stored
    page.click('#audit-filters button[type="submit"]')
    expect(page.locator('#audit-table tbody tr[data-action="acknowledged"]')).to_have_count(1)

    href = page.get_attribute("#audit-export", "href")
    assert href is not None
    assert href.startswith("/console/audit.csv?")
    assert "lang=ru" in href
    exported = page.request.get(moscow["vera"].station.console + href)
    assert exported.status == 200
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    assert "Сообщение подтверждено" in exported.text()


def test_the_traffic_in_russian_searched_and_paged_with_its_times_named(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    london, moscow = desks
    sender = london["olga"].station
    before = len(moscow["ivan"].station.call("GET", "/api/v1/links/london/inbox?limit=1000"))
    first = _send(sender, "Где архив за прошлый год?")
    for n in range(59):
        _send(sender, f"Сводка номер {n}.")
    _arrived(moscow["ivan"].station, before + 60)
    page = open_console(browser, moscow["yuri"])  # a code signs in once: another person
    _in_russian(page)
    show(page, "traffic")
    inbox = page.locator("#inbox tbody tr")
    expect(inbox).to_have_count(50)
    expect(inbox.first).to_contain_text("Сводка номер 58.")
    expect(inbox.first.locator('.when[data-when="received"]')).to_contain_text("получено")
    expect(page.locator("#inbox-pager .page-newer")).to_be_disabled()
    page.click("#inbox-pager .page-older")
    expect(page.locator(f'#inbox tbody tr[data-seq="{first}"]')).to_be_visible()
    page.click("#inbox-pager .page-newer")
    expect(inbox.first).to_contain_text("Сводка номер 58.")

    page.fill("#traffic-q", "АРХИВ")
    page.click('#traffic-search button[type="submit"]')
    expect(inbox).to_have_count(1)
    expect(inbox).to_contain_text("Где архив за прошлый год?")
    expect(page.locator("#traffic-searching")).to_contain_text("«АРХИВ»")

    page.click(f'#inbox tbody tr[data-seq="{first}"] button.ack')
    expect(inbox.locator('.when[data-when="acknowledged"]')).to_contain_text("подтверждено")
    page.click("#traffic-clear")
    expect(inbox).to_have_count(50)
