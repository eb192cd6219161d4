"""Harness: receipts and checkpoints (hotline.protocol.statements), what a station signs about
the chains it holds; the link core and the bundle verifier read the peer's with `Receipt.verify`
and `Checkpoint.verify`, which refuse with ProtocolError. Entry points:

    0  stored form   Signed.from_bytes, then both verifications against Moscow's keys
    1  receipt body  the bytes as a receipt body that Moscow signed (Ed25519)
    2  checkpoint    the bytes as a checkpoint body that Moscow signed (hybrid)
"""

from __future__ import annotations

from collections.abc import Iterator

from fuzz.common import LINK_ID, MOSCOW, MOSCOW_CONFIG, T0, mode, refused, with_mode
from hotline.protocol.statements import Checkpoint, Head, Receipt, Signed

__all__ = ["seeds", "test_one_input"]

MODES = 3


def _verify(signed: Signed) -> None:
    receipt = refused(lambda: Receipt.verify(signed, MOSCOW.public))
    if receipt is not None:
        assert len(receipt.heads) == 4
    checkpoint = refused(lambda: Checkpoint.verify(signed, MOSCOW.public))
    if checkpoint is not None:
        assert len(checkpoint.outbound) == len(checkpoint.inbound) == 4


def test_one_input(data: bytes) -> None:
    choice, payload = mode(data, MODES)
    if choice == 0:
        signed = refused(lambda: Signed.from_bytes(payload))
        if signed is not None:
            _verify(signed)
    elif choice == 1:
        _verify(Signed(payload, MOSCOW.sign_ed25519("receipt", payload)))
    else:
        _verify(Signed(payload, MOSCOW.sign("checkpoint", payload)))


def seeds() -> Iterator[bytes]:
    heads = tuple(Head(seq, bytes([seq]) * 32) for seq in (3, 0, 1, 12))
    receipt = Receipt.create(MOSCOW, LINK_ID, MOSCOW_CONFIG.peer_direction, heads, T0)
    checkpoint = Checkpoint.create(MOSCOW, LINK_ID, MOSCOW_CONFIG.direction, heads, heads, T0)
    for statement in (receipt.signed, checkpoint.signed):
        yield with_mode(0, statement.to_bytes())
    yield with_mode(1, receipt.signed.body_bytes)
    yield with_mode(2, checkpoint.signed.body_bytes)
