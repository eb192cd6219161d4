"""One side on replicated PostgreSQL (issue 14), as real processes: London (one node, then two)
on two PostgreSQL servers under Patroni (synchronous_mode_strict, etcd as its store;
tests/patroni.py), reached through one multi-host connection string with
target_session_attrs=read-write; Moscow on SQLite. The PostgreSQL primary is killed (SIGKILL)
while both sides send: Patroni promotes the synchronous standby, the active node's store fails,
the node steps down and a node takes the lease again on the new primary (node.py), loading its
chains from there; London accepts messages again,
and every message accepted before and after is delivered exactly once, in order; the chains are
linear and an export of London's record verifies. Then the same, repeated: a bounded loop of
kills, at random, of the active node, of the primary, or of both at once, with the same checks
at the end. And `hotline node status` shows the servers' roles as Patroni reports them."""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from hotline.errors import StoreError
from hotline.sim.pgserver import ThrowawayPostgres
from hotline.station.datadir import write_atomically
from hotline.station.launch import StationProcess, free_ports, make_pair
from hotline.station.launch_nodes import make_side, node_of
from hotline.store.postgres import PostgresStore
from tests.patroni import PatroniCluster, can_run
from tests.test_node_failover import _check_delivery, _Senders, _start, _up, _wait

FAULT_ROUNDS = 5  # the repeated fault test: kills, of a node, the primary, or both at once
FAULT_BUDGET_S = 100.0  # ... and no new round once this long has gone by (at least one each)

