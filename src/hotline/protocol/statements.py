"""Receipts and checkpoints: what one station signs about the chains it holds.

A **receipt** is the receiver's signed statement "I durably hold your envelopes up to these heads",
one head (seq, hash) per lane, cumulative, Ed25519-signed (purpose "receipt").

A **checkpoint** is a station's signed statement of all eight chain heads it holds (its outbound
and inbound lanes), hybrid-signed with Ed25519 + ML-DSA-65 (purpose "checkpoint"), exchanged when
traffic pauses. Because every envelope names its predecessor, a hybrid signature over the heads
makes every envelope before them provable even if Ed25519 falls one day.

Both are kept, like envelopes, as the exact signed bytes: a MessagePack array [body, signature].
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from hotline.crypto.identity import PublicIdentity, StationIdentity
from hotline.crypto.signed import decode_signed, encode_signed
from hotline.errors import ProtocolError
from hotline.protocol.envelope import HASH_LEN, LANES

__all__ = ["Checkpoint", "CheckpointBody", "Head", "Receipt", "ReceiptBody", "Signed"]

STATEMENT_VERSION = 1


class Head(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    """The last envelope of a lane: its sequence number (0 for none) and hash (or genesis)."""

    seq: int
    hash: bytes


Heads = tuple[Head, ...]


class ReceiptBody(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    version: int
    link_id: bytes
    direction: int  # the direction of the envelopes this receipt covers
    heads: list[Head]
    issued_ns: int


class CheckpointBody(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    version: int
    link_id: bytes
    direction: int  # the direction the signer sends in
    outbound: list[Head]
    inbound: list[Head]
    issued_ns: int


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed statement: its exact body bytes and signature."""

    body_bytes: bytes
    signature: bytes

    def to_bytes(self) -> bytes:
        return encode_signed(self.body_bytes, self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> Signed:
        try:
            wire = decode_signed(data)
        except ValueError as exc:
            raise ProtocolError(f"signed statement does not decode: {exc}") from None
        return cls(wire.body, wire.signature)


def _check_heads(heads: list[Head], what: str) -> Heads:
    if len(heads) != len(LANES) or any(h.seq < 0 or len(h.hash) != HASH_LEN for h in heads):
        raise ProtocolError(f"{what} has malformed chain heads")
    return tuple(heads)


def _decode(body_bytes: bytes, kind: type[msgspec.Struct], what: str) -> msgspec.Struct:
    try:
        body = msgspec.msgpack.decode(body_bytes, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{what} does not decode: {exc}") from None
    if getattr(body, "version", None) != STATEMENT_VERSION:
        raise ProtocolError(f"{what} version is not supported")
    return body


@dataclass(frozen=True, slots=True)
class Receipt:
    body: ReceiptBody
    heads: Heads
    signed: Signed

    @classmethod
    def create(
        cls, identity: StationIdentity, link_id: bytes, direction: int, heads: Heads, now_ns: int
    ) -> Receipt:
        body = ReceiptBody(STATEMENT_VERSION, link_id, direction, list(heads), now_ns)
        body_bytes = msgspec.msgpack.encode(body)
        return cls(body, heads, Signed(body_bytes, identity.sign_ed25519("receipt", body_bytes)))

    @classmethod
    def verify(cls, signed: Signed, signer: PublicIdentity) -> Receipt:
        body = _decode(signed.body_bytes, ReceiptBody, "receipt")
        assert isinstance(body, ReceiptBody)
        heads = _check_heads(body.heads, "receipt")
        if not signer.verify_ed25519("receipt", signed.body_bytes, signed.signature):
            raise ProtocolError("receipt has a bad signature")
        return cls(body, heads, signed)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    body: CheckpointBody
    outbound: Heads
    inbound: Heads
    signed: Signed

    @classmethod
    def create(
        cls,
        identity: StationIdentity,
        link_id: bytes,
        direction: int,
        outbound: Heads,
        inbound: Heads,
        now_ns: int,
    ) -> Checkpoint:
        body = CheckpointBody(
            STATEMENT_VERSION, link_id, direction, list(outbound), list(inbound), now_ns
        )
        body_bytes = msgspec.msgpack.encode(body)
        signed = Signed(body_bytes, identity.sign("checkpoint", body_bytes))
        return cls(body, outbound, inbound, signed)

    @classmethod
    def verify(cls, signed: Signed, signer: PublicIdentity) -> Checkpoint:
        body = _decode(signed.body_bytes, CheckpointBody, "checkpoint")
        assert isinstance(body, CheckpointBody)
        outbound = _check_heads(body.outbound, "checkpoint")
        inbound = _check_heads(body.inbound, "checkpoint")
        if not signer.verify("checkpoint", signed.body_bytes, signed.signature):
            raise ProtocolError("checkpoint has a bad hybrid signature")
        return cls(body, outbound, inbound, signed)
