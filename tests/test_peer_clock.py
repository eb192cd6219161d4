"""The peer's clock (issue 13, item 7). An envelope's `sent_ns` is its sender's word: a peer can
date a message 2554 or 1970. Refusing a signed, chained envelope would wedge the link (the peer
has committed it to its chain and would send it forever), so it is held and receipted like any
other, and flagged: an audit record, an event, an alarm while it is the newest, and a mark on
the message wherever it is shown. Every list and every time range goes by this station's own
clock (when it received the envelope, or accepted its own), so such an envelope neither sticks
to the top of a list nor escapes an export. (tests/test_peer_clock_browser.py: the console.)"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from hotline.archive.bundle import export_bundle, verify_bundle
from hotline.crypto.card import SignedCard, make_card
from hotline.crypto.identity import StationIdentity
from hotline.crypto.session import link_id_for
from hotline.errors import ConfigError
from hotline.protocol.envelope import (
    ENVELOPE_VERSION,
    Envelope,
    EnvelopeBody,
    Lane,
    MessageType,
    decode_envelope,
)
from hotline.protocol.frames import EnvelopeFrame, ReceiptFrame, encode_packets
from hotline.protocol.link import LinkCore, Timing
from hotline.protocol.state import ClockFault, LinkConfig, LinkState, Output
from hotline.protocol.statements import Head
from hotline.station.api import make_app
from hotline.station.datadir import DataDir
from hotline.station.launch import StationProcess, make_pair
from hotline.station.runtime import Station
from hotline.store.sqlite import SqliteStore

SECOND = 10**9
MINUTE = 60 * SECOND
T0 = 1_760_000_000 * SECOND
FUTURE = 2**64 - 1  # 2554-07-21: the latest time an envelope can carry
PAST = 1  # 1970-01-01


def _moscow_envelope(config: LinkConfig, head: Head, sent_ns: int, text: str) -> Envelope:
    """The next ROUTINE envelope of the peer in `config` (Moscow's view), dated `sent_ns`."""
    body = EnvelopeBody(
        ENVELOPE_VERSION, config.link_id, config.direction, int(Lane.ROUTINE), head.seq + 1,
        sent_ns, int(MessageType.PRINCIPAL), "ru", text, head.hash, bytes(32), None,
    )  # fmt: skip
    return Envelope.create(body, config.identity)


def _packet(envelope: Envelope) -> bytes:
    [packet] = encode_packets([EnvelopeFrame(envelope.body_bytes, envelope.signature)])
    return packet


@dataclass
class _Link:
    london: LinkCore
    moscow: LinkConfig  # Moscow's side: its envelopes are made by hand, dated as a test says

    def arrive(self, sent_ns: int, now_ns: int, text: str = "текст") -> tuple[Envelope, Output]:
        envelope = _moscow_envelope(self.moscow, self.london.inbound[Lane.ROUTINE], sent_ns, text)
        return envelope, self.london.receive(1, _packet(envelope), now_ns)


def _link(timing: Timing | None = None) -> _Link:
    london, moscow = (StationIdentity.from_random(os.urandom(96)) for _ in range(2))
    link_id = link_id_for(london.public, moscow.public)
    ours = LinkConfig(link_id, london, moscow.public)
    core = LinkCore(ours, LinkState.new(ours), T0, timing or Timing())
    core.session_opened(1, T0)
    return _Link(core, LinkConfig(link_id, moscow, london.public))


# -- the core: held, receipted, flagged ---------------------------------------------------------


@pytest.mark.parametrize("sent_ns", [FUTURE, PAST], ids=["2554", "1970"])
def test_an_envelope_from_a_wrong_clock_is_held_and_receipted_but_flagged(sent_ns: int) -> None:
    link = _link()
    envelope, out = link.arrive(sent_ns, T0)
    assert out.batch.inbound == [envelope], "held: refusing it would wedge the peer's chain"
    assert any(isinstance(frame, ReceiptFrame) for _sid, frame in out.frames)
    assert [e for e in out.events if isinstance(e, ClockFault)] == [
        ClockFault(envelope, sent_ns - T0)
    ]
    [audit] = out.batch.audit
    assert audit.action == "clock fault"
    assert "ROUTINE 1" in audit.detail
    assert ("ahead" if sent_ns > T0 else "behind") in audit.detail
    follows, after = link.arrive(T0 + SECOND, T0 + SECOND)
    assert after.batch.inbound == [follows], "the chain goes on after it"
    assert not any(isinstance(e, ClockFault) for e in after.events)


def test_the_bound_is_five_minutes_either_way_unless_set_otherwise() -> None:
    link = _link()
    for skew, fault in [(5 * MINUTE, False), (-5 * MINUTE, False),
                        (5 * MINUTE + 1, True), (-5 * MINUTE - 1, True)]:  # fmt: skip
        now = T0 + 10 * MINUTE * (link.london.inbound[Lane.ROUTINE].seq + 1)
        _, out = link.arrive(now + skew, now)
        assert any(isinstance(e, ClockFault) for e in out.events) is fault, skew
    wide = _link(Timing(clock_fault_ns=60 * MINUTE))
    _, out = wide.arrive(T0 + 20 * MINUTE, T0)
    assert not any(isinstance(e, ClockFault) for e in out.events)


def test_the_bound_is_a_setting_of_its_own_and_must_be_positive(tmp_path: Path) -> None:
    config = tmp_path / "station.toml"
    config.write_text('[station]\nname = "London"\n\n[console]\nclock_fault_s = 900\n')
    assert DataDir(tmp_path).config().console.clock_fault_s == 900
    config.write_text('[station]\nname = "London"\n')
    assert DataDir(tmp_path).config().console.clock_fault_s == 300
    config.write_text('[station]\nname = "London"\n\n[console]\nclock_fault_s = 0\n')
    with pytest.raises(ConfigError, match="clock_fault_s"):
        DataDir(tmp_path).config()


# -- the station: an event, an alarm, a mark, the order of arrival -------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[StationProcess, StationProcess]:
    london, moscow = make_pair(tmp_path_factory.mktemp("clock"))
    config = london.data.config_file
    text = re.sub(r"(?m)^clock_fault_s = .*\n", "", config.read_text())
    config.write_text(text.replace("[console]\n", "[console]\nclock_fault_s = 600\n", 1))
    return london, moscow


def _identity(station: StationProcess) -> StationIdentity:
    return station.data.open_keystore(station.passphrase_file.read_bytes().rstrip(b"\n"))


@pytest.fixture
async def station(pair: tuple[StationProcess, StationProcess]) -> AsyncIterator[Station]:
    london, _ = pair
    station = Station(DataDir(london.data.path), _identity(london))
    await station.open()
    senders = [asyncio.create_task(r.run_sender()) for r in station.links.values()]
    try:
        yield station
    finally:
        for task in senders:
            task.cancel()
        station.close()


class _Peer:
    """Moscow, its envelopes arriving at London's station on a session of their own."""

    def __init__(self, station: Station, moscow: StationIdentity) -> None:
        self.runtime = station.links["moscow"]
        config = self.runtime.link.config
        self.config = LinkConfig(config.link_id, moscow, config.identity.public)
        self.sid = 1000

    async def arrive(self, sent_ns: int, text: str) -> Envelope:
        core = self.runtime.core
        assert core is not None
        envelope = _moscow_envelope(self.config, core.inbound[Lane.ROUTINE], sent_ns, text)
        self.sid += 1
        sid, now = self.sid, time.time_ns()
        await self.runtime.act(lambda c: c.session_opened(sid, now))
        await self.runtime.act(lambda c: c.receive(sid, _packet(envelope), now))
        await self.runtime.act(lambda c: c.session_closed(sid))
        return envelope


def _drain(queue: asyncio.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    events = []
    while not queue.empty():
        events.append(queue.get_nowait())
    return events


@pytest.mark.anyio
async def test_the_station_holds_flags_and_alarms_and_lists_by_arrival(
    station: Station, pair: tuple[StationProcess, StationProcess]
) -> None:
    peer = _Peer(station, _identity(pair[1]))
    discipline, events = station.discipline, station.hub.listen()
    future = await peer.arrive(FUTURE, "из будущего")
    await discipline.review(time.time_ns())
    [fault] = [e for e in _drain(events) if e["type"] == "clock_fault"]
    assert (fault["link"], fault["lane"], fault["seq"]) == ("moscow", "ROUTINE", future.seq)
    assert fault["sent_ns"] == FUTURE
    alarm = discipline.alarms["clock_fault:moscow"]
    assert alarm.kind == "clock_fault"
    assert "Moscow" in alarm.text
    assert "2554-07-21" in alarm.text
    # Eight minutes off is within this station's bound (clock_fault_s = 600): the alarm clears.
    fine = await peer.arrive(time.time_ns() - 8 * MINUTE, "восемь минут")
    await discipline.review(time.time_ns())
    assert "clock_fault:moscow" not in discipline.alarms
    assert not [e for e in _drain(events) if e["type"] == "clock_fault"]
    past = await peer.arrive(PAST, "из прошлого")
    await discipline.review(time.time_ns())
    assert "clock_fault:moscow" in discipline.alarms
    station.hub.forget(events)

    token = station.data.api_token()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_app(station)), base_url="http://127.0.0.1",
        headers={"Authorization": f"Bearer {token}"},
    ) as api:  # fmt: skip
        inbox = (await api.get("/api/v1/links/moscow/inbox")).json()
    shown = [(m["seq"], m["clock_fault"]) for m in inbox if m["language"] == "ru"]
    assert shown[:3] == [(past.seq, True), (fine.seq, False), (future.seq, True)], (
        "newest arrival first, whatever the sender's clock said"
    )
    assert station.store is not None
    audit = await station.store.call(lambda s: s.audit_log())
    faults = [detail for _id, _at, _who, action, detail, _link in audit if action == "clock fault"]
    assert len(faults) == 2
    assert f"ROUTINE {past.seq}" in faults[0]
    assert f"ROUTINE {future.seq}" in faults[1]


