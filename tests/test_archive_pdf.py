"""The PDF transcript: written, then read back with pypdf as a person's reader would: Russian and
English text that can be found and copied, originals beside their translations, FLASH in bold
red, exercises marked, long texts carried across pages whole, hostile text harmless, and a large
record written without keeping its messages."""

from __future__ import annotations

import io
import logging
import tracemalloc
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PageObject, PdfReader

from hotline.archive import pdf
from hotline.archive.calls import call_view
from hotline.archive.pdf import write_pdf
from hotline.archive.transcript import Entry, Translation
from hotline.errors import ConfigError
from hotline.protocol.callrecord import CallRecord, MediaFigures, Party, Recording
from hotline.protocol.envelope import MAX_TEXT_BYTES

T0 = 1_741_944_723_000_000_000  # 2025-03-14 09:32:03 UTC
MINUTE = 60 * 10**9
LINK = bytes(range(32))
STATIONS = [("London", "ab12" * 16), ("Moscow", "cd34" * 16)]
CERTIFIED = "certified by Olga (supervisor), reviewed by Nina"
DRAFT = "machine draft (ctranslate2, opus-en-ru 1.0) — not certified"
NOT_EVIDENCE = "the signed records in the bundle are the evidence; check them with hotline verify"
FLASH_RU = (
    "Срочно. Наблюдаем пуск ракеты из района учений «Север-2025». Просим немедленно "
    "подтвердить, что это учебный пуск, согласно уведомлению № 14 от 12 марта."
)
FLASH_EN = (
    "Urgent. We observe a missile launch from the “North-2025” exercise area. Please confirm "
    "immediately that this is a training launch, as notified in notice No. 14 of 12 March."
)
ODD = "Odd: \x00\x07\x1b[31m tab\there {nb} emoji 😀 中文 \u202eevil\u202c \ud800 \ufeff end"
LONG_WORD = "Ж" * 3000


def _long(template: str) -> str:
    """Numbered sentences up to the envelope's limit in UTF-8: each one can be looked for."""
    parts: list[str] = []
    size, n = 0, 1
    while True:
        part = template.format(n) + " "
        size += len(part.encode())
        if size > MAX_TEXT_BYTES:
            return "".join(parts)
        parts.append(part)
        n += 1


LONG_RU = _long("Фраза {} длинного текста.")
LONG_EN = _long("Sentence {} of the long text.")


def entry(
    minute: int,
    sender: str,
    lane: str,
    seq: int,
    text: str,
    *,
    kind: str = "principal",
    language: str = "en",
    acknowledges: str | None = None,
    attachments: tuple[str, ...] = (),
    translations: tuple[Translation, ...] = (),
) -> Entry:
    return Entry(
        sent_ns=T0 + minute * MINUTE,
        sender=sender,
        lane=lane,
        seq=seq,
        kind=kind,
        language=language,
        text=text,
        acknowledges=acknowledges,
        attachments=list(attachments),
        translations=list(translations),
    )


ENTRIES = [
    entry(
        0, "Moscow", "FLASH", 3, FLASH_RU, language="ru",
        translations=(Translation("en", FLASH_EN, CERTIFIED),),
    ),
    entry(
        1, "London", "FLASH", 1, "Received. Checking now — reply within ten minutes.",
        kind="acknowledgement", acknowledges="FLASH 3",
        translations=(
            Translation("ru", "Получено. Проверяем — ответ в течение десяти минут.", DRAFT),
        ),
    ),
    entry(2, "London", "ROUTINE", 7, "Hourly link test from London.", kind="test"),
    entry(
        3, "Moscow", "PRIORITY", 4, "УЧЕНИЯ. Проверка канала связи, ответ не требуется.",
        kind="exercise", language="ru",
        attachments=("map.png (1.2 MB, sha256 ab12cd34ef56…)",),
        translations=(
            Translation("en", "EXERCISE. Link check, no reply needed.", CERTIFIED),
            Translation("fr", "EXERCICE. Vérification du lien.", DRAFT),
        ),
    ),
    entry(4, "London", "IMMEDIATE", 2, ODD + " " + LONG_WORD + "\r\nnext line"),
    entry(
        5, "Moscow", "ROUTINE", 8, LONG_RU, language="ru",
        translations=(Translation("en", LONG_EN, CERTIFIED),),
    ),
    entry(6, "Moscow", "ROUTINE", 9, "", kind="service", language="ru"),
]  # fmt: skip


@dataclass
class Rendered:
    data: bytes
    pages: int
    reader: PdfReader
    texts: list[str] = field(default_factory=list)  # each page's text, whitespace folded

    @property
    def text(self) -> str:
        return " ".join(self.texts)


