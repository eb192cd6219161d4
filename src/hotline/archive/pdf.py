"""The transcript as a PDF: every message of the link in the order the exporting station received
or accepted it (by its own clock), its original as sent beside its translations and who
certified them, for people to read and to print. A rendering, not evidence: the first page and
every footer say that the signed records in the bundle are what `hotline verify` checks.

A4, one block per message: a line with the time (UTC, our clock; a clock fault adds the sender's
own time in bold red: hotline.protocol.clock), sender, lane and sequence number (FLASH in
bold red, with a red bar beside the block), type and language, then the text. With a translation
the block has two columns, the original on the left and each translation on the right under its
status; both columns flow onto the next page together, so a long text never leaves its
translation behind. A call record's block is the call (calls.py), one column of its lines, with
a red bar for a FLASH call; beside the exporter's own record, in a second column, the records
of conversation written of the call, each under its status. Pages say "page N of M".

The core PDF fonts stop at Latin-1, and the link speaks Russian, so the text is set in Noto Sans,
which the `fontpkg-noto-sans` package ships as a variable font (OFL): nothing is looked for on the
machine and nothing is fetched. Once per process it is cut down to Latin, Greek and Cyrillic with
their punctuation and symbols, and instanced at two weights; a character outside that set (an
emoji, Chinese) prints as U+FFFD, so no message text can stop a transcript. Before that, every
string from a record is shown as hotline.protocol.textsafety says: an invisible character (a bidi
control, a zero-width one, a control) as its mark, "‹U+202E RLO›", and a word that mixes scripts
followed by a note, as the console, the HTML transcript and the CLI show them. fpdf2 lays text out
in the order it was written (no bidi reordering), so nothing in a text can reorder the page.
"""  # noqa: RUF002 - the marks are written with single guillemets

from __future__ import annotations

import functools
import importlib.resources
import io
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fontTools import subset, ttLib  # type: ignore[import-untyped]
from fontTools.varLib import instancer  # type: ignore[import-untyped]
from fpdf import FPDF
from fpdf.enums import MethodReturnValue

from hotline.archive.calls import CallView
from hotline.archive.transcript import Entry, Sink
from hotline.errors import ConfigError
from hotline.protocol.textsafety import shown

__all__ = ["write_pdf"]


_FONT_PACKAGE = "fontpkg_noto_sans"
_FONT_FILE = "NotoSans[wdth,wght].ttf"
# Latin with its extensions and accents, Greek, Cyrillic, and U+2000-22FF (punctuation, currency,
# letterlike symbols such as №, arrows, mathematical operators). Fewer glyphs make the instancing
# below take a second rather than five.
_RANGES = ((0x20, 0x24F), (0x300, 0x3FF), (0x400, 0x52F), (0x1E00, 0x1EFF), (0x2000, 0x22FF))
_REPLACEMENT = "\ufffd"
_NOT_TEXT = {"Cc", "Cs", "Co", "Cn", "Zl", "Zp"}  # controls, surrogates, private use, unassigned

# Millimetres, points and colours.
_MARGIN, _TOP, _BOTTOM, _GUTTER = 16.0, 14.0, 16.0, 5.0
_TEXT_PT, _TEXT_H = 10.0, 5.0
_META_PT, _META_H = 8.5, 4.6
_SMALL_PT, _SMALL_H = 7.5, 3.9
_INK, _GREY, _RULE = (17, 17, 17), (96, 96, 96), (200, 200, 200)
_RED, _AMBER, _GREEN = (170, 0, 0), (176, 112, 0), (0, 110, 50)
_EXERCISE_FILL = (255, 240, 170)
_LEFT_BAR = 3.0  # how far left of the text the FLASH or EXERCISE bar is drawn
# The total page count is written in the footer at the end. fpdf2 replaces its alias wherever it
# occurs in text, so the alias holds a control character that cleaned message text never does;
# its length is the room kept for the number: six digits.
_NB_ALIAS = "\x01nnnn\x01"
_FOOTNOTE = "A rendering, not evidence: check the bundle's signed records with hotline verify"


@dataclass(frozen=True, slots=True)
class _Faces:
    regular: bytes
    bold: bytes
    covered: frozenset[int]  # the code points both faces draw


