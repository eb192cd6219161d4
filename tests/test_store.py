"""The store, on both backends: what a station commits is what it restores, all of a batch or none
of it, each message once, and any tampering with the stored chains is refused loudly on load."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from hotline.crypto.atrest import SEALED_PREFIX, totp_key
from hotline.crypto.identity import StationIdentity
from hotline.crypto.session import link_id_for
from hotline.errors import StoreCorruptError, StoreError
from hotline.protocol.envelope import Attachment, Envelope, Lane, MessageType, decode_envelope
from hotline.protocol.link import LinkCore
from hotline.protocol.state import AuditRecord, Batch, LinkConfig, LinkState, Output, empty_heads
from hotline.protocol.statements import Head, Receipt
from hotline.sim.pgserver import ThrowawayPostgres
from hotline.store.base import SqlStore
from hotline.store.people import Operator
from hotline.store.postgres import PostgresStore
from hotline.store.schema import MIGRATIONS
from hotline.store.sqlite import SqliteStore

SECOND = 10**9
NOW = 1_800_000_000 * SECOND
SID = 1

OpenStore = Callable[[], SqlStore]


# -- fixtures: one suite, both backends ----------------------------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """A callable that opens (again) one fresh store; every store it opened is closed after."""
    connect: Callable[[], SqlStore]
    if request.param == "sqlite":
        connect = partial(SqliteStore, tmp_path / "station.db")
    else:
        server: ThrowawayPostgres = request.getfixturevalue("pg")
        connect = partial(PostgresStore, server.create_database(f"store_{uuid.uuid4().hex}"))
    opened: list[SqlStore] = []

    def open_store() -> SqlStore:
        opened.append(connect())
        return opened[-1]

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture(scope="module")
def identities() -> tuple[StationIdentity, StationIdentity]:
    return StationIdentity.from_random(os.urandom(96)), StationIdentity.from_random(os.urandom(96))


@pytest.fixture
def configs(identities: tuple[StationIdentity, StationIdentity]) -> tuple[LinkConfig, LinkConfig]:
    a, b = identities
    link_id = link_id_for(a.public, b.public)
    return LinkConfig(link_id, a, b.public), LinkConfig(link_id, b, a.public)


# -- two real link cores, in memory; station A commits to the store under test -------------------


@dataclass
class Station:
    config: LinkConfig
    core: LinkCore
    store: SqlStore | None = None

    def apply(self, out: Output, now: int) -> list[bytes]:
        """The driver's contract: commit the batch, then hand over the packets."""
        if self.store is not None:
            self.store.commit(self.config.link_id, out.batch, now)
        return [packet for _, packet in out.packets]


@dataclass
class Pair:
    a: Station
    b: Station
    now: int = NOW

    def flow(self, to_b: list[bytes], to_a: list[bytes]) -> None:
        while to_b or to_a:
            to_a, to_b = self._deliver(self.b, to_b), self._deliver(self.a, to_a)

    def _deliver(self, station: Station, packets: list[bytes]) -> list[bytes]:
        outs = [station.core.receive(SID, packet, self.now) for packet in packets]
        return [answer for out in outs for answer in station.apply(out, self.now)]

    def route(self, sender: Station, out: Output) -> None:
        packets = sender.apply(out, self.now)
        if sender is self.a:
            self.flow(packets, [])
        else:
            self.flow([], packets)

    def connect(self) -> None:
        hello_a = self.a.apply(self.a.core.session_opened(SID, self.now), self.now)
        self.flow(hello_a, self.b.apply(self.b.core.session_opened(SID, self.now), self.now))

    def disconnect(self) -> None:
        for station in (self.a, self.b):
            station.apply(station.core.session_closed(SID), self.now)

    def send(self, sender: Station, lane: Lane, text: str) -> Envelope:
        out = sender.core.send(lane, MessageType.PRINCIPAL, "en", text, self.now)
        self.route(sender, out)
        return out.batch.outbound[0]

    def tick(self, seconds: int) -> None:
        self.now += seconds * SECOND
        for station in (self.a, self.b):
            self.route(station, station.core.tick(self.now))


def new_core(config: LinkConfig, store: SqlStore | None = None) -> Station:
    state = store.load(config) if store is not None else LinkState.new(config)
    return Station(config, LinkCore(config, state, NOW), store)


def add_link(store: SqlStore, config: LinkConfig) -> SqlStore:
    store.add_link(config, NOW)
    return store


@dataclass
class Traffic:
    """A's store after a realistic exchange: some of A's envelopes receipted and one acknowledged,
    some not yet receipted, B's envelopes received, checkpoints exchanged."""

    pair: Pair
    open_store: OpenStore
    routine: list[Envelope]  # A's ROUTINE 1..5; 4 and 5 unreceipted
    flash: list[Envelope]  # A's FLASH 1 (acknowledged by B) and 2 (unreceipted)
    priority: list[Envelope]  # B's PRIORITY 1..2, in A's inbox
    ack: Envelope  # B's FLASH 1, acknowledging A's FLASH 1, in A's inbox

    @property
    def store(self) -> SqlStore:
        assert self.pair.a.store is not None
        return self.pair.a.store

    @property
    def config(self) -> LinkConfig:
        return self.pair.a.config

    def reopen(self) -> SqlStore:
        self.store.close()
        self.pair.a.store = self.open_store()
        return self.pair.a.store


