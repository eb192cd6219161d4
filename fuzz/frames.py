"""Harness: link packets and frames (hotline.protocol.frames), as the link core acts on them.

A packet is what one Noise transport message carries; `LinkCore.receive` decodes it strictly
(`decode_packet`) and applies each frame. A packet or frame it refuses closes the session with
the reason: the core catches its own ProtocolError, so here *any* exception out of `receive` is a
finding. London's core has sent two envelopes (so a receipt has something to cover) and has one
session open to Moscow. Entry points:

    0  packet        one packet, on a session whose peer has not said hello yet
    1  after hello   one packet after Moscow's genuine hello: the session is ready
    2  envelope      the bytes as an envelope body that Moscow signed (Ed25519): what a peer
                     with its own key may send; the link's rules, not the signature, must hold
    3  receipt       the same for a receipt body
    4  checkpoint    the same for a checkpoint body (hybrid-signed)

After each packet the harness encodes what the core answers (`Output.packets`) and ticks it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from fuzz.common import (
    LINK_ID,
    LONDON_CONFIG,
    MOSCOW,
    MOSCOW_CONFIG,
    SECOND,
    T0,
    mode,
    with_mode,
)
from hotline.protocol.envelope import Lane, MessageType
from hotline.protocol.frames import (
    MAX_PACKET,
    Ask,
    CheckpointFrame,
    Chunk,
    Close,
    EnvelopeFrame,
    Frame,
    HeldFrame,
    Ping,
    Pong,
    ReceiptFrame,
    Want,
    encode_packets,
)
from hotline.protocol.link import LinkCore
from hotline.protocol.state import LinkState, Output
from hotline.protocol.statements import Checkpoint, Receipt

__all__ = ["seeds", "test_one_input"]

MODES = 5
SID = 1


@functools.cache
def _london_state() -> LinkState:
    """London after sending a FLASH and a ROUTINE message that Moscow has not receipted."""
    core = LinkCore(LONDON_CONFIG, LinkState.new(LONDON_CONFIG), T0)
    sent = tuple(
        core.send(lane, MessageType.PRINCIPAL, "en", f"to Moscow {lane.name}", T0).batch.outbound[0]
        for lane in (Lane.FLASH, Lane.ROUTINE)
    )
    fresh = LinkState.new(LONDON_CONFIG)
    return LinkState(
        tuple(core.out.heads), fresh.receipted, sent, fresh.inbound, bytes(32), None, None
    )


@functools.cache
def _moscow() -> tuple[LinkCore, Frame]:
    """Moscow's core, and its hello on a new session."""
    core = LinkCore(MOSCOW_CONFIG, LinkState.new(MOSCOW_CONFIG), T0)
    hello = core.session_opened(SID, T0).frames[0][1]
    return core, hello


def _hello_packet() -> bytes:
    return encode_packets([_moscow()[1]])[0]


def _receive(packets: list[bytes]) -> None:
    core = LinkCore(LONDON_CONFIG, _london_state(), T0)
    core.session_opened(SID, T0)
    for packet in packets:
        _sent(core.receive(SID, packet, T0))
    _sent(core.tick(T0 + SECOND))


def _sent(output: Output) -> None:
    """What the driver sends next must encode, each packet fitting one transport message."""
    for _, packet in output.packets:
        assert len(packet) <= MAX_PACKET


def _signed_packet(frame: Frame) -> list[bytes]:
    return [_hello_packet(), *encode_packets([frame])]


def test_one_input(data: bytes) -> None:
    choice, payload = mode(data, MODES)
    if choice == 0:
        _receive([payload])
    elif choice == 1:
        _receive([_hello_packet(), payload])
    elif choice == 2:
        signature = MOSCOW.sign_ed25519("envelope", payload)
        _receive(_signed_packet(EnvelopeFrame(payload, signature)))
    elif choice == 3:
        _receive(_signed_packet(ReceiptFrame(payload, MOSCOW.sign_ed25519("receipt", payload))))
    else:
        _receive(_signed_packet(CheckpointFrame(payload, MOSCOW.sign("checkpoint", payload))))


def _moscow_frames() -> tuple[list[Frame], bytes, bytes, bytes]:
    """Moscow's genuine frames, and the bodies of an envelope, a receipt and a checkpoint."""
    core, hello = _moscow()
    envelope = core.send(Lane.FLASH, MessageType.PRINCIPAL, "ru", "ответ", T0).batch.outbound[0]
    london_heads = tuple(_london_state().outbound)
    receipt = Receipt.create(MOSCOW, LINK_ID, LONDON_CONFIG.direction, london_heads, T0)
    moscow_heads = tuple(core.out.heads)
    checkpoint = Checkpoint.create(
        MOSCOW, LINK_ID, MOSCOW_CONFIG.direction, moscow_heads, london_heads, T0
    )
    sha = bytes(range(32))
    frames: list[Frame] = [
        hello,
        EnvelopeFrame(envelope.body_bytes, envelope.signature),
        ReceiptFrame(receipt.signed.body_bytes, receipt.signed.signature),
        CheckpointFrame(checkpoint.signed.body_bytes, checkpoint.signed.signature),
        Ping(1, T0),
        Pong(0, 0, T0),
        Want(sha, 0, 100),
        Chunk(sha, 0, b"bytes of a file"),
        HeldFrame(receipt.signed.body_bytes, receipt.signed.signature),
        Ask(0, 1),
        Close(0, "bye"),
    ]
    return frames, envelope.body_bytes, receipt.signed.body_bytes, checkpoint.signed.body_bytes


def seeds() -> Iterator[bytes]:
    frames, envelope, receipt, checkpoint = _moscow_frames()
    for frame in frames:
        yield with_mode(0, encode_packets([frame])[0])
        yield with_mode(1, encode_packets([frame])[0])
    yield with_mode(0, encode_packets(frames)[0])  # every kind in one packet, hello first
    yield with_mode(1, encode_packets(frames[1:4])[0])
    yield with_mode(2, envelope)
    yield with_mode(3, receipt)
    yield with_mode(4, checkpoint)
