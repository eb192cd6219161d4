"""Text from outside, checked and shown so that it cannot lie to the eye (issue 13, item 4).

Two rules refuse, in the envelope's and the annotation's checks: a language tag is a well-formed
BCP 47 tag (RFC 5646 §2.1 and §2.2.9: the syntax, no variant or extension twice), and a text holds
no control character but newline and tab (C0, DEL and C1: NUL and BEL, a carriage return that
would rewrite a terminal line, an escape that would start a terminal sequence).

The rest is how a string from the peer (or a bundle, or a card) is shown, the same way in the
console (static/shown.js, checked against this module by tests/test_textsafety.py), the HTML and
PDF transcripts and the CLI. `pieces` cuts it into:

    text   shown as it is
    mark   an invisible character shown as its name instead: "‹U+202E RLO›". Invisible means a
           control (but newline and tab), a format character (category Cf: every bidi control,
           zero-width characters, tags), a private-use, unassigned or surrogate code point, a
           line or paragraph separator, or another default-ignorable code point (variation
           selectors, Hangul fillers, ...; Unicode's DerivedCoreProperties), and U+2800, the
           blank braille pattern. The character itself is dropped: a bidi control shown as a
           mark reorders nothing, so "strike at ‹U+202E RLO›0030‹U+202C PDF›" reads in the
           order it was written, and the console and the PDF agree.
    mixed  a word (a run of letters, marks and digits) with letters of two or more of the
           scripts in `SCRIPTS` (Unicode's Script property): "pаypal" with a Cyrillic а.
    note   after a mixed word, which scripts it mixes: "‹mixed Latin+Cyrillic›".

Each renderer also isolates every such string (`<bdi>`, `unicode-bidi: isolate`), so right-to-left
text that is genuinely there cannot reorder what stands around it. `shown` is the plain form: the
pieces' text joined, for a terminal, a PDF, a log line.
"""  # noqa: RUF002 - the guillemets and the Cyrillic letter are the point

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from fontTools.unicodedata import script as _script  # type: ignore[import-untyped]

__all__ = [
    "SCRIPTS",
    "Piece",
    "classify",
    "is_language_tag",
    "language_problem",
    "pieces",
    "shown",
    "text_problem",
]

# -- BCP 47 (RFC 5646 §2.1), case-insensitive, ASCII only ---------------------------------------

_LANGTAG = re.compile(
    r"""
    (?:[a-z]{2,3}(?:-[a-z]{3}){0,3} | [a-z]{4} | [a-z]{5,8})   # language, with extlangs
    (?:-[a-z]{4})?                                            # script
    (?:-(?:[a-z]{2}|[0-9]{3}))?                               # region
    (?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*                  # variants
    (?:-[0-9a-wyz](?:-[a-z0-9]{2,8})+)*                       # extensions
    (?:-x(?:-[a-z0-9]{1,8})+)?                                # private use
    | x(?:-[a-z0-9]{1,8})+                                    # private use alone
    """,
    re.VERBOSE | re.ASCII,
)
# The irregular grandfathered tags (§2.2.8); the regular ones already match the syntax above.
_IRREGULAR = frozenset(
    ("en-gb-oed", "i-ami", "i-bnn", "i-default", "i-enochian", "i-hak", "i-klingon", "i-lux",
     "i-mingo", "i-navajo", "i-pwn", "i-tao", "i-tay", "i-tsu", "sgn-be-fr", "sgn-be-nl",
     "sgn-ch-de")
)  # fmt: skip


def language_problem(tag: str) -> str | None:
    """Why `tag` is not a well-formed BCP 47 language tag, or None when it is."""
    lower = tag.lower()
    if lower in _IRREGULAR:
        return None
    if not lower.isascii() or not _LANGTAG.fullmatch(lower):
        return f"language tag {tag[:40]!r} is not a well-formed BCP 47 tag"
    subtags = lower.split("-")
    if "x" in subtags:  # private use: anything after it is free
        subtags = subtags[: subtags.index("x")]
    singletons = [s for s in subtags if len(s) == 1]
    first = subtags.index(singletons[0]) if singletons else len(subtags)
    variants = [s for s in subtags[1:first] if len(s) >= 5 or (len(s) == 4 and s[0].isdigit())]
    if len(set(variants)) != len(variants) or len(set(singletons)) != len(singletons):
        return f"language tag {tag[:40]!r} repeats a variant or an extension (RFC 5646 §2.2.9)"
    return None


def is_language_tag(tag: str) -> bool:
    return language_problem(tag) is None


# -- controls in a text -------------------------------------------------------------------------

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but tab and newline, DEL, C1


