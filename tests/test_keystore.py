"""The keystore: sealed with a passphrase; every kind of damage is a clear KeystoreError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.crypto.identity import StationIdentity
from hotline.crypto.keystore import KdfParams, seal, unseal
from hotline.errors import KeystoreError

IDENTITY = StationIdentity.from_random(bytes(range(96)))
CHEAP = KdfParams(memory_kib=64, iterations=1, lanes=1)  # the format is under test, not the cost
PASSPHRASE = b"correct horse battery staple"
BLOB = seal(IDENTITY, 1234, PASSPHRASE, salt=b"s" * 16, nonce=b"n" * 12, params=CHEAP)


def test_round_trip() -> None:
    identity, created = unseal(BLOB, PASSPHRASE)
    assert identity.public == IDENTITY.public
    assert created == 1234


def test_default_cost_round_trip() -> None:
    blob = seal(IDENTITY, 1, PASSPHRASE, salt=b"t" * 16, nonce=b"m" * 12)
    assert unseal(blob, PASSPHRASE)[0].public == IDENTITY.public
    assert int.from_bytes(blob[17:21], "big") == 64 * 1024


def test_private_keys_are_not_in_the_file() -> None:
    for seed in (IDENTITY.dh_seed, IDENTITY.ed25519_seed, IDENTITY.mldsa65_seed):
        assert seed not in BLOB


def test_wrong_passphrase() -> None:
    with pytest.raises(KeystoreError, match="wrong passphrase, or the keystore file is damaged"):
        unseal(BLOB, b"correct horse battery stapler")


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "not a Hotline keystore"),
        (b"PK\x03\x04" + BLOB[4:], "not a Hotline keystore"),
        (BLOB[:16] + b"\x02" + BLOB[17:], "format version 2 is not supported"),
        (BLOB[:30], "truncated"),
        (BLOB[:17] + (2**31).to_bytes(4, "big") + BLOB[21:], "implausible Argon2id memory"),
        (BLOB[:21] + (1000).to_bytes(4, "big") + BLOB[25:], "implausible Argon2id parameters"),
    ],
)
def test_damage_is_reported_clearly(blob: bytes, message: str) -> None:
    with pytest.raises(KeystoreError, match=message):
        unseal(blob, PASSPHRASE)


@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_changed_byte_is_refused(position: int, xor: int) -> None:
    blob = bytearray(BLOB)
    position %= len(blob)
    blob[position] ^= xor
    with pytest.raises(KeystoreError):
        unseal(bytes(blob), PASSPHRASE)


def test_seal_checks_salt_and_nonce_sizes() -> None:
    with pytest.raises(ValueError, match="salt is 16 bytes"):
        seal(IDENTITY, 1, PASSPHRASE, salt=b"s", nonce=b"n" * 12, params=CHEAP)
