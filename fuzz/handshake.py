"""Harness: the hotline handshake, as a station reads it from a path (docs/protocol.md §3).

London is the station under test, with its real keys; the bytes are Moscow's. Entry points:

    0  mac1       `message1 || mac1` as it arrives on a path: match_mac, then, if it matches,
                  the responder reads message 1 (connections.py does the same)
    1  message 1  the responder reads the bytes as message 1
    2  message 2  London dials (writes a genuine message 1) and reads the bytes as message 2
    3  payload 1  Moscow writes an authentic message 1 around the bytes as its payload: what a
                  peer holding the PSK could send (version, clock, application data)
    4  payload 2  the same for message 2
    5  transport  a sequence of transport messages opened by an established session

A refusal must be a HandshakeError or TransportError and leave no trace (architecture.md,
"Refusal leaves no trace"): the harness compares the handshake state before and after.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from fuzz.common import (
    LONDON_KEYS,
    MOSCOW_KEYS,
    T0,
    deterministic_rng,
    join_steps,
    mode,
    split_steps,
    with_mode,
)
from hotline.crypto.handshake_mac import add_mac, initiator_mac_key, match_mac, responder_mac_key
from hotline.crypto.noise.functions import CIPHERS, DH_FUNCTIONS, KEMS
from hotline.crypto.noise.handshake import HandshakeState
from hotline.crypto.noise.state import CipherState
from hotline.crypto.session import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Initiator,
    LinkKeys,
    Responder,
    Session,
    prologue,
)
from hotline.errors import HandshakeError, TransportError

__all__ = ["seeds", "test_one_input"]

MODES = 6
_KEM = KEMS["MLKEM768"]
_ENCAPSULATED: dict[bytes, tuple[bytes, bytes]] = {}
# Fixed transport keys (what a handshake's Split gives): London opens what Moscow seals.
_I_TO_R, _R_TO_I = bytes([11]) * 32, bytes([12]) * 32


def _encapsulate(public: bytes) -> tuple[bytes, bytes]:
    """ML-KEM encapsulation draws its own randomness; one result per key keeps runs repeatable
    (both sides' ephemeral KEM keys come from a deterministic rng, so there is one key)."""
    if public not in _ENCAPSULATED:
        _ENCAPSULATED[public] = _KEM.encapsulate(public)
    return _ENCAPSULATED[public]


def _noise(keys: LinkKeys, initiator: bool, label: bytes) -> HandshakeState:
    """A raw HandshakeState as hotline.crypto.session makes one, for writing any payload."""
    return HandshakeState(
        PROTOCOL_NAME,
        initiator=initiator,
        prologue=prologue(keys.link_id),
        s=DH_FUNCTIONS["25519"].keypair(keys.local_static),
        rs=keys.peer_static,
        psks=[keys.psk],
        rng=deterministic_rng(label),
        encapsulate=_encapsulate,
    )


def _responder() -> Responder:
    return Responder(LONDON_KEYS, rng=deterministic_rng(b"london-r"), encapsulate=_encapsulate)


def _initiator() -> tuple[Initiator, bytes]:
    initiator = Initiator(LONDON_KEYS, rng=deterministic_rng(b"london-i"))
    return initiator, initiator.start(T0)


# The harness looks at the Responder's and Initiator's HandshakeState (private) to check that a
# refusal changed nothing: cheaper than proving it by completing a genuine handshake after each.
def _respond(message: bytes) -> None:
    responder = _responder()
    before = responder._state.save()
    try:
        responder.respond(message, T0)
    except HandshakeError:
        assert responder._state.save() == before, "a refused message 1 left a trace"


def _finish(initiator: Initiator, message: bytes) -> None:
    before = initiator._state.save()
    try:
        initiator.finish(message, T0)
    except HandshakeError:
        assert initiator._state.save() == before, "a refused message 2 left a trace"


def _message2_with(payload: bytes) -> tuple[Initiator, bytes]:
    initiator, message1 = _initiator()
    moscow = _noise(MOSCOW_KEYS, False, b"moscow-r")
    moscow.read_message(message1)
    return initiator, moscow.write_message(payload)


def _transport(data: bytes) -> None:
    chacha = CIPHERS["ChaChaPoly"]
    session = Session(
        CipherState(chacha, _I_TO_R), CipherState(chacha, _R_TO_I), bytes(32), initiator=False
    )
    for _, message in split_steps(data):
        received = session.received
        try:
            session.open(message)
        except TransportError:
            assert session.received == received, "a refused transport message moved the counter"


def test_one_input(data: bytes) -> None:
    choice, payload = mode(data, MODES)
    if choice == 0:
        found = match_mac([responder_mac_key(LONDON_KEYS)], payload)
        if found is not None:
            _respond(found[1])
    elif choice == 1:
        _respond(payload)
    elif choice == 2:
        _finish(_initiator()[0], payload)
    elif choice == 3:
        _respond(_noise(MOSCOW_KEYS, True, b"moscow-i").write_message(payload[:60000]))
    elif choice == 4:
        _finish(*_message2_with(payload[:60000]))
    else:
        _transport(payload)


def seeds() -> Iterator[bytes]:
    """Genuine messages of each kind, as Moscow writes them."""
    message1 = Initiator(MOSCOW_KEYS, rng=deterministic_rng(b"moscow-i")).start(T0, b"hi")
    yield with_mode(0, add_mac(initiator_mac_key(MOSCOW_KEYS), message1))
    yield with_mode(1, message1)
    _, message2 = Responder(MOSCOW_KEYS, rng=deterministic_rng(b"moscow-r")).respond(
        _initiator()[1], T0
    )
    yield with_mode(2, message2)
    yield with_mode(3, struct.pack(">BQ", PROTOCOL_VERSION, T0) + b"app data")
    yield with_mode(4, struct.pack(">BQ", PROTOCOL_VERSION, T0))
    chacha = CIPHERS["ChaChaPoly"]
    moscow = Session(
        CipherState(chacha, _I_TO_R), CipherState(chacha, _R_TO_I), bytes(32), initiator=True
    )
    yield with_mode(5, join_steps((0, moscow.seal(text)) for text in (b"\x01", b"", b"packet")))
