"""Harness: call signalling frames (hotline.protocol.callframes), decoded from a packet and
applied by a link's call table (hotline.protocol.calls), as a station does with each
`CallFrameReceived`.

The input is a conversation (fuzz.common.split_steps): each step is the peer's packet, or one of
our own acts (place, answer, decline, end a call) or a tick of the clock. A packet that does not
decode is refused with ProtocolError; a call frame that breaks a call's rules with CallError,
and then nothing in the table may have changed (docs/calls.md §3). Whatever the peer does, at
most one call is live, and every frame the table answers with encodes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from fuzz.common import SECOND, T0, join_steps, refused, split_steps
from hotline.errors import CallError, CallRefused
from hotline.protocol.callframes import (
    CALL_FRAME_TYPES,
    CallAnswer,
    CallEnd,
    CallFrame,
    CallInvite,
    CallKeepalive,
    CallMedia,
    CallRinging,
)
from hotline.protocol.calls import CallTable, Effects
from hotline.protocol.envelope import Lane
from hotline.protocol.frames import Frame, decode_packet, encode_packets

__all__ = ["seeds", "test_one_input"]

PACKET, PLACE, ANSWER, DECLINE, END, TICK = range(6)
_SHARE = bytes(range(32))


def _ours(number: int) -> bytes:
    """The id of the `number`th call we place in a conversation (from 1)."""
    return bytes([number]) * 16


class _Conversation:
    def __init__(self) -> None:
        self.table = CallTable()
        self.now = T0
        self.placed = 0

    def step(self, op: int, chunk: bytes) -> Effects:
        if op == PACKET:
            return self.packet(chunk)
        if op == TICK:
            self.now += int.from_bytes(chunk[:4], "big") * 1_000_000  # up to 50 days, in ms
            return self.table.tick(self.now, 60 * SECOND, 10 * SECOND)
        try:
            return self.act(op)
        except CallRefused:  # our own act, not allowed in the call's state: the API's answer
            return Effects()

    def act(self, op: int) -> Effects:
        live = self.table.live
        call_id = live.call_id if live is not None else b"\x00" * 16
        if op == PLACE:
            self.placed += 1
            return self.table.place(
                _ours(self.placed), Lane.FLASH, "alice", "principal", True, _SHARE, 7, 20, self.now
            )
        if op == ANSWER:
            return self.table.answer(call_id, "bob", "interpreter", _SHARE, 8, self.now)
        if op == DECLINE:
            return self.table.decline(call_id, "busy here", self.now)
        return self.table.end(call_id, "done", self.now)

    def packet(self, packet: bytes) -> Effects:
        effects = Effects()
        for frame in refused(lambda: decode_packet(packet)) or []:
            if isinstance(frame, CALL_FRAME_TYPES):
                effects.merge(self.receive(frame))
        return effects

    def receive(self, frame: CallFrame) -> Effects:
        before = copy.deepcopy(self.table.calls)
        try:
            return self.table.receive(frame, self.now)
        except CallError:
            assert self.table.calls == before, "a refused call frame changed the call table"
            return Effects()


def test_one_input(data: bytes) -> None:
    conversation = _Conversation()
    for op, chunk in _steps(data):
        effects = conversation.step(op % 6, chunk)
        frames: list[Frame] = [*effects.frames]
        encode_packets(frames)
        assert sum(call.live for call in conversation.table.calls.values()) <= 1


def _steps(data: bytes) -> list[tuple[int, bytes]]:
    return split_steps(data)[:64]  # a conversation, not a flood: keeps each run short


def _packet(*frames: Frame) -> tuple[int, bytes]:
    return PACKET, encode_packets(list(frames))[0]


def seeds() -> Iterator[bytes]:
    theirs = bytes(range(16))
    invite = CallInvite(theirs, 0, "Иванов", "principal", True, _SHARE, 99, 20)
    yield join_steps([  # Moscow calls; we answer; it keeps the call up and sends media; it ends
        _packet(invite),
        (ANSWER, b""),
        _packet(CallKeepalive(theirs, True), CallMedia(theirs, b"\x01" * 40)),
        (TICK, (2500).to_bytes(4, "big")),
        _packet(CallEnd(theirs, "bye")),
        _packet(invite),
    ])  # fmt: skip
    ours = _ours(1)
    yield join_steps([  # we call; Moscow rings and answers; we end it; Moscow's copy comes late
        (PLACE, b""),
        _packet(CallRinging(ours)),
        _packet(CallAnswer(ours, "Петров", "principal", _SHARE, 5)),
        (TICK, (3_000).to_bytes(4, "big")),
        (END, b""),
        _packet(CallAnswer(ours, "Петров", "principal", _SHARE, 5)),
    ])  # fmt: skip
    yield join_steps([_packet(invite), (DECLINE, b""), (TICK, (90_000).to_bytes(4, "big"))])
