"""The link core, driven by hand: two cores, a wire we control, and the rules of DESIGN.md.

The simulator (tests/test_sim.py) attacks the same core with random faults; these tests pin down
each rule on its own, with the exact bytes a misbehaving peer would send.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import msgspec
import pytest

from hotline.crypto.identity import StationIdentity
from hotline.crypto.session import link_id_for
from hotline.protocol.envelope import ENVELOPE_VERSION, Envelope, EnvelopeBody, Lane, MessageType
from hotline.protocol.frames import (
    CheckpointFrame,
    Close,
    EnvelopeFrame,
    Frame,
    Hello,
    ReceiptFrame,
    decode_packet,
    encode_packets,
)
from hotline.protocol.link import SECOND, LinkCore
from hotline.protocol.outbound import WINDOW
from hotline.protocol.state import (
    Acknowledged,
    CheckpointReceived,
    LinkConfig,
    LinkState,
    MessageReceived,
    Output,
    ProtocolViolation,
    Receipted,
    RttMeasured,
    SessionClosed,
)
from hotline.protocol.statements import Head, Receipt

T0 = 1_800_000_000 * SECOND
SID = 1


@dataclass
class Side:
    core: LinkCore
    config: LinkConfig
    outputs: list[Output] = field(default_factory=list)

    @property
    def events(self) -> list[object]:
        return [e for o in self.outputs for e in o.events]


def _pair() -> tuple[Side, Side]:
    a, b = StationIdentity.from_random(os.urandom(96)), StationIdentity.from_random(os.urandom(96))
    link_id = link_id_for(a.public, b.public)
    ca, cb = LinkConfig(link_id, a, b.public), LinkConfig(link_id, b, a.public)
    side_a = Side(LinkCore(ca, LinkState.new(ca), T0), ca)
    return side_a, Side(LinkCore(cb, LinkState.new(cb), T0), cb)


def _flow(src: Side, dst: Side, output: Output, now: int = T0) -> None:
    """Deliver everything `output` sends, back and forth, until the wire is quiet."""
    queue = [(src, dst, output)]
    while queue:
        sender, receiver, out = queue.pop(0)
        sender.outputs.append(out)
        for sid, packet in out.packets:  # both sides number a session alike in these tests
            queue.append((receiver, sender, receiver.core.receive(sid, packet, now)))


def _connected() -> tuple[Side, Side]:
    a, b = _pair()
    hello_a, hello_b = a.core.session_opened(SID, T0), b.core.session_opened(SID, T0)
    _flow(a, b, hello_a)
    _flow(b, a, hello_b)
    return a, b


def _send(side: Side, text: str, lane: Lane = Lane.ROUTINE) -> Output:
    return side.core.send(lane, MessageType.PRINCIPAL, "en", text, T0)


def _frames(output: Output) -> list[Frame]:
    return [f for _sid, p in output.packets for f in decode_packet(p)]


def test_messages_are_delivered_in_order_and_receipted() -> None:
    a, b = _connected()
    for i in range(5):
        _flow(a, b, _send(a, f"message {i}"))
    received = [e.envelope for e in b.events if isinstance(e, MessageReceived)]
    assert [e.body.text for e in received] == [f"message {i}" for i in range(5)]
    assert [e.seq for e in received] == [1, 2, 3, 4, 5]
    assert [(e.lane, e.seq) for e in a.events if isinstance(e, Receipted)] == [
        (Lane.ROUTINE, s) for s in range(1, 6)
    ]
    assert a.core.unreceipted == 0
    assert b.core.inbound[Lane.ROUTINE] == a.core.out.heads[Lane.ROUTINE]


def test_accepted_envelope_is_in_the_batch_before_it_is_on_the_wire() -> None:
    a, _b = _connected()
    output = _send(a, "hello")
    assert [e.body.text for e in output.batch.outbound] == ["hello"]
    sent = [f for f in _frames(output) if isinstance(f, EnvelopeFrame)]
    assert [f.body for f in sent] == [output.batch.outbound[0].body_bytes]


def test_nothing_is_sent_before_the_peer_says_what_it_holds() -> None:
    a, _b = _pair()
    a.core.session_opened(SID, T0)
    assert not [f for f in _frames(_send(a, "early")) if isinstance(f, EnvelopeFrame)]


def test_flash_never_waits_behind_a_routine_backlog() -> None:
    a, _b = _connected()
    for i in range(WINDOW + 50):
        _send(a, f"routine {i}")  # not delivered: the window fills with ROUTINE
    assert a.core.out.in_flight(SID) == WINDOW
    flash = _frames(_send(a, "FLASH: act now", Lane.FLASH))
    assert [msgspec.msgpack.decode(f.body)[3] for f in flash if isinstance(f, EnvelopeFrame)] == [
        Lane.FLASH
    ]


def test_duplicates_are_ignored_but_receipted_again() -> None:
    a, b = _connected()
    output = _send(a, "once")
    packet = output.packets[0][1]
    first = b.core.receive(SID, packet, T0)
    again = b.core.receive(SID, packet, T0)
    assert len(first.batch.inbound) == 1
    assert not again.batch.inbound
    assert not [e for e in again.events if isinstance(e, MessageReceived)]
    assert [f for f in _frames(again) if isinstance(f, ReceiptFrame)]


def test_a_gap_is_dropped_and_filled_by_the_resend() -> None:
    a, b = _connected()
    first, second = _send(a, "one"), _send(a, "two")
    assert not b.core.receive(SID, second.packets[0][1], T0).batch.inbound  # 2 before 1
    _flow(a, b, first)
    assert b.core.inbound[Lane.ROUTINE].seq == 1
    _flow(a, b, a.core.tick(T0 + 4 * SECOND), T0 + 4 * SECOND)  # no receipt for 2: resend
    assert b.core.inbound[Lane.ROUTINE].seq == 2


def _forged(side: Side, **changes: object) -> bytes:
    """A packet with an envelope signed by `side`'s own key, fields changed."""
    core = side.core
    head = core.out.heads[Lane.ROUTINE]
    body = EnvelopeBody(
        ENVELOPE_VERSION, side.config.link_id, side.config.direction, int(Lane.ROUTINE),
        head.seq + 1, T0, int(MessageType.PRINCIPAL), "en", "forged", head.hash, bytes(32), None,
    )  # fmt: skip
    body = msgspec.structs.replace(body, **changes)
    envelope = Envelope.create(body, side.config.identity)
    return encode_packets([EnvelopeFrame(envelope.body_bytes, envelope.signature)])[0]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"prev_hash": bytes(32)}, "does not continue the chain"),
        ({"direction": 0}, "another link or direction"),
        ({"link_id": os.urandom(32)}, "another link or direction"),
    ],
)
def test_a_peer_rewriting_history_is_refused_with_evidence(
    changes: dict[str, object], reason: str
) -> None:
    a, b = _connected()
    if changes.get("direction") == 0:
        changes["direction"] = a.config.direction ^ 1  # b's own direction: a reflected envelope
    before = list(b.core.inbound)
    output = b.core.receive(SID, _forged(a, **changes), T0)
    assert b.core.inbound == before
    assert not output.batch.inbound
    assert output.close
    assert reason in output.close[0][1]
    assert output.batch.audit[0].action == "protocol violation"
    assert output.batch.audit[0].evidence  # the signed bytes, kept as evidence
    assert any(isinstance(e, ProtocolViolation) for e in output.events)
    assert isinstance(_frames(output)[-1], Close)
    assert SID not in b.core.sessions


