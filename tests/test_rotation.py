"""Key rotation: the old identity vouches for the new card; nothing else passes."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from hotline.crypto.card import make_card
from hotline.crypto.identity import StationIdentity
from hotline.crypto.rotation import make_rotation, verify_rotation
from hotline.errors import RotationError

Make = Callable[[], StationIdentity]


def test_rotation_yields_the_new_card(make_identity: Make) -> None:
    old, new = make_identity(), make_identity()
    new_card = make_card(new, "London", ["127.0.0.1:7001"], 100)
    rotation = verify_rotation(make_rotation(old, new_card, 99), old.public)
    assert rotation.new_card.identity == new.public
    assert rotation.issued == 99


def test_rotation_signed_by_someone_else_is_refused(make_identity: Make) -> None:
    old, attacker, new = make_identity(), make_identity(), make_identity()
    statement = make_rotation(attacker, make_card(new, "London", [], 1), 1)
    with pytest.raises(RotationError, match="another station identity"):
        verify_rotation(statement, old.public)


def test_forged_old_fingerprint_is_refused(make_identity: Make) -> None:
    old, attacker, new = make_identity(), make_identity(), make_identity()
    signed = msgspec.msgpack.decode(make_rotation(attacker, make_card(new, "L", [], 1), 1))
    statement = msgspec.msgpack.decode(signed[0])
    statement[1] = old.public.fingerprint
    signed[0] = msgspec.msgpack.encode(statement)
    with pytest.raises(RotationError, match="not signed by the pinned identity"):
        verify_rotation(msgspec.msgpack.encode(signed), old.public)


def test_rotation_to_an_altered_card_is_refused(make_identity: Make) -> None:
    old, new = make_identity(), make_identity()
    card = make_card(new, "London", [], 1)
    forged = type(card)(card.body, card.body_bytes.replace(b"London", b"Lonxon"), card.signature)
    with pytest.raises(RotationError, match="bad card"):
        verify_rotation(make_rotation(old, forged, 1), old.public)


def test_rotation_to_the_same_identity_is_refused(make_identity: Make) -> None:
    old = make_identity()
    with pytest.raises(RotationError, match="same identity"):
        verify_rotation(make_rotation(old, make_card(old, "London", [], 1), 1), old.public)


@pytest.mark.parametrize("cut", [0, 10, 100, -1])
def test_truncated_statement_is_refused(make_identity: Make, cut: int) -> None:
    old, new = make_identity(), make_identity()
    statement = make_rotation(old, make_card(new, "London", [], 1), 1)
    with pytest.raises(RotationError):
        verify_rotation(statement[:cut], old.public)
