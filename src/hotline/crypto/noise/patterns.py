"""Handshake patterns and the protocol-name grammar (Noise rev 34, sections 7 and 8; HFS section 5).

A pattern is kept as the spec writes it: pre-message tokens for each side, then messages that
alternate initiator -> responder -> initiator ... Modifiers (`psk0`..`pskN`, `hfs`) rewrite a base
pattern into a new one, so the state machine never needs to know which modifiers made it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hotline.errors import UnsupportedError

__all__ = ["BASE_PATTERNS", "HandshakePattern", "NoiseProtocolName", "parse_protocol_name"]

# Section 7.4 (one-way), 7.5 (fundamental interactive) and 7.6 (deferred), in the spec's notation.
# "->" is sent by the initiator, "<-" by the responder; lines before "..." are pre-messages.
_PATTERN_TEXT = {
    "N": "<- s | ... | -> e, es",
    "K": "-> s | <- s | ... | -> e, es, ss",
    "X": "<- s | ... | -> e, es, s, ss",
    "NN": "-> e | <- e, ee",
    "NK": "<- s | ... | -> e, es | <- e, ee",
    "NX": "-> e | <- e, ee, s, es",
    "KN": "-> s | ... | -> e | <- e, ee, se",
    "KK": "-> s | <- s | ... | -> e, es, ss | <- e, ee, se",
    "KX": "-> s | ... | -> e | <- e, ee, se, s, es",
    "XN": "-> e | <- e, ee | -> s, se",
    "XK": "<- s | ... | -> e, es | <- e, ee | -> s, se",
    "XX": "-> e | <- e, ee, s, es | -> s, se",
    "IN": "-> e, s | <- e, ee, se",
    "IK": "<- s | ... | -> e, es, s, ss | <- e, ee, se",
    "IX": "-> e, s | <- e, ee, se, s, es",
    "NK1": "<- s | ... | -> e | <- e, ee, es",
    "NX1": "-> e | <- e, ee, s | -> es",
    "X1N": "-> e | <- e, ee | -> s | <- se",
    "X1K": "<- s | ... | -> e, es | <- e, ee | -> s | <- se",
    "XK1": "<- s | ... | -> e | <- e, ee, es | -> s, se",
    "X1K1": "<- s | ... | -> e | <- e, ee, es | -> s | <- se",
    "X1X": "-> e | <- e, ee, s, es | -> s | <- se",
    "XX1": "-> e | <- e, ee, s | -> es, s, se",
    "X1X1": "-> e | <- e, ee, s | -> es, s | <- se",
    "K1N": "-> s | ... | -> e | <- e, ee | -> se",
    "K1K": "-> s | <- s | ... | -> e, es | <- e, ee | -> se",
    "KK1": "-> s | <- s | ... | -> e | <- e, ee, se, es",
    "K1K1": "-> s | <- s | ... | -> e | <- e, ee, es | -> se",
    "K1X": "-> s | ... | -> e | <- e, ee, s, es | -> se",
    "KX1": "-> s | ... | -> e | <- e, ee, se, s | -> es",
    "K1X1": "-> s | ... | -> e | <- e, ee, s | -> se, es",
    "I1N": "-> e, s | <- e, ee | -> se",
    "I1K": "<- s | ... | -> e, es, s | <- e, ee | -> se",
    "IK1": "<- s | ... | -> e, s | <- e, ee, se, es",
    "I1K1": "<- s | ... | -> e, s | <- e, ee, es | -> se",
    "I1X": "-> e, s | <- e, ee, s, es | -> se",
    "IX1": "-> e, s | <- e, ee, se, s | -> es",
    "I1X1": "-> e, s | <- e, ee, s | -> se, es",
}

ONE_WAY = frozenset({"N", "K", "X"})
DH_TOKENS = frozenset({"ee", "es", "se", "ss"})


@dataclass(frozen=True, slots=True)
class HandshakePattern:
    """A handshake pattern. `messages[i]` is sent by the initiator when i is even."""

    name: str
    initiator_pre: tuple[str, ...]
    responder_pre: tuple[str, ...]
    messages: tuple[tuple[str, ...], ...]
    one_way: bool

    @property
    def has_psk(self) -> bool:
        return any("psk" in m for m in self.messages)

    @property
    def psk_count(self) -> int:
        return sum(m.count("psk") for m in self.messages)


def _parse_pattern(name: str, text: str) -> HandshakePattern:
    pre: dict[str, tuple[str, ...]] = {"->": (), "<-": ()}
    messages: list[tuple[str, ...]] = []
    lines = [line.strip() for line in text.split("|")]
    if "..." in lines:
        split = lines.index("...")
        for line in lines[:split]:
            arrow, tokens = line.split(" ", 1)
            pre[arrow] = tuple(t.strip() for t in tokens.split(","))
        lines = lines[split + 1 :]
    for line in lines:
        _arrow, tokens = line.split(" ", 1)
        messages.append(tuple(t.strip() for t in tokens.split(",")))
    return HandshakePattern(name, pre["->"], pre["<-"], tuple(messages), name in ONE_WAY)


BASE_PATTERNS: dict[str, HandshakePattern] = {
    name: _parse_pattern(name, text) for name, text in _PATTERN_TEXT.items()
}


def _apply_psk(pattern: HandshakePattern, index: int) -> tuple[tuple[str, ...], ...]:
    """pskN (section 9.3): psk0 opens the first message, pskN closes message N."""
    messages = [list(m) for m in pattern.messages]
    if index == 0:
        messages[0].insert(0, "psk")
    elif index <= len(messages):
        messages[index - 1].append("psk")
    else:
        raise UnsupportedError(f"modifier psk{index} is past the last message of {pattern.name}")
    return tuple(tuple(m) for m in messages)


def _apply_hfs(pattern: HandshakePattern) -> tuple[tuple[str, ...], ...]:
    """hfs (HFS section 5): `e1` after the first `e`, or after the first DH token of that same
    message when it has one (so the KEM public key travels encrypted); `ekem1` after the first
    `ee`. The spec's example table shows KKhfs as `e, e1, es, ss`, which contradicts its own rule;
    we follow the rule, which gives `e, es, e1, ss`."""
    messages = [list(m) for m in pattern.messages]
    if pattern.one_way or not any("ee" in m for m in messages):
        raise UnsupportedError(f"modifier hfs needs an interactive pattern with ee: {pattern.name}")
    for message in messages:
        if "e" in message:
            dh = [i for i, token in enumerate(message) if token in DH_TOKENS]
            message.insert(dh[0] + 1 if dh else message.index("e") + 1, "e1")
            break
    for message in messages:
        if "ee" in message:
            message.insert(message.index("ee") + 1, "ekem1")
            break
    return tuple(tuple(m) for m in messages)


_BASE_RE = re.compile(r"^([NKXI]1?(?:[NKXI]1?)?)(.*)$")


def modified_pattern(full_name: str) -> HandshakePattern:
    """Turn a pattern name with modifiers (e.g. `KKpsk0+hfs`) into the pattern it denotes."""
    match = _BASE_RE.match(full_name)
    if not match or match.group(1) not in BASE_PATTERNS:
        raise UnsupportedError(f"unsupported handshake pattern {full_name!r}")
    pattern = BASE_PATTERNS[match.group(1)]
    modifiers = match.group(2).split("+") if match.group(2) else []
    for modifier in modifiers:
        if re.fullmatch(r"psk\d", modifier):
            messages = _apply_psk(pattern, int(modifier[3:]))
        elif modifier == "hfs":
            messages = _apply_hfs(pattern)
        else:
            raise UnsupportedError(f"unsupported pattern modifier {modifier!r} in {full_name!r}")
        pattern = HandshakePattern(
            full_name, pattern.initiator_pre, pattern.responder_pre, messages, pattern.one_way
        )
    return pattern


@dataclass(frozen=True, slots=True)
class NoiseProtocolName:
    """The parts of `Noise_<pattern>_<dh>[+<kem>]_<cipher>_<hash>` (section 8)."""

    full: str
    pattern: HandshakePattern
    dh: str
    kem: str | None
    cipher: str
    hash: str


def parse_protocol_name(name: str) -> NoiseProtocolName:
    parts = name.split("_")
    if len(parts) != 5 or parts[0] != "Noise":
        raise UnsupportedError(f"not a Noise protocol name: {name!r}")
    _, pattern_name, dh_name, cipher, hash_name = parts
    dh, _, kem = dh_name.partition("+")
    pattern = modified_pattern(pattern_name)
    uses_kem = any("e1" in m for m in pattern.messages)
    if uses_kem != bool(kem):
        raise UnsupportedError(f"{name!r}: the hfs modifier and a KEM name go together")
    return NoiseProtocolName(name, pattern, dh, kem or None, cipher, hash_name)
