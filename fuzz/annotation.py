"""Harness: annotations (hotline.protocol.annotation), the signed translations, reviews and
certifications beside a received message, and the records of conversation (memcons) of our own
calls; a station reads its own back from the store, and the bundle verifier reads them from a
bundle, where anyone may have written them. `Annotation.decode` and `check_signature` refuse
with ProtocolError. Entry points:

    0  stored form   Signed.from_bytes, then Annotation.decode without the rules for words (as a
                     store reads its own) and Annotation.verify against London's keys (London
                     received the message, so London signs what it says of it)
    1  signed body   the bytes as a body London signed: the form's rules must hold regardless
    2  workflow      a sequence of signed bodies, each taken by the verifier's Workflow
                     (hotline.archive.workflow), which names the rule a sequence breaks
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from fuzz.callrecord import sample_record
from fuzz.common import LONDON, LONDON_CONFIG, T0, join_steps, mode, refused, split_steps, with_mode
from fuzz.envelope import moscow_envelopes
from hotline.archive.workflow import Workflow
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.callrecord import encode_record
from hotline.protocol.envelope import Envelope, Lane, MessageType
from hotline.protocol.link import LinkCore
from hotline.protocol.state import LinkState
from hotline.protocol.statements import Signed

__all__ = ["seeds", "test_one_input"]

MODES = 3


def _signed(body: bytes) -> Signed:
    return Signed(body, LONDON.sign_ed25519("annotation", body))


def _check(annotation: Annotation) -> None:
    assert annotation.kind in Kind
    annotation.about(moscow_envelopes()[0])


def test_one_input(data: bytes) -> None:
    choice, payload = mode(data, MODES)
    if choice == 0:
        signed = refused(lambda: Signed.from_bytes(payload))
        if signed is not None:
            statement: Signed = signed  # as declared, for the lambda
            refused(lambda: Annotation.decode(statement, words=False))
            annotation = refused(lambda: Annotation.verify(statement, LONDON.public))
            if annotation:
                _check(annotation)
    elif choice == 1:
        annotation = refused(lambda: Annotation.verify(_signed(payload), LONDON.public))
        if annotation:
            _check(annotation)
    else:
        workflow, certifications = Workflow(), 0
        for _, body in split_steps(payload):
            signed = _signed(body)
            annotation = refused(lambda: Annotation.verify(signed, LONDON.public))  # noqa: B023
            if annotation is not None and workflow.take(annotation) is None:
                certifications += annotation.kind == Kind.CERTIFICATION
        assert workflow.certified <= certifications, "certified more than was certified"


def _annotations() -> list[Annotation]:
    """A machine draft, a translation, its review and its certification, of Moscow's message;
    then a memcon of London's record of a call, its review and its certification."""
    envelope = moscow_envelopes()[0]
    draft = Annotation.create(
        LONDON, envelope, Kind.MACHINE, "en", "Urgent.\nAnswer?", "ann", "translator", T0,
        engine="argos ru-en 1.9",
    )  # fmt: skip
    translation = Annotation.create(
        LONDON, envelope, Kind.TRANSLATION, "en", "Urgent. Reply?", "ann", "translator", T0
    )
    review = Annotation.create(
        LONDON, envelope, Kind.REVIEW, "en", "good", "bob", "reviewer", T0,
        refers=translation.hash,
    )  # fmt: skip
    certification = Annotation.create(
        LONDON, envelope, Kind.CERTIFICATION, "en", "", "carol", "supervisor", T0,
        refers=translation.hash,
    )  # fmt: skip
    record = london_call_record()
    memcon = Annotation.create(
        LONDON, record, Kind.MEMCON, "en", "We agreed to talk again.", "dan", "principal", T0
    )
    checked = [
        Annotation.create(LONDON, record, kind, "en", "", who, role, T0, refers=memcon.hash)
        for kind, who, role in ((Kind.REVIEW, "eve", "reviewer"),
                                (Kind.CERTIFICATION, "carol", "supervisor"))
    ]  # fmt: skip
    return [draft, translation, review, certification, memcon, *checked]


@functools.cache
def london_call_record() -> Envelope:
    core = LinkCore(LONDON_CONFIG, LinkState.new(LONDON_CONFIG), T0)
    text = encode_record(sample_record())
    return core.send(Lane.FLASH, MessageType.CALL_RECORD, "zxx", text, T0).batch.outbound[0]


def seeds() -> Iterator[bytes]:
    annotations = _annotations()
    for annotation in annotations:
        yield with_mode(0, annotation.signed.to_bytes())
        yield with_mode(1, annotation.signed.body_bytes)
    yield with_mode(2, join_steps((0, a.signed.body_bytes) for a in annotations))