def render(entries: list[Entry]) -> Rendered:
    out = io.BytesIO()
    pages = write_pdf(out, "Hotline transcript: London and Moscow", LINK, STATIONS, entries)
    reader = PdfReader(io.BytesIO(out.getvalue()))
    texts = [" ".join(page.extract_text().split()) for page in reader.pages]
    return Rendered(out.getvalue(), pages, reader, texts)


@pytest.fixture(scope="module")
def doc() -> Rendered:
    return render(ENTRIES)


@dataclass(frozen=True)
class Run:
    """A piece of text as drawn: its fill colour, font and place (points, from the bottom)."""

    text: str
    colour: tuple[float, ...]
    font: str
    x: float
    y: float


def runs(page: PageObject) -> list[Run]:
    found: list[Run] = []
    colours: list[tuple[float, ...]] = [(0.0, 0.0, 0.0)]  # the graphics state stack's fill colour

    def before(op: bytes, args: list[object], cm: object, tm: object) -> None:
        if op == b"q":
            colours.append(colours[-1])
        elif op == b"Q" and len(colours) > 1:
            colours.pop()
        elif op == b"rg":
            colours[-1] = tuple(round(float(str(a)), 3) for a in args)

    def text(t: str, cm: object, tm: list[float], font: dict[str, object] | None, s: float) -> None:
        if t.strip():
            name = str(font.get("/BaseFont")) if font else ""
            found.append(Run(t.strip(), colours[-1], name, tm[4], tm[5]))

    page.extract_text(visitor_operand_before=before, visitor_text=text)
    return found


def find(page_runs: list[Run], text: str) -> Run:
    return next(r for r in page_runs if r.text.startswith(text))


def test_russian_and_english_read_back(doc: Rendered) -> None:
    assert doc.data.startswith(b"%PDF-")
    for text in (FLASH_RU, FLASH_EN, "Получено. Проверяем — ответ в течение десяти минут."):
        assert text in doc.text
    assert "УЧЕНИЯ. Проверка канала связи, ответ не требуется." in doc.text
    assert "Vérification du lien." in doc.text
    assert "Hourly link test from London." in doc.text


def test_first_page_says_it_is_not_evidence(doc: Rendered) -> None:
    first = doc.texts[0]
    assert first.startswith("Hotline transcript: London and Moscow")
    assert NOT_EVIDENCE in first
    assert "not evidence" in first
    assert " ".join(LINK.hex()[i : i + 4] for i in range(0, 64, 4)) in first
    for name, fingerprint in STATIONS:
        assert name in first
        assert " ".join(fingerprint[i : i + 4] for i in range(0, 64, 4)) in first
    assert doc.reader.metadata is not None
    assert doc.reader.metadata.title == "Hotline transcript: London and Moscow"


def test_page_count_and_footers(doc: Rendered) -> None:
    assert doc.pages == len(doc.reader.pages) > 10  # the 32 KiB texts take several pages
    for n, text in enumerate(doc.texts, 1):
        assert f"page {n} of {doc.pages}" in text
        assert "A rendering, not evidence" in text


def test_each_message_has_its_line(doc: Rendered) -> None:
    assert "2025-03-14 09:32:03 UTC Moscow FLASH 3 principal ru" in doc.text
    assert (
        "2025-03-14 09:33:03 UTC London FLASH 1 acknowledgement en acknowledges FLASH 3" in doc.text
    )
    assert "EXERCISE 2025-03-14 09:35:03 UTC Moscow PRIORITY 4 exercise ru" in doc.text
    assert "attachment: map.png (1.2 MB, sha256 ab12cd34ef56…)" in doc.text
    assert f"translation · en — {CERTIFIED}" in doc.text
    assert f"translation · ru — {DRAFT}" in doc.text
    assert "2025-03-14 09:38:03 UTC Moscow ROUTINE 9 service ru (no text)" in doc.text


def test_original_and_translation_side_by_side(doc: Rendered) -> None:
    page = runs(doc.reader.pages[0])
    original, translation = find(page, "original · ru"), find(page, "translation · en")
    assert translation.x > original.x + 200  # the right half of the page
    assert translation.y == pytest.approx(original.y)  # level with each other
    first_ru, first_en = find(page, "Срочно."), find(page, "Urgent.")
    assert first_ru.x == pytest.approx(original.x)
    assert first_en.x == pytest.approx(translation.x)
    message = find(page, "Hourly link test")  # no translation: the full width, no headings
    assert message.x == pytest.approx(original.x)


def test_flash_is_bold_red_and_the_rest_is_not(doc: Rendered) -> None:
    page = runs(doc.reader.pages[0])
    red = (0.667, 0.0, 0.0)
    for label in ("FLASH 3", "FLASH 1"):
        flash = find(page, label)
        assert flash.colour == red
        assert "Bold" in flash.font
    routine = find(page, "ROUTINE 7")
    assert routine.colour != red
    assert "Bold" in routine.font
    assert find(page, "Срочно.").colour != red
    assert "Bold" not in find(page, "Срочно.").font
    exercise = find(page, "EXERCISE")
    assert exercise.y == pytest.approx(find(page, "PRIORITY 4").y)
    assert "Bold" in exercise.font


