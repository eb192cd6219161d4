"""The workflow's rules, checked again from the signed annotations alone (docs/link.md §7;
docs/archive.md, step 7): the translations of the messages the exporter received, and the records
of conversation (memcons) of its own calls, each reviewed and certified alike.

The station applies these rules before it signs (hotline.station.translation, memcon); a verifier
cannot trust that it did, so it applies them again, in the order the annotations were made:

    a review or a certification names an earlier translation (kind 1) or memcon (kind 4) of the
        same envelope, in its language, and is not by its author;
    a certification is a supervisor's, of a translation or memcon someone has reviewed, and not
        by one of its reviewers: the certifier is a person other than the author and every
        reviewer;
    a translation or memcon is certified at most once; and a call has at most one certified
        memcon (its record of conversation);
    a withdrawal names an earlier translation of the same envelope, in its language, not
        withdrawn before, and is by its translator or a supervisor; a withdrawn translation is
        reviewed and certified no more.

A review after the certification, by the certifier, breaks the second rule the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hotline.protocol.annotation import CHECKED, Annotation, Kind

__all__ = ["Workflow"]

Position = tuple[int, int, int]  # an envelope's direction, lane and seq


@dataclass(frozen=True, slots=True)
class _Made:
    """A translation or a memcon: what a review or a certification may name."""

    kind: Kind
    about: Position
    person: str
    language: str


@dataclass
class Workflow:
    """The translations and memcons seen so far, and who reviewed and certified each (by its
    hash)."""

    made: dict[bytes, _Made] = field(default_factory=dict)
    reviewers: dict[bytes, set[str]] = field(default_factory=dict)
    certifiers: dict[bytes, str] = field(default_factory=dict)
    memcons: int = 0  # memcons seen
    certified_calls: dict[Position, str] = field(default_factory=dict)  # call record -> certifier
    withdrawn: dict[bytes, str] = field(default_factory=dict)  # translation -> who withdrew it

    @property
    def certified(self) -> int:
        """How many distinct translations are certified."""
        return len(self.certifiers) - len(self.certified_calls)

    @property
    def certified_memcons(self) -> int:
        """How many calls have a certified record of conversation (one each at most)."""
        return len(self.certified_calls)

    def take(self, a: Annotation) -> str | None:
        """The rule that `a`, the next annotation in the order made, breaks; else None, and `a`
        is taken in."""
        body = a.body
        if a.kind in CHECKED:
            about = (body.direction, body.lane, body.seq)
            self.made[a.hash] = _Made(a.kind, about, body.person, body.language)
            self.memcons += a.kind == Kind.MEMCON
        if a.kind == Kind.WITHDRAWAL:
            return self._withdrawal(a)
        if a.kind not in (Kind.REVIEW, Kind.CERTIFICATION):
            return None
        problem = self._checks_made(a)
        if problem is not None:
            return problem
        if body.refers in self.withdrawn:
            return f"checks a translation {self.withdrawn[body.refers]} withdrew"
        return self._review(a) if a.kind == Kind.REVIEW else self._certification(a)

    def _withdrawal(self, a: Annotation) -> str | None:
        body = a.body
        made = self.made.get(body.refers)
        if made is None or made.about != (body.direction, body.lane, body.seq):
            return "names no earlier translation of that envelope"
        if made.kind != Kind.TRANSLATION:
            return "withdraws what is not a translation"
        if body.language != made.language:
            return f"is in {body.language!r}, not in its translation's {made.language!r}"
        if body.refers in self.withdrawn:
            return f"withdraws again a translation {self.withdrawn[body.refers]} withdrew"
        if body.person != made.person and body.role != "supervisor":
            return f"by a {body.role} who is not its translator: a supervisor or the translator"
        self.withdrawn[body.refers] = body.person
        return None

    def _checks_made(self, a: Annotation) -> str | None:
        body = a.body
        made = self.made.get(body.refers)
        if made is None or made.about != (body.direction, body.lane, body.seq):
            return "names no earlier translation or memcon of that envelope"
        noun, author = CHECKED[made.kind]
        if body.language != made.language:
            return f"is in {body.language!r}, not in its {noun}'s {made.language!r}"
        if body.person == made.person:
            return f"by the {author} of the {noun} it checks"
        return None

    def _review(self, a: Annotation) -> str | None:
        body = a.body
        if self.certifiers.get(body.refers) == body.person:
            return "a review by the person who certified what it reviews"
        self.reviewers.setdefault(body.refers, set()).add(body.person)
        return None

    def _certification(self, a: Annotation) -> str | None:
        body = a.body
        made = self.made[body.refers]
        noun, _ = CHECKED[made.kind]
        reviewers = self.reviewers.get(body.refers, set())
        if body.role != "supervisor":
            return f"by a {body.role}, not a supervisor"
        if not reviewers:
            return f"certifies a {noun} nobody reviewed"
        if body.person in reviewers:
            return f"by a reviewer of that {noun}: a second person certifies"
        if body.refers in self.certifiers:
            return f"certifies again a {noun} {self.certifiers[body.refers]} certified"
        if made.kind == Kind.MEMCON and made.about in self.certified_calls:
            who = self.certified_calls[made.about]
            return f"certifies a second record of conversation of a call {who} certified one of"
        self.certifiers[body.refers] = body.person
        if made.kind == Kind.MEMCON:
            self.certified_calls[made.about] = body.person
        return None