def test_an_envelope_with_a_bad_signature_is_refused() -> None:
    a, b = _connected()
    output = _send(a, "hello")
    frame = _frames(output)[0]
    assert isinstance(frame, EnvelopeFrame)
    bad = EnvelopeFrame(frame.body, bytes(64))
    result = b.core.receive(SID, encode_packets([bad])[0], T0)
    assert "bad signature" in result.close[0][1]
    assert b.core.inbound[Lane.ROUTINE].seq == 0


@pytest.mark.parametrize(
    "packet", [b"", b"\x02", b"\x01\x00\x05abc", b"\x01\x00\x02\x91\x63", os.urandom(64)]
)
def test_a_malformed_packet_closes_the_session_and_changes_nothing(packet: bytes) -> None:
    a, b = _connected()
    _flow(a, b, _send(a, "before"))
    before = (list(b.core.inbound), b.core.last_inbound_hash)
    output = b.core.receive(SID, packet, T0)
    assert (list(b.core.inbound), b.core.last_inbound_hash) == before
    assert not output.batch.inbound
    assert output.close
    assert output.batch.audit[0].evidence == packet


def _receipt(side: Side, peer: Side, heads: list[Head]) -> bytes:
    receipt = Receipt.create(
        side.config.identity, side.config.link_id, peer.config.direction, tuple(heads), T0
    )
    return encode_packets([ReceiptFrame(receipt.signed.body_bytes, receipt.signed.signature)])[0]