@functools.cache
def _faces() -> _Faces:
    try:
        data = (importlib.resources.files(_FONT_PACKAGE) / "files" / _FONT_FILE).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise ConfigError(
            "the PDF transcript needs the Noto Sans font: pip install fontpkg-noto-sans"
        ) from e
    font = ttLib.TTFont(io.BytesIO(data), recalcTimestamp=False)
    cmap = font.getBestCmap()
    wanted = [cp for lo, hi in _RANGES for cp in range(lo, hi + 1) if cp in cmap]
    wanted.append(ord(_REPLACEMENT))
    options = subset.Options()
    options.layout_features = []  # fpdf2 sets text without shaping: no GSUB or GPOS needed
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "STAT", "MVAR"]
    options.notdef_outline = True
    options.hinting = False
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=wanted)
    subsetter.subset(font)
    faces = []
    for weight, style in ((400, "Regular"), (700, "Bold")):
        static = instancer.instantiateVariableFont(font, {"wght": weight, "wdth": 100}, static=True)
        # Named for the weight, not for the variable font, so that a reader tells them apart.
        names = static["name"]
        for name_id, value in ((2, style), (4, f"Noto Sans {style}"), (6, f"NotoSans-{style}")):
            names.removeNames(nameID=name_id)
            names.setName(value, name_id, 3, 1, 0x409)
        buffer = io.BytesIO()
        static.save(buffer)
        faces.append(buffer.getvalue())
    covered = frozenset(
        cp for cp in font.getBestCmap() if unicodedata.category(chr(cp)) not in _NOT_TEXT
    )
    return _Faces(faces[0], faces[1], covered)


class _Clean(dict[int, str]):
    """A `str.translate` table: what the fonts cannot draw becomes U+FFFD, line breaks become
    "\\n", tabs spaces. Only drawable code points are remembered, so it stays small."""

    def __init__(self, covered: frozenset[int]) -> None:
        super().__init__({ord("\n"): "\n", ord("\t"): "    ", 0x2028: "\n", 0x2029: "\n"})
        self._covered = covered

    def __missing__(self, cp: int) -> str:
        if cp in self._covered:
            self[cp] = chr(cp)
            return chr(cp)
        return _REPLACEMENT

    def __call__(self, text: str) -> str:
        return text.replace("\r\n", "\n").replace("\r", "\n").translate(self)

    def line(self, text: str, limit: int) -> str:
        """`text` from a record for a label: one line, at most `limit` characters, shown."""
        return self(shown(text[:limit])).replace("\n", " ")


@dataclass(frozen=True, slots=True)
class _Line:
    """One line of a column, already wrapped to its width."""

    text: str
    style: str  # "" or "B"
    size: float
    height: float
    colour: tuple[int, int, int]


def write_pdf(
    out: Sink,
    title: str,
    link_id: bytes,
    stations: list[tuple[str, str]],
    entries: Iterable[Entry],
) -> int:
    """Write the transcript to `out` and return its number of pages.

    `stations` is [(name, fingerprint hex)]; `entries` are printed in the order given, read
    once and one at a time: nothing of an entry is kept once its block is drawn. fpdf2 cannot
    stream pages, though: it keeps the document in memory until it writes the file (the count in
    "page N of M" is known only at the end). That is about 15 KB a page, some 1 KB a short
    message: 100,000 of them hold about 120 MB and take a minute or two.
    """
    faces = _faces()
    clean = _Clean(faces.covered)
    last_ns: int | None = None
    with tempfile.TemporaryDirectory(prefix="hotline-pdf-") as tmp:
        # fpdf2 reads fonts from files only; it parses them here and keeps them in memory.
        for name, face in (("regular.ttf", faces.regular), ("bold.ttf", faces.bold)):
            (Path(tmp) / name).write_bytes(face)
        doc = _Document(clean.line(title, 160), link_id.hex(), clean)
        doc.add_font("noto", "", str(Path(tmp) / "regular.ttf"))
        doc.add_font("noto", "B", str(Path(tmp) / "bold.ttf"))
    doc.front_page(stations)
    for entry in entries:
        doc.entry(entry)
        last_ns = entry.when_ns
    # Dated by its last message rather than by the clock: the same record gives the same bytes.
    doc.set_creation_date(_datetime(last_ns or 0) or datetime(1970, 1, 1, tzinfo=UTC))
    out.write(doc.output())
    return doc.pages_count


