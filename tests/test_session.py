"""The hotline handshake and session: only the pinned peer gets in; a refusal leaves no trace."""

from __future__ import annotations

import os
import struct
from dataclasses import replace

import pytest

from hotline.crypto.noise.functions import DH_FUNCTIONS
from hotline.crypto.noise.handshake import HandshakeState
from hotline.crypto.session import (
    MAX_PLAINTEXT,
    PROTOCOL_NAME,
    REKEY_INTERVAL,
    HandshakeResult,
    Initiator,
    LinkKeys,
    Responder,
    Session,
    prologue,
)
from hotline.errors import HandshakeError, NoiseStateError, TransportError

NOW = 1_800_000_000 * 10**9
SECOND = 10**9
DH = DH_FUNCTIONS["25519"]


def _keys() -> tuple[LinkKeys, LinkKeys]:
    link_id, psk = os.urandom(32), os.urandom(32)
    a, b = os.urandom(32), os.urandom(32)
    return (
        LinkKeys(link_id, a, DH.keypair(b).public, psk),
        LinkKeys(link_id, b, DH.keypair(a).public, psk),
    )


def _handshake(init_keys: LinkKeys, resp_keys: LinkKeys) -> tuple[HandshakeResult, HandshakeResult]:
    initiator = Initiator(init_keys, rng=os.urandom)
    at_resp, message2 = Responder(resp_keys, rng=os.urandom).respond(
        initiator.start(NOW, b"hello"), NOW + SECOND
    )
    return initiator.finish(message2, NOW + 2 * SECOND), at_resp


def _sessions() -> tuple[Session, Session]:
    at_init, at_resp = _handshake(*_keys())
    return at_init.session, at_resp.session


def test_pinned_peers_complete_and_agree() -> None:
    at_init, at_resp = _handshake(*_keys())
    assert at_init.session.handshake_hash == at_resp.session.handshake_hash
    assert at_resp.app_data == b"hello"
    assert at_resp.peer_time_ns == NOW
    assert at_init.peer_time_ns == NOW + SECOND
    assert at_init.session.clock_offset_ns == 0  # the peer's clock read half-way: no offset


@pytest.mark.parametrize(
    "who",
    ["initiator static key", "responder static key", "psk", "link id"],
)
def test_anything_but_the_pinned_peer_is_refused(who: str) -> None:
    init_keys, resp_keys = _keys()
    impostor = os.urandom(32)
    if who == "initiator static key":
        init_keys = replace(init_keys, local_static=impostor)
    elif who == "responder static key":
        resp_keys = replace(resp_keys, local_static=impostor)
    elif who == "psk":
        init_keys = replace(init_keys, psk=os.urandom(32))
    else:
        init_keys = replace(init_keys, link_id=os.urandom(32))
    initiator = Initiator(init_keys, rng=os.urandom)
    responder = Responder(resp_keys, rng=os.urandom)
    # Message 1 is sealed under es, ss and the PSK and bound to the link id by the prologue, so
    # any mismatch shows as a message that fails authentication at the responder.
    with pytest.raises(HandshakeError, match="authentication"):
        responder.respond(initiator.start(NOW), NOW)


def test_responder_with_wrong_key_cannot_answer_the_initiator() -> None:
    """A station that is not the pinned peer but holds the PSK still cannot make message 2."""
    init_keys, resp_keys = _keys()
    initiator = Initiator(init_keys, rng=os.urandom)
    message1 = initiator.start(NOW)
    _at_resp, genuine = Responder(resp_keys, rng=os.urandom).respond(message1, NOW)
    forged_state = HandshakeState(
        PROTOCOL_NAME,
        initiator=False,
        prologue=prologue(init_keys.link_id),
        s=DH.keypair(os.urandom(32)),
        rs=resp_keys.peer_static,
        psks=[init_keys.psk],
        rng=os.urandom,
    )
    with pytest.raises(HandshakeError):
        forged_state.read_message(message1)
    with pytest.raises(HandshakeError):
        initiator.finish(genuine[:32] + os.urandom(len(genuine) - 32), NOW)
    assert initiator.finish(genuine, NOW).session is not None


