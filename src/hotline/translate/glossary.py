"""A link's glossary, and how a machine engine is made to follow it.

Translators keep, per link, the agreed rendering of names, titles and terms ("Lavrov" is always
"Лавров", "the Secretary" is always "госсекретарь"). An engine does not know them, so before the
text goes to it each term found in the text is replaced by a numbered placeholder, `[7]`, which
machine translation carries through like a number; afterwards each placeholder is replaced by the
glossary's rendering. A term is matched as a whole word (no letter or digit on either side, in any
script), without regard to case, the longest term first; spaces inside a term match any run of
spaces, so a term broken over two lines is still found. An inflected form ("Лаврова") is another
word: translators add the forms they need as entries of their own.

When the engine loses, splits or repeats a placeholder, `restore` gives up (None) rather than
guess where a name went; the caller then translates the text again without placeholders and says
which terms the draft does not render by the glossary, so nothing half-replaced reaches a person.

Pure functions: no I/O, no engine. The entries are stored by someone else."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from hotline.errors import LocalError

__all__ = [
    "Glossary",
    "GlossaryEntry",
    "GlossaryError",
    "Protected",
    "Slot",
    "protect",
    "restore",
]

# Lenient about spaces inside the brackets: some tokenizers give back "[ 7 ]".
_PLACEHOLDER = re.compile(r"\[\s*(\d{1,9})\s*\]")
_SPACES = re.compile(r"\s+")


class GlossaryError(LocalError):
    """A glossary entry that cannot be used (an empty term or language)."""


@dataclass(frozen=True, slots=True)
class GlossaryEntry:
    """`source` in `source_language` is always rendered `target` in `target_language`."""

    source_language: str
    source: str
    target_language: str
    target: str
    note: str = ""

    def __post_init__(self) -> None:
        for field in ("source_language", "source", "target_language", "target"):
            if not getattr(self, field).strip():
                raise GlossaryError(f"a glossary entry needs a non-empty {field.replace('_', ' ')}")

    def applies_to(self, source: str, target: str) -> bool:
        return (
            self.source_language.casefold() == source.casefold()
            and self.target_language.casefold() == target.casefold()
        )


@dataclass(frozen=True, slots=True)
class Glossary:
    """A link's entries, in the translators' order: of two entries for the same term in the same
    direction, the first wins."""

    entries: tuple[GlossaryEntry, ...] = ()

    def for_pair(self, source: str, target: str) -> dict[str, GlossaryEntry]:
        """The entries that apply from `source` to `target`, keyed by their folded term."""
        chosen: dict[str, GlossaryEntry] = {}
        for entry in self.entries:
            if entry.applies_to(source, target):
                chosen.setdefault(_fold(entry.source), entry)
        return chosen


@dataclass(frozen=True, slots=True)
class Slot:
    """One placeholder: the number it carries, the words of the text it stands for, and the
    entry whose rendering replaces it."""

    number: int
    found: str
    entry: GlossaryEntry


@dataclass(frozen=True, slots=True)
class Protected:
    """The text as the engine is to see it, and what each of its placeholders stands for."""

    text: str
    slots: tuple[Slot, ...]

    @property
    def terms(self) -> tuple[str, ...]:
        """The glossary's terms found in the text, each once, in order of appearance."""
        return tuple(dict.fromkeys(slot.entry.source for slot in self.slots))


def protect(text: str, glossary: Glossary, source: str, target: str) -> Protected:
    """Replace every glossary term in `text` by a placeholder. Numbers that already stand in
    brackets in the text are not used for placeholders, so `restore` never touches them."""
    entries = glossary.for_pair(source, target)
    if not entries:
        return Protected(text, ())
    # One named group per term, longest first: the group that matched names the entry, whatever
    # case folding the regular expression engine applied.
    chosen = sorted(entries.values(), key=lambda e: (-len(_fold(e.source)), _fold(e.source)))
    pattern = re.compile(
        "|".join(f"(?P<t{i}>{_term_pattern(e.source)})" for i, e in enumerate(chosen)),
        re.IGNORECASE,
    )
    taken = {int(m.group(1)) for m in _PLACEHOLDER.finditer(text)}
    numbers = (n for n in range(len(text) + len(taken) + 1) if n not in taken)
    slots: list[Slot] = []

    def placeholder(match: re.Match[str]) -> str:
        entry = chosen[int(str(match.lastgroup)[1:])]
        slots.append(Slot(next(numbers), match.group(0), entry))
        return f"[{slots[-1].number}]"

    protected = pattern.sub(placeholder, text)
    return Protected(protected, tuple(slots))


def restore(protected: Protected, translated: str) -> str | None:
    """Put each slot's rendering in place of its placeholder in the engine's output; None when any
    placeholder is missing or appears more than once (the engine mangled it)."""
    if not protected.slots:
        return translated
    ours = {slot.number: slot.entry.target for slot in protected.slots}
    seen = Counter(int(m.group(1)) for m in _PLACEHOLDER.finditer(translated))
    if any(seen[number] != 1 for number in ours):
        return None

    def rendering(match: re.Match[str]) -> str:
        number = int(match.group(1))
        return ours.get(number, match.group(0))

    return _PLACEHOLDER.sub(rendering, translated)


def _term_pattern(term: str) -> str:
    # Whole words in any script: no letter, digit or underscore on either side.
    words = (re.escape(word) for word in term.split())
    return r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)"


def _fold(term: str) -> str:
    # One key for every spelling the pattern matches: case folded, spaces collapsed.
    return _SPACES.sub(" ", term.strip()).casefold()
