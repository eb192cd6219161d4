"""The link core over two sessions at once (issue 16): FLASH and IMMEDIATE go on every ready
session, each session in lane order; ROUTINE and PRIORITY go on one, within a window of envelopes
and of bytes, so a FLASH never waits behind them in a socket's buffers.

Driven by hand like tests/test_link.py: two cores, two sessions (1 and 2, numbered alike on both
sides), and a wire we control, dropping what a cut path would lose.
"""

from __future__ import annotations

import os
from collections.abc import Collection

import msgspec

from hotline.crypto.identity import StationIdentity
from hotline.crypto.session import link_id_for
from hotline.protocol.envelope import MAX_TEXT_BYTES, Lane, MessageType
from hotline.protocol.frames import EnvelopeFrame, decode_packet
from hotline.protocol.link import SECOND, LinkCore
from hotline.protocol.outbound import WINDOW_BYTES
from hotline.protocol.state import LinkConfig, LinkState, MessageReceived, Output

T0 = 1_800_000_000 * SECOND
SESSIONS = (1, 2)


def _pair() -> tuple[LinkCore, LinkCore]:
    a, b = StationIdentity.from_random(os.urandom(96)), StationIdentity.from_random(os.urandom(96))
    link_id = link_id_for(a.public, b.public)
    ca, cb = LinkConfig(link_id, a, b.public), LinkConfig(link_id, b, a.public)
    return LinkCore(ca, LinkState.new(ca), T0), LinkCore(cb, LinkState.new(cb), T0)


def _flow(
    src: LinkCore, dst: LinkCore, output: Output, now: int = T0, cut: Collection[int] = ()
) -> list[Output]:
    """Deliver everything `output` sends, back and forth, until the wire is quiet; what goes on
    a session in `cut` is lost. Returns every output on the way (`output` first)."""
    seen: list[Output] = []
    queue = [(src, dst, output)]
    while queue:
        sender, receiver, out = queue.pop(0)
        seen.append(out)
        for sid, packet in out.packets:
            if sid not in cut:
                queue.append((receiver, sender, receiver.receive(sid, packet, now)))
    return seen


def _open(a: LinkCore, b: LinkCore, sid: int, now: int = T0) -> list[Output]:
    """Open session `sid` on both sides and exchange the hellos; what a sent on the way."""
    hello_a, hello_b = a.session_opened(sid, now), b.session_opened(sid, now)
    return _flow(a, b, hello_a, now) + _flow(b, a, hello_b, now)[1:]


def _connected() -> tuple[LinkCore, LinkCore]:
    a, b = _pair()
    for sid in SESSIONS:
        _open(a, b, sid)
    return a, b


def _send(core: LinkCore, text: str, lane: Lane, now: int = T0) -> Output:
    return core.send(lane, MessageType.PRINCIPAL, "en", text, now)


def _envelopes(output: Output) -> list[tuple[int, Lane, int, int]]:
    """(session, lane, seq, bytes) of each envelope `output` puts on the wire, in order."""
    found = []
    for sid, packet in output.packets:
        for frame in decode_packet(packet):
            if isinstance(frame, EnvelopeFrame):
                body = msgspec.msgpack.decode(frame.body)
                found.append((sid, Lane(body[3]), body[4], len(frame.body) + len(frame.signature)))
    return found


def _on(output: Output, sid: int, lane: Lane) -> list[int]:
    return [seq for s, lane_, seq, _ in _envelopes(output) if s == sid and lane_ == lane]


def test_flash_and_immediate_go_on_every_session_routine_on_one() -> None:
    a, _b = _connected()
    flash = _send(a, "FLASH: act now", Lane.FLASH)
    assert {sid for sid, *_ in _envelopes(flash)} == set(SESSIONS)
    immediate = _send(a, "IMMEDIATE: stand by", Lane.IMMEDIATE)
    assert sorted((sid, lane) for sid, lane, *_ in _envelopes(immediate)) == [
        (1, Lane.IMMEDIATE),
        (2, Lane.IMMEDIATE),
    ]
    for lane in (Lane.ROUTINE, Lane.PRIORITY):
        assert len(_envelopes(_send(a, "routine traffic", lane))) == 1


