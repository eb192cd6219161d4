"""Harness: pairing by card files (hotline.crypto.offer): the other station's offer (its card
with a commitment) and its reveal arrive as text files, and `parse_offer`, `parse_reveal` and
`open_reveal` refuse with CardError. The bytes are the text (UTF-8; other bytes become U+FFFD).
Entry points:

    0  offer    parse_offer
    1  reveal   parse_reveal
    2  opening  open_reveal against Moscow's genuine offer: a reveal that opens the commitment
                must name Moscow and hold the committed value
"""

from __future__ import annotations

from collections.abc import Iterator

from fuzz.cards import moscow_card
from fuzz.common import MOSCOW, mode, refused, with_mode
from hotline.crypto.identity import sas_commitment
from hotline.crypto.offer import format_offer, format_reveal, open_reveal, parse_offer, parse_reveal

__all__ = ["seeds", "test_one_input"]

MODES = 3
NONCE = bytes(range(32))
COMMITMENT = sas_commitment(MOSCOW.public, NONCE)


def test_one_input(data: bytes) -> None:
    choice, payload = mode(data, MODES)
    text = payload.decode("utf-8", "replace")
    if choice == 0:
        offer = refused(lambda: parse_offer(text))
        if offer is not None:
            assert len(offer[1]) == 32
    elif choice == 1:
        reveal = refused(lambda: parse_reveal(text))
        if reveal is not None:
            assert len(reveal[0]) == len(reveal[1]) == 32
    else:
        nonce = refused(lambda: open_reveal(moscow_card(), COMMITMENT, text))
        assert nonce in (None, NONCE), "a reveal opened the commitment with another value"


def seeds() -> Iterator[bytes]:
    yield with_mode(0, format_offer(moscow_card(), COMMITMENT).encode("utf-8"))
    reveal = format_reveal(MOSCOW.public, NONCE).encode("utf-8")
    yield with_mode(1, reveal)
    yield with_mode(2, reveal)
