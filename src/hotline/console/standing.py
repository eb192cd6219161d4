"""Where a received message is at the translation desk (issue 15, item 15), from the signed
annotations the store keeps: what the translators' queue (queue.py) lists and Traffic marks.

A received principal or exercise message needs, in this order:

    translation    no translation by a person that stands (a withdrawn one does not count;
                   a machine draft is not a translation)
    review         a translation stands, but nobody has reviewed any
    certification  a standing translation is reviewed, none is certified

and needs nothing once a standing translation of it is certified.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.envelope import MessageType
from hotline.protocol.statements import Signed

__all__ = ["NEEDS", "QUEUED_TYPES", "Standing", "standings"]

QUEUED_TYPES = (int(MessageType.PRINCIPAL), int(MessageType.EXERCISE))
NEEDS = ("translation", "review", "certification")


@dataclass
class Standing:
    """Where one received message is at the translation desk."""

    translations: set[bytes] = field(default_factory=set)  # by people, standing
    reviewed: set[bytes] = field(default_factory=set)
    certified: set[bytes] = field(default_factory=set)
    withdrawn: set[bytes] = field(default_factory=set)

    def take(self, kind: int, hash_: bytes, refers: bytes) -> None:
        if kind == Kind.TRANSLATION:
            self.translations.add(hash_)
        elif kind == Kind.REVIEW:
            self.reviewed.add(refers)
        elif kind == Kind.CERTIFICATION:
            self.certified.add(refers)
        elif kind == Kind.WITHDRAWAL:
            self.withdrawn.add(refers)

    @property
    def standing(self) -> set[bytes]:
        return self.translations - self.withdrawn

    @property
    def needs(self) -> str | None:
        """ "translation", "review", "certification", or None once one is certified."""
        standing = self.standing
        if standing & self.certified:
            return None
        if standing & self.reviewed:
            return "certification"
        return "review" if standing else "translation"


def standings(
    rows: list[tuple[int, int, int, bytes, bytes]], peer: int
) -> dict[tuple[int, int], Standing]:
    """The desk's standing of each of the peer's messages annotated, by (lane, seq), from the
    store's annotation rows (SqlStore.annotation_refs); those about our own envelopes (a memcon
    and its checks) are left out: the direction is in the signed body."""
    found: dict[tuple[int, int], Standing] = {}
    for lane, seq, kind, hash_, statement in rows:
        if kind in (Kind.MEMCON, Kind.MACHINE):
            continue
        # Our own signed statement, as stored: its form is read, the signature was ours.
        body = Annotation.decode(Signed.from_bytes(statement), words=False).body
        if body.direction == peer:
            found.setdefault((lane, seq), Standing()).take(kind, hash_, body.refers)
    return found