class _Document(FPDF):
    def __init__(self, title: str, link_hex: str, clean: _Clean) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.heading, self.link_hex, self.clean = title, link_hex, clean
        self.set_margins(_MARGIN, _TOP, _MARGIN)
        self.set_auto_page_break(False)  # blocks are laid out by hand, column by column
        self.alias_nb_pages(_NB_ALIAS)
        self.set_title(title)
        self.set_creator("hotline")
        self.set_display_mode("fullwidth")
        self.bottom = self.h - _BOTTOM
        self.text_w = self.w - 2 * _MARGIN

    # -- furniture on every page

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self._font("", _SMALL_PT, _GREY)
        self.set_xy(_MARGIN, 8)
        label = f"{self.heading} · link {self.link_hex[:16]}…"
        self.cell(self.text_w, _SMALL_H, self._fit(label, self.text_w))
        self.set_draw_color(*_RULE)
        self.line(_MARGIN, 12.5, self.w - _MARGIN, 12.5)
        self.set_y(_TOP + 1)

    def footer(self) -> None:
        self._font("", _SMALL_PT, _GREY)
        y = self.h - _BOTTOM + 6
        self.set_xy(_MARGIN, y)
        self.cell(self.text_w * 0.8, _SMALL_H, _FOOTNOTE)
        # Left-aligned, ending at the margin for up to 99 pages and running into it beyond: the
        # room kept for the count trails unseen.
        width = self.get_string_width("page 00 of 00") + 2 * self.c_margin
        self.set_xy(self.w - _MARGIN - width, y)
        self.cell(width, _SMALL_H, f"page {self.page_no()} of {_NB_ALIAS}")

    # -- the first page

    def front_page(self, stations: list[tuple[str, str]]) -> None:
        self.add_page()
        self.set_xy(_MARGIN, _TOP)
        self._font("B", 16, _INK)
        self.multi_cell(self.text_w, 8, self.heading or "Hotline transcript")
        self.ln(2)
        self._font("", _META_PT, _GREY)
        self.cell(22, _META_H + 1, "Link")
        self.set_font("Courier", "", 8.5)
        self.set_text_color(*_INK)
        self.cell(0, _META_H + 1, _grouped(self.link_hex), new_x="LMARGIN", new_y="NEXT")
        for name, fingerprint in stations:
            if self.get_y() > self.bottom - 40:  # room for the note below
                self.add_page()
            self._font("", _META_PT, _GREY)
            self.cell(22, _META_H + 1, "Station")
            self._font("B", _META_PT, _INK)
            self.cell(0, _META_H + 1, self._fit(self.clean.line(name, 200), self.text_w - 22))
            self.ln()
            self._font("", _META_PT, _GREY)
            self.cell(22, _META_H + 1, "Fingerprint")
            self.set_font("Courier", "", 8.5)
            self.set_text_color(*_INK)
            self.cell(0, _META_H + 1, _grouped(fingerprint), new_x="LMARGIN", new_y="NEXT")
        self.ln(3)
        top = self.get_y()
        self.set_fill_color(242, 242, 242)
        self.rect(_MARGIN, top, self.text_w, 18, style="F")
        self.set_xy(_MARGIN + 3, top + 2.5)
        self.set_left_margin(_MARGIN + 3)
        self.set_right_margin(_MARGIN + 3)
        self._font("B", _META_PT + 0.5, _INK)
        self.write(_META_H, "This PDF is a rendering for people to read, not evidence: ")
        self._font("", _META_PT + 0.5, _INK)
        self.write(_META_H, "the signed records in the bundle are the evidence; check them with ")
        self.set_font("Courier", "", _META_PT + 0.5)
        self.write(_META_H, "hotline verify")
        self._font("", _META_PT + 0.5, _INK)
        self.write(_META_H, ". Times are UTC; each original is shown as it was sent, and each ")
        self.write(_META_H, "translation says who certified it or that it is a machine draft.")
        self.set_margins(_MARGIN, _TOP, _MARGIN)
        self.set_y(top + 18 + 6)

    # -- one message

    def entry(self, e: Entry) -> None:
        lane, sender = self.clean.line(e.lane, 16), self.clean.line(e.sender, 48)
        label = f"{lane} {e.seq}"
        flash = lane == "FLASH"
        exercise = e.kind.lower() == "exercise"
        urgent = flash or (e.call is not None and e.call.precedence == "FLASH")
        bar = _RED if urgent else _AMBER if exercise else None
        columns = self._columns(e)
        # The first line of a block never ends a page alone: it comes with two lines of text.
        if self.get_y() + 2 * _META_H + 2.2 + 2 * _TEXT_H > self.bottom:
            self.add_page()
        top = self.get_y()
        self.set_draw_color(*_RULE)
        self.line(_MARGIN, top, self.w - _MARGIN, top)
        self.set_xy(_MARGIN, top + 1.2)
        if exercise:
            self._tag("EXERCISE", _EXERCISE_FILL)
        self._meta(_time(e.when_ns), "", _INK)
        if e.clock_fault:
            self._meta(f"CLOCK FAULT: dated {_time(e.sent_ns)} by its sender", "B", _RED)
        self._meta(sender, "B", _INK)
        self._meta(label, "B", _RED if flash else _INK)
        self._meta(self.clean.line(e.kind, 24), "", _GREY)
        if e.call is None:  # a call record's "zxx" says nothing to a reader
            self._meta(self.clean.line(e.language, 16), "", _GREY)
        if e.acknowledges is not None:
            self._meta(f"acknowledges {self.clean.line(e.acknowledges, 40)}", "B", _GREY)
        self.set_xy(_MARGIN, self.get_y() + _META_H + 1)
        self._flow(columns, top, bar, f"{label} from {sender}, continued")
        self.set_y(self.get_y() + 3)

    def _columns(self, e: Entry) -> list[tuple[float, float, list[_Line]]]:
        if e.call is not None and not e.memcons:
            return [(_MARGIN, self.text_w, self._call(e.sender, e.call, self.text_w))]
        if e.call is None and not e.translations:
            return [(_MARGIN, self.text_w, self._original(e, self.text_w, heading=False))]
        width = (self.text_w - _GUTTER) / 2
        right: list[_Line] = []
        # A message's translations, or a call's records of conversation: each under its status.
        beside = [("translation", t.language, t.text, t.status) for t in e.translations]
        beside += [("record of conversation", m.language, m.text, m.status) for m in e.memcons]
        for what, language, text, said in beside:
            if right:
                right.append(_Line("", "", _SMALL_PT, 2.5, _INK))
            status = self.clean.line(said, 400)
            colour = _GREEN if status.startswith("certified") else _AMBER
            heading = f"{what} · {self.clean.line(language, 16)} — {status}"
            right += self._wrap(heading, width, "B", _SMALL_PT, _SMALL_H, colour)
            right += self._text(text, width)
        left = (
            self._call(e.sender, e.call, width)
            if e.call is not None
            else self._original(e, width, heading=True)
        )
        return [(_MARGIN, width, left), (_MARGIN + width + _GUTTER, width, right)]

    def _original(self, e: Entry, width: float, *, heading: bool) -> list[_Line]:
        lines: list[_Line] = []
        if heading:
            title = f"original · {self.clean.line(e.language, 16)}"
            lines += self._wrap(title, width, "B", _SMALL_PT, _SMALL_H, _GREY)
        lines += self._text(e.text, width)
        for attachment in e.attachments:
            name = self.clean.line(attachment, 400)
            lines += self._wrap(f"attachment: {name}", width, "", _SMALL_PT, _SMALL_H, _GREY)
        return lines

    def _call(self, sender: str, call: CallView, width: float) -> list[_Line]:
        """A call, not a message: what its record says, line by line, the full width."""
        precedence = self.clean.line(call.precedence, 16)
        colour = _RED if precedence == "FLASH" else _INK
        direction = self.clean.line(call.direction, 16)
        heading = f"{precedence} call, {direction}, as {sender} recorded it"
        lines = self._wrap(heading, width, "B", _TEXT_PT, _TEXT_H, colour)
        for label, value in call.details:  # values are printable (decode_record): one line each
            lines += self._wrap(f"{label}: {shown(value)}", width, "", _META_PT, _META_H, _INK)
        return lines

    def _text(self, text: str, width: float) -> list[_Line]:
        if not text.strip():
            return [_Line("(no text)", "", _TEXT_PT, _TEXT_H, _GREY)]
        return self._wrap(shown(text), width, "", _TEXT_PT, _TEXT_H, _INK)

    def _wrap(
        self,
        text: str,
        width: float,
        style: str,
        size: float,
        height: float,
        colour: tuple[int, int, int],
    ) -> list[_Line]:
        self.set_font("noto", style, size)
        text = self.clean(text)
        if "\n" not in text and self.get_string_width(text) <= width - 2 * self.c_margin:
            return [_Line(text, style, size, height, colour)]  # most lines: no need to break
        # fpdf2 breaks at spaces and, for a word wider than the column, between characters.
        lines = self.multi_cell(width, height, text, dry_run=True, output=MethodReturnValue.LINES)
        if not isinstance(lines, list):  # what LINES returns: fpdf2's type says more
            raise TypeError(f"fpdf2 returned {type(lines)} for the lines of a text")
        return [_Line(str(line), style, size, height, colour) for line in lines]

    def _flow(
        self,
        columns: list[tuple[float, float, list[_Line]]],
        top: float,
        bar: tuple[int, int, int] | None,
        continued: str,
    ) -> None:
        """Draw the columns side by side from the current y; when a page is full, go on with
        every column at the top of the next page, so that they stay level page by page."""
        done = [0] * len(columns)
        while True:
            start = self.get_y()
            ends = []
            for n, (x, width, lines) in enumerate(columns):
                y = start
                while done[n] < len(lines) and y + lines[done[n]].height <= self.bottom:
                    line = lines[done[n]]
                    self._font(line.style, line.size, line.colour)
                    self.set_xy(x, y)
                    self.cell(width, line.height, line.text)
                    y += line.height
                    done[n] += 1
                ends.append(y)
            end = max(ends)
            if bar is not None:
                self.set_fill_color(*bar)
                self.rect(_MARGIN - _LEFT_BAR, top, 1.2, end - top, style="F")
            if all(d == len(col[2]) for d, col in zip(done, columns, strict=True)):
                self.set_y(end)
                return
            self.add_page()
            top = self.get_y()
            self._font("", _SMALL_PT, _GREY)
            self.set_x(_MARGIN)
            self.cell(self.text_w, _SMALL_H, self._fit(continued, self.text_w))
            self.set_y(top + _SMALL_H + 1)

    def _meta(self, text: str, style: str, colour: tuple[int, int, int]) -> None:
        """One item of a block's first line, wrapping to a second line when it does not fit."""
        self._font(style, _META_PT, colour)
        width = self.get_string_width(text) + 3
        if width > self.text_w:
            text, width = self._fit(text, self.text_w - 3), self.text_w
        if self.get_x() + width > self.w - _MARGIN and self.get_x() > _MARGIN:
            self.set_xy(_MARGIN, self.get_y() + _META_H)
        self.cell(width, _META_H, text)

    def _tag(self, text: str, fill: tuple[int, int, int]) -> None:
        self._font("B", _META_PT, _INK)
        self.set_fill_color(*fill)
        self.cell(self.get_string_width(text) + 3, _META_H, text, fill=True, align="C")
        self.set_x(self.get_x() + 2)

    def _font(self, style: str, size: float, colour: tuple[int, int, int]) -> None:
        self.set_font("noto", style, size)
        self.set_text_color(*colour)

    def _fit(self, text: str, width: float) -> str:
        """`text` cut, with an ellipsis, to `width` in the current font."""
        if self.get_string_width(text) <= width:
            return text
        while text and self.get_string_width(text + "…") > width:
            text = text[: max(len(text) * 3 // 4, len(text) - 8)]
        return text + "…"


def _time(sent_ns: int) -> str:
    when = _datetime(sent_ns)
    return f"{when:%Y-%m-%d %H:%M:%S} UTC" if when else f"{sent_ns} ns"


def _datetime(ns: int) -> datetime | None:
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
    except OverflowError:
        return None  # no date a person could read: the number is printed instead


def _grouped(hex_text: str) -> str:
    """A fingerprint in groups of four, as people compare them; anything not hex is dropped."""
    digits = "".join(c for c in hex_text.lower() if c in "0123456789abcdef")
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
