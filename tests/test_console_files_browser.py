"""Files and translations in a real browser (Debian's chromium under Playwright) against two real
station processes: London's operator attaches a picture while composing, with its upload shown;
Moscow's console shows the message with the picture once held; Moscow's translators translate,
review and certify it there, each step shown with who did it."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from hotline.station.launch import make_pair
from tests.consoledriver import Person, open_console, show, staff, wait_up


def _png(width: int, height: int) -> bytes:
    """A real (red) PNG picture, made here: no file shipped, no library needed."""
    row = b"\x00" + b"\xcc\x22\x22" * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def desks(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Person], dict[str, Person]]]:
    london, moscow = make_pair(tmp_path_factory.mktemp("files"))
    people = (
        staff(london, [("olga", "operator")]),
        staff(moscow, [("nina", "translator"), ("ivan", "translator"), ("boris", "supervisor")]),
    )
    for station in (london, moscow):
        station.start()
    wait_up(london)
    yield people
    for station in (london, moscow):
        station.close()


def test_a_picture_goes_with_a_message_and_its_translation_is_certified(
    desks: tuple[dict[str, Person], dict[str, Person]], browser: Browser, tmp_path: Path
) -> None:
    london, moscow = desks
    picture = tmp_path / "map.png"
    picture.write_bytes(_png(64, 48))
    olga = open_console(browser, london["olga"])
    show(olga, "compose")
    olga.select_option("#compose-type", "service")  # sent at once: no release needed
    olga.select_option("#compose-language", "en")
    olga.fill("#compose-text", "Map of the meeting place attached")
    olga.set_input_files("#compose-files", str(picture))
    expect(olga.locator("#compose-uploads li")).to_contain_text("ready to send")
    olga.click("#compose-submit")
    expect(olga.locator("#compose-result")).to_contain_text("Sent as ROUTINE")

    nina = open_console(browser, moscow["nina"])
    show(nina, "traffic")
    row = nina.locator("#inbox tbody tr", has_text="Map of the meeting place")
    expect(row).to_be_visible(timeout=20_000)
    row.click()
    files = nina.locator("#message-body .files li")
    expect(files).to_contain_text("map.png")
    expect(files).to_contain_text("held whole", timeout=20_000)
    image = nina.locator("#message-body img.preview")
    expect(image).to_be_visible()
    # Shown as soon as the element is laid out; the picture itself comes a moment later.
    assert image.evaluate("img => img.decode().then(() => img.naturalWidth)") == 64
    expect(nina.locator("#translation-language option")).to_have_text(["Russian (ru)"])
    nina.select_option("#translation-language", "ru")
    nina.fill("#translation-text", "Карта места встречи прилагается")
    nina.click("#message-body form.translate button[type=submit]")
    translation = nina.locator("#message-body .annotation.translation")
    expect(translation).to_contain_text("Карта места встречи")
    expect(translation).to_contain_text("not yet reviewed")
    assert (
        nina.locator("#message-body .annotation button", has_text="Mark as reviewed").count() == 0
    )

    ivan = open_console(browser, moscow["ivan"])
    show(ivan, "traffic")
    ivan.locator("#inbox tbody tr", has_text="Map of the meeting place").click()
    ivan.locator("#message-body .annotation button", has_text="Mark as reviewed").click()
    expect(ivan.locator("#message-body .annotation.translation")).to_contain_text(
        "reviewed by ivan"
    )

    boris = open_console(browser, moscow["boris"])
    show(boris, "traffic")
    boris.locator("#inbox tbody tr", has_text="Map of the meeting place").click()
    boris.locator("#message-body .annotation button", has_text="Certify").click()
    expect(boris.locator("#message-body .annotation.translation")).to_contain_text(
        "CERTIFIED by boris"
    )
    # Nina's page follows without a reload: the station said a translation was signed.
    expect(translation).to_contain_text("CERTIFIED by boris", timeout=10_000)