# -- the archive: ranges on our own clock ----------------------------------------------------------


@dataclass
class _Record:
    store: SqliteStore
    london: StationIdentity
    cards: tuple[SignedCard, SignedCard]
    arrived: dict[str, Envelope]  # Moscow's, by a short name
    sent: Envelope  # London's own, accepted at T0 + 40 s

    def export(self, out: Path, **options: Any) -> Path:
        export_bundle(self.store, self.london, *self.cards, out, T0 + 3600 * SECOND, **options)
        return out


@pytest.fixture
def record(tmp_path: Path) -> Iterator[_Record]:
    """London's store: Moscow's envelopes dated 1970 (received at T0 + 10 s), 2554 (T0 + 20 s)
    and rightly (T0 + 30 s); London's own message, accepted at T0 + 40 s."""
    london, moscow = (StationIdentity.from_random(os.urandom(96)) for _ in range(2))
    cards = (make_card(london, "London", ["127.0.0.1:1"], 1_750_000_000),
             make_card(moscow, "Moscow", ["127.0.0.1:2"], 1_750_000_000))  # fmt: skip
    link_id = link_id_for(london.public, moscow.public)
    ours = LinkConfig(link_id, london, moscow.public)
    store = SqliteStore(tmp_path / "london.db")
    store.add_link(ours, T0)
    core = LinkCore(ours, LinkState.new(ours), T0)
    core.session_opened(1, T0)
    moscow_config = LinkConfig(link_id, moscow, london.public)
    arrived = {}
    dated = [("1970", PAST, 10), ("2554", FUTURE, 20), ("right", T0 + 29 * SECOND, 30)]
    for name, sent_ns, at in dated:
        envelope = _moscow_envelope(moscow_config, core.inbound[Lane.ROUTINE], sent_ns, name)
        now = T0 + at * SECOND
        store.commit(link_id, core.receive(1, _packet(envelope), now).batch, now)
        arrived[name] = envelope
    out = core.send(Lane.ROUTINE, MessageType.PRINCIPAL, "en", "ours", T0 + 40 * SECOND)
    store.commit(link_id, out.batch, T0 + 40 * SECOND)
    yield _Record(store, london, cards, arrived, out.batch.outbound[0])
    store.close()


