"""The one binary form of everything Hotline signs: a MessagePack array [body, signature], where
`body` is the exact byte string that was signed. Cards, rotation statements, envelopes, receipts
and checkpoints all use it, so they are kept and checked as signed, never re-encoded."""

from __future__ import annotations

import msgspec

__all__ = ["SignedBytes", "decode_signed", "encode_signed"]


class SignedBytes(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    body: bytes
    signature: bytes


def encode_signed(body: bytes, signature: bytes) -> bytes:
    return msgspec.msgpack.encode(SignedBytes(body, signature))


def decode_signed(data: bytes) -> SignedBytes:
    """Raises ValueError (with msgspec's reason) if `data` is not exactly [bytes, bytes]."""
    try:
        return msgspec.msgpack.decode(data, type=SignedBytes)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
