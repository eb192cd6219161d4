"""The translation workflow's rules, checked again from the signed annotations alone
(docs/link.md §7; docs/archive.md, step 7).

The station applies these rules before it signs (hotline.station.translation); a verifier cannot
trust that it did, so it applies them again, in the order the annotations were made:

    a review or a certification names an earlier translation (kind 1) of the same message, in that
        translation's language, and is not by that translation's translator;
    a certification is a supervisor's, of a translation someone has reviewed, and not by one of
        its reviewers: the certifier is a person other than the translator and every reviewer;
    a translation is certified at most once.

A review after the certification, by the certifier, breaks the second rule the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hotline.protocol.annotation import Annotation, Kind

__all__ = ["Workflow"]


@dataclass(frozen=True, slots=True)
class _Translation:
    about: tuple[int, int, int]  # the message's direction, lane and seq
    person: str
    language: str


@dataclass
class Workflow:
    """The translations seen so far, and who reviewed and certified each (by its hash)."""

    translations: dict[bytes, _Translation] = field(default_factory=dict)
    reviewers: dict[bytes, set[str]] = field(default_factory=dict)
    certifiers: dict[bytes, str] = field(default_factory=dict)

    @property
    def certified(self) -> int:
        """How many distinct translations are certified."""
        return len(self.certifiers)

    def take(self, a: Annotation) -> str | None:
        """The rule that `a`, the next annotation in the order made, breaks; else None, and `a`
        is taken in."""
        body = a.body
        if a.kind == Kind.TRANSLATION:
            about = (body.direction, body.lane, body.seq)
            self.translations[a.hash] = _Translation(about, body.person, body.language)
        if a.kind not in (Kind.REVIEW, Kind.CERTIFICATION):
            return None
        problem = self._checks_a_translation(a)
        if problem is not None:
            return problem
        return self._review(a) if a.kind == Kind.REVIEW else self._certification(a)

    def _checks_a_translation(self, a: Annotation) -> str | None:
        body = a.body
        translation = self.translations.get(body.refers)
        if translation is None or translation.about != (body.direction, body.lane, body.seq):
            return "names no earlier translation of that message"
        if body.language != translation.language:
            return f"is in {body.language!r}, not in its translation's {translation.language!r}"
        if body.person == translation.person:
            return "by the translator of what it checks"
        return None

    def _review(self, a: Annotation) -> str | None:
        body = a.body
        if self.certifiers.get(body.refers) == body.person:
            return "a review by the person who certified that translation"
        self.reviewers.setdefault(body.refers, set()).add(body.person)
        return None

    def _certification(self, a: Annotation) -> str | None:
        body = a.body
        reviewers = self.reviewers.get(body.refers, set())
        if body.role != "supervisor":
            return f"by a {body.role}, not a supervisor"
        if not reviewers:
            return "certifies a translation nobody reviewed"
        if body.person in reviewers:
            return "by a reviewer of that translation: a second person certifies"
        if body.refers in self.certifiers:
            return f"certifies again a translation {self.certifiers[body.refers]} certified"
        self.certifiers[body.refers] = body.person
        return None