@pytest.fixture
def traffic(store_factory: OpenStore, configs: tuple[LinkConfig, LinkConfig]) -> Traffic:
    pair = Pair(new_core(configs[0], add_link(store_factory(), configs[0])), new_core(configs[1]))
    pair.connect()
    routine = [pair.send(pair.a, Lane.ROUTINE, f"routine {n}") for n in (1, 2, 3)]
    flash = [pair.send(pair.a, Lane.FLASH, "flash 1")]
    priority = [pair.send(pair.b, Lane.PRIORITY, f"priority {n}") for n in (1, 2)]
    ack_out = pair.b.core.acknowledge(flash[0], "en", "seen", pair.now)
    pair.route(pair.b, ack_out)
    pair.tick(3)  # traffic paused: both sides checkpoint and exchange
    pair.disconnect()
    pair.now += SECOND
    routine += [pair.send(pair.a, Lane.ROUTINE, f"routine {n}") for n in (4, 5)]
    flash.append(pair.send(pair.a, Lane.FLASH, "flash 2"))
    return Traffic(pair, store_factory, routine, flash, priority, ack_out.batch.outbound[0])


def core_state(core: LinkCore) -> LinkState:
    """What a core holds in memory, as a LinkState: what a restart must give back."""
    return LinkState(
        tuple(core.out.heads),
        tuple(core.out.receipted),
        tuple(envelope for lane in core.out.pending for envelope in lane.values()),
        tuple(core.inbound),
        core.last_inbound_hash,
        core.own_checkpoint,
        core.peer_checkpoint_heads,
    )


# -- direct SQL, for looking and tampering -------------------------------------------------------


def tamper(store: SqlStore, sql: str, *params: Any) -> None:
    with store.transaction():
        store._execute(sql, params)


def row(store: SqlStore, table: str, lane: Lane, seq: int, column: str) -> Any:
    rows = store._rows(f"SELECT {column} FROM {table} WHERE lane = ? AND seq = ?", (lane, seq))
    assert len(rows) == 1
    return rows[0][0]


def set_column(store: SqlStore, table: str, lane: Lane, seq: int, column: str, value: Any) -> None:
    sql = f"UPDATE {table} SET {column} = ? WHERE lane = ? AND seq = ?"
    tamper(store, sql, value, int(lane), seq)


def count(store: SqlStore, table: str) -> int:
    return int(store._rows(f"SELECT count(*) FROM {table}")[0][0])


# -- 1. schema -----------------------------------------------------------------------------------


def test_new_store_records_its_schema_version(store_factory: OpenStore) -> None:
    store = store_factory()
    assert store.schema_version == len(MIGRATIONS[store.dialect]) >= 1
    rows = store._rows("SELECT value FROM meta WHERE key = 'schema_version'")
    assert rows == [(str(len(MIGRATIONS[store.dialect])),)]


