"""The hotline handshake and the session it yields (specified byte by byte in docs/protocol.md).

    Noise_KKpsk0+hfs_25519+MLKEM768_ChaChaPoly_SHA256
      -> s
      <- s
      ...
      -> psk, e, es, e1, ss
      <- e, ee, ekem1, se

Both static keys are pinned at pairing (KK), the pairing secret is the PSK, and an ML-KEM-768
exchange (e1/ekem1) makes the transport keys depend on a post-quantum secret as well as X25519.

Pure: the clock (`now_ns`) and randomness (`rng`) are parameters. The responder refuses a first
message outside the allowed clock skew or at or below the floor the station keeps; the station
then accepts it for good only if its ephemeral key is not among those it accepted within the
window (docs/protocol.md §3.6, the replay record), so a recorded handshake cannot be replayed to
open a session, and a genuine one is never refused because another, written later, came first.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes

from hotline.crypto.identity import PublicIdentity
from hotline.crypto.noise.functions import DH_FUNCTIONS
from hotline.crypto.noise.handshake import HandshakeState
from hotline.crypto.noise.state import CipherState
from hotline.errors import HandshakeError, NoiseStateError, TransportError

__all__ = [
    "DEFAULT_MAX_SKEW_NS",
    "MAX_PLAINTEXT",
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "HandshakeResult",
    "Initiator",
    "LinkKeys",
    "Responder",
    "Session",
    "link_id_for",
    "prologue",
]

PROTOCOL_NAME = "Noise_KKpsk0+hfs_25519+MLKEM768_ChaChaPoly_SHA256"
PROTOCOL_VERSION = 1
LINK_ID_LEN = 32
DEFAULT_MAX_SKEW_NS = 300 * 10**9  # five minutes: stations keep their clocks in sync
REKEY_INTERVAL = 2**16  # messages per direction between two REKEYs of that direction's key
MAX_NOISE_MESSAGE = 65535
TAG_LEN = 16
HEADER_LEN = 8  # the explicit 64-bit nonce in front of each transport message
MAX_PLAINTEXT = MAX_NOISE_MESSAGE - TAG_LEN
_PAYLOAD = struct.Struct(">BQ")  # version, sender's clock in ns since the Unix epoch

Rng = Callable[[int], bytes]
Encapsulate = Callable[[bytes], tuple[bytes, bytes]]


def link_id_for(a: PublicIdentity, b: PublicIdentity) -> bytes:
    """The 32-byte link id of two stations: the same on both sides, whatever the order."""
    first, second = sorted((a.fingerprint, b.fingerprint))
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"hotline-link-id-v1" + first + second)
    return digest.finalize()


def prologue(link_id: bytes) -> bytes:
    """`HOTLINE` || version || link id: both sides must agree on all of it."""
    if len(link_id) != LINK_ID_LEN:
        raise ValueError(f"a link id is {LINK_ID_LEN} bytes")
    return b"HOTLINE" + bytes([PROTOCOL_VERSION]) + link_id


@dataclass(frozen=True, slots=True)
class LinkKeys:
    """What one side needs to open sessions with its pinned peer; pairing produces it."""

    link_id: bytes
    local_static: bytes = field(repr=False)  # our X25519 private key
    peer_static: bytes  # the peer's X25519 public key, pinned at pairing
    psk: bytes = field(repr=False)  # the 32-byte pairing secret


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    session: Session
    peer_time_ns: int  # the peer's clock as it wrote its handshake message
    app_data: bytes  # opaque bytes the peer attached to its handshake message
    peer_ephemeral: bytes = b""  # the peer's ephemeral key: what the replay record remembers


def _handshake(
    keys: LinkKeys, initiator: bool, rng: Rng, encapsulate: Encapsulate | None
) -> HandshakeState:
    dh = DH_FUNCTIONS["25519"]
    return HandshakeState(
        PROTOCOL_NAME,
        initiator=initiator,
        prologue=prologue(keys.link_id),
        s=dh.keypair(keys.local_static),
        rs=keys.peer_static,
        psks=[keys.psk],
        rng=rng,
        encapsulate=encapsulate,
    )


def _payload(now_ns: int, app_data: bytes) -> bytes:
    if not 0 <= now_ns < 2**64:
        raise NoiseStateError(f"a handshake timestamp is 0 to 2^64-1 ns, not {now_ns}")
    return _PAYLOAD.pack(PROTOCOL_VERSION, now_ns) + app_data


def _parse_payload(payload: bytes) -> tuple[int, bytes]:
    if len(payload) < _PAYLOAD.size:
        raise HandshakeError("handshake payload is too short")
    version, sent_ns = _PAYLOAD.unpack_from(payload)
    if version != PROTOCOL_VERSION:
        raise HandshakeError(
            f"peer speaks hotline protocol version {version}, we speak {PROTOCOL_VERSION}"
        )
    return sent_ns, payload[_PAYLOAD.size :]


class Initiator:
    """The side that dials: writes message 1, reads message 2."""

    def __init__(self, keys: LinkKeys, *, rng: Rng, encapsulate: Encapsulate | None = None):
        self._state = _handshake(keys, True, rng, encapsulate)
        self._sent_ns = 0

    def start(self, now_ns: int, app_data: bytes = b"") -> bytes:
        """Message 1, with a fresh ephemeral key from `rng` (the responder remembers it)."""
        self._sent_ns = now_ns
        return self._state.write_message(_payload(now_ns, app_data))

    def finish(self, message: bytes, now_ns: int) -> HandshakeResult:
        """Read message 2 and return the session.

        Raises:
            HandshakeError: message 2 is truncated, altered, from a peer without the pinned key or
                PSK, or of another protocol version. This Initiator can still read a genuine one.
        """
        saved = self._state.save()
        payload = self._state.read_message(message)
        try:
            peer_ns, app_data = _parse_payload(payload)
        except HandshakeError:
            self._state.restore(saved)
            raise
        send, receive = self._state.split()
        session = Session(send, receive, self._state.handshake_hash, initiator=True)
        # The peer's clock read between our send and our receipt: assume it was read half-way.
        session.clock_offset_ns = peer_ns - (self._sent_ns + now_ns) // 2
        return HandshakeResult(session, peer_ns, app_data, self._state.re or b"")


class Responder:
    """The side that listens: reads message 1, writes message 2.

    A first message it accepts is not yet accepted for good: the station must then record its
    ephemeral key (`HandshakeResult.peer_ephemeral`) in the link's replay record, refusing it if
    it is there already, before sending message 2 (docs/protocol.md §3.6, check 8).

    Args:
        floor_ns: a first message must be newer than this: the floor of the station's replay
            record (the greatest timestamp it has forgotten).
        newest_accepted_ns: the same bound under its former name (the newest timestamp accepted,
            the guard before the replay record, which refused genuine messages that came late);
            the higher of the two applies.
        max_skew_ns: how far the initiator's clock may be from ours; also the replay record's
            window.
    """

    def __init__(
        self,
        keys: LinkKeys,
        *,
        rng: Rng,
        floor_ns: int = 0,
        newest_accepted_ns: int = 0,
        max_skew_ns: int = DEFAULT_MAX_SKEW_NS,
        encapsulate: Encapsulate | None = None,
    ):
        self._state = _handshake(keys, False, rng, encapsulate)
        self._floor = max(floor_ns, newest_accepted_ns)
        self._max_skew = max_skew_ns

    def respond(
        self, message: bytes, now_ns: int, app_data: bytes = b""
    ) -> tuple[HandshakeResult, bytes]:
        """Read message 1, write message 2, and return the session with message 2 to send.

        Raises:
            HandshakeError: message 1 is truncated, altered, replayed, too far from our clock,
                or from a peer without the pinned key or PSK. Nothing changed: this Responder
                can still accept a genuine message 1.
        """
        saved = self._state.save()
        payload = self._state.read_message(message)
        try:
            peer_ns, peer_app = _parse_payload(payload)
            self._check_freshness(peer_ns, now_ns)
            reply = self._state.write_message(_payload(now_ns, app_data))
        except Exception:
            self._state.restore(saved)
            raise
        send, receive = self._state.split()
        session = Session(send, receive, self._state.handshake_hash, initiator=False)
        session.clock_offset_ns = peer_ns - now_ns  # one-way: includes the network delay
        return HandshakeResult(session, peer_ns, peer_app, self._state.re or b""), reply

    def _check_freshness(self, peer_ns: int, now_ns: int) -> None:
        if peer_ns <= self._floor:
            raise HandshakeError(
                "handshake replayed: its timestamp is not newer than the replay record's floor"
            )
        if abs(peer_ns - now_ns) > self._max_skew:
            raise HandshakeError(
                f"handshake timestamp is {(peer_ns - now_ns) / 1e9:+.0f} s from our clock "
                f"(allowed ±{self._max_skew / 1e9:.0f} s): replayed, or a clock is wrong"
            )


class Session:
    """An established session: seals and opens transport messages, strictly in order.

    A transport message is an 8-byte big-endian counter followed by the Noise ciphertext of the
    plaintext under that counter as nonce. Each direction has its own key, REKEYed every
    REKEY_INTERVAL messages. A message that is replayed, reordered, altered or truncated is
    rejected and the receiving state stays as it was.
    """

    def __init__(
        self, i_to_r: CipherState, r_to_i: CipherState, handshake_hash: bytes, *, initiator: bool
    ):
        self._send, self._receive = (i_to_r, r_to_i) if initiator else (r_to_i, i_to_r)
        self.handshake_hash = handshake_hash  # unique per session: use it as the session id
        self.initiator = initiator
        self.clock_offset_ns = 0
        self.confirmed = initiator  # a responder knows the peer is live only once it reads from it

    @property
    def sent(self) -> int:
        return self._send.n

    @property
    def received(self) -> int:
        return self._receive.n

    def seal(self, plaintext: bytes) -> bytes:
        if len(plaintext) > MAX_PLAINTEXT:
            raise NoiseStateError(
                f"transport plaintext of {len(plaintext)} bytes exceeds {MAX_PLAINTEXT}"
            )
        n = self._send.n
        if n and n % REKEY_INTERVAL == 0:
            self._send.rekey()
        return n.to_bytes(HEADER_LEN, "big") + self._send.encrypt_with_ad(b"", plaintext)

    def open(self, message: bytes) -> bytes:
        """Raises TransportError; on error the session can still open the genuine message."""
        if len(message) < HEADER_LEN + TAG_LEN:
            raise TransportError("transport message is truncated")
        if len(message) > HEADER_LEN + MAX_NOISE_MESSAGE:
            raise TransportError("transport message is too long")
        n = int.from_bytes(message[:HEADER_LEN], "big")
        expected = self._receive.n
        if n < expected:
            raise TransportError(f"transport message {n} replayed (expected {expected})")
        if n > expected:
            raise TransportError(f"transport message {n} out of order (expected {expected})")
        rekeyed = n and n % REKEY_INTERVAL == 0
        saved_key = self._receive.k
        if rekeyed:
            self._receive.rekey()
        try:
            plaintext = self._receive.decrypt_at(n, b"", message[HEADER_LEN:])
        except Exception:
            if rekeyed:
                self._receive.initialize_key(saved_key)
                self._receive.n = n
            raise TransportError(f"transport message {n} failed authentication (altered)") from None
        self._receive.n = n + 1
        self.confirmed = True
        return plaintext
