"""Identities: fingerprints, hybrid signatures (both halves must verify), the pairing string."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hotline.crypto.identity import (
    HYBRID_SIGNATURE_LEN,
    StationIdentity,
    format_fingerprint,
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


def test_short_authentication_string_is_symmetric_and_binds_both_keys(make_identity: Make) -> None:
    a, b, c = make_identity(), make_identity(), make_identity()
    sas = short_authentication_string(a.public, b.public)
    assert sas == short_authentication_string(b.public, a.public)
    groups = sas.split(" ")
    assert len(groups) == 8
    assert all(len(g) == 5 and g.isdigit() for g in groups)
    assert short_authentication_string(a.public, c.public) != sas
    assert short_authentication_string(c.public, b.public) != sas


def test_seeds_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        StationIdentity(b"x" * 31, b"x" * 32, b"x" * 32)
    with pytest.raises(ValueError, match="96 random bytes"):
        StationIdentity.from_random(b"x" * 95)
