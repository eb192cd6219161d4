"""What every harness shares: two stations with fixed keys, their link, a clock, deterministic
randomness, and the small formats the harnesses read their input in.

Everything is fixed, so that libFuzzer sees the same behaviour for the same input (its corpus and
its crash files only mean something then), and so that seeds written by one process are valid in
another: a genuine handshake message or a signed envelope made here verifies in every harness.
London is the station under test; Moscow is the peer whose bytes arrive.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from collections.abc import Callable, Iterable
from typing import TypeVar

from hotline.crypto.identity import StationIdentity
from hotline.crypto.session import LinkKeys, link_id_for
from hotline.errors import RemoteError
from hotline.protocol.state import LinkConfig

__all__ = [
    "LINK_ID",
    "LONDON",
    "LONDON_CONFIG",
    "LONDON_KEYS",
    "MOSCOW",
    "MOSCOW_CONFIG",
    "MOSCOW_KEYS",
    "SECOND",
    "T0",
    "deterministic_rng",
    "join_steps",
    "mode",
    "refused",
    "split_steps",
    "with_mode",
]

SECOND = 1_000_000_000
T0 = 1_800_000_000 * SECOND  # every harness's "now" (2027), as the tests use

LONDON = StationIdentity(bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32)
MOSCOW = StationIdentity(bytes([4]) * 32, bytes([5]) * 32, bytes([6]) * 32)
LINK_ID = link_id_for(LONDON.public, MOSCOW.public)
_PSK = bytes([7]) * 32
LONDON_KEYS = LinkKeys(LINK_ID, LONDON.dh_seed, MOSCOW.public.dh, _PSK)
MOSCOW_KEYS = LinkKeys(LINK_ID, MOSCOW.dh_seed, LONDON.public.dh, _PSK)
LONDON_CONFIG = LinkConfig(LINK_ID, LONDON, MOSCOW.public)
MOSCOW_CONFIG = LinkConfig(LINK_ID, MOSCOW, LONDON.public)

_T = TypeVar("_T")


def deterministic_rng(label: bytes) -> Callable[[int], bytes]:
    """A fresh stream of "random" bytes, the same for the same label: SHA-256 in counter mode.
    Fine for ephemeral keys in a harness; never for a station."""
    counter = itertools.count()

    def draw(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(label + next(counter).to_bytes(8, "big")).digest()
        return out[:n]

    return draw


def refused(call: Callable[[], _T]) -> _T | None:
    """The call's result, or None if it refused the input as documented (a RemoteError). Any
    other exception goes through: to the fuzzer, a crash."""
    try:
        return call()
    except RemoteError:
        return None


def mode(data: bytes, count: int) -> tuple[int, bytes]:
    """A harness with several entry points reads its first byte as the choice of one."""
    return (data[0] % count, data[1:]) if data else (0, b"")


def with_mode(choice: int, payload: bytes) -> bytes:
    return bytes([choice]) + payload


_STEP = struct.Struct(">BH")


def split_steps(data: bytes) -> list[tuple[int, bytes]]:
    """A sequence of (op, bytes) steps: each a byte, a 16-bit big-endian length, then that many
    bytes (fewer if the input ends first). How a harness reads a conversation, not one message."""
    steps: list[tuple[int, bytes]] = []
    offset = 0
    while offset + _STEP.size <= len(data):
        op, length = _STEP.unpack_from(data, offset)
        offset += _STEP.size
        steps.append((op, data[offset : offset + length]))
        offset += length
    return steps


def join_steps(steps: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(_STEP.pack(op, len(chunk)) + chunk for op, chunk in steps)