def test_32_kib_texts_carry_over_pages_whole(doc: Rendered) -> None:
    first = runs(doc.reader.pages[0])
    left, right = find(first, "original · ru").x, find(first, "translation · en").x
    assert " ".join(LONG_RU.split()) in column(doc, left)  # every word, in order
    assert " ".join(LONG_EN.split()) in column(doc, right)
    continued = [t for t in doc.texts if "ROUTINE 8 from Moscow, continued" in t]
    assert len(continued) >= 5
    # The same 32 KiB is half as many Cyrillic letters: the original ends first, and both
    # columns went on together, page by page, until then.
    with_russian = [t for t in continued if "Фраза" in t]
    assert continued[: len(with_russian)] == with_russian
    assert len(with_russian) >= 3
    assert all("Sentence" in t for t in continued)


def column(doc: Rendered, x: float) -> str:
    """The words drawn at `x` on every page, in order, without the pages' furniture."""
    words: list[str] = []
    for page in doc.reader.pages:
        for run in runs(page):
            furniture = run.text.startswith(("Hotline transcript", "A rendering", "page "))
            if run.x == pytest.approx(x) and not furniture and "continued" not in run.text:
                words += run.text.split()
    return " ".join(words)


def test_hostile_text_is_drawn_harmlessly(doc: Rendered, caplog: pytest.LogCaptureFixture) -> None:
    # Controls, bidi controls and a lone surrogate are named, as everywhere (textsafety); what
    # the font cannot draw is U+FFFD.
    assert (
        "Odd: \u2039U+0000 NUL\u203a\u2039U+0007 BEL\u203a\u2039U+001B ESC\u203a[31m tab"
        in doc.text
    )
    assert "here {nb} emoji \ufffd \ufffd\ufffd" in doc.text  # not a page count
    assert "\u2039U+202E RLO\u203aevil\u2039U+202C PDF\u203a \u2039U+D800\u203a" in doc.text
    assert doc.text.count("Ж") == len(LONG_WORD)  # broken across lines and pages, all there
    assert "next line" in doc.text
    with caplog.at_level(logging.WARNING):  # fpdf2 logs a glyph the font lacks
        render([entry(0, "Lon\ndon\x00", "FLASH\t", 1, ODD, language="\x00" * 100)])
    assert caplog.records == []


def test_text_that_lies_to_the_eye_is_drawn_as_written() -> None:
    """Issue 13, item 4: a bidi override is named, not obeyed, and a word that mixes scripts is
    marked, in the text, the language and the sender's name alike."""
    text = "strike at \u202e0030\u202c, reply to p\u0430ypal"
    rendered = render([entry(0, "Mos\u0441ow", "FLASH", 1, text, language="ru")])
    assert "strike at \u2039U+202E RLO\u203a0030\u2039U+202C PDF\u203a" in rendered.text
    assert "p\u0430ypal\u2039mixed Latin+Cyrillic\u203a" in rendered.text
    assert "Mos\u0441ow\u2039mixed Latin+Cyrillic\u203a" in rendered.text


def test_same_record_same_bytes(doc: Rendered) -> None:
    assert render(ENTRIES).data == doc.data


def test_no_messages_still_a_transcript() -> None:
    empty = render([])
    assert empty.pages == 1
    assert NOT_EVIDENCE in empty.text
    assert "page 1 of 1" in empty.text


@settings(max_examples=40)
@given(
    st.text(st.characters(exclude_categories=()), max_size=400),
    st.text(st.characters(exclude_categories=()), max_size=40),
)
def test_any_text_renders(text: str, label: str) -> None:
    record = [
        entry(
            0, label, label, 1, text, kind=label, language=label, acknowledges=label,
            attachments=(label,), translations=(Translation(label, text, label),),
        ),
        entry(1, label, "FLASH", 2, text),
    ]  # fmt: skip
    rendered = render(record)
    assert rendered.pages == len(rendered.reader.pages) >= 1


class _Tracked(Entry):
    __slots__ = ("__weakref__",)


