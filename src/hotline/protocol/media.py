"""Call media datagrams: a call's keys, and the sealed datagrams that carry its audio and probes.

A call's signalling travels inside the link's Noise sessions; its media cannot (a Noise transport
session delivers strictly in order, and media must survive loss, reordering and duplicates on
several paths at once). So each call derives its own keys from two random shares that the caller
and the callee exchanged inside those sessions (as post-quantum as the link itself), and sends
every media frame as a datagram of its own:

    header = u8 version || u32be receiver_index || u64be counter          (13 bytes)
    datagram = header || ChaCha20-Poly1305(key, zeros(4) || u64be counter, plaintext, ad=header)
    plaintext = u8 kind || body   (AudioFrame, Probe, ProbeReply)

The counter is explicit, so a receiver opens datagrams in any order; a sliding replay window
(RFC 6479, as WireGuard keeps one) accepts each counter at most once. A refused datagram changes
nothing: only a datagram that passed every check moves the window. docs/protocol.md section 11
is the byte-by-byte specification. Pure: no sockets, no clock, no randomness.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hotline.errors import MediaError, MediaExhausted

__all__ = [
    "CALL_ID_LEN",
    "DEFAULT_WINDOW",
    "HEADER_LEN",
    "MAX_DATAGRAM",
    "MAX_OPUS",
    "MAX_WINDOW",
    "MEDIA_VERSION",
    "MIN_DATAGRAM",
    "REJECT_AFTER",
    "SHARE_LEN",
    "AudioFrame",
    "MediaKeys",
    "MediaKind",
    "MediaOpener",
    "MediaPayload",
    "MediaSealer",
    "Probe",
    "ProbeReply",
    "decode_payload",
    "media_keys",
    "peek_receiver_index",
]

MEDIA_VERSION = 1
CALL_ID_LEN, SHARE_LEN, KEY_LEN, TAG_LEN = 16, 32, 32, 16
_INFO = b"hotline-call-media-v1 "
_HEADER = struct.Struct(">BIQ")  # version, receiver_index, counter (section 11.3)
_AUDIO = struct.Struct(">BIIBB")  # kind, seq, timestamp, path, flags; the Opus packet follows
_PROBE = struct.Struct(">BBIQ")  # kind, path, probe_id, sent_ns or echo_ns
HEADER_LEN = _HEADER.size  # 13
# 1200 bytes, as QUIC (RFC 9000 section 14): fits the IPv6 minimum MTU of 1280 with room for
# IP/UDP headers and a tunnel, so a datagram is never fragmented.
MAX_DATAGRAM = 1200
MIN_DATAGRAM = HEADER_LEN + TAG_LEN + 1  # a kind byte at least
MAX_OPUS = MAX_DATAGRAM - HEADER_LEN - TAG_LEN - _AUDIO.size  # 1160
# As WireGuard's Reject-After-Messages (2^64 - 2^13 - 1, its paper section 6.1): counters stop
# a largest window's width short of 2^64, so no arithmetic near the top can wrap and 2^64 - 1
# (Noise's reserved nonce) is never used. Out of reach (200 datagrams/s for 2.9e9 years), it
# guards against a bug or a forged counter: a sealer that reaches it refuses, never reuses a nonce.
REJECT_AFTER = 2**64 - 2**13
MAX_WINDOW = 2**13  # the margin above: a window never reaches past it
DEFAULT_WINDOW = 2048  # 50 frames/s on 4 paths: about 10 s of reordering


class MediaKind(IntEnum):
    AUDIO = 1
    PROBE = 2
    PROBE_REPLY = 3


def _check_uint(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} is a {bits}-bit unsigned integer, not {value}")


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """One Opus packet: frame `seq` (from 0), at `timestamp` on the 48 kHz sample clock."""

    seq: int
    timestamp: int
    path: int  # the sender's index of the path this copy was sent on
    flags: int  # reserved: 0 (a receiver refuses anything else)
    opus: bytes

    def __post_init__(self) -> None:
        _check_uint("seq", self.seq, 32)
        _check_uint("timestamp", self.timestamp, 32)
        _check_uint("path", self.path, 8)
        if self.flags != 0:
            raise ValueError("audio flags are reserved and must be 0")
        if not 1 <= len(self.opus) <= MAX_OPUS:
            raise ValueError(f"an Opus packet is 1 to {MAX_OPUS} bytes, not {len(self.opus)}")

    def encode(self) -> bytes:
        head = _AUDIO.pack(MediaKind.AUDIO, self.seq, self.timestamp, self.path, self.flags)
        return head + self.opus

    @classmethod
    def decode(cls, plaintext: bytes) -> AudioFrame:
        if len(plaintext) <= _AUDIO.size or plaintext[0] != MediaKind.AUDIO:
            raise MediaError("not an audio frame with an Opus packet")
        _, seq, timestamp, path, flags = _AUDIO.unpack_from(plaintext)
        if flags != 0:
            raise MediaError(f"unknown audio flags {flags:#04x}")
        if len(plaintext) - _AUDIO.size > MAX_OPUS:
            raise MediaError("Opus packet too long")
        return cls(seq, timestamp, path, flags, bytes(plaintext[_AUDIO.size :]))


def _check_probe(path: int, probe_id: int, ns: int) -> None:
    _check_uint("path", path, 8)
    _check_uint("probe_id", probe_id, 32)
    _check_uint("ns", ns, 64)


def _unpack_probe(kind: MediaKind, plaintext: bytes) -> tuple[int, int, int]:
    if len(plaintext) != _PROBE.size or plaintext[0] != kind:
        raise MediaError(f"not a {kind.name.lower()} of {_PROBE.size} bytes")
    _, path, probe_id, ns = _PROBE.unpack(plaintext)
    return path, probe_id, ns


@dataclass(frozen=True, slots=True)
class Probe:
    """A round-trip probe on one path; the peer answers with a ProbeReply on the same path."""

    path: int
    probe_id: int
    sent_ns: int  # the sender's clock; only the sender ever compares it

    def __post_init__(self) -> None:
        _check_probe(self.path, self.probe_id, self.sent_ns)

    def encode(self) -> bytes:
        return _PROBE.pack(MediaKind.PROBE, self.path, self.probe_id, self.sent_ns)

    @classmethod
    def decode(cls, plaintext: bytes) -> Probe:
        return cls(*_unpack_probe(MediaKind.PROBE, plaintext))


@dataclass(frozen=True, slots=True)
class ProbeReply:
    """The answer to a Probe: its path and id, and its sent_ns echoed unchanged."""

    path: int
    probe_id: int
    echo_ns: int

    def __post_init__(self) -> None:
        _check_probe(self.path, self.probe_id, self.echo_ns)

    def encode(self) -> bytes:
        return _PROBE.pack(MediaKind.PROBE_REPLY, self.path, self.probe_id, self.echo_ns)

    @classmethod
    def decode(cls, plaintext: bytes) -> ProbeReply:
        return cls(*_unpack_probe(MediaKind.PROBE_REPLY, plaintext))


MediaPayload = AudioFrame | Probe | ProbeReply
_DECODERS: dict[int, Callable[[bytes], MediaPayload]] = {
    MediaKind.AUDIO: AudioFrame.decode,
    MediaKind.PROBE: Probe.decode,
    MediaKind.PROBE_REPLY: ProbeReply.decode,
}


def decode_payload(plaintext: bytes) -> MediaPayload:
    """A datagram's plaintext, strictly: a known kind and exactly its layout, or MediaError."""
    decoder = _DECODERS.get(plaintext[0]) if plaintext else None
    if decoder is None:
        raise MediaError(f"unknown payload kind {plaintext[:1].hex() or 'none'}")
    return decoder(plaintext)


