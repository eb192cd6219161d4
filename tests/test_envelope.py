"""Envelopes: exact signed bytes, bounds checked before signing and after decoding, chain roots."""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Any, cast

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.crypto.identity import StationIdentity
from hotline.errors import ProtocolError
from hotline.protocol.envelope import (
    LANES,
    MAX_TEXT_BYTES,
    Attachment,
    Envelope,
    EnvelopeBody,
    Lane,
    MessageType,
    Ref,
    decode_envelope,
    encode_body,
    genesis_hash,
)

ALICE = StationIdentity.from_random(os.urandom(96))
BOB = StationIdentity.from_random(os.urandom(96))
LINK = hashlib.sha256(b"link").digest()
OTHER_LINK = hashlib.sha256(b"other link").digest()
HASH = hashlib.sha256(b"previous").digest()
U64 = 2**64 - 1

BASE = EnvelopeBody(
    version=1,
    link_id=LINK,
    direction=0,
    lane=Lane.ROUTINE,
    seq=7,
    sent_ns=1_700_000_000_000_000_000,
    type=MessageType.PRINCIPAL,
    language="ru",
    text="Линия проверена. Line checked.",
    prev_hash=genesis_hash(LINK, 0, Lane.ROUTINE),
    peer_head=HASH,
    ref=None,
)
ACK = msgspec.structs.replace(
    BASE, type=MessageType.ACKNOWLEDGEMENT, text="", ref=Ref(Lane.FLASH, 3, HASH)
)


def _replace(body: EnvelopeBody, **changes: Any) -> EnvelopeBody:
    return msgspec.structs.replace(body, **changes)


def _signed(body: EnvelopeBody, identity: StationIdentity = ALICE) -> tuple[bytes, bytes]:
    """Encode and sign a body directly, bypassing create's checks."""
    body_bytes = encode_body(body)
    return body_bytes, identity.sign_ed25519("envelope", body_bytes)


def _wire(body_bytes: bytes, signature: bytes) -> bytes:
    return msgspec.msgpack.encode([body_bytes, signature])


class _NeverSigns:
    """Stands in for an identity where nothing may be signed."""

    def sign_ed25519(self, purpose: str, message: bytes) -> bytes:
        raise AssertionError(f"a bad envelope was signed ({purpose})")


NEVER_SIGNS = cast(StationIdentity, _NeverSigns())

# --- strategies --------------------------------------------------------------------------------

hashes = st.binary(min_size=32, max_size=32)
# Any text an envelope may carry: every character but a control, and tab and newline.
texts = st.text(st.characters(exclude_categories=("Cc", "Cs")) | st.sampled_from("\t\n"))
languages = st.sampled_from(["en", "ru", "EN-gb", "zh-Hant-TW", "sr-Latn-RS", "x-hotline", "zxx"])


@st.composite
def bodies(draw: st.DrawFn) -> EnvelopeBody:
    # A call record's text must be a record (tests/test_callrecord.py makes them).
    kind = draw(st.sampled_from([t for t in MessageType if t != MessageType.CALL_RECORD]))
    ref = None
    if kind == MessageType.ACKNOWLEDGEMENT:
        ref = Ref(int(draw(st.sampled_from(LANES))), draw(st.integers(1, U64)), draw(hashes))
    return EnvelopeBody(
        version=1,
        link_id=draw(hashes),
        direction=draw(st.sampled_from([0, 1])),
        lane=int(draw(st.sampled_from(LANES))),
        seq=draw(st.integers(1, U64)),
        sent_ns=draw(st.integers(0, U64)),
        type=int(kind),
        language=draw(languages),
        text=draw(texts.filter(lambda t: len(t) <= 300)),
        prev_hash=draw(hashes),
        peer_head=draw(hashes),
        ref=ref,
    )


ENVELOPE = Envelope.create(BASE, ALICE)

# --- round trips -------------------------------------------------------------------------------


