"""Call media datagrams: keys per call and direction, sealing, and an opener that accepts each
authentic counter once, in any order, and changes nothing when it refuses."""

from __future__ import annotations

import hmac
import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given
from hypothesis import strategies as st

from hotline.errors import LocalError, MediaError, MediaExhausted, RemoteError
from hotline.protocol.media import (
    HEADER_LEN,
    MAX_DATAGRAM,
    MAX_OPUS,
    MEDIA_VERSION,
    MIN_DATAGRAM,
    REJECT_AFTER,
    AudioFrame,
    MediaKind,
    MediaOpener,
    MediaPayload,
    MediaSealer,
    Probe,
    ProbeReply,
    decode_payload,
    media_keys,
    peek_receiver_index,
)

VECTORS = Path(__file__).parent / "vectors"
CALL_ID = bytes(range(16))
CALLER_SHARE, CALLEE_SHARE = b"\x11" * 32, b"\x22" * 32
KEYS = media_keys(CALL_ID, CALLER_SHARE, CALLEE_SHARE)
KEY = KEYS.caller_to_callee
INDEX = 0xC0FFEE  # the callee's receiver index: what the caller's datagrams carry
FRAME = AudioFrame(seq=7, timestamp=7 * 960, path=1, flags=0, opus=b"\xf8\xff\xfe")
PAYLOADS: list[MediaPayload] = [
    FRAME,
    AudioFrame(2**32 - 1, 2**32 - 1, 255, 0, b"\x00" * MAX_OPUS),
    Probe(path=2, probe_id=9, sent_ns=1_795_000_000_000_000_000),
    ProbeReply(path=2, probe_id=9, echo_ns=1_795_000_000_000_000_000),
]


@cache
def genuine(counter: int, key: bytes = KEY, index: int = INDEX) -> bytes:
    """The caller's datagram with this counter, as its one sealer would have written it."""
    return MediaSealer(key, index, counter=counter).seal(FRAME)


def raw_seal(counter: int, plaintext: bytes, version: int = MEDIA_VERSION) -> bytes:
    """Authentic bytes built from the primitive, for what no MediaSealer would write."""
    header = bytes([version]) + INDEX.to_bytes(4, "big") + counter.to_bytes(8, "big")
    nonce = bytes(4) + counter.to_bytes(8, "big")
    return header + ChaCha20Poly1305(KEY).encrypt(nonce, plaintext, header)


def opens(opener: MediaOpener, datagram: bytes) -> bool:
    try:
        opener.open(datagram)
    except MediaError:
        return False
    return True


# --- keys ---------------------------------------------------------------------------------------


def test_keys_are_rfc5869_hkdf_of_both_shares() -> None:
    # Computed from HMAC alone (RFC 5869 with L = 32: one block), not with the module's HKDF.
    prk = hmac.digest(CALL_ID, CALLER_SHARE + CALLEE_SHARE, "sha256")
    for direction, key in (
        (b"caller-to-callee", KEYS.caller_to_callee),
        (b"callee-to-caller", KEYS.callee_to_caller),
    ):
        info = b"hotline-call-media-v1 " + direction
        assert key == hmac.digest(prk, info + b"\x01", "sha256")


def test_keys_differ_per_direction_call_and_share() -> None:
    assert KEYS.caller_to_callee != KEYS.callee_to_caller
    other_call = media_keys(bytes(16), CALLER_SHARE, CALLEE_SHARE)
    swapped = media_keys(CALL_ID, CALLEE_SHARE, CALLER_SHARE)
    keys = {KEYS.caller_to_callee, KEYS.callee_to_caller}
    for other in (other_call, swapped):
        assert keys.isdisjoint({other.caller_to_callee, other.callee_to_caller})


def test_keys_refuse_wrong_lengths_and_hide_in_repr() -> None:
    for call_id, a, b in ((bytes(15), CALLER_SHARE, CALLEE_SHARE), (CALL_ID, bytes(31), bytes(32))):
        with pytest.raises(ValueError):
            media_keys(call_id, a, b)
    with pytest.raises(ValueError):
        media_keys(CALL_ID, CALLER_SHARE, bytes(33))
    assert repr(KEYS) == "MediaKeys()"


# --- payloads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_each_kind_round_trips_through_a_datagram(payload: MediaPayload) -> None:
    datagram = MediaSealer(KEY, INDEX).seal(payload)
    assert len(datagram) <= MAX_DATAGRAM
    assert MediaOpener(KEY, INDEX).open(datagram) == (0, payload)


