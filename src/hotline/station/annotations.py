"""Signing and keeping one annotation (hotline.protocol.annotation): made by this station about an
envelope of a link, attributed to a person, stored as signed, and told to the consoles. Shared by
the translation desk (translation.py) and the records of conversation (memcon.py), whose rules
decide first whether it may be made."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.envelope import Envelope

if TYPE_CHECKING:
    from hotline.station.link_runtime import LinkRuntime

__all__ = ["sign_annotation"]


async def sign_annotation(
    runtime: LinkRuntime, envelope: Envelope, kind: Kind, language: str, text: str,
    person: str, role: str, engine: str = "", refers: bytes = b"",
) -> Annotation:  # fmt: skip
    """Sign, store and announce (an `annotation` event: an open view reloads) one annotation."""
    identity, now = runtime.link.config.identity, time.time_ns()
    annotation = Annotation.create(
        identity, envelope, kind, language, text, person, role, now, engine, refers
    )
    link_id, body = runtime.link.config.link_id, annotation.body
    statement = annotation.signed.to_bytes()
    await runtime.store.call(
        lambda s: s.add_annotation(
            link_id, body.lane, body.seq, body.kind, annotation.hash, statement, now
        )
    )
    runtime.hub.publish(
        {"type": "annotation", "link": runtime.link.name, "lane": body.lane, "seq": body.seq,
         "kind": kind.name.lower(), "person": person}
    )  # fmt: skip
    return annotation
