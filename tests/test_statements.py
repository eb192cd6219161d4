"""Receipts (Ed25519) and checkpoints (hybrid): round trips, purposes, malformed heads refused."""

from __future__ import annotations

import contextlib
import hashlib
import os

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.crypto.identity import HYBRID_SIGNATURE_LEN, StationIdentity
from hotline.errors import ProtocolError
from hotline.protocol.envelope import LANES, genesis_hash
from hotline.protocol.statements import (
    Checkpoint,
    CheckpointBody,
    Head,
    Receipt,
    ReceiptBody,
    Signed,
)

ALICE = StationIdentity.from_random(os.urandom(96))
BOB = StationIdentity.from_random(os.urandom(96))
LINK = hashlib.sha256(b"link").digest()
ED25519_LEN = 64
U64 = 2**64 - 1

OUTBOUND = tuple(Head(10 + lane, hashlib.sha256(b"out %d" % lane).digest()) for lane in LANES)
INBOUND = tuple(Head(0, genesis_hash(LINK, 1, lane)) for lane in LANES)  # nothing received yet
HEADS = tuple(Head(3 * lane, hashlib.sha256(b"in %d" % lane).digest()) for lane in LANES)

# ML-DSA signing costs about a millisecond: checkpoints are signed once here and then altered.
RECEIPT = Receipt.create(ALICE, LINK, 1, HEADS, 1_700_000_000_000_000_000)
CHECKPOINT = Checkpoint.create(ALICE, LINK, 0, OUTBOUND, INBOUND, 1_700_000_000_000_000_001)
BOB_CHECKPOINT = Checkpoint.create(BOB, LINK, 0, OUTBOUND, INBOUND, 1_700_000_000_000_000_001)


def _receipt(body: ReceiptBody, identity: StationIdentity = ALICE) -> Signed:
    body_bytes = msgspec.msgpack.encode(body)
    return Signed(body_bytes, identity.sign_ed25519("receipt", body_bytes))


def _checkpoint(body: CheckpointBody, identity: StationIdentity = ALICE) -> Signed:
    body_bytes = msgspec.msgpack.encode(body)
    return Signed(body_bytes, identity.sign("checkpoint", body_bytes))


def _flip(data: bytes, position: int, mask: int) -> bytes:
    altered = bytearray(data)
    altered[position] ^= mask
    return bytes(altered)


# --- strategies --------------------------------------------------------------------------------

hashes = st.binary(min_size=32, max_size=32)
heads = st.lists(st.builds(Head, st.integers(0, U64), hashes), min_size=4, max_size=4).map(tuple)
directions = st.sampled_from([0, 1])
times = st.integers(0, U64)

# --- round trips -------------------------------------------------------------------------------


@given(hashes, directions, heads, times)
def test_receipt_round_trip(
    link_id: bytes, direction: int, held: tuple[Head, ...], now_ns: int
) -> None:
    receipt = Receipt.create(ALICE, link_id, direction, held, now_ns)
    assert receipt.body == ReceiptBody(1, link_id, direction, list(held), now_ns)
    assert receipt.heads == held
    assert receipt.signed.body_bytes == msgspec.msgpack.encode(receipt.body)
    assert Receipt.verify(receipt.signed, ALICE.public) == receipt
    assert Receipt.verify(Signed.from_bytes(receipt.signed.to_bytes()), ALICE.public) == receipt


@settings(max_examples=20)  # each example signs with ML-DSA
@given(hashes, directions, heads, heads, times)
def test_checkpoint_round_trip(
    link_id: bytes,
    direction: int,
    outbound: tuple[Head, ...],
    inbound: tuple[Head, ...],
    now_ns: int,
) -> None:
    checkpoint = Checkpoint.create(ALICE, link_id, direction, outbound, inbound, now_ns)
    assert checkpoint.body == CheckpointBody(
        1, link_id, direction, list(outbound), list(inbound), now_ns
    )
    assert (checkpoint.outbound, checkpoint.inbound) == (outbound, inbound)
    assert Checkpoint.verify(checkpoint.signed, ALICE.public) == checkpoint
    again = Signed.from_bytes(checkpoint.signed.to_bytes())
    assert Checkpoint.verify(again, ALICE.public) == checkpoint


