"""The side's lease and its fencing epoch, on a real PostgreSQL (issue 14): one node active at a
time, a takeover only once the lease has ended, and a node that lost the lease unable to commit
anything, whatever it tries to write, even with a transaction open when the other node takes
over. Times are moved by setting the lease's end in the table, not by waiting for it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

from hotline.crypto.identity import StationIdentity
from hotline.errors import ConfigError, LeaseLost, StoreError
from hotline.protocol.envelope import Lane, MessageType
from hotline.protocol.link import LinkCore
from hotline.protocol.state import LinkConfig
from hotline.sim.pgserver import ThrowawayPostgres
from hotline.station.datadir import DataDir
from hotline.station.events import EventHub
from hotline.station.link_runtime import LinkRuntime
from hotline.station.links import Link, load_links
from hotline.station.storethread import StoreThread
from hotline.store.lease import Lease, LeaseTable
from hotline.store.people import Draft
from hotline.store.postgres import PostgresStore
from hotline.store.schema import MIGRATIONS
from hotline.store.sqlite import SqliteStore

SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def pg() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as server:
        yield server


@pytest.fixture
def dsn(pg: ThrowawayPostgres) -> str:
    return pg.create_database(f"side_{uuid.uuid4().hex}")


@pytest.fixture
def tables(dsn: str) -> Iterator[Callable[[], LeaseTable]]:
    PostgresStore(dsn).close()  # the schema
    opened: list[LeaseTable] = []

    def table() -> LeaseTable:
        opened.append(LeaseTable(dsn))
        return opened[-1]

    yield table
    for t in opened:
        t.close()


def _end_lease(dsn: str) -> None:
    """The holder's time is over, as if it had not renewed: no waiting for a clock."""
    store = PostgresStore(dsn)
    try:
        store._db.execute("UPDATE node_lease SET expires_ns = 1")
    finally:
        store.close()


def _take(table: LeaseTable, node: str) -> Lease | None:
    return table.take(node, 60_000, f"127.0.0.1:{len(node)}", f"http://{node}")


def test_one_node_holds_the_lease_until_it_ends_then_the_next_takes_a_higher_epoch(
    tables: Callable[[], LeaseTable], dsn: str
) -> None:
    a, b = tables(), tables()
    first = _take(a, "a")
    assert first is not None
    assert (first.node, first.epoch, first.reason) == ("a", 1, "first")
    assert first.live
    assert not first.failover
    assert _take(b, "b") is None  # a's lease runs: b stays a standby
    seen = b.read()
    assert seen is not None
    assert (seen.node, seen.epoch, seen.api) == ("a", 1, "127.0.0.1:1")
    assert a.renew(first, 60_000) is not None
    _end_lease(dsn)
    taken = _take(b, "b")
    assert taken is not None
    assert (taken.node, taken.epoch) == ("b", 2)
    assert (taken.previous_node, taken.reason, taken.failover) == ("a", "expired", True)
    assert "'a' (epoch 1) expired" in taken.why()
    assert a.renew(first, 60_000) is None  # a's epoch is over: it cannot renew its way back
    b.release(taken)  # a clean stop: the next node takes over at once, as a hand-over
    again = _take(a, "a")
    assert again is not None
    assert (again.epoch, again.reason, again.failover) == (
        3,
        "released",
        False,
    )
    history = a.history()
    assert [detail.split(":")[0] for _, detail in history] == [
        "node 'a' is active at epoch 3",
        "node 'b' is active at epoch 2",
        "node 'a' is active at epoch 1",
    ]