@dataclass(frozen=True, slots=True)
class MediaKeys:
    """One call's two media keys: the caller seals with the first, the callee with the second."""

    caller_to_callee: bytes = field(repr=False)
    callee_to_caller: bytes = field(repr=False)


def media_keys(call_id: bytes, caller_share: bytes, callee_share: bytes) -> MediaKeys:
    """HKDF-SHA256 (RFC 5869) of both shares, salted with the call id, expanded per direction."""
    if len(call_id) != CALL_ID_LEN:
        raise ValueError(f"a call id is {CALL_ID_LEN} bytes")
    if len(caller_share) != SHARE_LEN or len(callee_share) != SHARE_LEN:
        raise ValueError(f"a media share is {SHARE_LEN} bytes")

    def derive(direction: bytes) -> bytes:
        # Each derive is Extract(call_id, shares) then Expand(info): one extract, two expands.
        hkdf = HKDF(hashes.SHA256(), KEY_LEN, salt=call_id, info=_INFO + direction)
        return hkdf.derive(caller_share + callee_share)

    return MediaKeys(derive(b"caller-to-callee"), derive(b"callee-to-caller"))


def _aead(key: bytes, receiver_index: int) -> ChaCha20Poly1305:
    if len(key) != KEY_LEN:
        raise ValueError(f"a media key is {KEY_LEN} bytes")
    _check_uint("receiver_index", receiver_index, 32)
    return ChaCha20Poly1305(key)