@given(
    st.one_of(
        st.builds(
            AudioFrame,
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.integers(0, 255),
            st.just(0),
            st.binary(min_size=1, max_size=MAX_OPUS),
        ),
        st.builds(Probe, st.integers(0, 255), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)),
        st.builds(
            ProbeReply, st.integers(0, 255), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)
        ),
    )
)
def test_any_payload_decodes_to_itself(payload: MediaPayload) -> None:
    assert decode_payload(payload.encode()) == payload


def test_audio_layout() -> None:
    encoded = AudioFrame(0x01020304, 0x05060708, 9, 0, b"op").encode()
    assert encoded == bytes([MediaKind.AUDIO, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]) + b"op"


@pytest.mark.parametrize(
    "plaintext",
    [
        b"",
        b"\x00" + bytes(13),  # kind 0
        b"\x04" + bytes(13),  # kind 4
        FRAME.encode()[:11],  # audio without an Opus packet
        FRAME.encode()[:10] + b"\x01" + b"op",  # a flag set
        bytes([MediaKind.AUDIO]) + bytes(10) + bytes(MAX_OPUS + 1),  # Opus packet too long
        PAYLOADS[2].encode()[:-1],
        PAYLOADS[2].encode() + b"\x00",
        PAYLOADS[3].encode()[:-1],
        PAYLOADS[3].encode() + b"\x00",
    ],
)
def test_malformed_payloads_are_refused(plaintext: bytes) -> None:
    with pytest.raises(MediaError):
        decode_payload(plaintext)


def test_payloads_refuse_out_of_range_fields() -> None:
    for make in (
        lambda: AudioFrame(2**32, 0, 0, 0, b"x"),
        lambda: AudioFrame(0, -1, 0, 0, b"x"),
        lambda: AudioFrame(0, 0, 256, 0, b"x"),
        lambda: AudioFrame(0, 0, 0, 1, b"x"),
        lambda: AudioFrame(0, 0, 0, 0, b""),
        lambda: AudioFrame(0, 0, 0, 0, bytes(MAX_OPUS + 1)),
        lambda: Probe(0, 2**32, 0),
        lambda: ProbeReply(0, 0, 2**64),
    ):
        with pytest.raises(ValueError):
            make()


# --- the datagram -------------------------------------------------------------------------------


def test_datagram_layout_and_nonce() -> None:
    datagram = MediaSealer(KEY, INDEX, counter=0x0102030405060708).seal(FRAME)
    header = datagram[:HEADER_LEN]
    assert header == bytes([1]) + INDEX.to_bytes(4, "big") + bytes(range(1, 9))
    nonce = bytes(4) + bytes(range(1, 9))
    assert ChaCha20Poly1305(KEY).decrypt(nonce, datagram[HEADER_LEN:], header) == FRAME.encode()
    assert len(datagram) == HEADER_LEN + len(FRAME.encode()) + 16


def test_a_full_audio_frame_is_exactly_the_size_bound() -> None:
    biggest = AudioFrame(0, 0, 0, 0, bytes(MAX_OPUS))
    assert len(MediaSealer(KEY, INDEX).seal(biggest)) == MAX_DATAGRAM == 1200
    with pytest.raises(MediaError, match="too long"):
        MediaOpener(KEY, INDEX).open(genuine(0) + bytes(MAX_DATAGRAM - len(genuine(0)) + 1))


def test_each_copy_on_each_path_has_its_own_counter() -> None:
    sealer = MediaSealer(KEY, INDEX)
    copies = [sealer.seal(AudioFrame(3, 2880, path, 0, b"op")) for path in range(3)]
    opener = MediaOpener(KEY, INDEX)
    assert [opener.open(copy)[0] for copy in copies] == [0, 1, 2]
    assert sealer.counter == 3


def test_peek_receiver_index() -> None:
    assert peek_receiver_index(genuine(5)) == INDEX
    assert peek_receiver_index(genuine(5)[: MIN_DATAGRAM - 1]) is None
    assert peek_receiver_index(b"\x02" + genuine(5)[1:]) is None
    assert peek_receiver_index(b"") is None


# --- refusals -----------------------------------------------------------------------------------


def test_replay_is_refused() -> None:
    opener = MediaOpener(KEY, INDEX)
    assert opener.open(genuine(0)) == (0, FRAME)
    with pytest.raises(MediaError, match="replayed"):
        opener.open(genuine(0))


def test_reordered_counters_are_accepted_exactly_once_each() -> None:
    opener = MediaOpener(KEY, INDEX, window=64)
    order = [5, 1, 9, 0, 63, 2, 62, 10, 4, 3, 8, 7, 6]
    for counter in order:
        assert opener.open(genuine(counter))[0] == counter
    for counter in order:
        with pytest.raises(MediaError, match="replayed"):
            opener.open(genuine(counter))
    assert opener.highest == 63


