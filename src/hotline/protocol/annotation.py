"""Annotations: what a station records about an envelope of its link, signed by that station and
attributed to a person, never sent on the wire. A message's original text and language never
change; its translations are annotations beside it, and so is the record of conversation (the
memcon) a note-taker writes of a call, beside the call record this station wrote (docs/link.md §7):

    machine        a machine's draft, naming the engine and model that wrote it (a received message)
    translation    a translator's translation (perhaps edited from a machine draft)
    review         a second person's check of one translation or memcon (`refers` names it)
    certification  a supervisor's certification of one reviewed translation or memcon
    memcon         the record of conversation of a call (our own call record)
    withdrawal     a translation taken back (in the wrong language, say): by its translator or a
                   supervisor, saying why (`text`); `refers` names it. The translation stays in
                   the record, shown as withdrawn; it is no longer reviewed or certified

An annotation is a MessagePack array, signed with Ed25519 (purpose "annotation") and kept as the
exact signed bytes; its hash (SHA-256 of the body) is how a review or a certification names the
translation or memcon it is about. Who may check what (`check_problem`: a reviewer is not the
author, a certification needs a review and is a third person's) is the same rule for both; the
station applies it before it signs (hotline.station.translation, memcon), and a verifier again
from the signed records alone (hotline.archive.workflow).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

from hotline.crypto.identity import PublicIdentity, StationIdentity
from hotline.errors import ProtocolError
from hotline.protocol.envelope import HASH_LEN, MAX_TEXT_BYTES, Envelope, sha256
from hotline.protocol.statements import Signed
from hotline.protocol.textsafety import language_problem, text_problem

__all__ = [
    "CHECKED",
    "REFERRING",
    "Annotation",
    "AnnotationBody",
    "Kind",
    "check_problem",
    "withdrawal_problem",
]

ANNOTATION_VERSION = 1
MAX_NAME = 100


class Kind(enum.IntEnum):
    MACHINE = 0
    TRANSLATION = 1
    REVIEW = 2
    CERTIFICATION = 3
    MEMCON = 4
    WITHDRAWAL = 5


# What a review or a certification may name: a translation of a received message, or the record
# of conversation of one of our calls. Each with the words its rules are said in.
CHECKED = {
    Kind.TRANSLATION: ("translation", "translator"),
    Kind.MEMCON: ("record of conversation", "author"),
}
# The kinds that name another annotation (`refers`).
REFERRING = (Kind.REVIEW, Kind.CERTIFICATION, Kind.WITHDRAWAL)


class AnnotationBody(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    version: int
    link_id: bytes
    direction: int  # of the annotated envelope: the peer's; ours for a memcon
    lane: int
    seq: int
    envelope_hash: bytes
    kind: int
    language: str  # of `text`: the language translated into, or the memcon's
    text: str  # the translation or memcon; a reviewer's or certifier's remark
    person: str  # who made it (for a machine draft: who asked for it)
    role: str  # that person's role when they made it
    engine: str  # a machine draft's engine and model; empty for people
    refers: bytes  # the translation or memcon reviewed or certified; empty otherwise
    made_ns: int


@dataclass(frozen=True, slots=True)
class Annotation:
    body: AnnotationBody
    signed: Signed
    hash: bytes

    @property
    def kind(self) -> Kind:
        return Kind(self.body.kind)

    @classmethod
    def create(
        cls,
        identity: StationIdentity,
        envelope: Envelope,
        kind: Kind,
        language: str,
        text: str,
        person: str,
        role: str,
        now_ns: int,
        engine: str = "",
        refers: bytes = b"",
    ) -> Annotation:
        e = envelope.body
        body = AnnotationBody(
            ANNOTATION_VERSION,
            e.link_id,
            e.direction,
            e.lane,
            envelope.seq,
            envelope.hash,
            int(kind),
            language,
            text,
            person,
            role,
            engine,
            refers,
            now_ns,
        )
        _check(body)
        body_bytes = msgspec.msgpack.encode(body)
        signature = identity.sign_ed25519("annotation", body_bytes)
        return cls(body, Signed(body_bytes, signature), sha256(body_bytes))

    @classmethod
    def decode(cls, signed: Signed, *, words: bool = True) -> Annotation:
        """Decode and check the form, not the signature: `check_signature` is the next step,
        once the body has said which station (the receiver of its envelope) signed it. With
        `words=False` the rules for words are skipped (as for envelopes: one a store kept from
        before them must still load)."""
        try:
            body = msgspec.msgpack.decode(signed.body_bytes, type=AnnotationBody)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"annotation does not decode: {exc}") from None
        _check(body, words=words)
        return cls(body, signed, sha256(signed.body_bytes))

    def check_signature(self, signer: PublicIdentity) -> Annotation:
        if not signer.verify_ed25519("annotation", self.signed.body_bytes, self.signed.signature):
            raise ProtocolError("annotation has a bad signature")
        return self

    @classmethod
    def verify(cls, signed: Signed, signer: PublicIdentity, *, words: bool = True) -> Annotation:
        return cls.decode(signed, words=words).check_signature(signer)

    def about(self, envelope: Envelope) -> bool:
        b = self.body
        return (b.link_id, b.direction, b.lane, b.seq, b.envelope_hash) == (
            envelope.body.link_id,
            envelope.body.direction,
            envelope.body.lane,
            envelope.seq,
            envelope.hash,
        )


def _check(body: AnnotationBody, *, words: bool = True) -> None:
    if body.version != ANNOTATION_VERSION:
        raise ProtocolError(f"annotation version {body.version!r} is not supported")
    if body.kind not in set(Kind):
        raise ProtocolError(f"unknown annotation kind {body.kind!r}")
    if len(body.envelope_hash) != HASH_LEN or len(body.link_id) != HASH_LEN:
        raise ProtocolError("annotation names a malformed envelope")
    needs_ref = body.kind in REFERRING
    if needs_ref != (len(body.refers) == HASH_LEN) or (not needs_ref and body.refers):
        raise ProtocolError(
            "a review, a certification or a withdrawal, and only those, names what it is about"
        )
    if (body.kind == Kind.MACHINE) != bool(body.engine):
        raise ProtocolError("a machine draft, and only one, names its engine")
    if not (0 < len(body.person) <= MAX_NAME and 0 < len(body.language) <= 35):
        raise ProtocolError("annotation has no person or language")
    # The envelope's rules for words (hotline.protocol.textsafety), and for the names beside them.
    fields = {"text": body.text, "person": body.person, "role": body.role, "engine": body.engine}
    problem = words and (
        language_problem(body.language)
        or next(filter(None, (text_problem(value, what) for what, value in fields.items())), None)
    )
    if problem:
        raise ProtocolError(f"annotation refused: {problem}")
    if len(body.text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES * 2:
        raise ProtocolError("annotation text is too long")
    if body.kind in (Kind.MACHINE, Kind.TRANSLATION, Kind.MEMCON) and not body.text.strip():
        raise ProtocolError("a translation or a memcon has a text")
    if body.kind == Kind.WITHDRAWAL and not body.text.strip():
        raise ProtocolError("a withdrawal says why")


def check_problem(
    kind: Kind, checked: Annotation, earlier: list[Annotation], person: str
) -> str | None:
    """Why `person` may not make a review or a certification (`kind`) of `checked` (a translation
    or a memcon), given the annotations made before about the same envelope; None if they may.
    Never its author; no one both reviews and certifies it; a certification only once someone
    has reviewed it, and once per person. (The verifier's rules, in order: archive/workflow.py.)"""
    noun, author = CHECKED[checked.kind]
    step = "reviewed" if kind == Kind.REVIEW else "certified"
    if any(a.kind == Kind.WITHDRAWAL and a.body.refers == checked.hash for a in earlier):
        return f"this {noun} is withdrawn: it is no longer {step}"
    if checked.body.person == person:
        return f"a {noun} is {step} by someone other than its {author}"
    about = [a for a in earlier if a.body.refers == checked.hash]
    reviewers = {a.body.person for a in about if a.kind == Kind.REVIEW}
    certifiers = {a.body.person for a in about if a.kind == Kind.CERTIFICATION}
    if kind == Kind.REVIEW:
        return (
            f"a {noun} is reviewed by someone other than its certifier"
            if (person in certifiers)
            else None
        )
    problems = (
        (person in certifiers, f"this {noun} is certified by you already"),
        (not reviewers, f"a {noun} is reviewed before it is certified"),
        (person in reviewers, f"a {noun} is certified by someone other than its reviewer"),
    )
    return next((problem for broken, problem in problems if broken), None)


def withdrawal_problem(
    withdrawn: Annotation, earlier: list[Annotation], person: str, role: str
) -> str | None:
    """Why `person` (in `role`) may not withdraw `withdrawn`, given the annotations made before
    about the same envelope; None if they may. Only a translation; by its translator or a
    supervisor; once."""
    if withdrawn.kind != Kind.TRANSLATION:
        return "only a translation is withdrawn"
    if any(a.kind == Kind.WITHDRAWAL and a.body.refers == withdrawn.hash for a in earlier):
        return "this translation is withdrawn already"
    if person != withdrawn.body.person and role != "supervisor":
        return "a translation is withdrawn by its translator or a supervisor"
    return None
