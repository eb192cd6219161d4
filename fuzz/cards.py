"""Harness: station cards (hotline.crypto.card) and key-rotation statements
(hotline.crypto.rotation): a card file comes from the other organisation, the binary form over a
pairing connection, a rotation from the peer. They refuse with CardError and RotationError.
Entry points:

    0  card file    parse_card of the text (UTF-8; other bytes become U+FFFD, as a file read as
                    UTF-8 never holds them)
    1  card bytes   card_from_bytes, as the code ceremony receives a card
    2  rotation     verify_rotation against Moscow's pinned identity
    3  card body    the bytes as a card body Moscow signed (hybrid): the name and paths must be
                    checked even under a valid signature
    4  rotation     the bytes as a rotation statement Moscow signed (its body, not its signature)

A card accepted reads back the same from its armored text.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from fuzz.common import MOSCOW, mode, refused, with_mode
from hotline.crypto.card import SignedCard, card_from_bytes, make_card, parse_card
from hotline.crypto.identity import StationIdentity
from hotline.crypto.rotation import make_rotation, verify_rotation
from hotline.crypto.signed import decode_signed, encode_signed

__all__ = ["moscow_card", "seeds", "test_one_input"]

MODES = 5
CREATED = 1_750_000_000
NEW_MOSCOW = StationIdentity(bytes([8]) * 32, bytes([9]) * 32, bytes([10]) * 32)


@functools.cache
def moscow_card() -> SignedCard:
    return make_card(MOSCOW, "Москва", ["198.51.100.7:7400", "[2001:db8::1]:7401"], CREATED)


def _reads_back(card: SignedCard | None) -> None:
    if card is not None:
        again = parse_card(card.armored())
        assert again.body_bytes == card.body_bytes, "an accepted card does not read back"
        assert again.fingerprint == card.fingerprint


def test_one_input(data: bytes) -> None:
    choice, payload = mode(data, MODES)
    if choice == 0:
        _reads_back(refused(lambda: parse_card(payload.decode("utf-8", "replace"))))
    elif choice == 1:
        _reads_back(refused(lambda: card_from_bytes(payload)))
    elif choice == 2:
        rotation = refused(lambda: verify_rotation(payload, MOSCOW.public))
        _reads_back(rotation.new_card if rotation else None)
    elif choice == 3:
        signed = encode_signed(payload, MOSCOW.sign("card", payload))
        _reads_back(refused(lambda: card_from_bytes(signed)))
    else:
        signed = encode_signed(payload, MOSCOW.sign("rotation", payload))
        rotation = refused(lambda: verify_rotation(signed, MOSCOW.public))
        _reads_back(rotation.new_card if rotation else None)


def seeds() -> Iterator[bytes]:
    card = moscow_card()
    yield with_mode(0, card.armored().encode("utf-8"))
    yield with_mode(1, card.to_bytes())
    yield with_mode(3, card.body_bytes)
    side = make_card(MOSCOW, "Москва", ["198.51.100.7:7400"], CREATED, [["198.51.100.8:7400"]])
    yield with_mode(1, side.to_bytes())  # version 2: a side on two nodes
    yield with_mode(3, side.body_bytes)
    new_card = make_card(NEW_MOSCOW, "Moscow 2", [], CREATED + 86_400)
    rotation = make_rotation(MOSCOW, new_card, CREATED + 86_400)
    yield with_mode(2, rotation)
    yield with_mode(4, decode_signed(rotation).body)
