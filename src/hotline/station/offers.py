"""Pairing by card files, the station's side of the ceremony (docs/protocol.md §6.1).

    <data dir>/pairing-offer.json   (0600) the ceremony in progress: our fresh value, and the
                                    peer offer it was revealed for, once it was

1. `make_offer`: draw a fresh value, commit to it in our offer (a new offer replaces the
   ceremony in progress: its value is never used again).
2. `reveal`: only with the peer's offer in hand, bind our value to that offer, durably, and give
   our reveal. Our value is revealed for one offer only: asked for another, we refuse.
3. `compare`: the peer's reveal must open its commitment; then the short authentication string
   over both cards and both values, for the operators to compare.
4. `finish`: once the link is pinned, the value is forgotten.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from hotline.crypto.card import SignedCard
from hotline.crypto.identity import SAS_NONCE_LEN, sas_commitment, short_authentication_string
from hotline.crypto.offer import format_offer, format_reveal, open_reveal, parse_offer
from hotline.errors import ConfigError
from hotline.station.datadir import DataDir, write_atomically

__all__ = ["compare", "finish", "make_offer", "reveal"]

OFFER_STATE = "pairing-offer.json"


@dataclass(frozen=True, slots=True)
class _Ceremony:
    nonce: bytes
    made_s: int
    revealed_for: tuple[bytes, bytes] | None  # the peer's fingerprint and commitment

    def save(self, path: Path) -> None:
        revealed = None
        if self.revealed_for is not None:
            fingerprint, commitment = self.revealed_for
            revealed = {"fingerprint": fingerprint.hex(), "commitment": commitment.hex()}
        state = {"nonce": self.nonce.hex(), "made": self.made_s, "revealed_for": revealed}
        write_atomically(path, json.dumps(state, indent=1).encode(), mode=0o600)


def _load(data: DataDir) -> _Ceremony:
    path = data.path / OFFER_STATE
    try:
        state = json.loads(path.read_text())
        revealed = state["revealed_for"]
        return _Ceremony(
            bytes.fromhex(state["nonce"]),
            int(state["made"]),
            None
            if revealed is None
            else (bytes.fromhex(revealed["fingerprint"]), bytes.fromhex(revealed["commitment"])),
        )
    except FileNotFoundError:
        raise ConfigError(
            "no pairing offer of this station is in progress: make one first "
            "(hotline pair --offer FILE) and send it to the other side"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}): make a new offer") from None


def make_offer(data: DataDir, now_s: int) -> str:
    """Our offer: our card and a commitment to a value drawn now (the old one is dropped)."""
    card = data.card()
    ceremony = _Ceremony(secrets.token_bytes(SAS_NONCE_LEN), now_s, None)
    ceremony.save(data.path / OFFER_STATE)
    return format_offer(card, sas_commitment(card.identity, ceremony.nonce))


def _peer(data: DataDir, peer_offer: str) -> tuple[SignedCard, bytes]:
    peer, commitment = parse_offer(peer_offer)
    if peer.fingerprint == data.card().fingerprint:
        raise ConfigError("that is this station's own offer: give the other station's")
    return peer, commitment


def reveal(data: DataDir, peer_offer: str) -> tuple[SignedCard, str]:
    """The peer's card and our reveal, bound to its offer first (durably).

    Raises:
        CardError: the peer's offer is not a valid card with a commitment.
        ConfigError: no ceremony in progress, or our value was revealed for another offer.
    """
    peer, commitment = _peer(data, peer_offer)
    ceremony = _load(data)
    if ceremony.revealed_for is None:
        ceremony = _Ceremony(ceremony.nonce, ceremony.made_s, (peer.fingerprint, commitment))
        ceremony.save(data.path / OFFER_STATE)
    elif ceremony.revealed_for != (peer.fingerprint, commitment):
        raise ConfigError(
            "this station's value was already revealed for another offer (another card or "
            "another commitment): it is never revealed twice; make a new offer and start again"
        )
    return peer, format_reveal(data.card().identity, ceremony.nonce)


def compare(data: DataDir, peer_offer: str, peer_reveal: str) -> tuple[SignedCard, str]:
    """The peer's card and the short authentication string, once its reveal opens its offer.

    Raises:
        CardError: the reveal is not the peer's, or does not open the offer's commitment.
        ConfigError: our value was not revealed for this offer (reveal ours first).
    """
    peer, commitment = _peer(data, peer_offer)
    ceremony = _load(data)
    if ceremony.revealed_for != (peer.fingerprint, commitment):
        raise ConfigError(
            "reveal this station's value for that offer first (--reveal-to FILE), and send it"
        )
    peer_nonce = open_reveal(peer, commitment, peer_reveal)
    ours = data.card().identity
    return peer, short_authentication_string(ours, ceremony.nonce, peer.identity, peer_nonce)


def finish(data: DataDir) -> None:
    """The link is pinned: the ceremony's value is never used again."""
    (data.path / OFFER_STATE).unlink(missing_ok=True)