def test_counters_older_than_the_window_are_refused() -> None:
    opener = MediaOpener(KEY, INDEX, window=64)
    opener.open(genuine(100))
    assert opens(opener, genuine(100 - 63))  # the oldest the window still holds
    with pytest.raises(MediaError, match="too old"):
        opener.open(genuine(100 - 64))


def test_a_huge_jump_forgets_the_window_at_once() -> None:
    opener = MediaOpener(KEY, INDEX)
    opener.open(genuine(0))
    opener.open(genuine(2**63))
    assert opener.highest == 2**63
    with pytest.raises(MediaError, match="too old"):
        opener.open(genuine(1))
    assert opens(opener, genuine(2**63 - 1))


def check_refused_without_trace(opener: MediaOpener, bad: bytes, good: bytes, seen: int) -> None:
    """`bad` is refused; then the window is as it was: `good` opens and `seen` is still a replay."""
    highest = opener.highest
    with pytest.raises(MediaError):
        opener.open(bad)
    assert opener.highest == highest
    with pytest.raises(MediaError, match="replayed"):
        opener.open(genuine(seen))
    assert opener.open(good) == (int.from_bytes(good[5:13], "big"), FRAME)


def flip(datagram: bytes, position: int) -> bytes:
    return datagram[:position] + bytes([datagram[position] ^ 0x80]) + datagram[position + 1 :]


@pytest.mark.parametrize(
    "forge",
    [
        lambda d: d[:-1],  # truncated tag
        lambda d: d[:HEADER_LEN],
        lambda d: d + b"\x00",
        lambda d: flip(d, len(d) - 1),  # the tag
        lambda d: flip(d, HEADER_LEN),  # the ciphertext
        lambda d: flip(d, 0),  # the version
        lambda d: flip(d, 4),  # the receiver index
        lambda d: flip(d, 12),  # the counter: now a fresh counter, still refused
        lambda d: d[:HEADER_LEN] + ChaCha20Poly1305(bytes(32)).encrypt(bytes(12), b"\x02", b""),
    ],
)
def test_forged_datagrams_are_refused_and_leave_the_window(forge: Any) -> None:
    opener = MediaOpener(KEY, INDEX)
    opener.open(genuine(3))
    check_refused_without_trace(opener, forge(genuine(10)), genuine(10), seen=3)


def test_authentic_but_malformed_payload_leaves_the_window() -> None:
    opener = MediaOpener(KEY, INDEX)
    opener.open(genuine(3))
    with pytest.raises(MediaError, match="kind"):
        opener.open(raw_seal(10, b"\x09" + bytes(20)))
    check_refused_without_trace(opener, raw_seal(10, b""), genuine(10), seen=3)


def test_wrong_receiver_index_version_and_direction() -> None:
    opener = MediaOpener(KEY, INDEX)
    with pytest.raises(MediaError, match="receiver index"):
        opener.open(genuine(0, KEY, INDEX + 1))
    with pytest.raises(MediaError, match="version"):
        opener.open(raw_seal(0, FRAME.encode(), version=2))
    with pytest.raises(MediaError, match="authentication"):
        opener.open(genuine(0, KEYS.callee_to_caller, INDEX))  # the other direction's key
    other_call = media_keys(bytes(16), CALLER_SHARE, CALLEE_SHARE).caller_to_callee
    with pytest.raises(MediaError, match="authentication"):
        opener.open(genuine(0, other_call, INDEX))
    assert opener.highest is None
    assert issubclass(MediaError, RemoteError)


def test_counters_at_their_limits() -> None:
    sealer = MediaSealer(KEY, INDEX, counter=REJECT_AFTER - 1)
    last = sealer.seal(FRAME)
    for _ in range(2):  # and it stays refused: it never wraps
        with pytest.raises(MediaExhausted):
            sealer.seal(FRAME)
    assert sealer.counter == REJECT_AFTER
    assert issubclass(MediaExhausted, LocalError)
    opener = MediaOpener(KEY, INDEX)
    assert opener.open(last)[0] == REJECT_AFTER - 1
    for counter in (REJECT_AFTER, 2**64 - 1):
        with pytest.raises(MediaError, match="limit"):
            MediaOpener(KEY, INDEX).open(raw_seal(counter, FRAME.encode()))


