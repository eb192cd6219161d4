"""What a pairing yields: the link id and the pre-shared key of two pinned stations.

There are two ceremonies (docs/protocol.md §6). With a one-time code read out over another
channel, the stations run SPAKE2 over a direct connection; its key seals the exchange of the
cards, confirms what the dialer pinned (`pake_keys`, `pake_confirmation`) and yields the PSK
(`pake_psk`), which the station keeps sealed under a key derived from its identity.

With card files and a short authentication string, the stations share no secret but their keys,
so the PSK is derived from the static X25519 keys of both (each side computes the same DH):

    psk = HKDF-SHA256(ikm = X25519(our static, peer static), salt = link id,
                      info = "hotline pairing psk v1", length = 32)

It keeps any station that does not hold one of the two static keys out of the handshake. The
post-quantum protection of the session itself comes from the ML-KEM exchange in every handshake.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hotline.crypto.identity import PublicIdentity, StationIdentity
from hotline.crypto.session import LinkKeys, link_id_for

__all__ = [
    "PakeKeys",
    "card_pairing_keys",
    "pake_confirmation",
    "pake_keys",
    "pake_psk",
    "psk_sealing_key",
]


def card_pairing_keys(identity: StationIdentity, peer: PublicIdentity) -> LinkKeys:
    """The link keys of a pairing by card files and a confirmed short authentication string."""
    link_id = link_id_for(identity.public, peer)
    ours = x25519.X25519PrivateKey.from_private_bytes(identity.dh_seed)
    shared = ours.exchange(x25519.X25519PublicKey.from_public_bytes(peer.dh))
    psk = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=link_id, info=b"hotline pairing psk v1"
    ).derive(shared)
    return LinkKeys(link_id, identity.dh_seed, peer.dh, psk)


@dataclass(frozen=True, slots=True)
class PakeKeys:
    """The keys of one SPAKE2 run before the cards are known (the link id needs both)."""

    listener_card: bytes = field(repr=False)  # seals the listener's card (message 4)
    dialer_card: bytes = field(repr=False)  # seals the dialer's card: its proof (message 3)
    confirm: bytes = field(repr=False)  # the dialer's confirmation of what it pinned (message 5)


def _derive(shared_key: bytes, salt: bytes, label: bytes) -> bytes:
    """HKDF-SHA256 of the SPAKE2 key under its own label: no key serves two purposes."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=label).derive(shared_key)


def pake_keys(shared_key: bytes) -> PakeKeys:
    return PakeKeys(
        _derive(shared_key, b"", b"hotline pake listener card v1"),
        _derive(shared_key, b"", b"hotline pake dialer card v1"),
        _derive(shared_key, b"", b"hotline pake dialer confirm v1"),
    )


def pake_psk(shared_key: bytes, link_id: bytes) -> bytes:
    """The link's PSK from the SPAKE2 key, salted with the link id of the two pinned cards."""
    return _derive(shared_key, link_id, b"hotline pake psk v1")


def pake_confirmation(keys: PakeKeys, listener_card: bytes, dialer_card: bytes) -> bytes:
    """The dialer's last message: HMAC-SHA-256 over both cards as it holds them (their exact
    binary forms), so the listener pins only what the dialer pinned."""
    mac = hmac.HMAC(keys.confirm, hashes.SHA256())
    for part in (b"pinned", _sha256(listener_card), _sha256(dialer_card)):
        mac.update(part)
    return mac.finalize()


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def psk_sealing_key(identity: StationIdentity, link_id: bytes) -> bytes:
    """The key that seals a PAKE-made PSK at rest: only the unlocked keystore can open it."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=link_id, info=b"hotline psk at rest v1"
    ).derive(identity.dh_seed)