@given(bodies())
def test_create_then_decode_round_trips_exactly(body: EnvelopeBody) -> None:
    envelope = Envelope.create(body, ALICE)
    assert envelope.body == body
    assert envelope.body_bytes == encode_body(body)
    assert envelope.hash == hashlib.sha256(envelope.body_bytes).digest()
    assert len(envelope.signature) == 64
    assert envelope.lane == Lane(body.lane)
    assert envelope.seq == body.seq

    assert Envelope.from_parts(envelope.body_bytes, envelope.signature, ALICE.public) == envelope
    stored = envelope.to_bytes()
    assert msgspec.msgpack.decode(stored) == [envelope.body_bytes, envelope.signature]
    assert decode_envelope(stored, ALICE.public) == envelope
    assert decode_envelope(stored, None) == envelope


def test_body_bytes_are_kept_as_signed_not_re_encoded() -> None:
    canonical = encode_body(BASE)
    assert canonical[:2] == b"\x9c\x01"  # an array of 12, then version 1 as a positive fixint
    wider = b"\x9c\xcc\x01" + canonical[2:]  # the same version, written as a uint8
    signature = ALICE.sign_ed25519("envelope", wider)
    envelope = Envelope.from_parts(wider, signature, ALICE.public)
    assert envelope.body == BASE
    assert envelope.body_bytes == wider
    assert envelope.hash == hashlib.sha256(wider).digest() != hashlib.sha256(canonical).digest()
    assert decode_envelope(envelope.to_bytes(), ALICE.public) == envelope


def test_acknowledgement_round_trips_with_its_ref() -> None:
    envelope = Envelope.create(ACK, ALICE)
    decoded = decode_envelope(envelope.to_bytes(), ALICE.public)
    assert decoded.body.ref == Ref(Lane.FLASH, 3, HASH)


# --- the signature binds the body ---------------------------------------------------------------


@given(st.integers(0), st.integers(1, 255))
def test_any_changed_body_byte_is_refused(position: int, mask: int) -> None:
    altered = bytearray(ENVELOPE.body_bytes)
    altered[position % len(altered)] ^= mask
    with pytest.raises(ProtocolError):
        Envelope.from_parts(bytes(altered), ENVELOPE.signature, ALICE.public)
    with pytest.raises(ProtocolError):
        decode_envelope(_wire(bytes(altered), ENVELOPE.signature), ALICE.public)


@given(texts.filter(lambda t: 0 < len(t) <= 100))
def test_a_changed_text_is_refused_for_its_signature(text: str) -> None:
    changed = encode_body(_replace(BASE, text=text))
    if changed == ENVELOPE.body_bytes:
        return
    with pytest.raises(ProtocolError, match="bad signature"):
        Envelope.from_parts(changed, ENVELOPE.signature, ALICE.public)


@given(st.integers(0), st.integers(1, 255))
def test_any_changed_signature_byte_is_refused(position: int, mask: int) -> None:
    altered = bytearray(ENVELOPE.signature)
    altered[position % len(altered)] ^= mask
    with pytest.raises(ProtocolError, match="bad signature"):
        Envelope.from_parts(ENVELOPE.body_bytes, bytes(altered), ALICE.public)


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(BOB.sign_ed25519("envelope", ENVELOPE.body_bytes), id="another-identity"),
        pytest.param(ALICE.sign_ed25519("receipt", ENVELOPE.body_bytes), id="another-purpose"),
        pytest.param(ALICE.sign("envelope", ENVELOPE.body_bytes), id="hybrid"),
        pytest.param(ENVELOPE.signature[:63], id="truncated"),
        pytest.param(ENVELOPE.signature + b"\x00", id="extended"),
        pytest.param(b"", id="empty"),
    ],
)
def test_a_signature_that_is_not_alice_s_is_refused(signature: bytes) -> None:
    with pytest.raises(ProtocolError, match="envelope 3/7 has a bad signature"):
        Envelope.from_parts(ENVELOPE.body_bytes, signature, ALICE.public)
    with pytest.raises(ProtocolError, match="bad signature"):
        decode_envelope(_wire(ENVELOPE.body_bytes, signature), ALICE.public)