def test_two_thousand_messages_without_keeping_them() -> None:
    alive: list[weakref.ref[Entry]] = []
    most_alive = 0

    def messages() -> Iterator[Entry]:
        nonlocal most_alive
        for i in range(2000):
            if i % 100 == 0:
                most_alive = max(most_alive, sum(ref() is not None for ref in alive))
            ru = f"Проверка связи номер {i} из Москвы: все пути работают, приём."
            en = f"Link test number {i} from Moscow: all paths are up, over."
            tr = (Translation("en", en, CERTIFIED),) if i % 2 else ()
            one = _Tracked(
                T0 + i * MINUTE, "Moscow", "FLASH" if i % 50 == 0 else "ROUTINE", i + 1,
                "test", "ru", ru, None, ["log.txt (2 KB, sha256 0f0f…)"] if i % 7 == 0 else [],
                list(tr),
            )  # fmt: skip
            alive.append(weakref.ref(one))
            yield one

    pdf._faces()  # made once per process, not for each document
    out = io.BytesIO()
    tracemalloc.start()
    try:
        pages = write_pdf(out, "Load", LINK, STATIONS, messages())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert most_alive <= 1  # each message is dropped once drawn
    # fpdf2 keeps the pages until the end: a few KB each, a few MB for these 2,000 messages.
    assert peak < 48 * 2**20, f"{peak / 2**20:.1f} MiB for {pages} pages"
    reader = PdfReader(io.BytesIO(out.getvalue()))
    assert pages == len(reader.pages) > 100
    last = " ".join(reader.pages[-1].extract_text().split())
    assert "Проверка связи номер 1999 из Москвы" in last
    assert f"page {pages} of {pages}" in last


def test_without_the_font_package_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "_FONT_PACKAGE", "hotline_no_such_font_package")
    pdf._faces.cache_clear()
    try:
        with pytest.raises(ConfigError, match="pip install fontpkg-noto-sans"):
            write_pdf(io.BytesIO(), "x", LINK, STATIONS, [])
    finally:
        pdf._faces.cache_clear()


def _call(
    minute: int, seq: int, precedence: Literal["FLASH", "ROUTINE"], answered: bool, reason: str
) -> Entry:
    """A call record's entry, as the exporter makes it: the call, and no text of its own."""
    invited = T0 + minute * MINUTE
    record = CallRecord(
        version=1, call_id="ab" * 16, direction="outgoing", precedence=precedence,
        caller=Party("Moscow", "Иванов", "principal"),
        answerer=Party("London", "Smith", "interpreter") if answered else None,
        invited_ns=invited, answered_ns=invited + 5 * 10**9 if answered else None,
        ended_ns=invited + 3725 * 10**9, end_reason=reason,
        media=MediaFigures(186_000, 185_500, 400, 350, 100, 90), transport="udp",
        recorded=answered,
        recordings=(Recording("ab" * 16 + "-sent.opus", "0f" * 32, 2_000_000),) if answered else (),
        participants=(),
    )  # fmt: skip
    notes = {"ab" * 16 + "-sent.opus": "in this bundle as recordings/" + "ab" * 16 + "-sent.opus"}
    view = call_view(record, notes)
    return Entry(invited + 3726 * 10**9, "Moscow", "ROUTINE", seq, "call record", "zxx", "",
                 call=view)  # fmt: skip


def test_a_call_is_drawn_as_a_call_among_the_messages() -> None:
    calls = render([
        entry(0, "London", "ROUTINE", 7, "Hourly link test from London.", kind="test"),
        _call(1, 12, "FLASH", True, "ended by peer: связь прервана {nb}"),
        _call(90, 13, "ROUTINE", False, "no answer"),
    ])  # fmt: skip
    text = calls.text
    heading = "FLASH call, outgoing, as Moscow recorded it"
    assert f"2025-03-14 10:35:09 UTC Moscow ROUTINE 12 call record {heading}" in text
    assert "call record zxx" not in text, "a record has no language to show"
    for line in (
        "caller: Moscow: Иванов (principal)",
        "answerer: London: Smith (interpreter)",
        "invited: 2025-03-14 09:33:03 UTC",
        "answered: 2025-03-14 09:33:08 UTC",
        "ended: 2025-03-14 10:35:08 UTC",
        "duration: 1 h 02 min 00 s from the answer",
        "end reason: ended by peer: связь прервана {nb}",  # not a page count
        "transport: udp",
        "media: 186,000 frames sent; of the peer's, 185,500 received, 400 lost, 350 concealed, "
        "100 late, 90 recovered by FEC",
        f"recorded: {'ab' * 16}-sent.opus, 2,000,000 bytes, sha256 {'0f' * 32} (in this bundle",
        "ROUTINE call, outgoing, as Moscow recorded it",
        "answerer: not answered",
        "duration: not answered (rang 1 h 02 min 05 s)",
        "recorded: no",
    ):
        assert line in text, line
    assert text.index("Hourly link test") < text.index("FLASH call") < text.index("ROUTINE call")
    page = runs(calls.reader.pages[0])
    flash, routine = find(page, "FLASH call"), find(page, "ROUTINE call")
    assert flash.colour == (0.667, 0.0, 0.0)
    assert "Bold" in flash.font
    assert routine.colour != flash.colour
    assert find(page, "caller:").x == pytest.approx(find(page, "Hourly link test").x)
    assert "original ·" not in text, "no message columns"