def test_reopening_applies_only_the_missing_migrations(
    store_factory: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_factory()
    dialect, known = store.dialect, len(MIGRATIONS[store.dialect])
    store.close()
    probe = "INSERT INTO audit (at_ns, actor, action, detail) VALUES (0, 'test', 'migration', '')"
    monkeypatch.setitem(MIGRATIONS, dialect, [*MIGRATIONS[dialect], [probe]])
    for _ in range(3):  # step 1 ran before; the new step runs on the first reopen only
        store = store_factory()
        assert store.schema_version == known + 1
        assert count(store, "audit") == 1
        store.close()


def make_newer(store_factory: OpenStore) -> None:
    store = store_factory()
    newer = len(MIGRATIONS[store.dialect]) + 1
    tamper(store, "UPDATE meta SET value = ? WHERE key = 'schema_version'", str(newer))
    store.close()


def stranded(refused: pytest.ExceptionInfo[StoreError]) -> SqlStore:
    """The half-built store whose constructor raised, found in the traceback."""
    for entry in refused.traceback:
        candidate = entry.frame.f_locals.get("self")
        if isinstance(candidate, SqlStore):
            return candidate
    raise AssertionError("no store in the traceback")


def test_a_store_newer_than_this_build_is_refused(store_factory: OpenStore) -> None:
    make_newer(store_factory)
    with pytest.raises(StoreError, match="newer"):
        store_factory()


def test_a_refused_store_closes_its_connection(store_factory: OpenStore) -> None:
    make_newer(store_factory)
    with pytest.raises(StoreError) as refused:
        store_factory()
    store = stranded(refused)
    try:
        with pytest.raises(StoreError):
            store._rows("SELECT 1")  # a closed connection answers nothing
    finally:
        store.close()


# -- 2. commit, then load: everything a core needs, after a restart too --------------------------


def test_load_restores_what_the_core_committed(traffic: Traffic) -> None:
    expected = core_state(traffic.pair.a.core)
    assert traffic.store.load(traffic.config) == expected
    state = traffic.reopen().load(traffic.config)
    assert state == expected
    assert [e.to_bytes() for e in state.unreceipted] == [
        e.to_bytes() for e in (traffic.flash[1], *traffic.routine[3:])
    ]
    assert state.outbound[Lane.ROUTINE] == Head(5, traffic.routine[4].hash)
    assert state.outbound[Lane.FLASH] == Head(2, traffic.flash[1].hash)
    assert state.receipted[Lane.ROUTINE] == Head(3, traffic.routine[2].hash)
    assert state.receipted[Lane.FLASH] == Head(1, traffic.flash[0].hash)
    assert state.inbound[Lane.PRIORITY] == Head(2, traffic.priority[1].hash)
    assert state.inbound[Lane.FLASH] == Head(1, traffic.ack.hash)
    assert state.last_inbound_hash == traffic.ack.hash


def test_load_restores_both_checkpoints(traffic: Traffic) -> None:
    ours, theirs = traffic.pair.a.core.own_checkpoint, traffic.pair.b.core.own_checkpoint
    assert ours is not None
    assert theirs is not None
    state = traffic.reopen().load(traffic.config)
    assert state.checkpoint is not None
    assert state.checkpoint.signed == ours.signed
    assert (state.checkpoint.outbound, state.checkpoint.inbound) == (
        theirs.inbound,
        theirs.outbound,
    )
    assert state.checkpoint.outbound != state.outbound  # made before A's last three envelopes
    assert state.peer_checkpoint == (theirs.outbound, theirs.inbound)


def test_a_core_rebuilt_from_the_reopened_store_resumes(traffic: Traffic) -> None:
    pair = traffic.pair
    pair.a = new_core(traffic.config, traffic.reopen())
    pair.b.core.session_closed(SID)
    pair.connect()
    assert pair.b.core.inbound[Lane.ROUTINE] == Head(5, traffic.routine[4].hash)
    assert pair.b.core.inbound[Lane.FLASH] == Head(2, traffic.flash[1].hash)
    state = traffic.reopen().load(traffic.config)
    assert state.unreceipted == ()
    assert state.receipted == state.outbound


def test_an_empty_batch_and_a_new_link_load_as_new(
    store_factory: OpenStore, configs: tuple[LinkConfig, LinkConfig]
) -> None:
    store = add_link(store_factory(), configs[0])
    store.commit(configs[0].link_id, Batch(), NOW)
    assert store.load(configs[0]) == LinkState.new(configs[0])


# -- 3, 4. group commit is atomic; the inbox holds each message once -----------------------------


@dataclass
class Inbox:
    a: Station  # with the store under test
    b: Station
    first: Envelope  # B's PRIORITY 1, in A's inbox

    @property
    def store(self) -> SqlStore:
        assert self.a.store is not None
        return self.a.store


def send(station: Station, lane: Lane, text: str) -> Envelope:
    return station.core.send(lane, MessageType.PRINCIPAL, "en", text, NOW).batch.outbound[0]


def forked(config: LinkConfig, lane: Lane, text: str) -> Envelope:
    """Another envelope at seq 1 of `lane`, properly signed: a second history."""
    return send(new_core(config), lane, text)


def heads_of(config: LinkConfig, *envelopes: Envelope) -> list[Head]:
    heads = list(empty_heads(config.link_id, config.direction))
    for envelope in envelopes:
        heads[envelope.lane] = Head(envelope.seq, envelope.hash)
    return heads


def receipt(signer: StationIdentity, config: LinkConfig, heads: list[Head]) -> Receipt:
    """A receipt for `config`'s envelopes, as signed by `signer`."""
    return Receipt.create(signer, config.link_id, config.direction, tuple(heads), NOW)


@pytest.fixture
def inbox(store_factory: OpenStore, configs: tuple[LinkConfig, LinkConfig]) -> Inbox:
    a, b = new_core(configs[0], add_link(store_factory(), configs[0])), new_core(configs[1])
    first = send(b, Lane.PRIORITY, "first")
    a.apply(Output(Batch(inbound=[first])), NOW)
    return Inbox(a, b, first)


def test_a_failed_batch_leaves_nothing_stored(inbox: Inbox, store_factory: OpenStore) -> None:
    config = inbox.a.config
    before = inbox.store.load(config)
    ours = [send(inbox.a, Lane.ROUTINE, text) for text in ("x", "y")]
    batch = Batch(
        outbound=ours,
        inbound=[forked(inbox.b.config, Lane.PRIORITY, "fork")],  # PRIORITY 1 again: refused
        receipt=receipt(inbox.b.config.identity, config, heads_of(config, ours[0])),
        audit=[AuditRecord("test", "part of the failed batch")],
    )
    with pytest.raises(StoreError):
        inbox.store.commit(config.link_id, batch, NOW + SECOND)
    inbox.store.close()
    store = store_factory()
    assert [count(store, t) for t in ("outbox", "inbox", "receipts", "audit")] == [0, 1, 0, 0]
    assert store.load(config) == before
    store.commit(config.link_id, Batch(outbound=ours), NOW + 2 * SECOND)  # still usable
    assert store.load(config).outbound[Lane.ROUTINE] == Head(2, ours[1].hash)


def test_the_inbox_refuses_a_message_twice(inbox: Inbox) -> None:
    fork = forked(inbox.b.config, Lane.PRIORITY, "fork")
    for duplicate in (inbox.first, fork):
        with pytest.raises(StoreError):
            inbox.store.commit(inbox.a.config.link_id, Batch(inbound=[duplicate]), NOW)
    assert count(inbox.store, "inbox") == 1
    assert bytes(row(inbox.store, "inbox", Lane.PRIORITY, 1, "envelope")) == inbox.first.to_bytes()


# -- 5, 6. tampering is refused loudly, naming where ---------------------------------------------


def flip_at(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def flip_text(t: Traffic, table: str, lane: Lane, seq: int, text: str) -> None:
    data = bytes(row(t.store, table, lane, seq, "envelope"))
    set_column(t.store, table, lane, seq, "envelope", flip_at(data, data.index(text.encode())))


def swap_rows(t: Traffic) -> None:
    with t.store.transaction():
        for old, new in ((1, -1), (2, 1), (-1, 2)):
            t.store._execute(
                "UPDATE outbox SET seq = ? WHERE lane = ? AND seq = ?", (new, Lane.ROUTINE, old)
            )


def replace_receipt(t: Traffic, signer: StationIdentity) -> None:
    heads = heads_of(t.config, t.flash[0], t.routine[2])
    heads[Lane.ROUTINE] = Head(3, t.routine[1].hash)
    statement = receipt(signer, t.config, heads).signed.to_bytes()
    tamper(t.store, "UPDATE receipts SET statement = ?", statement)


def flip_checkpoint(t: Traffic, origin: str) -> None:
    data = bytes(
        t.store._rows("SELECT statement FROM checkpoints WHERE origin = ?", (origin,))[0][0]
    )
    tamper(
        t.store, "UPDATE checkpoints SET statement = ? WHERE origin = ?", flip_at(data, -1), origin
    )


def delete(t: Traffic, table: str, lane: Lane, *seqs: int) -> None:
    for seq in seqs:
        tamper(t.store, f"DELETE FROM {table} WHERE lane = ? AND seq = ?", lane, seq)


TAMPERING: dict[str, tuple[Callable[[Traffic], None], str]] = {
    "outbox row missing": (
        lambda t: delete(t, "outbox", Lane.ROUTINE, 2),
        r"outbox ROUTINE 3: missing row, expected 2",
    ),
    "receipted envelope altered": (
        lambda t: flip_text(t, "outbox", Lane.ROUTINE, 2, "routine 2"),
        r"outbox ROUTINE 2: the chain does not verify",
    ),
    "unreceipted envelope altered": (
        lambda t: flip_text(t, "outbox", Lane.ROUTINE, 4, "routine 4"),
        r"outbox ROUTINE 4: .*bad signature",
    ),
    "stored hash changed": (
        lambda t: set_column(t.store, "outbox", Lane.ROUTINE, 2, "hash", t.routine[0].hash),
        r"outbox ROUTINE 2: the chain does not verify",
    ),
    "rows swapped": (swap_rows, r"outbox ROUTINE 1: the chain does not verify"),
    "receipt names another envelope": (
        lambda t: replace_receipt(t, t.pair.b.config.identity),
        r"outbox ROUTINE 3: the stored receipt names another envelope",
    ),
    "receipt not signed by the peer": (
        lambda t: replace_receipt(t, t.config.identity),
        r"the stored receipt does not verify",
    ),
    "outbox cut below the receipt": (
        lambda t: delete(t, "outbox", Lane.ROUTINE, 5, 4, 3),
        r"receipt covers ROUTINE 3, but the outbox ends at 2",
    ),
    "inbox row altered": (
        lambda t: flip_text(t, "inbox", Lane.PRIORITY, 1, "priority 1"),
        r"inbox PRIORITY 1: the chain does not verify",
    ),
    "inbox row missing": (
        lambda t: delete(t, "inbox", Lane.PRIORITY, 1),
        r"inbox PRIORITY 2: missing row, expected 1",
    ),
    "own checkpoint altered": (
        lambda t: flip_checkpoint(t, "local"),
        r"our stored checkpoint does not verify",
    ),
    "peer checkpoint altered": (
        lambda t: flip_checkpoint(t, "peer"),
        r"peer's stored checkpoint does not verify",
    ),
}


@pytest.mark.parametrize("case", TAMPERING)
def test_load_refuses_a_tampered_store(traffic: Traffic, case: str) -> None:
    change, where = TAMPERING[case]
    change(traffic)
    with pytest.raises(StoreCorruptError, match=where):
        traffic.reopen().load(traffic.config)


@pytest.mark.parametrize("case", TAMPERING)
def test_verify_refuses_a_tampered_store(traffic: Traffic, case: str) -> None:
    TAMPERING[case][0](traffic)
    with pytest.raises(StoreCorruptError):
        traffic.reopen().verify(traffic.config)


def test_load_refuses_an_inbox_cut_below_our_checkpoint(traffic: Traffic) -> None:
    assert traffic.pair.a.core.own_checkpoint is not None
    assert traffic.pair.a.core.own_checkpoint.inbound[Lane.PRIORITY].seq == 2
    delete(traffic, "inbox", Lane.PRIORITY, 2)
    with pytest.raises(StoreCorruptError, match="inbox PRIORITY"):
        traffic.reopen().load(traffic.config)


def test_verify_passes_an_untampered_store(traffic: Traffic) -> None:
    traffic.store.verify(traffic.config)
    traffic.reopen().verify(traffic.config)


@pytest.mark.parametrize(
    ("table", "lane", "seq", "load_checks"),
    [
        ("inbox", Lane.PRIORITY, 1, False),  # the peer's: its signature was checked on arrival
        ("outbox", Lane.ROUTINE, 2, False),  # ours, receipted: load trusts its own signatures
        ("outbox", Lane.ROUTINE, 4, True),  # ours, about to be sent again: load checks it
    ],
)
def test_verify_catches_a_bad_signature(
    traffic: Traffic, table: str, lane: Lane, seq: int, load_checks: bool
) -> None:
    stored = decode_envelope(bytes(row(traffic.store, table, lane, seq, "envelope")), None)
    forged = replace(stored, signature=flip_at(stored.signature, 0))  # body and hash unchanged
    set_column(traffic.store, table, lane, seq, "envelope", forged.to_bytes())
    store = traffic.reopen()
    if load_checks:
        with pytest.raises(StoreCorruptError, match=rf"{table} {lane.name} {seq}: .*signature"):
            store.load(traffic.config)
    else:
        assert store.load(traffic.config) == core_state(traffic.pair.a.core)
    with pytest.raises(StoreCorruptError, match=rf"{table} {lane.name} {seq}: .*bad signature"):
        store.verify(traffic.config)


# -- 7. the handshake replay guard ---------------------------------------------------------------


def test_record_handshake_keeps_the_newest(
    store_factory: OpenStore, configs: tuple[LinkConfig, LinkConfig]
) -> None:
    store, link_id = add_link(store_factory(), configs[0]), configs[0].link_id
    assert store.newest_handshake_ns(link_id) == 0
    for seen, newest in ((NOW, NOW), (NOW - 1, NOW), (NOW, NOW), (NOW + 5, NOW + 5), (0, NOW + 5)):
        store.record_handshake(link_id, seen)
        assert store.newest_handshake_ns(link_id) == newest
    store.close()
    assert store_factory().newest_handshake_ns(link_id) == NOW + 5


def test_the_replay_record_accepts_each_first_message_once_in_any_order(
    store_factory: OpenStore, configs: tuple[LinkConfig, LinkConfig]
) -> None:
    store, link_id = add_link(store_factory(), configs[0]), configs[0].link_id
    window = 300 * SECOND
    accept = partial(store.accept_handshake, link_id, now_ns=NOW, window_ns=window)
    # The one written later arrives first (a slower path): both are genuine, both accepted.
    assert accept(b"later".ljust(32, b"."), NOW)
    assert accept(b"earlier".ljust(32, b"."), NOW - SECOND // 3)
    assert not accept(b"later".ljust(32, b"."), NOW)  # each one once
    assert not accept(b"earlier".ljust(32, b"."), NOW - SECOND // 3)
    store.close()
    store = store_factory()  # durable
    assert not store.accept_handshake(link_id, b"earlier".ljust(32, b"."), NOW - 1, NOW, window)
    assert store.handshake_floor_ns(link_id) == 0  # nothing forgotten yet


def test_a_store_from_before_the_replay_record_keeps_its_newest_timestamp_as_the_floor(
    store_factory: OpenStore,
    configs: tuple[LinkConfig, LinkConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, link_id = add_link(store_factory(), configs[0]), configs[0].link_id
    dialect, steps = store.dialect, MIGRATIONS[store.dialect]
    step = next(i for i, s in enumerate(steps) if any("handshakes_accepted" in q for q in s))
    tamper(store, "DROP TABLE handshakes_accepted")  # as a store of the version before was
    tamper(store, "UPDATE meta SET value = ? WHERE key = 'schema_version'", str(step))
    store.record_handshake(link_id, NOW)  # the newest first message accepted, then
    store.close()
    monkeypatch.setitem(MIGRATIONS, dialect, steps[: step + 1])
    store = store_factory()  # the upgrade to the replay record
    assert store.handshake_floor_ns(link_id) == NOW
    assert not store.accept_handshake(link_id, b"e" * 32, NOW, NOW, 300 * SECOND)
    assert store.accept_handshake(link_id, b"e" * 32, NOW + 1, NOW, 300 * SECOND)


def test_the_replay_record_forgets_what_left_the_window_and_keeps_it_refused(
    store_factory: OpenStore, configs: tuple[LinkConfig, LinkConfig]
) -> None:
    store, link_id = add_link(store_factory(), configs[0]), configs[0].link_id
    window = 300 * SECOND
    for i in range(10):
        assert store.accept_handshake(link_id, bytes([i]) * 32, NOW + i * SECOND, NOW, window)
    later = NOW + window + 5 * SECOND  # entries 0..4 are now more than the window in the past
    assert store.accept_handshake(link_id, b"n" * 32, later, later, window)
    kept = store._rows("SELECT ephemeral FROM handshakes_accepted ORDER BY peer_ns")
    assert [bytes(k[0]) for k in kept] == [bytes([i]) * 32 for i in range(5, 10)] + [b"n" * 32]
    assert store.handshake_floor_ns(link_id) == NOW + 4 * SECOND
    # A forgotten one, replayed to a station whose clock went back: refused by the floor.
    assert not store.accept_handshake(link_id, bytes([4]) * 32, NOW + 4 * SECOND, NOW, window)
    assert store.accept_handshake(link_id, b"m" * 32, NOW + 4 * SECOND + 1, NOW, window)


# -- 8. acknowledgements and receipts mark the outbox --------------------------------------------


def test_an_acknowledgement_marks_the_envelope_it_names(traffic: Traffic) -> None:
    store = traffic.reopen()
    assert traffic.ack.body.type == MessageType.ACKNOWLEDGEMENT
    assert bytes(row(store, "outbox", Lane.FLASH, 1, "acknowledged_by")) == traffic.ack.hash
    marked = store._rows("SELECT lane, seq FROM outbox WHERE acknowledged_by IS NOT NULL")
    assert marked == [(Lane.FLASH, 1)]


def test_the_store_refuses_a_second_acknowledgement_of_a_message(inbox: Inbox) -> None:
    """However a runtime goes wrong, the store itself keeps one acknowledgement per message:
    the second is refused with its whole batch (issue 13, item 9)."""
    link_id = inbox.a.config.link_id
    first = inbox.a.core.acknowledge(inbox.first, "en", "seen", NOW)
    inbox.store.commit(link_id, first.batch, NOW)
    second = inbox.a.core.acknowledge(inbox.first, "en", "seen again", NOW)
    with pytest.raises(StoreError):
        inbox.store.commit(link_id, second.batch, NOW + SECOND)
    assert count(inbox.store, "outbox") == 1
    assert inbox.store.acknowledged_here(link_id, Lane.PRIORITY, 1)
    assert not inbox.store.acknowledged_here(link_id, Lane.PRIORITY, 2)


def test_the_acknowledgement_of_a_message_is_found_from_either_side(traffic: Traffic) -> None:
    """What the console shows on a message (issue 15, item 2): the peer's acknowledgement of
    ours, and ours of the peer's, each with its envelope and our time for it."""
    store, link_id = traffic.store, traffic.config.link_id
    theirs = store.acknowledgement(link_id, "out", Lane.FLASH, 1)
    assert theirs is not None
    lane, seq, _received, data = theirs
    assert (lane, seq) == (Lane.FLASH, traffic.ack.seq)
    assert decode_envelope(bytes(data), None).hash == traffic.ack.hash
    assert store.acknowledgement(link_id, "out", Lane.FLASH, 2) is None
    [(lane, seq, _received, data, ack_hash)] = store.peer_acknowledgements(
        link_id, [traffic.ack.hash, bytes(32)]
    )
    assert (lane, seq, bytes(ack_hash)) == (Lane.FLASH, traffic.ack.seq, traffic.ack.hash)
    assert store.peer_acknowledgements(link_id, [traffic.priority[0].hash]) == [], "not an ack"
    assert store.peer_acknowledgements(link_id, []) == []
    assert store.acknowledgement(link_id, "in", Lane.PRIORITY, 1) is None
    ours = traffic.pair.a.core.acknowledge(traffic.priority[0], "en", "Acknowledged by olga", NOW)
    store.commit(link_id, ours.batch, NOW + SECOND)
    found = store.acknowledgement(link_id, "in", Lane.PRIORITY, 1)
    assert found is not None
    assert found[2] == NOW + SECOND
    assert decode_envelope(bytes(found[3]), None).body.text == "Acknowledged by olga"
    assert store.acknowledgement(link_id, "in", Lane.PRIORITY, 2) is None


def test_a_store_that_holds_two_acknowledgements_of_a_message_still_opens(
    store_factory: OpenStore,
    configs: tuple[LinkConfig, LinkConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Written before the rule: both stay as signed; the earliest is the one that names it."""
    full = {dialect: list(steps) for dialect, steps in MIGRATIONS.items()}
    for dialect, steps in full.items():
        unique = next(
            n for n, step in enumerate(steps) if any("UNIQUE INDEX outbox_ack" in s for s in step)
        )
        monkeypatch.setitem(MIGRATIONS, dialect, steps[:unique])
    a, b = new_core(configs[0], add_link(store_factory(), configs[0])), new_core(configs[1])
    first = send(b, Lane.PRIORITY, "first")
    a.apply(Output(Batch(inbound=[first])), NOW)
    for text in ("seen", "seen again"):
        a.apply(a.core.acknowledge(first, "en", text, NOW), NOW)
    assert a.store is not None
    a.store.close()
    for dialect, steps in full.items():
        monkeypatch.setitem(MIGRATIONS, dialect, steps)
    store = store_factory()
    assert store.load(configs[0]).outbound[Lane.PRIORITY].seq == 2, "both kept, as signed"
    assert store._rows("SELECT lane, seq FROM outbox WHERE ref_seq IS NOT NULL") == [
        (Lane.PRIORITY, 1)
    ]
    assert store.acknowledged_here(configs[0].link_id, Lane.PRIORITY, 1)


def test_a_receipt_marks_the_envelopes_it_covers_only(traffic: Traffic) -> None:
    store = traffic.reopen()
    unmarked = store._rows("SELECT lane, seq FROM outbox WHERE receipted_ns IS NULL ORDER BY 1, 2")
    assert unmarked == [(Lane.FLASH, 2), (Lane.ROUTINE, 4), (Lane.ROUTINE, 5)]


def test_receipted_time_is_when_the_receipt_came(inbox: Inbox) -> None:
    config, signer = inbox.a.config, inbox.b.config.identity
    ours = [send(inbox.a, lane, "text") for lane in (Lane.ROUTINE,) * 3 + (Lane.FLASH,)]
    inbox.store.commit(config.link_id, Batch(outbound=ours), NOW)
    for n, covered in ((1, ours[1]), (2, ours[2])):
        batch = Batch(receipt=receipt(signer, config, heads_of(config, covered)))
        inbox.store.commit(config.link_id, batch, NOW + n * SECOND)
    times = inbox.store._rows("SELECT lane, seq, receipted_ns FROM outbox ORDER BY lane, seq")
    assert times == [
        (Lane.FLASH, 1, None),
        (Lane.ROUTINE, 1, NOW + SECOND),
        (Lane.ROUTINE, 2, NOW + SECOND),
        (Lane.ROUTINE, 3, NOW + 2 * SECOND),
    ]


# -- 9. audit records keep their evidence --------------------------------------------------------


def test_audit_records_keep_their_evidence(
    store_factory: OpenStore, configs: tuple[LinkConfig, LinkConfig]
) -> None:
    pair = Pair(new_core(configs[0], add_link(store_factory(), configs[0])), new_core(configs[1]))
    pair.connect()
    garbage = b"\x07 not a packet \x00\xff"
    out = pair.a.core.receive(SID, garbage, pair.now)
    pair.a.apply(out, pair.now)
    [record] = out.batch.audit
    assert pair.a.store is not None
    pair.a.store.close()
    rows = store_factory()._rows(
        "SELECT link_id, at_ns, actor, action, detail, evidence FROM audit"
    )
    assert [(bytes(r[0]), *r[1:5], bytes(r[5])) for r in rows] == [
        (configs[0].link_id, pair.now, "link", "protocol violation", record.detail, garbage)
    ]


# -- attachments, annotations, the glossary: on both backends ------------------------------------


def test_files_are_recorded_with_their_envelope_and_signed_for_once(
    store_factory: OpenStore, configs: tuple[LinkConfig, LinkConfig]
) -> None:
    store, (a, _b) = store_factory(), configs
    store.add_link(a, NOW)
    core = LinkCore(a, LinkState.new(a), NOW)
    files = (Attachment("map.png", "image/png", 5_000_000, bytes(32)),
             Attachment("note.txt", "text/plain", 0, b"\x01" * 32))  # fmt: skip
    out = core.send(Lane.PRIORITY, MessageType.PRINCIPAL, "en", "two files", NOW, attachments=files)
    store.commit(a.link_id, out.batch, NOW)
    rows = store.attachments_of(a.link_id, "out", Lane.PRIORITY, 1)
    assert [(r.idx, r.name, r.size, r.held, r.delivered) for r in rows] == [
        (0, "map.png", 5_000_000, 0, False), (1, "note.txt", 0, 0, False)
    ]  # fmt: skip
    assert store.sent_file(a.link_id, bytes(32)) == 5_000_000
    assert store.sent_file(a.link_id, b"\x02" * 32) is None, "only files sent on this link"
    store.record_progress(a.link_id, "out", bytes(32), 1_000_000)
    assert store.attachments_of(a.link_id, "out", Lane.PRIORITY, 1)[0].held == 1_000_000
    store.record_held(a.link_id, "out", [(int(Lane.PRIORITY), 1, 0, b"statement")], NOW + 1)
    store.record_held(a.link_id, "out", [(int(Lane.PRIORITY), 1, 0, b"another")], NOW + 2)
    first = store.attachments_of(a.link_id, "out", Lane.PRIORITY, 1)[0]
    assert (first.statement, first.held, first.held_ns) == (b"statement", 5_000_000, NOW + 1)
    assert [r.idx for r in store.pending_attachments(a.link_id, "out")] == [1]
    assert len(list(store.all_attachments(a.link_id))) == 2


def test_annotations_and_the_glossary_are_kept(
    store_factory: OpenStore, configs: tuple[LinkConfig, LinkConfig]
) -> None:
    store, (a, _b) = store_factory(), configs
    store.add_link(a, NOW)
    for i, kind in enumerate((1, 2, 3)):
        store.add_annotation(a.link_id, 3, 7, kind, bytes([i]) * 32, b"signed %d" % i, NOW + i)
    assert store.annotations_of(a.link_id, 3, 7) == [b"signed 0", b"signed 1", b"signed 2"]
    assert store.annotations_of(a.link_id, 3, 8) == []
    assert list(store.all_annotations(a.link_id)) == [b"signed 0", b"signed 1", b"signed 2"]
    with pytest.raises(StoreError):  # one annotation, one hash
        store.add_annotation(a.link_id, 3, 7, 1, bytes(32), b"again", NOW)
    store.put_glossary("moscow", "ru", "Иванов", "en", "Ivanov", "", "nina", NOW)
    store.put_glossary("moscow", "ru", "Иванов", "en", "Ivanov (Deputy Minister)", "title",
                       "vera", NOW + 1)  # fmt: skip
    store.put_glossary("moscow", "ru", "Кремль", "en", "the Kremlin", "", "nina", NOW)
    entries = store.glossary("moscow")
    assert [(e.source, e.target, e.author) for e in entries] == [
        ("Иванов", "Ivanov (Deputy Minister)", "vera"), ("Кремль", "the Kremlin", "nina")
    ]  # fmt: skip
    assert store.glossary("paris") == []
    assert store.delete_glossary("moscow", entries[0].id)
    assert not store.delete_glossary("moscow", entries[0].id)
    assert [e.source for e in store.glossary("moscow")] == ["Кремль"]


# -- 12. the operators' TOTP secrets are sealed at rest ------------------------------------------


def test_totp_secrets_are_sealed_in_the_rows_and_opened_only_with_the_station_key(
    store_factory: OpenStore, identities: tuple[StationIdentity, StationIdentity]
) -> None:
    """A copy of the store alone gives no TOTP secret (issue 13, item 16)."""
    private, public = totp_key(identities[0])
    plain = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    tool = store_factory()  # `hotline operator add`: it knows the public key, not the keystore
    tool.use_totp_key(public)
    tool.add_operator(Operator("olga", "operator", "hash", plain, "en", False, 0, 0, 0, NOW))
    (raw,) = tool._rows("SELECT totp_secret FROM operators WHERE name = 'olga'")[0]
    assert raw.startswith(SEALED_PREFIX)
    assert plain not in raw
    operator = tool.operator("olga")
    assert operator is not None
    assert operator.totp_secret == raw, "without the private key it stays sealed"
    tool.close()

    station = store_factory()
    station.use_totp_key(public, private)
    assert [o.totp_secret for o in station.operators()] == [plain]
    station.update_operator("olga", totp_secret="KRUGS4ZANFZSAYJAORSXG5BAONSWG4TF")
    (raw,) = station._rows("SELECT totp_secret FROM operators")[0]
    assert raw.startswith(SEALED_PREFIX)
    operator = station.operator("olga")
    assert operator is not None
    assert operator.totp_secret == "KRUGS4ZANFZSAYJAORSXG5BAONSWG4TF"

    other_private, _ = totp_key(identities[1])
    station.use_totp_key(public, other_private)
    assert station.unopened_totp_secrets() == ["olga"], "another station's key opens nothing"
    tamper(station, "UPDATE operators SET name = 'ivan'")  # a sealed secret moved to an account
    station.use_totp_key(public, private)
    assert station.unopened_totp_secrets() == ["ivan"]


def test_plain_totp_secrets_kept_before_are_sealed_in_place(
    store_factory: OpenStore, identities: tuple[StationIdentity, StationIdentity]
) -> None:
    private, public = totp_key(identities[0])
    store = store_factory()
    for name, secret in (("olga", "JBSWY3DPEHPK3PXP"), ("ivan", "KRUGS4ZANFZSAYJA")):
        store.add_operator(Operator(name, "operator", "hash", secret, "en", False, 0, 0, 0, NOW))
    store.use_totp_key(public, private)
    assert store.seal_plain_totp_secrets() == ["ivan", "olga"]
    assert store.seal_plain_totp_secrets() == [], "once"
    rows = store._rows("SELECT totp_secret FROM operators")
    assert all(secret.startswith(SEALED_PREFIX) for (secret,) in rows)
    assert {o.name: o.totp_secret for o in store.operators()} == {
        "olga": "JBSWY3DPEHPK3PXP", "ivan": "KRUGS4ZANFZSAYJA"
    }  # fmt: skip


def test_the_peers_messages_past_their_deadline_and_our_count_of_a_type(inbox: Inbox) -> None:
    """What the discipline asks every second at the receiving side (issue 15, item 6): the
    peer's principal messages that no person here has acknowledged, received before their
    lane's cutoff; and how many of a type we have sent (the link tests' numbers)."""
    link_id = inbox.a.config.link_id
    after = [NOW + SECOND] * len(Lane)
    late = [tuple(row) for row in inbox.store.overdue_inbound(link_id, after)]
    assert late == [(Lane.PRIORITY, 1, NOW, MessageType.PRINCIPAL)]
    assert inbox.store.overdue_inbound(link_id, [NOW] * len(Lane)) == [], "not before NOW"
    assert inbox.store.sent_count(link_id, MessageType.ACKNOWLEDGEMENT) == 0
    seen = inbox.a.core.acknowledge(inbox.first, "en", "seen", NOW)
    inbox.store.commit(link_id, seen.batch, NOW)
    assert inbox.store.overdue_inbound(link_id, after) == [], "acknowledged here"
    assert inbox.store.sent_count(link_id, MessageType.ACKNOWLEDGEMENT) == 1
    assert inbox.store.sent_count(link_id, MessageType.TEST) == 0
