"""What a pairing yields: the link id and the pre-shared key of two pinned stations.

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

__all__ = ["card_pairing_keys"]


def card_pairing_keys(identity: StationIdentity, peer: PublicIdentity) -> LinkKeys:
    """The link keys of a pairing by card files and a confirmed short authentication string."""
    link_id = link_id_for(identity.public, peer)
    ours = x25519.X25519PrivateKey.from_private_bytes(identity.dh_seed)
    shared = ours.exchange(x25519.X25519PublicKey.from_public_bytes(peer.dh))
    psk = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=link_id, info=b"hotline pairing psk v1"
    ).derive(shared)
    return LinkKeys(link_id, identity.dh_seed, peer.dh, psk)