needs_patroni = pytest.mark.skipif(can_run() is not None, reason=f"{can_run()}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[PatroniCluster]:
    with PatroniCluster() as started:
        yield started


@pytest.fixture
def side(
    tmp_path: Path, cluster: PatroniCluster, request: pytest.FixtureRequest
) -> Iterator[tuple[Any, Any, str]]:
    """London on `request.param` nodes on the cluster, Moscow on SQLite."""
    url = cluster.create_database(f"london_{uuid.uuid4().hex[:12]}")
    london, moscow = make_side(tmp_path, url, nodes=request.param, dialer="moscow")
    try:
        yield london, moscow, url
    finally:
        for station in [*london, moscow]:  # all at once: no standby takes over meanwhile
            if station.process is not None:
                station.process.send_signal(signal.SIGTERM)
        for station in [*london, moscow]:
            station.close()


@needs_patroni
def test_the_cluster_commits_only_on_two_servers(cluster: PatroniCluster) -> None:
    """What 'accepted' rests on: the leader waits for its synchronous standby at each commit."""
    url = cluster.create_database(f"probe_{uuid.uuid4().hex[:12]}")
    with psycopg.connect(url, autocommit=True) as conn:
        names = conn.execute("SHOW synchronous_standby_names").fetchall()[0][0]
        assert cluster.role_of("sync_standby") is not None
        assert names not in ("", "''")
        assert conn.execute("SHOW synchronous_commit").fetchall()[0][0] == "on"
        assert not conn.execute("SELECT pg_is_in_recovery()").fetchall()[0][0]


def _node_status(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", "node", "status", "--data-dir", str(data_dir), *extra],
        capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


@needs_patroni
def test_node_status_shows_the_database_servers_as_patroni_reports_them(
    cluster: PatroniCluster, tmp_path: Path
) -> None:
    url = cluster.create_database(f"london_{uuid.uuid4().hex[:12]}")
    PostgresStore(url).close()  # the schema, and so the lease's table
    london, _moscow = make_pair(tmp_path)
    (nothing,) = free_ports(1)  # no one listens there
    patroni = [
        *(member.api for member in cluster.members),
        f"http://127.0.0.1:{nothing}",  # a Patroni that is down
        f"http://127.0.0.1:{cluster.etcd_port}",  # something else: not Patroni's answer
    ]

    def configure(store_url: str) -> None:
        config = london.data.config()
        config = msgspec.structs.replace(
            config,
            store=msgspec.structs.replace(config.store, url=store_url),
            node=msgspec.structs.replace(config.node, name="a", patroni=patroni),
        )
        write_atomically(london.data.config_file, config.to_toml().encode(), mode=0o600)

    configure(url)
    leader = cluster.wait_healthy(60)
    standby = cluster.role_of("sync_standby")
    assert standby is not None
    shown = _node_status(london.data.path)
    assert shown.returncode == 0, shown.stderr
    assert "Traceback" not in shown.stdout + shown.stderr
    assert "Database servers, as Patroni reports them:" in shown.stdout
    lines = shown.stdout.splitlines()
    row = {name: next(line.split() for line in lines if line.split()[:1] == [name])
           for name in (leader.name, standby.name)}  # fmt: skip
    assert row[leader.name][1:3] == ["leader", "running"]
    assert row[standby.name][1:3] == ["sync_standby", "running"]
    # The standby's lag in bytes, as Patroni last recorded it: Patroni refreshes a member's WAL
    # position once per loop, so the database just created may still show as a lag of some bytes.
    assert row[standby.name][-1] == "B"
    assert row[standby.name][-2].isdigit()
    assert f"Patroni at http://127.0.0.1:{nothing} unreachable:" in shown.stdout
    assert f"Patroni at http://127.0.0.1:{cluster.etcd_port} unreachable: HTTP 404" in shown.stdout

    as_json = _node_status(london.data.path, "--json")
    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)["patroni"]
    assert [entry["answered"] for entry in answer["asked"]] == [True, True, False, False]
    roles = {member["name"]: member["role"] for member in answer["members"]}
    assert roles == {leader.name: "leader", standby.name: "sync_standby"}
    lags = {member["name"]: member["lag"] for member in answer["members"]}
    assert isinstance(lags[standby.name], int)
    assert lags[standby.name] >= 0

    # The store unreachable: the lease is unknown, the servers' roles are still shown.
    configure(f"postgresql://hotline@127.0.0.1:{nothing}/london?connect_timeout=2")
    shown = _node_status(london.data.path)
    assert shown.returncode == 1
    assert "Traceback" not in shown.stdout + shown.stderr
    assert "Active node  unknown: cannot reach the store for the lease" in shown.stdout
    assert "Database servers, as Patroni reports them:" in shown.stdout


def test_a_patroni_address_that_is_not_a_url_is_refused(tmp_path: Path) -> None:
    london, _moscow = make_pair(tmp_path)
    config = london.data.config()
    config = msgspec.structs.replace(
        config,
        store=msgspec.structs.replace(config.store, url="postgresql://hotline@127.0.0.1/x"),
        node=msgspec.structs.replace(config.node, patroni=["127.0.0.1:8008/cluster"]),
    )
    write_atomically(london.data.config_file, config.to_toml().encode(), mode=0o600)
    shown = _node_status(london.data.path)
    assert shown.returncode != 0
    assert "node.patroni: '127.0.0.1:8008/cluster' is not http(s)://host:port" in (
        shown.stdout + shown.stderr
    )
    assert "Traceback" not in shown.stdout + shown.stderr


def _up_through_the_active_node(london: list[StationProcess], moscow: StationProcess) -> bool:
    """The link UP at both sides through the node active now: asked again at each look, since
    right after a database failover the lease may pass from node to node while commits wait for
    the old primary to come back as the synchronous standby."""
    active = [node for node in london if (node_of(node) or {}).get("role") == "active"]
    return len(active) == 1 and _up(active[0]) and _up(moscow)


def _active(london: list[StationProcess]) -> StationProcess:
    """The node that says it is active (waiting for one, bounded)."""
    found: list[StationProcess] = []

    def one() -> bool:
        found[:] = [node for node in london if (node_of(node) or {}).get("role") == "active"]
        return len(found) == 1

    _wait(one, "one active node")
    return found[0]


@needs_patroni
@pytest.mark.parametrize("side", [1, 2], indirect=True, ids=["one node", "two nodes"])
def test_the_side_follows_a_failover_of_its_database(
    cluster: PatroniCluster, side: tuple[Any, Any, str], tmp_path: Path
) -> None:
    london, moscow, url = side
    _start(london, moscow)
    with _Senders(london, moscow) as senders:
        _wait(lambda: senders.count("london") > 30 and senders.count("moscow") > 30, "traffic")
        before = senders.count("london")
        killed = cluster.kill_primary()
        cluster.wait_failover(killed, 60)  # Patroni promoted the synchronous standby
        _wait(lambda: senders.count("london") > before + 10, "London accepting again", 90)
        _wait(lambda: _up_through_the_active_node(london, moscow), "the link UP again", 120)
        sent = senders.count("london"), senders.count("moscow")
        _wait(
            lambda: (
                senders.count("london") > sent[0] + 30 and senders.count("moscow") > sent[1] + 30
            ),
            "traffic both ways after the failover",
        )
    active = _active(london)
    _check_delivery(active, moscow, url, senders.accepted)
    bundle = tmp_path / "london.hotline"
    exported = subprocess.run(
        [sys.executable, "-m", "hotline", "export", "--out", str(bundle), "--pdf", "never",
         "--data-dir", str(active.data.path), "--passphrase-file", str(active.passphrase_file)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    verified = subprocess.run(
        [sys.executable, "-m", "hotline", "verify", str(bundle)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    log = "".join(node.log_file.read_text() for node in london)
    assert "the store failed" in log  # the node said why it stepped down


def _up_and_accepting(
    london: list[StationProcess], moscow: StationProcess, senders: _Senders
) -> StationProcess:
    """Wait for one active node, the link UP at both sides, and London accepting; that node."""
    _wait(lambda: _up_through_the_active_node(london, moscow), "the link UP", 120)
    before = senders.count("london"), senders.count("moscow")
    _wait(
        lambda: senders.count("london") > before[0] + 5 and senders.count("moscow") > before[1] + 5,
        "traffic both ways",
        90,
    )
    return _active(london)


def _kill_node(london: list[StationProcess], active: StationProcess) -> None:
    """SIGKILL the active node and start it again (as a supervisor would), without waiting."""
    active.kill(signal.SIGKILL)
    active.start(wait=False)


def _wait_nodes_up(london: list[StationProcess]) -> None:
    """Every node answers, as active or standby (a restarted one may take the lease first)."""

    def running(node: StationProcess) -> bool:
        return (node_of(node) or {}).get("role") in ("active", "standby")

    for node in london:
        try:
            _wait(functools.partial(running, node), f"{node.name} running again", 90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {node.log_file.read_text()[-3000:]}") from None


@needs_patroni
@pytest.mark.parametrize("side", [2], indirect=True, ids=["two nodes"])
def test_repeated_kills_of_nodes_and_database_servers_lose_and_repeat_nothing(
    cluster: PatroniCluster, side: tuple[Any, Any, str]
) -> None:
    """A bounded loop of faults mid-traffic, chosen at random: SIGKILL of the active London
    node, of the PostgreSQL primary's postmaster, or of both at once; each kind at least once.
    At the end, as after one fault: all accepted by either side delivered once, in order, both
    stores verify (linear chains)."""
    london, moscow, url = side
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    kinds = ["node", "database", "both"]
    rng.shuffle(kinds)
    kinds += [rng.choice(["node", "database", "both"]) for _ in range(FAULT_ROUNDS - 3)]
    print(f"seed {seed}: {kinds}")
    cluster.wait_healthy(60)
    _start(london, moscow)
    started, done = time.monotonic(), []
    with _Senders(london, moscow) as senders:
        for number, kind in enumerate(kinds):
            if number >= 3 and time.monotonic() - started > FAULT_BUDGET_S:
                break  # every kind done: the rest would only make the test longer
            active = _up_and_accepting(london, moscow, senders)
            if kind in ("node", "both"):
                _kill_node(london, active)
            if kind in ("database", "both"):
                cluster.wait_failover(cluster.kill_primary(), 60)
            _wait_nodes_up(london)
            done.append(kind)
        _up_and_accepting(london, moscow, senders)
    print(f"rounds done: {done} in {time.monotonic() - started:.0f} s")
    _check_delivery(_active(london), moscow, url, senders.accepted)
    log = "".join(node.log_file.read_text() for node in london)
    assert "the store failed" in log  # a database failover: the node stepped down, and said why


def test_a_commit_the_standby_never_confirmed_is_not_accepted() -> None:
    """A commit whose wait for the synchronous standby is cancelled (pg_cancel_backend) is
    reported done by PostgreSQL though only the primary holds it: the store must not take that
    for accepted."""
    with ThrowawayPostgres() as server:
        url = server.create_database("held")
        with psycopg.connect(server.dsn(), autocommit=True) as admin:
            admin.execute("ALTER DATABASE held SET synchronous_commit = on")
            store = PostgresStore(url)
            try:
                admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
                admin.execute("SELECT pg_reload_conf()")
                pid = store._rows("SELECT pg_backend_pid()")[0][0]
                deadline, refused = time.monotonic() + 30, ""
                while not refused:  # until the server applies the setting, commits do not wait
                    assert time.monotonic() < deadline, "no unreplicated commit refused"
                    stop = threading.Event()
                    canceller = threading.Thread(target=_cancel_the_wait, args=(admin, pid, stop))
                    canceller.start()
                    try:
                        store.set_setting("probe", "1")
                    except StoreError as exc:
                        refused = str(exc)
                    finally:
                        stop.set()
                        canceller.join(timeout=30)
                    time.sleep(0.1)
                assert "not confirmed by the synchronous standby" in refused
                # It is on this server: a station that starts again from the store has it.
                assert store.setting("probe", "") == "1"
            finally:
                store.close()


def _cancel_the_wait(admin: psycopg.Connection[Any], pid: int, stop: threading.Event) -> None:
    """Cancel the backend's statement once it waits for the synchronous standby (its commit);
    after 30 s whatever it does, so that nothing waits for ever."""
    deadline = time.monotonic() + 30
    while not stop.is_set():
        rows = admin.execute(
            "SELECT wait_event FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchall()
        if (rows and rows[0][0] == "SyncRep") or time.monotonic() > deadline:
            admin.execute("SELECT pg_cancel_backend(%s)", (pid,))
            return
        time.sleep(0.02)
