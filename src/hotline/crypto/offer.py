"""Pairing by card files (docs/protocol.md §6.1): the offer and the reveal, as text.

An offer is a station's armored card with one more header line, `Commitment: <64 hex>`, its
commitment to a fresh value (`sas_commitment`); any card reader reads it as the card. A reveal is
that value, sent once the station holds the peer's offer:

    -----BEGIN HOTLINE PAIRING REVEAL-----
    Fingerprint: 5425 1D7E ...
    Nonce: <64 hex digits>
    -----END HOTLINE PAIRING REVEAL-----

`open_reveal` checks that a reveal opens the commitment of the offer it answers. Pure: the
value is drawn, and kept until it is revealed, by the caller.
"""

from __future__ import annotations

from hotline.crypto.card import SignedCard, parse_card
from hotline.crypto.identity import (
    FINGERPRINT_LEN,
    SAS_NONCE_LEN,
    PublicIdentity,
    format_fingerprint,
    sas_commitment,
)
from hotline.errors import CardError

__all__ = ["format_offer", "format_reveal", "open_reveal", "parse_offer", "parse_reveal"]

_CARD_BEGIN = "-----BEGIN HOTLINE STATION CARD-----"
_BEGIN, _END = "-----BEGIN HOTLINE PAIRING REVEAL-----", "-----END HOTLINE PAIRING REVEAL-----"
_HEX = frozenset("0123456789abcdefABCDEF")


def format_offer(card: SignedCard, commitment: bytes) -> str:
    """The card's armored text with the commitment as a header line after the others."""
    lines = card.armored().split("\n")
    blank = lines.index("")  # the headers end at the first empty line
    return "\n".join([*lines[:blank], f"Commitment: {commitment.hex()}", *lines[blank:]])


def parse_offer(text: str) -> tuple[SignedCard, bytes]:
    """The verified card of an offer and its commitment.

    Raises:
        CardError: the card is not valid (section 7.4), or the offer has no commitment, more
            than one, or one that is not 64 hex digits.
    """
    card = parse_card(text)
    lines = [line.strip() for line in text.strip().splitlines()]
    block = lines[lines.index(_CARD_BEGIN) + 1 :]  # parse_card found it, and an END after it
    values = _headers(block, "Commitment")
    if not values:
        raise CardError(
            "this card carries no commitment: pairing by card files needs the other station's "
            "offer (hotline pair --offer), not its plain card"
        )
    return card, _hex32(values, "commitment", 32)


def format_reveal(identity: PublicIdentity, nonce: bytes) -> str:
    return "\n".join(
        [_BEGIN, f"Fingerprint: {format_fingerprint(identity.fingerprint)}",
         f"Nonce: {nonce.hex()}", _END, ""]
    )  # fmt: skip


def parse_reveal(text: str) -> tuple[bytes, bytes]:
    """The fingerprint a reveal names and its value.

    Raises:
        CardError: no reveal block, or its Fingerprint or Nonce missing, repeated or malformed.
    """
    lines = [line.strip() for line in text.strip().splitlines()]
    if _BEGIN not in lines:
        raise CardError("not a Hotline pairing reveal: no BEGIN line")
    lines = lines[lines.index(_BEGIN) + 1 :]
    if _END not in lines:
        raise CardError("pairing reveal is truncated: no END line")
    block = lines[: lines.index(_END)]
    fingerprint = [v.replace(" ", "") for v in _headers(block, "Fingerprint")]
    nonce = _hex32(_headers(block, "Nonce"), "nonce", SAS_NONCE_LEN)
    return _hex32(fingerprint, "fingerprint", FINGERPRINT_LEN), nonce


def open_reveal(peer: SignedCard, commitment: bytes, reveal: str) -> bytes:
    """The peer's value, if its reveal names the peer and opens the peer's commitment.

    Raises:
        CardError: it does not: the reveal is another station's, or the offer or the reveal was
            changed on the way. Nothing may be paired.
    """
    fingerprint, nonce = parse_reveal(reveal)
    if fingerprint != peer.fingerprint:
        raise CardError("the reveal is another station's, not the one whose offer you hold")
    if sas_commitment(peer.identity, nonce) != commitment:
        raise CardError(
            "the reveal does not open the commitment of the offer (the offer or the reveal was "
            "changed on the way): not paired"
        )
    return nonce


def _headers(block: list[str], key: str) -> list[str]:
    pairs = (line.partition(":") for line in block if ":" in line)
    return [value.strip() for name, _, value in pairs if name.strip() == key]


def _hex32(values: list[str], what: str, size: int) -> bytes:
    """The one value of a header, as `size` bytes: a repeated one is refused, not chosen."""
    if len(values) != 1:
        raise CardError(f"the pairing file names its {what} {len(values)} times, not once")
    value = values[0]
    if len(value) != 2 * size or not set(value) <= _HEX:
        raise CardError(f"the pairing file's {what} is not {2 * size} hex digits")
    return bytes.fromhex(value)