def test_two_standbys_racing_for_an_ended_lease_make_one_active(
    tables: Callable[[], LeaseTable], dsn: str
) -> None:
    holder = tables()
    assert _take(holder, "a") is not None
    _end_lease(dsn)
    racers = {name: tables() for name in ("b", "c", "d", "e")}
    won: list[Lease] = []
    start = threading.Barrier(len(racers))

    def race(name: str) -> None:
        start.wait()
        lease = _take(racers[name], name)
        if lease is not None:
            won.append(lease)

    threads = [threading.Thread(target=race, args=(n,)) for n in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [lease.epoch for lease in won] == [2]


@pytest.fixture
def stores() -> Iterator[list[PostgresStore]]:
    opened: list[PostgresStore] = []
    yield opened
    for store in opened:
        store.close()


def _side(
    stores: list[PostgresStore], dsn: str
) -> tuple[StationIdentity, LinkConfig, Callable[[], PostgresStore]]:
    me = StationIdentity.from_random(bytes(range(96)))
    peer = StationIdentity.from_random(bytes(range(1, 97)))
    config = LinkConfig(b"L" * 32, me, peer.public)

    def store() -> PostgresStore:
        stores.append(PostgresStore(dsn))
        stores[-1].add_link(config, 1)
        return stores[-1]

    return me, config, store


def _one_message(store: PostgresStore, config: LinkConfig, text: str) -> None:
    core = LinkCore(config, store.load(config), time.time_ns())
    out = core.send(Lane.ROUTINE, MessageType.PRINCIPAL, "en", text, time.time_ns())
    store.commit(config.link_id, out.batch, time.time_ns())


def _outbox(store: PostgresStore) -> int:
    return int(store._rows("SELECT count(*) FROM outbox")[0][0])


def test_a_node_that_lost_the_lease_can_commit_nothing(
    tables: Callable[[], LeaseTable], dsn: str, stores: list[PostgresStore]
) -> None:
    _, config, open_store = _side(stores, dsn)
    old_table, new_table = tables(), tables()
    old_store, new_store = open_store(), open_store()
    lease = _take(old_table, "a")
    assert lease is not None
    old_store.fence("a", lease.epoch, idle_ms=60_000)
    _one_message(old_store, config, "from a, while active")  # the active node commits
    _end_lease(dsn)
    taken = _take(new_table, "b")
    assert taken is not None
    new_store.fence("b", taken.epoch, idle_ms=60_000)
    state = new_store.load(config)  # the new node starts from all the old one committed
    assert state.outbound[Lane.ROUTINE].seq == 1
    # The takeover ended the old node's session; and a new one (the old node reconnecting, say
    # after the database failed over) finds out from the epoch. However late it wakes, its
    # chain, receipts, people's acts and audit are refused.
    with pytest.raises(StoreError):
        _one_message(old_store, config, "from a, after the takeover")
    old_store = open_store()
    old_store.fence("a", lease.epoch, idle_ms=60_000)
    with pytest.raises(LeaseLost, match=r"'a' lost the lease.*node 'b' at epoch 2"):
        _one_message(old_store, config, "from a, after the takeover")
    draft = Draft(0, "peer", 3, 0, "en", "a draft", "ann", 1, "draft", None, None, None)
    for write in (
        lambda: old_store.add_draft(draft),
        lambda: old_store.audit(None, "x", "y", b"", 1),
        lambda: old_store.set_setting("exercise", "1"),
    ):
        with pytest.raises(LeaseLost):
            write()
    assert _outbox(new_store) == 1
    assert not new_store.drafts(("draft",))
    _one_message(new_store, config, "from b")  # the chain goes on at b, unforked
    assert new_store.load(config).outbound[Lane.ROUTINE].seq == 2
    with pytest.raises(StoreError, match="outside a transaction"):
        old_store._execute("DELETE FROM outbox")


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_commit_in_flight_when_the_lease_expired_is_ended_by_the_takeover(
    tables: Callable[[], LeaseTable], dsn: str, stores: list[PostgresStore], pipelined: bool
) -> None:
    """The old node's transaction holds the lease row (its fence check) and its process stops,
    even half-way through sending a pipeline of statements, where the server's idle timeout
    never starts: the node taking over ends that session, so the takeover is not held up and
    the old commit is rolled back, never landing in the new epoch."""
    _, _, open_store = _side(stores, dsn)
    old_table, new_table = tables(), tables()
    old_store, reader = open_store(), open_store()
    lease = _take(old_table, "a")
    assert lease is not None
    old_store.fence("a", lease.epoch, idle_ms=60_000)  # the server would wait a minute
    _end_lease(dsn)
    taken: list[Lease | None] = []

    def paused_mid_commit() -> None:
        with old_store.transaction():
            if pipelined:  # statements sent without their Sync: a group commit, cut short
                old_store._db.pipeline().__enter__()
            old_store._db.execute("INSERT INTO meta (key, value) VALUES ('late', '1')")
            taken.append(_take(new_table, "b"))  # the process is stopped; b takes over
            old_store._execute("INSERT INTO meta (key, value) VALUES ('later', '1')")

    with pytest.raises(StoreError):
        paused_mid_commit()
    assert taken[0] is not None
    assert taken[0].epoch == 2
    assert not reader._rows("SELECT key FROM meta WHERE key IN ('late', 'later')")


def test_nodes_starting_together_on_a_new_database_both_open_it(dsn: str) -> None:
    opened: list[PostgresStore] = []
    failures: list[BaseException] = []
    start = threading.Barrier(3)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(PostgresStore(dsn))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert {s.schema_version for s in opened} == {len(MIGRATIONS["postgres"])}
    for store in opened:
        store.close()


def test_a_sqlite_store_has_no_lease_and_a_node_name_needs_postgresql(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    assert store._rows("SELECT count(*) FROM node_lease") == [(0,)]  # the table, never used
    store.close()
    data = DataDir(tmp_path / "station")
    data.init("London", b"a long enough passphrase", ["127.0.0.1:9001"])
    text = data.config_file.read_text()
    assert '[node]\nname = ""' in text  # the default: the side's only node
    data.config_file.write_text(text.replace('[node]\nname = ""', '[node]\nname = "a"'))
    with pytest.raises(ConfigError, match=r"share a PostgreSQL store\.url"):
        data.config()
    text = data.config_file.read_text().replace('url = ""', 'url = "postgresql://x@/y"')
    data.config_file.write_text(text.replace("renew_ms = 1000", "renew_ms = 2000"))
    with pytest.raises(ConfigError, match="lease_ms at least 3 renew_ms"):
        data.config()


def test_a_peer_of_two_nodes_is_up_through_either_and_the_other_is_standby(
    tmp_path: Path,
) -> None:
    """Moscow dials both London nodes' addresses (link.toml `other_nodes`); only the active
    one answers. Its paths are UP, the other node's STANDBY (no path alarm), the link UP; and a
    call's media goes to the paths of the node that answers, not to the first node's."""
    from hotline.station.launch import make_pair  # noqa: PLC0415

    _, moscow = make_pair(tmp_path)
    link_dir = moscow.data.path / "links" / "london"
    extra = '"127.0.0.2:1", "127.0.0.2:2"'
    text = (link_dir / "link.toml").read_text()
    (link_dir / "link.toml").write_text(text + f"other_nodes = [[{extra}]]\n")
    identity = moscow.data.open_keystore(moscow.passphrase_file.read_bytes().rstrip(b"\n"))
    link: Link = load_links(moscow.data, identity)[0]
    assert link.other_nodes == (("127.0.0.2:1", "127.0.0.2:2"),)
    first = list(link.dial)
    hub = cast(EventHub, _Hub())
    runtime = LinkRuntime(link, cast(StoreThread, None), hub, link.dial_all, nodes=link.peer_nodes)

    def states() -> list[str]:
        return [runtime.paths[a].state for a in link.dial_all]

    assert runtime.state == "DOWN"
    assert runtime.media_addresses == list(link.peer_card.body.paths)  # nobody answered yet
    runtime._set_path(first[0], "UP")
    assert (runtime.state, states()) == ("DEGRADED", ["UP", "DOWN", "STANDBY", "STANDBY"])
    runtime._set_path(first[1], "UP")
    assert (runtime.state, states()) == ("UP", ["UP", "UP", "STANDBY", "STANDBY"])
    assert runtime.media_addresses == first
    for address in first:  # the active node dies: nobody answers, every path is DOWN
        runtime._set_path(address, "DOWN", "reset")
    assert (runtime.state, states()) == ("DOWN", ["DOWN"] * 4)
    for address in link.dial_all[2:]:  # the other node took over
        runtime._set_path(address, "UP")
    assert (runtime.state, states()) == ("UP", ["STANDBY", "STANDBY", "UP", "UP"])
    assert runtime.media_addresses == ["127.0.0.2:1", "127.0.0.2:2"]


class _Hub:
    def publish(self, event: dict[str, object]) -> None:
        pass
