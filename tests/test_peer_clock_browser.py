"""The peer's clock in the console (issue 13, item 7), in a real browser against a real station
process: Moscow's messages dated 2554 and 1970 are listed where they arrived, not at the top or
the bottom, each marked as a clock fault, and the board raises the alarm."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Browser, expect

from hotline.crypto.identity import StationIdentity
from hotline.protocol.envelope import ENVELOPE_VERSION, Envelope, EnvelopeBody, Lane, MessageType
from hotline.protocol.state import Batch, LinkConfig, empty_heads
from hotline.protocol.statements import Head
from hotline.station.launch import StationProcess, make_pair
from hotline.station.links import load_links
from hotline.station.runtime import open_store
from tests.consoledriver import open_console, show, staff

SECOND = 10**9
FUTURE = 2**64 - 1  # 2554-07-21
PAST = 1  # 1970-01-01


def _identity(station: StationProcess) -> StationIdentity:
    return station.data.open_keystore(station.passphrase_file.read_bytes().rstrip(b"\n"))


def _arrived(london: StationProcess, moscow: StationProcess, dated: list[tuple[int, int]]) -> None:
    """Moscow's ROUTINE envelopes in London's store, as London's station holds what arrives:
    each (sent_ns, received_ns)."""
    [link] = load_links(london.data, _identity(london))
    ours = link.config
    theirs = LinkConfig(ours.link_id, _identity(moscow), ours.identity.public)
    head = empty_heads(ours.link_id, theirs.direction)[Lane.ROUTINE]
    store = open_store(london.data, london.data.config())
    try:
        store.add_link(ours, time.time_ns())
        for n, (sent_ns, received_ns) in enumerate(dated, 1):
            body = EnvelopeBody(
                ENVELOPE_VERSION, ours.link_id, theirs.direction, int(Lane.ROUTINE), n, sent_ns,
                int(MessageType.PRINCIPAL), "ru", f"сообщение {n}", head.hash, bytes(32), None,
            )  # fmt: skip
            envelope = Envelope.create(body, theirs.identity)
            store.commit(ours.link_id, Batch(inbound=[envelope]), received_ns)
            head = Head(n, envelope.hash)
    finally:
        store.close()


def test_the_traffic_lists_by_arrival_and_marks_a_clock_fault(
    tmp_path: Path, browser: Browser
) -> None:
    london, moscow = make_pair(tmp_path)
    people = staff(london, [("olga", "operator")])
    now = time.time_ns()
    _arrived(london, moscow, [(FUTURE, now - 60 * SECOND), (now - 50 * SECOND, now - 45 * SECOND),
                              (PAST, now - 30 * SECOND)])  # fmt: skip
    london.start()
    try:
        page = open_console(browser, people["olga"])
        expect(page.locator('#alarms [data-kind="clock_fault"]')).to_have_count(1)
        show(page, "traffic")
        rows = page.locator("#inbox tbody tr[data-seq]")
        expect(rows).to_have_count(3)
        assert [row.get_attribute("data-seq") for row in rows.all()] == ["3", "2", "1"], (
            "newest arrival first: neither 2554 on top nor 1970 at the bottom"
        )
        for seq, faulty in (("1", True), ("2", False), ("3", True)):
            mark = page.locator(f'#inbox tr[data-seq="{seq}"] .clock-fault')
            expect(mark).to_have_count(1 if faulty else 0)
        expect(page.locator('#inbox tr[data-seq="1"] .clock-fault')).to_have_attribute(
            "title", "Dated 2554-07-21 23:34:33 UTC by the sender's clock: further from this "
            "station's clock than allowed, not to be believed",
        )  # fmt: skip
        page.locator('#inbox tr[data-seq="3"]').click()
        expect(page.locator("#message-body .clock-fault")).to_have_count(1)
        expect(page.locator("#message-body")).to_contain_text("1970-01-01 00:00:00")
    finally:
        london.close()