def test_bad_arguments_are_refused() -> None:
    for make in (
        lambda: MediaSealer(bytes(31), 0),
        lambda: MediaSealer(KEY, 2**32),
        lambda: MediaSealer(KEY, 0, counter=REJECT_AFTER + 1),
        lambda: MediaSealer(KEY, 0, counter=-1),
        lambda: MediaOpener(KEY, -1),
        lambda: MediaOpener(KEY, 0, window=0),
        lambda: MediaOpener(KEY, 0, window=2**13 + 1),
    ):
        with pytest.raises(ValueError):
            make()


# --- properties ---------------------------------------------------------------------------------

WINDOW = 32


@given(st.lists(st.integers(0, 4 * WINDOW), max_size=120))
def test_window_matches_a_set_and_the_rule(counters: list[int]) -> None:
    """Any genuine counters, in any order, with duplicates: accepted exactly when new and newer
    than (the highest accepted - window); so at most once each."""
    opener, accepted = MediaOpener(KEY, INDEX, window=WINDOW), set[int]()
    for counter in counters:
        fresh = counter not in accepted and (not accepted or counter > max(accepted) - WINDOW)
        assert opens(opener, genuine(counter)) == fresh
        if fresh:
            accepted.add(counter)
        assert opener.highest == (max(accepted) if accepted else None)


@given(
    st.sets(st.integers(0, 40), max_size=20),
    st.integers(0, 40),
    st.lists(st.tuples(st.integers(0, 2**16), st.integers(1, 255)), min_size=1, max_size=4),
    st.sampled_from(["flip", "truncate", "extend"]),
)
def test_any_mutation_is_refused_without_trace(
    history: set[int], target: int, changes: list[tuple[int, int]], how: str
) -> None:
    opener = MediaOpener(KEY, INDEX, window=64)
    for counter in sorted(history - {target}):
        opener.open(genuine(counter))
    good = genuine(target)
    if how == "flip":
        mutated = bytearray(good)
        for position, mask in changes:
            mutated[position % len(good)] ^= mask
        bad = bytes(mutated)
    elif how == "truncate":
        bad = good[: changes[0][0] % len(good)]
    else:
        bad = good + bytes(mask for _, mask in changes)
    if bad == good:  # flips that cancel out
        return
    seen = max(history - {target}, default=None)
    if seen is None:
        with pytest.raises(MediaError):
            opener.open(bad)
        assert opener.open(good) == (target, FRAME)
    else:
        check_refused_without_trace(opener, bad, good, seen)


# --- known answers ------------------------------------------------------------------------------

MEDIA_VECTORS: dict[str, Any] = json.loads((VECTORS / "media.json").read_text(encoding="utf-8"))


def payload_of(fields: dict[str, Any]) -> MediaPayload:
    values = {name: value for name, value in fields.items() if name != "kind"}
    if fields["kind"] == "audio":
        return AudioFrame(**(values | {"opus": bytes.fromhex(values["opus"])}))
    return Probe(**values) if fields["kind"] == "probe" else ProbeReply(**values)


def direction(call: dict[str, Any], name: str) -> tuple[bytes, int]:
    key = bytes.fromhex(call[name.replace("-", "_")])
    receiver = "callee" if name == "caller-to-callee" else "caller"
    return key, call[f"{receiver}_receiver_index"]


@pytest.mark.parametrize("call", MEDIA_VECTORS["calls"], ids=lambda call: call["name"])
def test_vectors(call: dict[str, Any]) -> None:
    keys = media_keys(
        *(bytes.fromhex(call[name]) for name in ("call_id", "caller_share", "callee_share"))
    )
    assert keys.caller_to_callee.hex() == call["caller_to_callee"]
    assert keys.callee_to_caller.hex() == call["callee_to_caller"]
    openers = {
        name: MediaOpener(*direction(call, name))
        for name in ("caller-to-callee", "callee-to-caller")
    }
    for vector in call["datagrams"]:
        payload = payload_of(vector["payload"])
        assert payload.encode().hex() == vector["plaintext"]
        sealer = MediaSealer(*direction(call, vector["direction"]), counter=vector["counter"])
        assert sealer.seal(payload).hex() == vector["datagram"]
        opened = openers[vector["direction"]].open(bytes.fromhex(vector["datagram"]))
        assert opened == (vector["counter"], payload)
    for vector in call["refused"]:
        with pytest.raises(MediaError, match=vector["reason"]):
            MediaOpener(*direction(call, vector["direction"])).open(
                bytes.fromhex(vector["datagram"])
            )


def test_vectors_include_a_refusal_and_are_what_the_generator_writes() -> None:
    assert any(call["refused"] for call in MEDIA_VECTORS["calls"])
    spec = importlib.util.spec_from_file_location("generate_media", VECTORS / "generate_media.py")
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.build() == MEDIA_VECTORS