@pytest.mark.parametrize("region", ["ephemeral", "kem public key", "payload", "tag"])
def test_tampered_message1_is_refused_and_the_genuine_one_still_accepted(region: str) -> None:
    init_keys, resp_keys = _keys()
    message1 = Initiator(init_keys, rng=os.urandom).start(NOW)
    offset = {"ephemeral": 5, "kem public key": 100, "payload": len(message1) - 20, "tag": -1}
    altered = bytearray(message1)
    altered[offset[region]] ^= 0x40
    responder = Responder(resp_keys, rng=os.urandom)
    with pytest.raises(HandshakeError):
        responder.respond(bytes(altered), NOW)
    result, _ = responder.respond(message1, NOW)
    assert result.peer_time_ns == NOW


@pytest.mark.parametrize("length", [0, 1, 31, 32, 500, 1247])
def test_truncated_messages_are_refused(length: int) -> None:
    init_keys, resp_keys = _keys()
    initiator = Initiator(init_keys, rng=os.urandom)
    message1 = initiator.start(NOW)
    with pytest.raises(HandshakeError, match=r"truncated|authentication|too short"):
        Responder(resp_keys, rng=os.urandom).respond(message1[:length], NOW)
    _result, message2 = Responder(resp_keys, rng=os.urandom).respond(message1, NOW)
    with pytest.raises(HandshakeError, match=r"truncated|authentication|too short"):
        initiator.finish(message2[: min(length, len(message2) - 1)], NOW)
    assert initiator.finish(message2, NOW).session.initiator


def test_message1_at_or_below_the_floor_is_refused() -> None:
    init_keys, resp_keys = _keys()
    message1 = Initiator(init_keys, rng=os.urandom).start(NOW)
    # The station's replay record forgot it (its floor is at least its timestamp): refused.
    later = Responder(resp_keys, rng=os.urandom, floor_ns=NOW)
    with pytest.raises(HandshakeError, match="replayed"):
        later.respond(message1, NOW + SECOND)
    newer = Initiator(init_keys, rng=os.urandom).start(NOW + 1)
    assert later.respond(newer, NOW + SECOND)[0].peer_time_ns == NOW + 1


def test_the_responder_names_the_ephemeral_key_the_replay_record_keeps() -> None:
    # Message 1 begins with e_i.pub in clear (protocol.md §3.5); the station records it.
    init_keys, resp_keys = _keys()
    initiator = Initiator(init_keys, rng=os.urandom)
    message1 = initiator.start(NOW)
    result, message2 = Responder(resp_keys, rng=os.urandom).respond(message1, NOW)
    assert result.peer_ephemeral == message1[:32]
    assert initiator.finish(message2, NOW).peer_ephemeral == message2[:32]
    again = Initiator(init_keys, rng=os.urandom).start(NOW)  # same time: another key
    assert again[:32] != message1[:32]


@pytest.mark.parametrize("skew_s", [-301, 301])
def test_message1_far_from_our_clock_is_refused(skew_s: int) -> None:
    init_keys, resp_keys = _keys()
    message1 = Initiator(init_keys, rng=os.urandom).start(NOW + skew_s * SECOND)
    responder = Responder(resp_keys, rng=os.urandom)
    with pytest.raises(HandshakeError, match="from our clock"):
        responder.respond(message1, NOW)


def test_replayed_message2_from_an_older_session_is_refused() -> None:
    init_keys, resp_keys = _keys()
    old = Initiator(init_keys, rng=os.urandom)
    _r, old_message2 = Responder(resp_keys, rng=os.urandom).respond(old.start(NOW), NOW)
    fresh = Initiator(init_keys, rng=os.urandom)
    fresh.start(NOW + SECOND)
    with pytest.raises(HandshakeError, match="authentication"):
        fresh.finish(old_message2, NOW + SECOND)


def test_another_protocol_version_is_refused_by_name() -> None:
    init_keys, resp_keys = _keys()
    state = HandshakeState(
        PROTOCOL_NAME,
        initiator=True,
        prologue=prologue(init_keys.link_id),
        s=DH.keypair(init_keys.local_static),
        rs=init_keys.peer_static,
        psks=[init_keys.psk],
        rng=os.urandom,
    )
    message1 = state.write_message(struct.pack(">BQ", 2, NOW))
    with pytest.raises(HandshakeError, match="version 2"):
        Responder(resp_keys, rng=os.urandom).respond(message1, NOW)


