"""Key rotation: a statement, signed by the old identity, that names the station's new card.

A peer that has pinned the old identity accepts the new one only through such a statement: the old
key vouches for the new card, and the new card's own self-signature proves that whoever made the
statement holds the new keys too. The statement is a MessagePack array

    [version, old fingerprint (32 bytes), new card body (exact signed bytes),
     new card signature, issued (seconds since the Unix epoch), old identity's hybrid signature]

where the last signature (purpose "rotation") covers the MessagePack encoding of the first five.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from hotline.crypto.card import SignedCard, card_from_bytes
from hotline.crypto.identity import PublicIdentity, StationIdentity
from hotline.crypto.signed import decode_signed, encode_signed
from hotline.errors import CardError, RotationError

__all__ = ["ROTATION_VERSION", "Rotation", "make_rotation", "verify_rotation"]

ROTATION_VERSION = 1


class _Statement(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    version: int
    old_fingerprint: bytes
    new_card_body: bytes
    new_card_signature: bytes
    issued: int


@dataclass(frozen=True, slots=True)
class Rotation:
    new_card: SignedCard
    issued: int


def make_rotation(old: StationIdentity, new_card: SignedCard, issued: int) -> bytes:
    """The rotation statement from `old` to the identity of `new_card`."""
    statement = msgspec.msgpack.encode(
        _Statement(
            ROTATION_VERSION,
            old.public.fingerprint,
            new_card.body_bytes,
            new_card.signature,
            issued,
        )
    )
    return encode_signed(statement, old.sign("rotation", statement))


def verify_rotation(data: bytes, old: PublicIdentity) -> Rotation:
    """Check a rotation statement against the identity we pinned; return the new card.

    Raises:
        RotationError: the statement does not decode, is for another identity, is not signed by
            the old key, or carries a card that does not verify.
    """
    try:
        signed = decode_signed(data)
        statement = msgspec.msgpack.decode(signed.body, type=_Statement)
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        raise RotationError("rotation statement is truncated or corrupted") from None
    if statement.version != ROTATION_VERSION:
        raise RotationError(f"rotation statement version {statement.version} is not supported")
    if statement.old_fingerprint != old.fingerprint:
        raise RotationError("rotation statement is for another station identity")
    if not old.verify("rotation", signed.body, signed.signature):
        raise RotationError("rotation statement is not signed by the pinned identity")
    envelope = encode_signed(statement.new_card_body, statement.new_card_signature)
    try:
        new_card = card_from_bytes(envelope)
    except CardError as exc:
        raise RotationError(f"rotation statement carries a bad card: {exc}") from None
    if new_card.fingerprint == old.fingerprint:
        raise RotationError("rotation statement names the same identity as the old one")
    return Rotation(new_card, statement.issued)
