"""Annotations: what the receiving station records about a message it received, signed by that
station and attributed to a person. A message's original text and language never change; its
translations are annotations beside it:

    machine        a machine's draft, naming the engine and model that wrote it
    translation    a translator's translation (perhaps edited from a machine draft)
    review         a second person's check of one translation (`refers` names it)
    certification  a supervisor's certification of one reviewed translation (`refers` names it)

An annotation is a MessagePack array, signed with Ed25519 (purpose "annotation") and kept as the
exact signed bytes; its hash (SHA-256 of the body) is how a review or a certification names the
translation it is about. The rules about who may do which (a reviewer is not the translator, a
certification needs a review) are the station's (hotline.station.translation); a verifier checks
them again from the signed records alone.
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

__all__ = ["Annotation", "AnnotationBody", "Kind"]

ANNOTATION_VERSION = 1
MAX_NAME = 100


class Kind(enum.IntEnum):
    MACHINE = 0
    TRANSLATION = 1
    REVIEW = 2
    CERTIFICATION = 3


class AnnotationBody(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    version: int
    link_id: bytes
    direction: int  # of the annotated envelope: the peer's
    lane: int
    seq: int
    envelope_hash: bytes
    kind: int
    language: str  # of `text`: the language translated into
    text: str  # the translation; a reviewer's or certifier's remark
    person: str  # who made it (for a machine draft: who asked for it)
    role: str  # that person's role when they made it
    engine: str  # a machine draft's engine and model; empty for people
    refers: bytes  # the annotation reviewed or certified; empty otherwise
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
    needs_ref = body.kind in (Kind.REVIEW, Kind.CERTIFICATION)
    if needs_ref != (len(body.refers) == HASH_LEN) or (not needs_ref and body.refers):
        raise ProtocolError("a review or a certification, and only those, names a translation")
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
    if body.kind in (Kind.MACHINE, Kind.TRANSLATION) and not body.text.strip():
        raise ProtocolError("a translation has a text")