def test_fixed_statements_verify() -> None:
    assert Receipt.verify(RECEIPT.signed, ALICE.public) == RECEIPT
    assert Checkpoint.verify(CHECKPOINT.signed, ALICE.public) == CHECKPOINT
    assert Checkpoint.verify(BOB_CHECKPOINT.signed, BOB.public) == BOB_CHECKPOINT


@given(st.binary(), st.binary())
def test_signed_round_trip(body_bytes: bytes, signature: bytes) -> None:
    signed = Signed(body_bytes, signature)
    data = signed.to_bytes()
    assert msgspec.msgpack.decode(data) == [body_bytes, signature]
    assert Signed.from_bytes(data) == signed


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="reserved-byte"),
        pytest.param(msgspec.msgpack.encode([b"body"]), id="one-element"),
        pytest.param(msgspec.msgpack.encode([b"body", b"sig", b""]), id="three-elements"),
        pytest.param(msgspec.msgpack.encode([b"body", "sig"]), id="text-signature"),
        pytest.param(RECEIPT.signed.to_bytes() + b"\x00", id="trailing-byte"),
        pytest.param(RECEIPT.signed.to_bytes()[:-1], id="truncated"),
    ],
)
def test_signed_that_does_not_decode_is_refused(data: bytes) -> None:
    with pytest.raises(ProtocolError, match="signed statement does not decode"):
        Signed.from_bytes(data)


@given(st.binary(max_size=200))
def test_any_bytes_decode_as_signed_or_raise_protocol_error(data: bytes) -> None:
    try:
        signed = Signed.from_bytes(data)
    except ProtocolError:
        return
    for verify in (Receipt.verify, Checkpoint.verify):
        with contextlib.suppress(ProtocolError):
            verify(signed, ALICE.public)


# --- signatures: Ed25519 for receipts, hybrid for checkpoints ------------------------------------


def test_a_receipt_is_signed_with_ed25519_alone() -> None:
    signed = RECEIPT.signed
    assert len(signed.signature) == ED25519_LEN
    assert ALICE.public.verify_ed25519("receipt", signed.body_bytes, signed.signature)


def test_a_checkpoint_is_hybrid_signed() -> None:
    signed = CHECKPOINT.signed
    assert len(signed.signature) == HYBRID_SIGNATURE_LEN
    assert ALICE.public.verify("checkpoint", signed.body_bytes, signed.signature)
    # The Ed25519 half verifies on its own, so the checks below show that the ML-DSA half counts.
    classic = signed.signature[:ED25519_LEN]
    assert ALICE.public.verify_ed25519("checkpoint", signed.body_bytes, classic)


@given(st.integers(0, ED25519_LEN - 1), st.integers(1, 255))
def test_checkpoint_with_an_altered_ed25519_half_is_refused(position: int, mask: int) -> None:
    signature = _flip(CHECKPOINT.signed.signature, position, mask)
    with pytest.raises(ProtocolError, match="checkpoint has a bad hybrid signature"):
        Checkpoint.verify(Signed(CHECKPOINT.signed.body_bytes, signature), ALICE.public)


@settings(max_examples=100)
@given(st.integers(ED25519_LEN, HYBRID_SIGNATURE_LEN - 1), st.integers(1, 255))
def test_checkpoint_with_an_altered_ml_dsa_half_is_refused(position: int, mask: int) -> None:
    signature = _flip(CHECKPOINT.signed.signature, position, mask)
    with pytest.raises(ProtocolError, match="checkpoint has a bad hybrid signature"):
        Checkpoint.verify(Signed(CHECKPOINT.signed.body_bytes, signature), ALICE.public)