def test_alice_s_envelope_does_not_verify_as_bob_s() -> None:
    with pytest.raises(ProtocolError, match="bad signature"):
        decode_envelope(ENVELOPE.to_bytes(), BOB.public)


def test_no_signer_skips_the_signature_but_not_the_bounds() -> None:
    unsigned = Envelope.from_parts(ENVELOPE.body_bytes, b"not a signature", None)
    assert unsigned.body == BASE
    assert decode_envelope(_wire(ENVELOPE.body_bytes, b""), None).hash == ENVELOPE.hash
    bad_bytes, signature = _signed(_replace(BASE, seq=0))
    with pytest.raises(ProtocolError, match="refused"):
        Envelope.from_parts(bad_bytes, signature, None)
    with pytest.raises(ProtocolError, match="refused"):
        decode_envelope(_wire(bad_bytes, signature), None)


# --- bounds: refused before signing, and after decoding ---------------------------------------

OUT_OF_BOUNDS = [
    pytest.param({"version": 0}, "version 0 is not supported", id="version-0"),
    pytest.param({"version": 2}, "version 2 is not supported", id="version-2"),
    pytest.param({"link_id": LINK[:31]}, "bad link id", id="link-id-31"),
    pytest.param({"link_id": LINK + b"\x00"}, "bad link id", id="link-id-33"),
    pytest.param({"link_id": b""}, "bad link id", id="link-id-empty"),
    pytest.param({"direction": 2}, "direction", id="direction-2"),
    pytest.param({"direction": -1}, "direction", id="direction-negative"),
    pytest.param({"lane": 4}, "bad lane", id="lane-4"),
    pytest.param({"lane": -1}, "bad lane", id="lane-negative"),
    pytest.param({"seq": 0}, "sequence number", id="seq-0"),
    pytest.param({"seq": -1}, "sequence number", id="seq-negative"),
    pytest.param({"sent_ns": -1}, "time", id="time-negative"),
    pytest.param({"type": 6}, "unknown message type 6", id="type-6"),
    pytest.param({"type": -1}, "unknown message type -1", id="type-negative"),
    pytest.param({"language": ""}, "language tag or text out of bounds", id="language-empty"),
    pytest.param({"language": "x" * 36}, "language tag or text", id="language-36"),
    # Issue 13, item 4: a language tag is BCP 47; a text holds no control but tab and newline.
    pytest.param({"language": "en_GB"}, "not a well-formed BCP 47", id="language-underscore"),
    pytest.param({"language": "ru\u202e"}, "not a well-formed BCP 47", id="language-bidi"),
    pytest.param({"language": "x" * 35}, "not a well-formed BCP 47", id="language-x35"),
    pytest.param({"language": "de-1901-1901"}, "repeats a variant", id="language-variant-twice"),
    pytest.param({"text": "strike\x00 at 0030"}, "U\\+0000 \\(NUL\\)", id="text-nul"),
    pytest.param({"text": "alarm\x07"}, "U\\+0007 \\(BEL\\)", id="text-bel"),
    pytest.param({"text": "0030\rall clear"}, "U\\+000D \\(CR\\)", id="text-cr"),
    pytest.param({"text": "\x1b[8mhidden"}, "U\\+001B \\(ESC\\)", id="text-esc"),
    pytest.param({"text": "del\x7f"}, "U\\+007F \\(DEL\\)", id="text-del"),
    pytest.param({"text": "next\x85line"}, "U\\+0085", id="text-c1"),
    pytest.param({"text": "x" * (MAX_TEXT_BYTES + 1)}, "text out of bounds", id="text-ascii"),
    # 16 385 Cyrillic letters are 32 770 bytes of UTF-8: the bound counts bytes, not characters.
    pytest.param({"text": "ж" * (MAX_TEXT_BYTES // 2 + 1)}, "text out of bounds", id="text-utf8"),
    pytest.param({"prev_hash": HASH[:31]}, "bad chain hash", id="prev-hash-31"),
    pytest.param({"prev_hash": HASH + b"\x00"}, "bad chain hash", id="prev-hash-33"),
    pytest.param({"peer_head": HASH[:31]}, "bad chain hash", id="peer-head-31"),
    pytest.param({"peer_head": b""}, "bad chain hash", id="peer-head-empty"),
    pytest.param(
        {"type": MessageType.ACKNOWLEDGEMENT}, "an acknowledgement, and only one", id="ack-no-ref"
    ),
    pytest.param({"ref": Ref(0, 1, HASH)}, "only one, names", id="principal-with-ref"),
    pytest.param(
        {"type": MessageType.SERVICE, "ref": Ref(0, 1, HASH)}, "only one", id="service-with-ref"
    ),
    pytest.param(
        {"type": MessageType.TEST, "ref": Ref(0, 1, HASH)}, "only one", id="test-with-ref"
    ),
    pytest.param({"type": 3, "ref": Ref(4, 1, HASH)}, "bad reference", id="ref-lane-4"),
    pytest.param({"type": 3, "ref": Ref(-1, 1, HASH)}, "bad reference", id="ref-lane-negative"),
    pytest.param({"type": 3, "ref": Ref(0, 1, HASH[:31])}, "bad reference", id="ref-hash-31"),
]
REF_SEQ = [
    pytest.param({"type": 3, "ref": Ref(0, 0, HASH)}, "bad reference", id="ref-seq-0"),
    pytest.param({"type": 3, "ref": Ref(0, -1, HASH)}, "bad reference", id="ref-seq-negative"),
]


@pytest.mark.parametrize(("changes", "message"), OUT_OF_BOUNDS)
def test_out_of_bounds_body_is_never_signed(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        Envelope.create(_replace(BASE, **changes), NEVER_SIGNS)


@pytest.mark.parametrize(("changes", "message"), OUT_OF_BOUNDS)
def test_out_of_bounds_body_is_refused_when_decoded(changes: dict[str, Any], message: str) -> None:
    # Signed by the right key, so only the bounds can refuse it.
    body_bytes, signature = _signed(_replace(BASE, **changes))
    with pytest.raises(ProtocolError, match=message):
        Envelope.from_parts(body_bytes, signature, ALICE.public)
    with pytest.raises(ProtocolError, match=message):
        decode_envelope(_wire(body_bytes, signature), ALICE.public, words=True)


@pytest.mark.parametrize(
    "changes", [{"language": "en_GB"}, {"text": "line one\r\nline two"}, {"text": "bell\x07"}]
)
def test_a_stored_envelope_from_before_the_rules_for_words_still_loads(
    changes: dict[str, Any],
) -> None:
    """A store written before the rules may hold such a text: the station must start and show
    it (with its characters named); the rules hold for what arrives and what the archive
    verifier reads."""
    body_bytes, signature = _signed(_replace(BASE, **changes))
    stored = decode_envelope(_wire(body_bytes, signature), ALICE.public)
    assert stored.body == _replace(BASE, **changes)
    with pytest.raises(ProtocolError, match=r"BCP 47|U\+00"):
        Envelope.from_parts(body_bytes, signature, ALICE.public)
    with pytest.raises(ProtocolError, match=r"BCP 47|U\+00"):
        decode_envelope(_wire(body_bytes, signature), ALICE.public, words=True)


@pytest.mark.parametrize(("changes", "message"), REF_SEQ)
def test_ref_seq_below_1_is_never_signed(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        Envelope.create(_replace(BASE, **changes), NEVER_SIGNS)


@pytest.mark.parametrize(("changes", "message"), REF_SEQ)
def test_ref_seq_below_1_is_refused_when_decoded(changes: dict[str, Any], message: str) -> None:
    body_bytes, signature = _signed(_replace(BASE, **changes))
    with pytest.raises(ProtocolError, match=message):
        Envelope.from_parts(body_bytes, signature, ALICE.public)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"language": "en-Latn-GB-1994-x-abcdefgh-ijklmnop"}, id="language-35"),
        pytest.param({"language": "zh-Hant-TW"}, id="language-tag"),
        pytest.param({"language": "i-klingon"}, id="language-grandfathered"),
        # Shown as marks (hotline.protocol.textsafety), not refused: bidi text needs them.
        pytest.param({"text": "a\tb\nstrike at \u202e0030\u202c \u200b"}, id="text-tab-bidi"),
        pytest.param({"text": ""}, id="text-empty"),
        pytest.param({"text": "x" * MAX_TEXT_BYTES}, id="text-32KiB-ascii"),
        pytest.param({"text": "ж" * (MAX_TEXT_BYTES // 2)}, id="text-32KiB-cyrillic"),
        pytest.param({"seq": U64, "sent_ns": U64}, id="u64-max"),
        pytest.param({"sent_ns": 0, "seq": 1, "direction": 1, "lane": 0}, id="minimums"),
    ],
)
def test_bodies_at_the_bounds_are_accepted(changes: dict[str, Any]) -> None:
    envelope = Envelope.create(_replace(BASE, **changes), ALICE)
    assert decode_envelope(envelope.to_bytes(), ALICE.public) == envelope


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="reserved-byte"),
        pytest.param(msgspec.msgpack.encode([b"body"]), id="one-element"),
        pytest.param(msgspec.msgpack.encode([b"body", b"sig", b"x"]), id="three-elements"),
        pytest.param(msgspec.msgpack.encode(["body", b"sig"]), id="text-body"),
        pytest.param(msgspec.msgpack.encode({"body": b"", "signature": b""}), id="map"),
        pytest.param(ENVELOPE.to_bytes() + b"\x00", id="trailing-byte"),
        pytest.param(ENVELOPE.to_bytes()[:-1], id="truncated"),
    ],
)
def test_stored_form_that_does_not_decode_is_refused(data: bytes) -> None:
    with pytest.raises(ProtocolError, match="envelope does not decode"):
        decode_envelope(data, None)


@pytest.mark.parametrize(
    "body_bytes",
    [
        pytest.param(b"", id="empty"),
        pytest.param(ENVELOPE.body_bytes + b"\x00", id="trailing-byte"),
        pytest.param(ENVELOPE.body_bytes[:-1], id="truncated"),
        pytest.param(msgspec.msgpack.encode([*msgspec.structs.astuple(BASE)][:11]), id="11-fields"),
        pytest.param(msgspec.msgpack.encode([*msgspec.structs.astuple(BASE), 0]), id="13-fields"),
        pytest.param(encode_body(_replace(BASE, lane=True)), id="bool-lane"),
        pytest.param(encode_body(_replace(BASE, text=b"bytes")), id="bytes-text"),
        pytest.param(encode_body(_replace(BASE, link_id="x" * 32)), id="text-link-id"),
        pytest.param(encode_body(_replace(BASE, seq=7.0)), id="float-seq"),
        pytest.param(encode_body(_replace(BASE, ref=[0, 1])), id="short-ref"),
    ],
)
def test_body_that_does_not_decode_is_refused(body_bytes: bytes) -> None:
    signature = ALICE.sign_ed25519("envelope", body_bytes)
    with pytest.raises(ProtocolError, match="envelope does not decode"):
        Envelope.from_parts(body_bytes, signature, ALICE.public)


@given(st.binary(max_size=300))
def test_any_stored_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_envelope(data, ALICE.public)


# --- what create signs must decode -------------------------------------------------------------


@pytest.mark.parametrize("field", ["version", "direction", "lane", "type"])
def test_create_refuses_a_bool_where_an_int_belongs(field: str) -> None:
    with pytest.raises(ProtocolError):
        Envelope.create(_replace(BASE, **{field: True}), NEVER_SIGNS)


def test_a_bool_where_an_int_belongs_is_refused_when_decoded() -> None:
    body_bytes, signature = _signed(_replace(BASE, direction=True))
    with pytest.raises(ProtocolError, match="Expected `int`, got `bool`"):
        Envelope.from_parts(body_bytes, signature, ALICE.public)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param(
            {"text": "\udcff"},
            id="text-lone-surrogate",
        ),
        pytest.param(
            {"language": "e\udcff"},
            id="language-lone-surrogate",
        ),
        pytest.param(
            {"seq": U64 + 1},
            id="seq-over-u64",
        ),
    ],
)
def test_create_refuses_what_messagepack_cannot_carry(changes: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        Envelope.create(_replace(BASE, **changes), ALICE)


# --- chain roots -------------------------------------------------------------------------------


def test_genesis_hash_differs_per_link_direction_and_lane() -> None:
    roots = {
        (link, direction, lane): genesis_hash(link, direction, lane)
        for link in (LINK, OTHER_LINK)
        for direction in (0, 1)
        for lane in LANES
    }
    assert len(set(roots.values())) == 16
    assert all(len(root) == 32 for root in roots.values())
    assert genesis_hash(LINK, 1, Lane.FLASH) == roots[(LINK, 1, Lane.FLASH)]


@given(hashes, st.sampled_from([0, 1]), st.sampled_from(LANES), hashes, st.sampled_from([0, 1]))
def test_genesis_hash_is_distinct_for_distinct_inputs(
    link: bytes, direction: int, lane: Lane, other_link: bytes, other_direction: int
) -> None:
    for other_lane in LANES:
        same = (link, direction, lane) == (other_link, other_direction, other_lane)
        equal = genesis_hash(link, direction, lane) == genesis_hash(
            other_link, other_direction, other_lane
        )
        assert equal == same


MAP = Attachment("карта.png", "image/png", 1_234_567, HASH)


def test_attachments_are_signed_in_a_thirteenth_element_only_when_there_are_any() -> None:
    plain, with_file = (
        Envelope.create(BASE, ALICE),
        Envelope.create(msgspec.structs.replace(BASE, attachments=(MAP,)), ALICE),
    )
    assert len(msgspec.msgpack.decode(plain.body_bytes)) == 12, "old envelopes keep their bytes"
    assert len(msgspec.msgpack.decode(with_file.body_bytes)) == 13
    assert decode_envelope(with_file.to_bytes(), ALICE.public).body.attachments == (MAP,)
    assert decode_envelope(plain.to_bytes(), ALICE.public).body.attachments == ()


@pytest.mark.parametrize(
    ("attachment", "problem"),
    [
        (msgspec.structs.replace(MAP, name="../../etc/passwd"), "holds a path"),
        (msgspec.structs.replace(MAP, name="a\\b"), "holds a path"),
        (msgspec.structs.replace(MAP, name="bell\x07"), "holds a path"),
        (msgspec.structs.replace(MAP, name=""), "empty"),
        (msgspec.structs.replace(MAP, name="x" * 256), "too long"),
        (msgspec.structs.replace(MAP, media_type="image"), "media type"),
        (msgspec.structs.replace(MAP, media_type="text/html; charset=utf-8"), "media type"),
        (msgspec.structs.replace(MAP, size=-1), "size or hash"),
        (msgspec.structs.replace(MAP, sha256=b"short"), "size or hash"),
    ],
)
def test_a_malformed_attachment_is_refused_before_signing(
    attachment: Attachment, problem: str
) -> None:
    with pytest.raises(ProtocolError, match=problem):
        Envelope.create(msgspec.structs.replace(BASE, attachments=(attachment,)), ALICE)


def test_at_most_sixteen_attachments() -> None:
    body = msgspec.structs.replace(BASE, attachments=(MAP,) * 17)
    with pytest.raises(ProtocolError, match="more than 16"):
        Envelope.create(body, ALICE)


def test_an_empty_file_list_is_left_out_not_signed() -> None:
    """One body, one encoding: 13 elements with an empty list is refused, not taken as 12."""
    thirteen = msgspec.msgpack.encode(BASE)
    assert thirteen[0] == 0x9D
    with pytest.raises(ProtocolError, match="empty file list"):
        Envelope.from_parts(thirteen, ALICE.sign_ed25519("envelope", thirteen), ALICE.public)
