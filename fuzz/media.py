"""Harness: call media datagrams (hotline.protocol.media), which arrive by UDP from anyone who
can reach the port. `MediaOpener.open`, with a real call key, refuses with MediaError, and a
refused datagram changes nothing: the replay window moves only for an authentic, fresh datagram
(docs/protocol.md §11). Entry points, each a sequence of datagrams (fuzz.common.split_steps):

    0  datagrams   the bytes as datagrams, opened in turn by one opener
    1  sealed      each step as a 13-byte header (version, receiver index, counter) and a
                   plaintext, sealed with the call's key under that header, as a peer in the call
                   could: the payload's layout and the replay window must hold on their own
    2  payload     the bytes as a datagram's plaintext: decode_payload

Whatever arrives, no counter is accepted twice.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from fuzz.common import T0, join_steps, mode, refused, split_steps, with_mode
from hotline.errors import MediaError
from hotline.protocol.media import (
    HEADER_LEN,
    AudioFrame,
    MediaOpener,
    MediaPayload,
    MediaSealer,
    Probe,
    ProbeReply,
    decode_payload,
    media_keys,
)

__all__ = ["seeds", "test_one_input"]

MODES = 3
INDEX = 0x01020304  # the receiver index London's opener listens under
KEYS = media_keys(bytes(range(16)), bytes([1]) * 32, bytes([2]) * 32)
KEY = KEYS.caller_to_callee
_AEAD = ChaCha20Poly1305(KEY)


def _seal(step: bytes) -> bytes:
    header, plaintext = step[:HEADER_LEN], step[HEADER_LEN:]
    if len(header) < HEADER_LEN:
        return step
    nonce = bytes(4) + header[5:HEADER_LEN]  # zeros(4) || the header's counter (§11.3)
    return header + _AEAD.encrypt(nonce, plaintext, header)


def _open_all(datagrams: list[bytes]) -> None:
    opener = MediaOpener(KEY, INDEX, window=64)
    accepted: set[int] = set()
    for datagram in datagrams:
        before = (opener.highest, opener._seen)  # the window itself: a refusal must not move it
        try:
            counter, _ = opener.open(datagram)
        except MediaError:
            assert (opener.highest, opener._seen) == before, "a refused datagram moved the window"
            continue
        assert counter not in accepted, f"counter {counter} accepted twice"
        accepted.add(counter)


def test_one_input(data: bytes) -> None:
    choice, payload = mode(data, MODES)
    if choice == 0:
        _open_all([chunk for _, chunk in split_steps(payload)])
    elif choice == 1:
        _open_all([_seal(chunk) for _, chunk in split_steps(payload)])
    else:
        refused(lambda: decode_payload(payload))


def seeds() -> Iterator[bytes]:
    sealer = MediaSealer(KEY, INDEX)
    payloads: list[MediaPayload] = [
        AudioFrame(0, 0, 0, 0, b"\xfc" + bytes(60)),
        Probe(1, 7, T0),
        ProbeReply(2, 7, T0),
        AudioFrame(1, 960, 1, 0, b"\xfc\xff\xfe"),
    ]
    datagrams = [sealer.seal(p) for p in payloads]
    yield with_mode(0, join_steps((0, d) for d in [*datagrams, datagrams[1], datagrams[0]]))
    # The same plaintexts under headers of our choosing: counters out of order, then repeated.
    plain = [
        struct.pack(">BIQ", 1, INDEX, counter) + p.encode()
        for counter, p in zip((5, 3, 70, 3), payloads, strict=True)
    ]
    yield with_mode(1, join_steps((0, step) for step in plain))
    for p in payloads:
        yield with_mode(2, p.encode())