def _nonce(counter: int) -> bytes:
    return bytes(4) + counter.to_bytes(8, "big")  # = zeros(4) || the header's counter bytes


class MediaSealer:
    """Seals one direction of one call. Keep exactly one per key, whatever the number of paths:
    a second sealer on the same key would reuse counters, hence nonces."""

    def __init__(self, key: bytes, receiver_index: int, *, counter: int = 0) -> None:
        self._aead = _aead(key, receiver_index)  # receiver_index: the index the peer receives under
        if not 0 <= counter <= REJECT_AFTER:
            raise ValueError(f"a media counter is 0 to {REJECT_AFTER}")
        self._receiver_index, self._counter = receiver_index, counter

    @property
    def counter(self) -> int:
        """The counter the next datagram will carry."""
        return self._counter

    def seal(self, payload: MediaPayload) -> bytes:
        """One datagram under the next counter (at most MAX_DATAGRAM bytes: see MAX_OPUS)."""
        counter = self._counter
        if counter >= REJECT_AFTER:
            raise MediaExhausted("this call's media counter is used up: end the call")
        header = _HEADER.pack(MEDIA_VERSION, self._receiver_index, counter)
        sealed = self._aead.encrypt(_nonce(counter), payload.encode(), header)
        self._counter = counter + 1
        return header + sealed


def peek_receiver_index(datagram: bytes) -> int | None:
    """The receiver index of a datagram that might be ours, to find its call before any crypto."""
    if not MIN_DATAGRAM <= len(datagram) <= MAX_DATAGRAM or datagram[0] != MEDIA_VERSION:
        return None
    return int.from_bytes(datagram[1:5], "big")


class MediaOpener:
    """Opens one direction of one call: any order, each counter once, nothing changed on refusal."""

    def __init__(self, key: bytes, receiver_index: int, window: int = DEFAULT_WINDOW) -> None:
        self._aead = _aead(key, receiver_index)  # receiver_index: the index we receive under
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"a replay window is 1 to {MAX_WINDOW} counters")
        self._receiver_index, self._window = receiver_index, window
        # RFC 6479's window as one Python int rather than its ring of words: bit i set means
        # counter top - i was accepted. top is -1 until the first datagram.
        self._top, self._seen = -1, 0

    @property
    def highest(self) -> int | None:
        """The highest counter accepted so far."""
        return None if self._top < 0 else self._top

    def open(self, datagram: bytes) -> tuple[int, MediaPayload]:
        """(counter, payload) of an authentic, fresh datagram; MediaError, and no change, if not."""
        datagram = bytes(datagram)
        if len(datagram) < MIN_DATAGRAM:
            raise MediaError(f"truncated: {len(datagram)} bytes")
        if len(datagram) > MAX_DATAGRAM:
            raise MediaError(f"too long: {len(datagram)} bytes")
        version, receiver_index, counter = _HEADER.unpack_from(datagram)
        if version != MEDIA_VERSION:
            raise MediaError(f"unknown version {version}")
        if receiver_index != self._receiver_index:
            raise MediaError("wrong receiver index")
        self._check_counter(counter)
        header = datagram[:HEADER_LEN]
        try:
            plaintext = self._aead.decrypt(_nonce(counter), datagram[HEADER_LEN:], header)
        except InvalidTag:
            raise MediaError("failed authentication") from None
        payload = decode_payload(plaintext)
        self._accept(counter)  # only now: a forgery must not move or fill the window
        return counter, payload

    def _check_counter(self, counter: int) -> None:
        if counter >= REJECT_AFTER:
            raise MediaError("counter beyond the limit")
        age = self._top - counter
        if age >= self._window:
            raise MediaError("too old")
        if age >= 0 and (self._seen >> age) & 1:
            raise MediaError("replayed")

    def _accept(self, counter: int) -> None:
        shift = counter - self._top
        if shift <= 0:
            self._seen |= 1 << -shift
        elif shift < self._window:
            self._seen = ((self._seen << shift) | 1) & ((1 << self._window) - 1)
            self._top = counter
        else:  # a jump of a whole window forgets it all (and never shifts by 2^63 bits)
            self._seen, self._top = 1, counter
