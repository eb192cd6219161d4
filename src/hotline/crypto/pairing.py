"""What a pairing yields: the link id and the pre-shared key of two pinned stations.

There are two ceremonies. With a one-time code read out over another channel, the stations run
SPAKE2 over a direct connection; its key seals the exchange of the cards and yields the PSK
(`pake_keys`), which the station keeps sealed under a key derived from its identity.

With card files and a short authentication string, the stations share no secret but their keys,
so the PSK is derived from the static X25519 keys of both (each side computes the same DH):

    psk = HKDF-SHA256(ikm = X25519(our static, peer static), salt = link id,
                      info = "hotline pairing psk v1", length = 32)

It keeps any station that does not hold one of the two static keys out of the handshake. The
post-quantum protection of the session itself comes from the ML-KEM exchange in every handshake.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hotline.crypto.identity import PublicIdentity, StationIdentity
from hotline.crypto.session import LinkKeys, link_id_for

__all__ = ["card_pairing_keys", "pake_keys", "psk_sealing_key"]


def card_pairing_keys(identity: StationIdentity, peer: PublicIdentity) -> LinkKeys:
    """The link keys of a pairing by card files and a confirmed short authentication string."""
    link_id = link_id_for(identity.public, peer)
    ours = x25519.X25519PrivateKey.from_private_bytes(identity.dh_seed)
    shared = ours.exchange(x25519.X25519PublicKey.from_public_bytes(peer.dh))
    psk = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=link_id, info=b"hotline pairing psk v1"
    ).derive(shared)
    return LinkKeys(link_id, identity.dh_seed, peer.dh, psk)


def pake_keys(shared_key: bytes, link_id: bytes) -> tuple[bytes, bytes, bytes]:
    """From a SPAKE2 key: the card-sealing keys of the listener and of the dialer, and the PSK.

    Each is HKDF-SHA256 of the SPAKE2 key with the link id as salt and its own label, so a key
    used to seal the cards is never the link's PSK.
    """

    def derive(label: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=link_id, info=label).derive(
            shared_key
        )

    return (
        derive(b"hotline pake listener card v1"),
        derive(b"hotline pake dialer card v1"),
        (derive(b"hotline pake psk v1")),
    )


def psk_sealing_key(identity: StationIdentity, link_id: bytes) -> bytes:
    """The key that seals a PAKE-made PSK at rest: only the unlocked keystore can open it."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=link_id, info=b"hotline psk at rest v1"
    ).derive(identity.dh_seed)