def test_a_receipt_for_something_never_sent_is_refused() -> None:
    a, b = _connected()
    heads = list(a.core.out.heads)
    heads[Lane.ROUTINE] = Head(7, os.urandom(32))
    output = a.core.receive(SID, _receipt(b, a, heads), T0)
    assert "never sent" in output.close[0][1]


def test_a_receipt_naming_another_envelope_is_refused() -> None:
    a, b = _connected()
    _send(a, "not delivered")
    heads = list(a.core.out.heads)
    heads[Lane.ROUTINE] = Head(1, os.urandom(32))
    output = a.core.receive(SID, _receipt(b, a, heads), T0)
    assert "names another envelope" in output.close[0][1]
    assert a.core.unreceipted == 1


def test_a_receipt_signed_by_someone_else_is_refused() -> None:
    a, _b = _connected()
    _send(a, "hello")
    stranger, _ = _pair()
    output = a.core.receive(SID, _receipt(stranger, a, list(a.core.out.heads)), T0)
    assert "bad signature" in output.close[0][1]


def test_acknowledgement_reaches_the_sender_in_the_same_lane() -> None:
    a, b = _connected()
    _flow(a, b, _send(a, "FLASH: confirm", Lane.FLASH))
    received = next(e.envelope for e in b.events if isinstance(e, MessageReceived))
    _flow(b, a, b.core.acknowledge(received, "ru", "Подтверждаю", T0))
    acks = [e for e in a.events if isinstance(e, Acknowledged)]
    assert [(e.lane, e.seq) for e in acks] == [(Lane.FLASH, 1)]
    assert acks[0].by.lane == Lane.FLASH
    assert acks[0].by.body.ref is not None
    assert acks[0].by.body.ref.hash == received.hash


def test_lost_session_resends_on_the_next_one_without_duplicates() -> None:
    a, b = _connected()
    lost = _send(a, "in flight when the path died")
    assert lost.packets  # never delivered
    a.core.session_closed(SID, "path down")
    b.core.session_closed(SID, "path down")
    hello_a, hello_b = a.core.session_opened(2, T0), b.core.session_opened(2, T0)
    _flow(b, a, hello_b)  # b's hello tells a what b holds: nothing
    _flow(a, b, hello_a)
    received = [e for e in b.events if isinstance(e, MessageReceived)]
    assert [e.envelope.body.text for e in received] == ["in flight when the path died"]
    assert a.core.unreceipted == 0


def test_heartbeats_measure_rtt_and_silence_closes_the_session() -> None:
    a, b = _connected()
    ping = a.core.tick(T0 + SECOND)
    pong = b.core.receive(SID, ping.packets[0][1], T0 + SECOND + 5_000_000)
    measured = a.core.receive(SID, pong.packets[0][1], T0 + SECOND + 10_000_000)
    rtt = [e for e in measured.events if isinstance(e, RttMeasured)]
    assert rtt[0].rtt_ns == 10_000_000
    assert rtt[0].clock_offset_ns == 0
    silent = a.core.tick(T0 + 20 * SECOND)
    assert silent.close
    assert "silent" in silent.close[0][1]
    assert any(isinstance(e, SessionClosed) for e in silent.events)