def _texts(bundle: Path) -> list[str]:
    with zipfile.ZipFile(bundle) as archive:
        lines = archive.read("envelopes.jsonl").splitlines()
    return [
        decode_envelope(base64.b64decode(json.loads(line)["signed"]), None).body.text
        for line in lines
    ]


def test_a_range_over_the_receiving_period_holds_envelopes_of_any_date(
    record: _Record, tmp_path: Path
) -> None:
    since = record.export(tmp_path / "since.hotline", since_ns=T0 + 5 * SECOND)
    assert sorted(_texts(since)) == ["1970", "2554", "ours", "right"]
    assert verify_bundle(since).envelopes == 4
    until = record.export(tmp_path / "until.hotline", until_ns=T0 + 25 * SECOND)
    assert sorted(_texts(until)) == ["1970", "2554"]
    assert verify_bundle(until).envelopes == 2


@pytest.mark.parametrize("split", [10, 15, 20, 25, 30, 35, 40])
def test_two_ranges_that_meet_lose_no_envelope(record: _Record, tmp_path: Path, split: int) -> None:
    at = T0 + split * SECOND
    before = record.export(tmp_path / "before.hotline", until_ns=at - 1)
    after = record.export(tmp_path / "after.hotline", since_ns=at)
    assert sorted(_texts(before) + _texts(after)) == ["1970", "2554", "ours", "right"]
    for piece in (before, after):  # each lane a contiguous piece of its chain
        assert verify_bundle(piece).envelopes == len(_texts(piece))


def test_the_transcripts_go_by_our_clock_and_show_a_clock_fault(
    record: _Record, tmp_path: Path
) -> None:
    bundle = record.export(tmp_path / "all.hotline", pdf="always")
    with zipfile.ZipFile(bundle) as archive:
        page = archive.read("transcript.html").decode()
        pdf = archive.read("transcript.pdf")
    order = [page.index(f">{text}<") for text in ("1970", "2554", "right", "ours")]
    assert order == sorted(order), "in the order London received or accepted them"
    assert page.count("class='clock-fault'") == 2
    assert "1970-01-01 00:00:00" in page  # each faulty time is shown beside ours
    assert "2554-07-21 23:34:33" in page
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert text.count("CLOCK FAULT") == 2
    assert "2554-07-21 23:34:33" in text