def test_each_session_carries_its_copies_in_lane_order() -> None:
    """The peer accepts a chain only in order: a session whose copies came out of order would
    deliver nothing but the first until the resend."""
    a, _b = _connected()
    output = Output()
    for i in range(5):
        output.merge(_send(a, f"FLASH {i}", Lane.FLASH))
    for sid in SESSIONS:
        assert _on(output, sid, Lane.FLASH) == [1, 2, 3, 4, 5]


def test_a_flash_arrives_over_the_other_path_when_the_carrier_is_cut_silently() -> None:
    a, b = _connected()
    carrier = _envelopes(_send(a, "routine before the cut", Lane.ROUTINE))[0][0]
    outputs = _flow(a, b, _send(a, "FLASH after the cut", Lane.FLASH), cut={carrier})
    received = [e.envelope for o in outputs for e in o.events if isinstance(e, MessageReceived)]
    assert [(e.lane, e.body.text) for e in received] == [(Lane.FLASH, "FLASH after the cut")]
    assert a.out.receipted[Lane.FLASH].seq == 1  # receipted, no resend and no dead path needed
    assert carrier in a.sessions  # the cut path is not even declared dead yet


def test_duplicates_at_the_receiver_do_nothing() -> None:
    a, b = _connected()
    copies = _send(a, "FLASH once", Lane.FLASH).packets
    assert [sid for sid, _ in copies] == [1, 2]
    first = b.receive(1, copies[0][1], T0)
    second = b.receive(2, copies[1][1], T0)
    assert [e.envelope.body.text for e in first.events if isinstance(e, MessageReceived)] == [
        "FLASH once"
    ]
    assert len(first.batch.inbound) == 1
    assert not second.batch.inbound
    assert not [e for e in second.events if isinstance(e, MessageReceived)]
    assert b.inbound[Lane.FLASH].seq == 1


def test_a_session_lost_and_back_gets_the_flash_copies_again() -> None:
    a, b = _connected()
    sent = _send(a, "FLASH lost with both paths", Lane.FLASH)
    assert len(_envelopes(sent)) == 2  # never delivered
    for core in (a, b):
        core.session_closed(2, "path down")
    again = _open(a, b, 3, T0 + SECOND)
    assert [_on(o, 3, Lane.FLASH) for o in again if _on(o, 3, Lane.FLASH)] == [[1]]
    assert not [o for o in again if _on(o, 1, Lane.FLASH)]  # session 1 has its copy already
    assert b.inbound[Lane.FLASH].seq == 1


def test_a_receipt_on_one_session_ends_the_copies_on_every_other() -> None:
    a, b = _connected()
    _flow(a, b, _send(a, "FLASH", Lane.FLASH), cut={2})  # delivered and receipted on 1 only
    assert a.out.receipted[Lane.FLASH].seq == 1
    later = T0 + 5 * SECOND
    for sid in SESSIONS:  # both sessions are still heard from
        a.sessions[sid].last_heard_ns = later
    assert not _envelopes(a.tick(later))  # nothing left to go again on session 2


def test_an_unreceipted_copy_goes_again_on_its_session_in_order() -> None:
    a, _b = _connected()
    for i in range(3):
        _send(a, f"FLASH {i}", Lane.FLASH)  # lost everywhere
    later = T0 + 4 * SECOND
    for sid in SESSIONS:
        a.sessions[sid].last_heard_ns = later
    resent = a.tick(later)
    for sid in SESSIONS:
        assert _on(resent, sid, Lane.FLASH) == [1, 2, 3]


def test_routine_in_flight_is_bounded_in_bytes_and_a_flash_still_goes_at_once() -> None:
    a, _b = _connected()
    big = "x" * (MAX_TEXT_BYTES - 100)
    backlog = Output()
    for _ in range(100):  # 3.2 MB: the old window of 256 envelopes let all of it go
        backlog.merge(_send(a, big, Lane.ROUTINE))
    routine = _envelopes(backlog)
    assert {sid for sid, *_ in routine} == {routine[0][0]}  # one session
    in_flight = sum(size for *_, size in routine)
    assert 0 < in_flight <= WINDOW_BYTES
    assert in_flight > WINDOW_BYTES - MAX_TEXT_BYTES - 1000  # the window is used, not starved
    flash = _envelopes(_send(a, "FLASH: act now", Lane.FLASH))
    assert sorted((sid, lane) for sid, lane, *_ in flash) == [(1, Lane.FLASH), (2, Lane.FLASH)]
