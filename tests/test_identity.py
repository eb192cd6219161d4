"""Identities: fingerprints, hybrid signatures (both halves must verify), the pairing string and
the commitments it rests on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from hotline.crypto.identity import (
    HYBRID_SIGNATURE_LEN,
    StationIdentity,
    format_fingerprint,
    sas_commitment,
    short_authentication_string,
)

Make = Callable[[], StationIdentity]


def test_identity_is_determined_by_its_seeds(make_identity: Make) -> None:
    a = make_identity()
    again = StationIdentity(a.dh_seed, a.ed25519_seed, a.mldsa65_seed)
    assert again.public == a.public
    assert again.public.fingerprint == a.public.fingerprint
    assert make_identity().public.fingerprint != a.public.fingerprint
    assert "seed" not in repr(a).split("public=")[0].replace("dh_seed", "")  # seeds not in repr


def test_hybrid_signature_verifies(make_identity: Make) -> None:
    a = make_identity()
    signature = a.sign("card", b"message")
    assert len(signature) == HYBRID_SIGNATURE_LEN
    assert a.public.verify("card", b"message", signature)


@pytest.mark.parametrize("half", ["ed25519", "ml-dsa-65"])
def test_hybrid_signature_fails_if_either_half_fails(make_identity: Make, half: str) -> None:
    a = make_identity()
    signature = bytearray(a.sign("card", b"message"))
    signature[10 if half == "ed25519" else 1000] ^= 1
    assert not a.public.verify("card", b"message", bytes(signature))


def test_hybrid_signature_halves_cannot_be_mixed(make_identity: Make) -> None:
    a, b = make_identity(), make_identity()
    sa, sb = a.sign("card", b"m"), b.sign("card", b"m")
    assert not a.public.verify("card", b"m", sa[:64] + sb[64:])
    assert not a.public.verify("card", b"m", sb[:64] + sa[64:])


def test_signature_is_bound_to_purpose_message_and_signer(make_identity: Make) -> None:
    a, b = make_identity(), make_identity()
    signature = a.sign("card", b"message")
    assert not a.public.verify("rotation", b"message", signature)
    assert not a.public.verify("card", b"messagE", signature)
    assert not b.public.verify("card", b"message", signature)
    assert not a.public.verify("card", b"message", signature[:-1])


def test_fingerprint_format() -> None:
    assert format_fingerprint(bytes(range(4))) == "0001 0203"
    assert format_fingerprint(b"\xab\xcd\xef\x01\x23") == "ABCD EF01 23"


R1, R2, R3 = bytes(range(32)), bytes(range(32, 64)), bytes(range(64, 96))


def test_short_authentication_string_is_symmetric_and_binds_both_keys(make_identity: Make) -> None:
    a, b, c = make_identity().public, make_identity().public, make_identity().public
    sas = short_authentication_string(a, R1, b, R2)
    assert sas == short_authentication_string(b, R2, a, R1)
    groups = sas.split(" ")
    assert len(groups) == 8
    assert all(len(g) == 5 and g.isdigit() for g in groups)
    assert short_authentication_string(a, R1, c, R2) != sas
    assert short_authentication_string(c, R1, b, R2) != sas


def test_the_string_depends_on_both_stations_fresh_values(make_identity: Make) -> None:
    # With the two cards fixed, a man in the middle cannot know the string before both values
    # are revealed (protocol.md §6.1): each one changes it, and which value goes with which card.
    a, b = make_identity().public, make_identity().public
    sas = short_authentication_string(a, R1, b, R2)
    assert short_authentication_string(a, R3, b, R2) != sas
    assert short_authentication_string(a, R1, b, R3) != sas
    assert short_authentication_string(a, R2, b, R1) != sas
    with pytest.raises(ValueError, match="32 bytes"):
        short_authentication_string(a, R1[:16], b, R2)


def test_a_commitment_binds_the_value_and_the_station(make_identity: Make) -> None:
    a, b = make_identity().public, make_identity().public
    c = sas_commitment(a, R1)
    assert len(c) == 32
    assert sas_commitment(a, R1) == c
    assert sas_commitment(a, R2) != c
    assert sas_commitment(b, R1) != c


def test_the_pairing_string_example_of_the_document() -> None:
    # docs/protocol.md §6.1, with the standard library's hashes as well.
    a = StationIdentity.from_random(bytes(range(96))).public
    b = StationIdentity.from_random(bytes(range(100, 196))).public
    commitments = (
        "43204021c768864722f34ace18e838d23efe22d9d3f8bc49ca181aea6529bd79",
        "575c82aec34aa9ce6bb0e4691752c0cf46036c70e9fe451bd8021c8a3240adcc",
    )
    for identity, value, expected in zip((a, b), (R1, R2), commitments, strict=True):
        assert sas_commitment(identity, value).hex() == expected
        assert _digest(hashlib.sha256, b"hotline-sas-commit-v1", identity.fingerprint, value) == (
            bytes.fromhex(expected)
        )
    sas = "32245 17960 91807 28389 16496 05989 85747 79465"
    assert short_authentication_string(a, R1, b, R2) == sas
    assert a.fingerprint < b.fingerprint
    d = _digest(hashlib.sha512, b"hotline-sas-v2", a.fingerprint, b.fingerprint, R1, R2)
    assert " ".join(f"{int.from_bytes(d[i : i + 5]) % 100000:05d}" for i in range(0, 40, 5)) == sas


def _digest(new: Callable[[], Any], *parts: bytes) -> bytes:
    h = new()
    for part in parts:
        h.update(len(part).to_bytes(4, "big") + part)
    digest: bytes = h.digest()
    return digest


def test_seeds_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        StationIdentity(b"x" * 31, b"x" * 32, b"x" * 32)
    with pytest.raises(ValueError, match="96 random bytes"):
        StationIdentity.from_random(b"x" * 95)