def text_problem(text: str, what: str = "text") -> str | None:
    """Why `text` may not be carried (a control character but newline and tab), or None."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    code = ord(found.group())
    name = f" ({_NAMES[code]})" if code in _NAMES else ""
    return f"the {what} holds the control character U+{code:04X}{name}"


# -- showing a string ---------------------------------------------------------------------------

# The scripts whose letters are compared within a word (ISO 15924 code, name as shown): those
# with look-alikes of Latin, Greek or Cyrillic letters, and the two right-to-left ones.
SCRIPTS = (
    ("Latn", "Latin"),
    ("Grek", "Greek"),
    ("Cyrl", "Cyrillic"),
    ("Armn", "Armenian"),
    ("Geor", "Georgian"),
    ("Cher", "Cherokee"),
    ("Copt", "Coptic"),
    ("Hebr", "Hebrew"),
    ("Arab", "Arabic"),
)
_SCRIPT_NAMES = dict(SCRIPTS)

# Default-ignorable code points that are not Cf, Cn or Cc (Unicode 15, DerivedCoreProperties),
# and the blank braille pattern, drawn as nothing.
_IGNORABLE = (
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x2800, 0x2800),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0100, 0xE01EF),
)  # fmt: skip
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"})
_C0 = (
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF", "CR",
    "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC",
    "FS", "GS", "RS", "US",
)  # fmt: skip
_OPEN, _CLOSE = "\u2039", "\u203a"  # the single guillemets around a mark or a note
_NAMES = {
    0x7F: "DEL", 0xAD: "SHY", 0x34F: "CGJ", 0x61C: "ALM", 0x180E: "MVS", 0x200B: "ZWSP",
    0x200C: "ZWNJ", 0x200D: "ZWJ", 0x200E: "LRM", 0x200F: "RLM", 0x2028: "LSEP", 0x2029: "PSEP",
    0x202A: "LRE", 0x202B: "RLE", 0x202C: "PDF", 0x202D: "LRO", 0x202E: "RLO", 0x2060: "WJ",
    0x2066: "LRI", 0x2067: "RLI", 0x2068: "FSI", 0x2069: "PDI", 0xFEFF: "BOM",
    **{0xFE00 + n: f"VS{n + 1}" for n in range(16)},
    **dict(enumerate(_C0)),
}  # fmt: skip

Kind = Literal["text", "mark", "mixed", "note"]


@dataclass(frozen=True, slots=True)
class Piece:
    kind: Kind
    text: str


def _mark(code: int) -> str:
    name = _NAMES.get(code)
    return f"{_OPEN}U+{code:04X}{' ' + name if name else ''}{_CLOSE}"


@functools.lru_cache(maxsize=4096)
def classify(char: str) -> str | None:
    """What one character is here: "invisible"; "word" (a letter, mark or digit), or
    "word:Latin" and the like for a letter of one of SCRIPTS; None for the rest."""
    code = ord(char)
    category = unicodedata.category(char)
    if char not in "\t\n" and (
        category in _INVISIBLE_CATEGORIES or any(lo <= code <= hi for lo, hi in _IGNORABLE)
    ):
        return "invisible"
    if category[0] not in "LMN":
        return None
    if category[0] == "L":
        script = _SCRIPT_NAMES.get(_script(char))
        if script is not None:
            return f"word:{script}"
    return "word"


def pieces(text: str) -> list[Piece]:
    """`text` cut into what is shown as it is, marks for invisible characters, and words that
    mix scripts with a note after each (the module's docstring says which is which)."""
    out: list[Piece] = []
    plain: list[str] = []
    word: list[str] = []
    scripts: set[str] = set()

    def end_word() -> None:
        if len(scripts) > 1:
            if plain:
                out.append(Piece("text", "".join(plain)))
                plain.clear()
            names = "+".join(name for _, name in SCRIPTS if name in scripts)
            out.extend(
                (Piece("mixed", "".join(word)), Piece("note", f"{_OPEN}mixed {names}{_CLOSE}"))
            )
        else:
            plain.extend(word)
        word.clear()
        scripts.clear()

    for char in text:
        kind = classify(char)
        if kind is not None and kind.startswith("word"):
            word.append(char)
            if kind != "word":
                scripts.add(kind[5:])
            continue
        end_word()
        if kind == "invisible":
            if plain:
                out.append(Piece("text", "".join(plain)))
                plain.clear()
            out.append(Piece("mark", _mark(ord(char))))
        else:
            plain.append(char)
    end_word()
    if plain:
        out.append(Piece("text", "".join(plain)))
    return out


def shown(text: str) -> str:
    """`text` as plain text to show: every invisible character as its mark, every word that
    mixes scripts followed by its note."""
    return "".join(p.text for p in pieces(text))