@given(st.integers(0), st.integers(1, 255))
def test_checkpoint_with_an_altered_body_is_refused(position: int, mask: int) -> None:
    body_bytes = CHECKPOINT.signed.body_bytes
    altered = _flip(body_bytes, position % len(body_bytes), mask)
    with pytest.raises(ProtocolError):
        Checkpoint.verify(Signed(altered, CHECKPOINT.signed.signature), ALICE.public)


@given(st.integers(0), st.integers(1, 255))
def test_receipt_with_an_altered_byte_is_refused(position: int, mask: int) -> None:
    signed = RECEIPT.signed
    whole = signed.body_bytes + signed.signature
    altered = _flip(whole, position % len(whole), mask)
    cut = len(signed.body_bytes)
    with pytest.raises(ProtocolError):
        Receipt.verify(Signed(altered[:cut], altered[cut:]), ALICE.public)


def _mixed_halves() -> bytes:
    """Alice's Ed25519 half with Bob's ML-DSA half, over the same body."""
    return CHECKPOINT.signed.signature[:ED25519_LEN] + BOB_CHECKPOINT.signed.signature[ED25519_LEN:]


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(CHECKPOINT.signed.signature[:ED25519_LEN], id="ed25519-half-alone"),
        pytest.param(CHECKPOINT.signed.signature[:-1], id="truncated"),
        pytest.param(CHECKPOINT.signed.signature + b"\x00", id="extended"),
        pytest.param(_mixed_halves(), id="bob-ml-dsa-half"),
        pytest.param(BOB_CHECKPOINT.signed.signature, id="bob"),
        pytest.param(b"", id="empty"),
    ],
)
def test_checkpoint_verifies_only_when_both_halves_are_alice_s(signature: bytes) -> None:
    with pytest.raises(ProtocolError, match="checkpoint has a bad hybrid signature"):
        Checkpoint.verify(Signed(CHECKPOINT.signed.body_bytes, signature), ALICE.public)


def test_statements_signed_by_another_identity_are_refused() -> None:
    bob_receipt = Receipt.create(BOB, LINK, 1, HEADS, 5)
    with pytest.raises(ProtocolError, match="receipt has a bad signature"):
        Receipt.verify(bob_receipt.signed, ALICE.public)
    with pytest.raises(ProtocolError, match="receipt has a bad signature"):
        Receipt.verify(RECEIPT.signed, BOB.public)
    with pytest.raises(ProtocolError, match="checkpoint has a bad hybrid signature"):
        Checkpoint.verify(BOB_CHECKPOINT.signed, ALICE.public)
    with pytest.raises(ProtocolError, match="checkpoint has a bad hybrid signature"):
        Checkpoint.verify(CHECKPOINT.signed, BOB.public)


# --- a receipt is not a checkpoint, nor the other way round ---------------------------------------


def test_a_receipt_presented_as_a_checkpoint_is_refused() -> None:
    with pytest.raises(ProtocolError, match="checkpoint does not decode"):
        Checkpoint.verify(RECEIPT.signed, ALICE.public)


def test_a_checkpoint_presented_as_a_receipt_is_refused() -> None:
    with pytest.raises(ProtocolError, match="receipt does not decode"):
        Receipt.verify(CHECKPOINT.signed, ALICE.public)


def test_a_receipt_signature_does_not_make_a_checkpoint() -> None:
    # A well-formed checkpoint body, hybrid-signed by Alice, but for the receipt purpose.
    body_bytes = CHECKPOINT.signed.body_bytes
    signature = ALICE.sign("receipt", body_bytes)
    with pytest.raises(ProtocolError, match="checkpoint has a bad hybrid signature"):
        Checkpoint.verify(Signed(body_bytes, signature), ALICE.public)


