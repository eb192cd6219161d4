"""Acknowledgements in the console, in a real browser (Debian's chromium, headless, under
Playwright) against two real station processes (issue 15, items 1, 2, 3, 7 and 8): a FLASH is
acknowledged only by a deliberate act, never by a keystroke meant for the text being typed; an
acknowledgement is shown on the message it acknowledges, not as a message to act on; a message
without files prints no "null"; the journey says which step is done, waiting or late; an
outgoing message says who drafted and released it and who acknowledged it at the peer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Request, expect

from hotline.station.launch import StationProcess, make_pair
from tests.consoledriver import (
    Person,
    compose,
    hold_to_acknowledge,
    open_console,
    show,
    staff,
    wait_up,
)

HOLD_S = 1.5  # the console's hold (console.js, HOLD_MS)
PRIORITY_DEADLINE_S = 1  # London's, here: a PRIORITY message is overdue a second after it is sent
# Each test signs its own people in (a code signs a person in once).
LONDON = [("olga", "operator"), ("sam", "supervisor"), ("tom", "operator"), ("una", "operator"),
          ("will", "operator"), ("xena", "operator")]  # fmt: skip
MOSCOW = [("ivan", "operator"), ("pavel", "operator"), ("nina", "operator"), ("lena", "operator"),
          ("oleg", "operator")]  # fmt: skip


@pytest.fixture(scope="module")
def desks(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Person], dict[str, Person]]]:
    london, moscow = make_pair(tmp_path_factory.mktemp("acks"))
    config = london.data.path / "station.toml"
    text = config.read_text()
    assert "\npriority = 3600\n" in text
    config.write_text(text.replace("\npriority = 3600\n", f"\npriority = {PRIORITY_DEADLINE_S}\n"))
    people = (staff(london, LONDON), staff(moscow, MOSCOW))
    for station in (london, moscow):
        station.start()
    wait_up(london)
    yield people
    for station in (london, moscow):
        station.close()


def _acks_asked(page: Page) -> list[str]:
    """Every acknowledgement the page asks its station for, from now on."""
    asked: list[str] = []

    def seen(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/ack"):
            asked.append(request.url)

    page.on("request", seen)
    return asked


def _inbox_row(station: StationProcess, lane: str, seq: int) -> dict[str, Any]:
    rows = station.call("GET", "/api/v1/links/london/inbox")
    return next(r for r in rows if r["lane"] == lane and r["seq"] == seq)


def _send(station: StationProcess, text: str, lane: str = "ROUTINE") -> int:
    sent = station.call("POST", "/api/v1/links/moscow/messages", {"text": text, "lane": lane})
    return int(sent["seq"])


def test_a_flash_is_not_acknowledged_by_a_keystroke_meant_for_compose(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    """Item 1: an officer typing in Compose when a FLASH arrives goes on typing into Compose;
    no key, click or press begun before the overlay acknowledges it; a hold does."""
    london, moscow = desks
    sender, receiver = london["olga"].station, moscow["ivan"].station
    page = open_console(browser, moscow["ivan"])
    asked = _acks_asked(page)
    show(page, "compose")
    page.click("#compose-text")
    page.keyboard.type("Line two is")

    seq = _send(sender, "FLASH: stand by for a call on line two.", "FLASH")
    overlay = page.locator("#flash-alarm")
    expect(overlay).to_be_visible()
    expect(page.locator("#flash-text")).to_have_text("FLASH: stand by for a call on line two.")
    page.keyboard.type(" clear, over")  # the space bar first, as the officer did
    page.keyboard.press("Enter")
    page.keyboard.press("Space")
    page.evaluate("1")  # a round trip: any request the keys made has been seen by now
    assert page.evaluate("document.activeElement.id") == "compose-text", "focus is not stolen"
    assert page.input_value("#compose-text") == "Line two is clear, over\n "
    assert asked == [], "no key meant for the text acknowledges"
    expect(overlay).to_be_visible()
    assert not _inbox_row(receiver, "FLASH", seq)["acknowledged"]

    ack = page.locator("#flash-ack")
    expect(ack).not_to_be_focused()
    ack.click()  # a click is not a hold
    ack.focus()
    page.keyboard.press("Enter")  # nor is a key pressed and let go
    page.keyboard.press("Space")
    page.evaluate("1")
    assert asked == []
    expect(overlay).to_be_visible()

    hold_to_acknowledge(page)  # the deliberate act: press and hold
    expect(overlay).to_be_hidden()
    assert len(asked) == 1
    assert _inbox_row(receiver, "FLASH", seq)["acknowledged"]
    assert page.input_value("#compose-text") == "Line two is clear, over\n ", "the text is whole"


def test_a_press_begun_before_the_flash_showed_does_not_acknowledge_it(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    """Item 1: the mouse held down where the button will be, before the FLASH shows, does not
    count as holding it, however long; nor does a held key's repeat. Held on the keyboard from
    the button, it does."""
    london, moscow = desks
    sender, receiver = london["olga"].station, moscow["pavel"].station
    page = open_console(browser, moscow["pavel"])
    asked = _acks_asked(page)
    overlay, ack = page.locator("#flash-alarm"), page.locator("#flash-ack")

    first = _send(sender, "FLASH one", "FLASH")
    expect(overlay).to_be_visible()
    box = ack.bounding_box()
    assert box is not None
    hold_to_acknowledge(page)
    expect(overlay).to_be_hidden()
    assert _inbox_row(receiver, "FLASH", first)["acknowledged"]

    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()  # before the next FLASH shows
    second = _send(sender, "FLASH two", "FLASH")
    expect(overlay).to_be_visible()
    expect(page.locator("#flash-text")).to_have_text("FLASH two")
    time.sleep(HOLD_S * 2)  # held, long past the hold: it began before the overlay showed
    page.mouse.up()
    page.evaluate("1")
    assert len(asked) == 1
    expect(overlay).to_be_visible()
    assert not _inbox_row(receiver, "FLASH", second)["acknowledged"]

    ack.focus()
    page.keyboard.down("Space")
    expect(overlay).to_be_hidden()
    page.keyboard.up("Space")
    assert _inbox_row(receiver, "FLASH", second)["acknowledged"]


def test_an_acknowledgement_is_shown_on_its_message_not_as_one_to_act_on(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    """Item 2: the lists hide acknowledgements until asked; shown, one is offered no
    "Acknowledge" and is not in its lane's colour; the message it acknowledges shows who, when
    and what, at both stations. Item 3: no "null" where a message has no files."""
    london, moscow = desks
    sender, receiver = london["olga"].station, moscow["nina"].station
    seq = _send(sender, "FLASH: confirm the schedule for the test call.", "FLASH")
    nina = open_console(browser, moscow["nina"])
    hold_to_acknowledge(nina)
    expect(nina.locator("#flash-alarm")).to_be_hidden()
    ack_seq = next(
        m["seq"]
        for m in receiver.call("GET", "/api/v1/links/london/outbox")
        if m["type"] == "acknowledgement" and m["acknowledges"] == {"lane": "FLASH", "seq": seq}
    )

    olga = open_console(browser, london["olga"])
    show(olga, "traffic")
    message = olga.locator(
        f'#outbox tr[data-type="principal"][data-lane="FLASH"][data-seq="{seq}"]'
    )
    expect(message).to_have_attribute("data-state", "acknowledged")
    acks = olga.locator('#inbox tr[data-type="acknowledgement"]')
    expect(acks).to_have_count(0)  # hidden by default
    olga.check('#filter-type input[value="acknowledgement"]')
    one = olga.locator(f'#inbox tr[data-type="acknowledgement"][data-seq="{ack_seq}"]')
    expect(one).to_be_visible()
    expect(one.locator("button.ack")).to_have_count(0)
    expect(one).to_contain_text(f"FLASH {seq}")  # says which message it acknowledges
    flash_red = message.locator("td.lane").evaluate("e => getComputedStyle(e).color")
    assert one.locator("td.lane").evaluate("e => getComputedStyle(e).color") != flash_red
    olga.uncheck('#filter-type input[value="acknowledgement"]')
    expect(acks).to_have_count(0)

    message.click()
    shown = olga.locator("#message-body .acknowledgement")
    expect(shown).to_contain_text("nina")  # who
    expect(shown).to_contain_text("Acknowledged")  # with what text
    expect(shown.locator("time").first).to_be_visible()  # when
    assert "null" not in olga.inner_text("#message-body")

    show(nina, "traffic")
    expect(nina.locator('#outbox tr[data-type="acknowledgement"]')).to_have_count(0)
    received = nina.locator(f'#inbox tr[data-lane="FLASH"][data-seq="{seq}"]')
    expect(received.locator("button.ack")).to_have_count(0)
    received.click()
    here = nina.locator("#message-body .acknowledgement")
    expect(here).to_contain_text("nina")
    expect(here.locator("time").first).to_be_visible()
    assert "null" not in nina.inner_text("#message-body")


def test_a_message_view_without_files_prints_no_null(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    """Item 3: an outgoing and an incoming message without files: nothing but what they say."""
    london, moscow = desks
    seq = _send(london["tom"].station, "Routine: the weekly check is at noon.")
    tom = open_console(browser, london["tom"])
    show(tom, "traffic")
    tom.locator(f'#outbox tr[data-lane="ROUTINE"][data-seq="{seq}"]').click()
    expect(tom.locator("#message-body pre.fulltext")).to_contain_text("weekly check")
    assert "null" not in tom.inner_text("#message-body")
    lena = open_console(browser, moscow["lena"])
    show(lena, "traffic")
    lena.locator(f'#inbox tr[data-lane="ROUTINE"][data-seq="{seq}"]').click()
    expect(lena.locator("#message-body pre.fulltext")).to_contain_text("weekly check")
    assert "null" not in lena.inner_text("#message-body")


def test_the_journey_says_which_step_is_done_waiting_or_late(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    """Item 7: an overdue message does not read as acknowledged; each step is done, waiting or
    late, in words of its own."""
    london, moscow = desks
    sender = london["will"].station
    late = _send(sender, "Priority: send the figures for the quarter.", "PRIORITY")
    waiting = _send(sender, "Routine: the figures can wait for the courier.")
    page = open_console(browser, london["will"])
    expect(page.locator('#alarms li[data-kind="overdue"]')).not_to_have_count(0)  # the deadline
    show(page, "traffic")

    row = page.locator(f'#outbox tr[data-lane="PRIORITY"][data-seq="{late}"]')
    expect(row.locator('li[data-step="acknowledged"]')).to_have_attribute("data-status", "late")
    expect(row.locator('li[data-step="accepted"]')).to_have_attribute("data-status", "done")
    expect(row.locator(".journey")).to_contain_text("acknowledgement overdue")
    expect(row.locator(".journey")).not_to_contain_text("acknowledged by a person")

    other = page.locator(f'#outbox tr[data-lane="ROUTINE"][data-seq="{waiting}"]')
    step = other.locator('li[data-step="acknowledged"]')
    expect(step).to_have_attribute("data-status", "waiting")
    expect(step).to_have_text("○ awaiting acknowledgement")
    colours = {
        status: page.locator(f'#outbox li[data-status="{status}"]').first.evaluate(
            "e => getComputedStyle(e).color"
        )
        for status in ("done", "waiting", "late")
    }
    assert len(set(colours.values())) == 3, colours  # told apart at a glance, too

    receiver = moscow["oleg"].station
    receiver.call("POST", f"/api/v1/links/london/inbox/PRIORITY/{late}/ack", {"text": "Sent."})
    page.reload()
    page.wait_for_selector("#app", state="visible")
    show(page, "traffic")
    expect(row.locator('li[data-step="acknowledged"]')).to_have_attribute("data-status", "done")
    expect(row.locator(".journey")).to_contain_text("acknowledged by a person")


def test_an_outgoing_message_says_who_drafted_released_and_acknowledged_it(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    """Item 8: London's message says who drafted it, who released it, and who acknowledged it at
    Moscow, when, and with what text; one sent through the API says so."""
    london, moscow = desks
    drafter, releaser = open_console(browser, london["una"]), open_console(browser, london["sam"])
    compose(drafter, "IMMEDIATE", "principal", "en", "Immediate: the courier leaves at six.")
    expect(drafter.locator("#compose-result")).not_to_be_empty()
    show(releaser, "drafts")
    releaser.locator("[data-draft-id]").filter(has_text="courier leaves").locator(
        "button.release"
    ).click()
    expect(releaser.locator("#message-line")).to_contain_text("IMMEDIATE")
    seq = next(
        m["seq"]
        for m in london["una"].station.call("GET", "/api/v1/links/moscow/outbox")
        if m["text"] == "Immediate: the courier leaves at six."
    )

    oleg = open_console(browser, moscow["oleg"])
    show(oleg, "traffic")
    oleg.locator(f'#inbox tr[data-lane="IMMEDIATE"][data-seq="{seq}"] button.ack').click()
    expect(oleg.locator("#message-line")).to_contain_text(f"IMMEDIATE {seq}")

    show(drafter, "traffic")
    row = drafter.locator(f'#outbox tr[data-lane="IMMEDIATE"][data-seq="{seq}"]')
    expect(row).to_have_attribute("data-state", "acknowledged")
    row.click()
    body = drafter.locator("#message-body")
    expect(body.locator("dt", has_text="Drafted by").locator("+ dd")).to_contain_text("una")
    expect(body.locator("dt", has_text="Released by").locator("+ dd")).to_contain_text("sam")
    ack = body.locator(".acknowledgement")
    expect(ack).to_contain_text("Acknowledged by oleg")  # who, in the signed text
    expect(ack.locator("dt", has_text="Received").locator("+ dd time")).to_be_visible()  # when

    api_seq = _send(london["una"].station, "Routine: sent by a script.")
    show(drafter, "traffic")
    drafter.locator(f'#outbox tr[data-lane="ROUTINE"][data-seq="{api_seq}"]').click()
    expect(body.locator("dt", has_text="Sent by").locator("+ dd")).to_contain_text("API")
    expect(body.locator("dt", has_text="Drafted by")).to_have_count(0)


def test_an_acknowledgement_past_the_listed_rows_is_still_shown_on_its_message(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser
) -> None:
    """Item 2: the traffic lists the newest 200 rows each way; a message of ours whose
    acknowledgement has since been pushed out of the inbox's rows by the peer's traffic still
    carries it (the store finds it by its hash)."""
    london, moscow = desks
    sender, receiver = london["will"].station, moscow["oleg"].station
    seq = _send(sender, "Routine: acknowledged long ago.")
    receiver.call("POST", f"/api/v1/links/london/inbox/ROUTINE/{seq}/ack", {"text": "Long ago."})
    for n in range(205):  # more than the inbox's listed rows
        receiver.call(
            "POST", "/api/v1/links/london/messages", {"text": f"service {n}", "type": "service"}
        )
    deadline = time.monotonic() + 60
    while len(sender.call("GET", "/api/v1/links/moscow/inbox?limit=1000")) < 206:
        assert time.monotonic() < deadline, "the peer's messages did not all arrive"
        time.sleep(0.2)
    page = open_console(browser, london["xena"])
    traffic = page.evaluate("fetch('/console/traffic/moscow').then((r) => r.json())")
    listed = {(m["lane"], m["seq"]) for m in traffic["inbox"]}
    mine = next(m for m in traffic["outbox"] if m["lane"] == "ROUTINE" and m["seq"] == seq)
    ack = mine["acknowledgement"]
    assert ack is not None
    assert (ack["lane"], ack["seq"]) not in listed, "the acknowledgement is not among the rows"
    assert ack["text"] == "Long ago."