def test_handshake_leaks_no_application_data_and_sends_kem_key_encrypted() -> None:
    init_keys, resp_keys = _keys()
    initiator = Initiator(init_keys, rng=os.urandom)
    secret = b"PATH-PRIMARY-SECRET-LABEL"
    message1 = initiator.start(NOW, secret)
    assert secret not in message1
    result, message2 = Responder(resp_keys, rng=os.urandom).respond(message1, NOW, secret)
    assert secret not in message2
    assert result.app_data == secret
    assert len(message1) == 32 + 1184 + 16 + 9 + len(secret) + 16
    assert len(message2) == 32 + 1088 + 16 + 9 + len(secret) + 16


def test_transport_round_trip_both_ways() -> None:
    a, b = _sessions()
    assert not b.confirmed
    assert b.open(a.seal("Москва, приём".encode())) == "Москва, приём".encode()
    assert b.confirmed
    assert a.open(b.seal(b"London here")) == b"London here"
    assert (a.sent, a.received, b.sent, b.received) == (1, 1, 1, 1)


def test_transport_replay_reorder_alteration_and_truncation_are_refused() -> None:
    a, b = _sessions()
    first, second, third = (a.seal(f"message {i}".encode()) for i in range(3))
    assert b.open(first) == b"message 0"
    with pytest.raises(TransportError, match="replayed"):
        b.open(first)
    with pytest.raises(TransportError, match="out of order"):
        b.open(third)
    altered = bytearray(second)
    altered[12] ^= 1
    with pytest.raises(TransportError, match="failed authentication"):
        b.open(bytes(altered))
    renumbered = (2).to_bytes(8, "big") + second[8:]
    with pytest.raises(TransportError, match="out of order"):
        b.open(renumbered)
    with pytest.raises(TransportError, match="truncated"):
        b.open(second[:20])
    assert b.open(second) == b"message 1"
    assert b.open(third) == b"message 2"


def test_messages_cannot_cross_sessions_or_directions() -> None:
    a, _b = _sessions()
    c, _d = _sessions()
    with pytest.raises(TransportError):
        c.open(a.seal(b"for b only"))
    with pytest.raises(TransportError):
        a.open(a.seal(b"reflected back"))  # our own message, reflected: wrong direction key


def test_transport_size_limits() -> None:
    a, b = _sessions()
    assert b.open(a.seal(b"x" * MAX_PLAINTEXT)) == b"x" * MAX_PLAINTEXT
    with pytest.raises(NoiseStateError, match="exceeds"):
        a.seal(b"x" * (MAX_PLAINTEXT + 1))
    with pytest.raises(TransportError, match="too long"):
        b.open(b"\x00" * (8 + 65536))


def test_rekey_happens_in_step_and_a_bad_message_at_the_boundary_changes_nothing() -> None:
    a, b = _sessions()
    for _ in range(REKEY_INTERVAL):
        b.open(a.seal(b"."))
    at_boundary = a.seal(b"after rekey")
    altered = at_boundary[:-1] + bytes([at_boundary[-1] ^ 1])
    with pytest.raises(TransportError):
        b.open(altered)
    assert b.open(at_boundary) == b"after rekey"
    assert b.open(a.seal(b"and on")) == b"and on"


def test_initiator_refusing_a_bad_payload_can_still_read_the_genuine_message2() -> None:
    init_keys, resp_keys = _keys()
    initiator = Initiator(init_keys, rng=os.urandom)
    message1 = initiator.start(NOW)
    responder_state = HandshakeState(
        PROTOCOL_NAME,
        initiator=False,
        prologue=prologue(resp_keys.link_id),
        s=DH.keypair(resp_keys.local_static),
        rs=resp_keys.peer_static,
        psks=[resp_keys.psk],
        rng=os.urandom,
    )
    saved = responder_state.save()
    responder_state.read_message(message1)
    short_payload = responder_state.write_message(b"\x01")  # authentic, but too short
    with pytest.raises(HandshakeError, match="too short"):
        initiator.finish(short_payload, NOW)
    responder_state.restore(saved)
    _result, genuine = Responder(resp_keys, rng=os.urandom).respond(message1, NOW)
    assert initiator.finish(genuine, NOW).peer_time_ns == NOW


@pytest.mark.parametrize("bad_time", [-1, 2**64])
def test_impossible_timestamps_are_a_local_error(bad_time: int) -> None:
    with pytest.raises(NoiseStateError, match="timestamp"):
        Initiator(_keys()[0], rng=os.urandom).start(bad_time)