def test_a_checkpoint_signature_does_not_make_a_receipt() -> None:
    # A well-formed receipt body, Ed25519-signed by Alice, but for the checkpoint purpose; and
    # the Ed25519 half of a checkpoint signature over it.
    body_bytes = RECEIPT.signed.body_bytes
    for signature in (
        ALICE.sign_ed25519("checkpoint", body_bytes),
        ALICE.sign("checkpoint", body_bytes)[:ED25519_LEN],
        ALICE.sign_ed25519("envelope", body_bytes),
    ):
        with pytest.raises(ProtocolError, match="receipt has a bad signature"):
            Receipt.verify(Signed(body_bytes, signature), ALICE.public)


# --- malformed heads and other versions ---------------------------------------------------------

BAD_HEADS = [
    pytest.param(HEADS[:3], id="3-lanes"),
    pytest.param((*HEADS, HEADS[0]), id="5-lanes"),
    pytest.param((), id="no-lanes"),
    pytest.param((*HEADS[:3], Head(9, HEADS[3].hash[:31])), id="hash-31"),
    pytest.param((*HEADS[:3], Head(9, HEADS[3].hash + b"\x00")), id="hash-33"),
    pytest.param((Head(-1, HEADS[0].hash), *HEADS[1:]), id="negative-seq"),
]


@pytest.mark.parametrize("bad", BAD_HEADS)
def test_receipt_with_malformed_heads_is_refused(bad: tuple[Head, ...]) -> None:
    receipt = Receipt.create(ALICE, LINK, 1, bad, 5)  # signed correctly: only the heads are wrong
    with pytest.raises(ProtocolError, match="receipt has malformed chain heads"):
        Receipt.verify(receipt.signed, ALICE.public)


@pytest.mark.parametrize("bad", BAD_HEADS)
@pytest.mark.parametrize("side", ["outbound", "inbound"])
def test_checkpoint_with_malformed_heads_is_refused(side: str, bad: tuple[Head, ...]) -> None:
    outbound, inbound = (bad, INBOUND) if side == "outbound" else (OUTBOUND, bad)
    checkpoint = Checkpoint.create(ALICE, LINK, 0, outbound, inbound, 5)
    with pytest.raises(ProtocolError, match="checkpoint has malformed chain heads"):
        Checkpoint.verify(checkpoint.signed, ALICE.public)


@pytest.mark.parametrize("version", [0, 2, -1])
def test_another_statement_version_is_refused(version: int) -> None:
    receipt = _receipt(ReceiptBody(version, LINK, 1, list(HEADS), 5))
    with pytest.raises(ProtocolError, match="receipt version is not supported"):
        Receipt.verify(receipt, ALICE.public)
    checkpoint = _checkpoint(CheckpointBody(version, LINK, 0, list(OUTBOUND), list(INBOUND), 5))
    with pytest.raises(ProtocolError, match="checkpoint version is not supported"):
        Checkpoint.verify(checkpoint, ALICE.public)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([1, LINK, 1, [[h.seq, h.hash] for h in HEADS]], id="missing-field"),
        pytest.param([1, LINK, 1, [[h.seq, h.hash] for h in HEADS], 5, 0], id="extra-field"),
        pytest.param([1, "link", 1, [[h.seq, h.hash] for h in HEADS], 5], id="text-link-id"),
        pytest.param([1, LINK, 1, [[0] for _ in HEADS], 5], id="head-without-hash"),
        pytest.param([1, LINK, 1, [[0.5, h.hash] for h in HEADS], 5], id="float-seq"),
        pytest.param([True, LINK, 1, [[h.seq, h.hash] for h in HEADS], 5], id="bool-version"),
        pytest.param({"version": 1}, id="map"),
    ],
)
def test_receipt_body_that_does_not_decode_is_refused(body: object) -> None:
    signed = _receipt_bytes(msgspec.msgpack.encode(body))
    with pytest.raises(ProtocolError, match="receipt does not decode"):
        Receipt.verify(signed, ALICE.public)


def _receipt_bytes(body_bytes: bytes) -> Signed:
    return Signed(body_bytes, ALICE.sign_ed25519("receipt", body_bytes))


def test_genesis_heads_are_well_formed() -> None:
    assert Checkpoint.verify(CHECKPOINT.signed, ALICE.public).inbound == INBOUND