def test_checkpoints_are_exchanged_when_traffic_pauses_and_agree() -> None:
    a, b = _connected()
    _flow(a, b, _send(a, "one"))
    _flow(b, a, b.core.send(Lane.FLASH, MessageType.SERVICE, "ru", "два", T0))
    later = T0 + 3 * SECOND
    _flow(a, b, a.core.tick(later), later)
    _flow(b, a, b.core.tick(later), later)
    assert a.core.in_agreement
    assert b.core.in_agreement
    received = [e for e in a.events + b.events if isinstance(e, CheckpointReceived)]
    assert received
    assert received[-1].agreed


def test_two_stations_that_disagree_do_not_answer_each_others_checkpoints_forever() -> None:
    """Views differ while an envelope is on its way (here: lost, not yet resent). Each station
    answers a repeated checkpoint with its own at most once a heartbeat, so the exchange ends."""
    a, b = _connected()
    _send(a, "lost on the way")  # its packets are dropped
    later = T0 + 2 * SECOND + SECOND // 2  # idle enough for checkpoints; before any resend
    queue = [(a, b, a.core.tick(later)), (b, a, b.core.tick(later))]
    checkpoints = 0
    for _ in range(200):  # bounded: the old behaviour never went quiet
        if not queue:
            break
        sender, receiver, out = queue.pop(0)
        checkpoints += sum(isinstance(f, CheckpointFrame) for f in _frames(out))
        for sid, packet in out.packets:
            queue.append((receiver, sender, receiver.core.receive(sid, packet, later)))
    assert not queue, "the stations kept answering each other"
    assert checkpoints <= 4
    assert not a.core.in_agreement


def test_hello_for_another_link_is_refused() -> None:
    a, b = _pair()
    b.core.session_opened(SID, T0)
    hello = Hello(os.urandom(32), list(a.core.inbound), [1, 1, 1, 1])
    output = b.core.receive(SID, encode_packets([hello])[0], T0)
    assert "another link" in output.close[0][1]


def test_core_rebuilt_from_state_resends_what_was_not_receipted() -> None:
    a, b = _connected()
    output = _send(a, "accepted, then the station crashed")
    envelope = output.batch.outbound[0]
    state = LinkState(
        tuple(a.core.out.heads),
        tuple(a.core.out.receipted),
        (envelope,),
        tuple(a.core.inbound),
        a.core.last_inbound_hash,
        None,
        None,
    )
    reborn = Side(LinkCore(a.config, state, T0), a.config)
    b.core.session_closed(SID)
    hello_a, hello_b = reborn.core.session_opened(2, T0), b.core.session_opened(2, T0)
    _flow(reborn, b, hello_a)
    _flow(b, reborn, hello_b)
    received = [e.envelope for e in b.events if isinstance(e, MessageReceived)]
    assert [e.hash for e in received] == [envelope.hash]


def test_traffic_stays_on_its_session_until_that_one_goes_quiet() -> None:
    """A lower RTT elsewhere does not move traffic (a switch lets envelopes overtake each
    other, and the peer drops the early ones until they come again); silence does."""
    a, b = _connected()
    hello_a, hello_b = a.core.session_opened(2, T0), b.core.session_opened(2, T0)
    _flow(a, b, hello_a)
    _flow(b, a, hello_b)
    first = _send(a, "one")
    carrier = first.packets[0][0]
    other = 2 if carrier == SID else SID
    a.core.sessions[carrier].rtt_ns = 50_000_000  # the busy session's heartbeats wait
    a.core.sessions[other].rtt_ns = 1_000_000
    assert {sid for sid, _ in _send(a, "two").packets} == {carrier}
    later = T0 + 3 * SECOND  # the carrier is silent for three heartbeats, the other was heard
    a.core.sessions[other].last_heard_ns = later
    moved = a.core.send(Lane.ROUTINE, MessageType.PRINCIPAL, "en", "three", later)
    assert {sid for sid, _ in moved.packets} == {other}
