"""Harness: envelopes (hotline.protocol.envelope), the signed, chained form of every message.

`decode_envelope` reads the stored and sent form [body, signature] and refuses with
ProtocolError: a body out of bounds, not canonical, or badly signed. Entry points:

    0  stored form    decode_envelope(bytes, None): as a store or a console reads its own
    1  in a bundle    decode_envelope(bytes, Moscow, words=True): as the bundle verifier reads
                      it, the signature and the rules for the words checked too
    2  signed body    the bytes as a body that Moscow signed, read as the link core reads the
                      peer's (Envelope.from_parts): every rule about a body must hold even when
                      the signature does (a peer signs what it likes)

An envelope accepted must read back the same from the bytes it gives (`to_bytes`): that is how
it is kept.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from fuzz.callrecord import sample_record
from fuzz.common import MOSCOW, MOSCOW_CONFIG, T0, mode, refused, with_mode
from hotline.protocol.callrecord import encode_record
from hotline.protocol.envelope import Attachment, Envelope, Lane, MessageType, decode_envelope
from hotline.protocol.link import LinkCore
from hotline.protocol.state import LinkState

__all__ = ["moscow_envelopes", "seeds", "test_one_input"]

MODES = 3


@functools.cache
def moscow_envelopes() -> tuple[Envelope, ...]:
    """Moscow's envelopes of every kind: a message, one with files, an acknowledgement, a test,
    an exercise and a call record, in its chains."""
    core = LinkCore(MOSCOW_CONFIG, LinkState.new(MOSCOW_CONFIG), T0)
    files = (
        Attachment("map.png", "image/png", 10_240, bytes(range(32))),
        Attachment("записка.pdf", "application/pdf", 13, bytes(32)),
    )
    sent = [
        core.send(Lane.FLASH, MessageType.PRINCIPAL, "ru", "Срочно:\nзвоните", T0),  # noqa: RUF001
        core.send(Lane.ROUTINE, MessageType.PRINCIPAL, "en", "a map", T0, attachments=files),
        core.send(Lane.PRIORITY, MessageType.TEST, "en", "link test", T0),
        core.send(Lane.IMMEDIATE, MessageType.EXERCISE, "fr-CA", "exercice", T0),
        core.send(Lane.ROUTINE, MessageType.CALL_RECORD, "zxx", encode_record(sample_record()), T0),
    ]
    first = sent[0].batch.outbound[0]
    ack = core.acknowledge(first, "en", "received", T0)  # Moscow acknowledges its own, for form
    return (*(out.batch.outbound[0] for out in sent), ack.batch.outbound[0])


def _reads_back(envelope: Envelope) -> None:
    again = decode_envelope(envelope.to_bytes(), MOSCOW.public)
    assert (again.body, again.hash) == (envelope.body, envelope.hash), "does not read back"


def test_one_input(data: bytes) -> None:
    choice, payload = mode(data, MODES)
    if choice == 0:
        envelope = refused(lambda: decode_envelope(payload, None))
        if envelope is not None:
            assert decode_envelope(envelope.to_bytes(), None).hash == envelope.hash
    elif choice == 1:
        envelope = refused(lambda: decode_envelope(payload, MOSCOW.public, words=True))
        if envelope is not None:
            _reads_back(envelope)
    else:
        signature = MOSCOW.sign_ed25519("envelope", payload)
        envelope = refused(lambda: Envelope.from_parts(payload, signature, MOSCOW.public))
        if envelope is not None:
            _reads_back(envelope)


def seeds() -> Iterator[bytes]:
    for envelope in moscow_envelopes():
        yield with_mode(0, envelope.to_bytes())
        yield with_mode(1, envelope.to_bytes())
        yield with_mode(2, envelope.body_bytes)
