"""One side on two machines (issue 14), as real processes: London on two nodes sharing a real
PostgreSQL, Moscow on SQLite. Messages flow through the active node; when it is killed, the
standby takes over and the link comes UP again with Moscow; when it is paused past its lease and
resumes, it cannot commit and steps down. Throughout: every message accepted by either node is
delivered exactly once, in order, and the chains stay linear (each store verifies)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from hotline.protocol.envelope import LANES
from hotline.sim.pgserver import ThrowawayPostgres
from hotline.station.launch import StationProcess
from hotline.station.launch_nodes import make_side, wait_role
from hotline.station.links import load_links
from hotline.store.base import SqlStore
from hotline.store.lease import LeaseTable
from hotline.store.postgres import PostgresStore
from hotline.store.sqlite import SqliteStore

LANE_NAMES = [lane.name for lane in LANES]
Accepted = set[tuple[str, str, int, str]]  # (from, lane, seq, hash)


@pytest.fixture(scope="module")
def pg() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as server:
        yield server


@pytest.fixture
def url(pg: ThrowawayPostgres) -> str:
    name = f"london_{uuid.uuid4().hex[:12]}"
    pg.create_database(name)
    return f"postgresql://hotline@/{name}?host={pg.socket_dir}&port=5432"


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass  # a node stepping down, or taking over
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _link(station: StationProcess) -> dict[str, Any]:
    links: list[dict[str, Any]] = station.call("GET", "/api/v1/status")["links"]
    return links[0]


def _up(station: StationProcess) -> bool:
    return bool(_link(station)["state"] == "UP")


def _start(london: list[StationProcess], moscow: StationProcess) -> None:
    london[0].start(wait=False)
    wait_role(london[0], "active")
    for node in london[1:]:
        node.start(wait=False)
        wait_role(node, "standby")
    moscow.start()
    _wait(lambda: _up(london[0]) and _up(moscow), "the link UP through node a")


class _Senders:
    """Messages sent both ways while nodes fail: London's through whichever node answers."""

    def __init__(self, london: list[StationProcess], moscow: StationProcess) -> None:
        self.london, self.moscow = london, moscow
        self.accepted: Accepted = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._send, args=("london", "moscow", london)),
            threading.Thread(target=self._send, args=("moscow", "london", [moscow])),
        ]

    def __enter__(self) -> _Senders:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def count(self, origin: str) -> int:
        with self.lock:
            return sum(1 for a in self.accepted if a[0] == origin)

    def _send(self, origin: str, link: str, nodes: list[StationProcess]) -> None:
        rng, index, turn = random.Random(origin), 0, 0
        token = {"Authorization": f"Bearer {nodes[0].data.api_token()}"}
        with httpx.Client(headers=token, timeout=3) as client:  # a paused node: the next one
            while not self.stop.is_set():
                index, turn = self._send_one(client, origin, link, nodes, rng, index, turn)

    def _send_one(
        self,
        client: httpx.Client,
        origin: str,
        link: str,
        nodes: list[StationProcess],
        rng: random.Random,
        index: int,
        turn: int,
    ) -> tuple[int, int]:
        """Send one message; where it went and the next message's number."""
        body = {
            "text": f"{origin} {turn}",
            "lane": rng.choice(LANE_NAMES),
            "language": "en",
            "type": "service",
        }
        try:
            answer = client.post(f"{nodes[index].api}/api/v1/links/{link}/messages", json=body)
            answer.raise_for_status()
        except httpx.HTTPError:  # a standby (503), a dead or paused node: the other one
            time.sleep(0.05)
            return (index + 1) % len(nodes), turn
        result = answer.json()
        with self.lock:
            self.accepted.add((origin, result["lane"], result["seq"], result["hash"]))
        time.sleep(0.01)
        return index, turn + 1


def _identity_link(station: StationProcess) -> Any:
    identity = station.data.open_keystore(station.passphrase_file.read_bytes().rstrip(b"\n"))
    return load_links(station.data, identity)[0]


def _rows(store: SqlStore, table: str, link_id: bytes) -> list[tuple[str, int, str]]:
    order = "id" if table == "inbox" else "lane, seq"
    rows = store._rows(
        f"SELECT lane, seq, hash FROM {table} WHERE link_id = ? ORDER BY {order}",
        (link_id,),
    )
    return [(LANE_NAMES[lane], seq, bytes(h).hex()) for lane, seq, h in rows]


def _check_delivery(
    active: StationProcess, moscow: StationProcess, url: str, sent: Accepted
) -> None:
    """Both ways: all accepted is held by the other side once, in order; both stores verify."""
    _wait(
        lambda: (
            _link(active)["unreceipted"] == 0
            and _link(moscow)["unreceipted"] == 0
            and _link(active)["in_agreement"]
            and _link(moscow)["in_agreement"]
        ),
        "receipts and agreement",
    )
    london_link, moscow_link = _identity_link(active), _identity_link(moscow)
    london_store, moscow_store = PostgresStore(url), SqliteStore(moscow.data.store_file)
    try:
        london_store.verify(london_link.config)  # every signature and chain: linear, unforked
        moscow_store.verify(moscow_link.config)
        link_id = london_link.config.link_id
        for origin, out_store, in_store in (
            ("london", london_store, moscow_store),
            ("moscow", moscow_store, london_store),
        ):
            outbox = _rows(out_store, "outbox", link_id)
            inbox = _rows(in_store, "inbox", link_id)
            accepted = {(lane, seq, h) for o, lane, seq, h in sent if o == origin}
            assert accepted <= set(outbox)  # accepted means durable at the sender
            assert len(inbox) == len(set(inbox))  # no duplicates
            assert set(inbox) == set(outbox)  # no loss
            for lane in LANE_NAMES:  # in order per lane, as received
                seqs = [seq for name, seq, _ in inbox if name == lane]
                assert seqs == list(range(1, len(seqs) + 1))
        assert (
            london_store.load(london_link.config).inbound
            == moscow_store.load(moscow_link.config).outbound
        )
    finally:
        london_store.close()
        moscow_store.close()


@pytest.fixture
def side(tmp_path: Path, url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    london, moscow = make_side(tmp_path, url, dialer=request.param)
    try:
        yield london, moscow
    finally:
        for station in [*london, moscow]:
            if station.process is not None:
                station.process.send_signal(signal.SIGCONT)
            station.close()


@pytest.mark.parametrize("side", ["moscow"], indirect=True)
def test_the_standby_takes_over_when_the_active_node_is_killed(side: Any, url: str) -> None:
    (a, b), moscow = side
    # Moscow knows node b from London's card alone (version 2): its link.toml names no node.
    link_toml = (moscow.data.path / "links" / "london" / "link.toml").read_text()
    assert "\nother_nodes" not in link_toml
    assert a.data.card().body.nodes == [b.data.config().station.listen]
    _start([a, b], moscow)
    dialled = moscow.call("GET", "/api/v1/status")["links"][0]["paths"]
    assert {p["address"] for p in dialled} == {
        *a.data.config().station.listen, *b.data.config().station.listen
    }  # fmt: skip
    # The standby names the active node: its API with 503, its console with a redirect.
    refused = httpx.get(f"{b.api}/api/v1/status", timeout=5)
    assert refused.status_code == 503
    assert refused.json()["active"]["node"] == "a"
    assert "the active node is 'a'" in refused.json()["detail"]
    redirect = httpx.get(f"{b.console}/", timeout=5)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"{a.console}/"
    assert moscow.call("GET", "/api/v1/status")["links"][0]["state"] == "UP"  # b: STANDBY
    with _Senders([a, b], moscow) as senders:
        _wait(lambda: senders.count("london") > 30 and senders.count("moscow") > 30, "traffic")
        killed = time.monotonic()
        a.kill(signal.SIGKILL)
        wait_role(b, "active")
        _wait(lambda: _up(b) and _up(moscow), "the link UP through node b")
        up_again = time.monotonic() - killed
        before = senders.count("london")
        _wait(lambda: senders.count("london") > before + 30, "traffic through node b")
    print(f"node a killed -> link UP through node b: {up_again:.2f} s")
    _check_delivery(b, moscow, url, senders.accepted)
    status = b.call("GET", "/api/v1/status")
    lease = status["node"]["lease"]
    assert (lease["node"], lease["epoch"], lease["reason"]) == ("b", 2, "expired")
    assert "failover" in {alarm["kind"] for alarm in status["alarms"]}

    def peer_failover() -> list[dict[str, Any]]:  # the other side knows too
        alarms = moscow.call("GET", "/api/v1/status")["alarms"]
        return [alarm for alarm in alarms if alarm["kind"] == "peer_failover"]

    _wait(lambda: bool(peer_failover()), "the failover alarm at Moscow", timeout=10)
    assert "London failed over" in peer_failover()[0]["text"]
    assert "its node 2 (" in peer_failover()[0]["text"]
    assert (
        b'hotline_node_active{node="b"} 1.0'
        in httpx.get(
            f"{b.api}/metrics", headers={"Authorization": f"Bearer {b.data.api_token()}"}
        ).content
    )
    shown = subprocess.run(
        [sys.executable, "-m", "hotline", "node", "status", "--data-dir", str(a.data.path)],
        capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert "Active node  b, epoch 2" in shown.stdout
    assert "the lease of node 'a' (epoch 1) expired" in shown.stdout


@pytest.mark.parametrize("side", ["london"], indirect=True)
def test_a_paused_node_that_lost_its_lease_cannot_commit_and_steps_down(
    side: Any, url: str
) -> None:
    (a, b), moscow = side
    _start([a, b], moscow)
    assert a.process is not None
    with _Senders([a, b], moscow) as senders:
        _wait(lambda: senders.count("london") > 20, "traffic through node a")
        a.process.send_signal(signal.SIGSTOP)  # a hangs, holding its sessions and its lease
        wait_role(b, "active")
        _wait(lambda: _up(b) and _up(moscow), "the link UP through node b")
        before = senders.count("london")
        _wait(lambda: senders.count("london") > before + 20, "traffic through node b")
        a.process.send_signal(signal.SIGCONT)  # a wakes up, thinking it is still active
        late = {"text": "late, from the node that lost its lease", "type": "service"}
        try:
            answer = httpx.post(
                f"{a.api}/api/v1/links/moscow/messages",
                json=late,
                headers={"Authorization": f"Bearer {a.data.api_token()}"},
                timeout=30,
            )
            assert answer.status_code != 201  # not accepted: fenced, or a standby already
        except httpx.HTTPError:
            pass  # the node closed the request while stepping down: not accepted either
        wait_role(a, "standby")
        refused = httpx.get(f"{a.api}/api/v1/status", timeout=5)
        assert refused.status_code == 503
        assert refused.json()["active"]["node"] == "b"
        before = senders.count("london")
        _wait(lambda: senders.count("london") > before + 20, "traffic through node b, still")
    assert "node a steps down to standby" in a.log_file.read_text()
    _check_delivery(b, moscow, url, senders.accepted)
    store = PostgresStore(url)
    try:
        texts = [
            bytes(e).decode("utf-8", "replace")
            for (e,) in store._rows("SELECT envelope FROM outbox")
        ]
        assert not any("late, from the node that lost its lease" in t for t in texts)
    finally:
        store.close()


@pytest.mark.parametrize("side", ["moscow"], indirect=True)
def test_a_node_asked_to_stop_while_it_takes_over_stops(side: Any, url: str) -> None:
    """SIGTERM reaches a node between taking the lease and serving (its station loading)."""
    (a, b), _moscow = side
    a.start(wait=False)
    wait_role(a, "active")
    b.start(wait=False)
    wait_role(b, "standby")
    with psycopg.connect(url) as holder:  # b's store will wait for this lock when it opens
        holder.execute("LOCK TABLE meta IN ACCESS EXCLUSIVE MODE")
        a.kill(signal.SIGTERM)  # a hands the lease over; b takes it and starts loading
        _wait(lambda: "node b active, epoch 2" in b.log_file.read_text(), "b taking over")
        assert b.process is not None
        b.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
    assert b.process.wait(timeout=30) == 0  # it stopped once up, and handed the lease back
    store = PostgresStore(url)
    try:
        assert store._rows("SELECT node, expires_ns FROM node_lease")[0] == ("b", 0)
    finally:
        store.close()


@pytest.mark.parametrize("side", ["moscow"], indirect=True)
def test_a_node_gives_back_a_lease_in_its_name_it_does_not_use(side: Any, url: str) -> None:
    """A take the node stopped waiting for, committed later (a database waiting for its standby
    after a failover), leaves a lease in the node's name: it must not wait for it to end."""
    (a, _b), _moscow = side
    PostgresStore(url).close()  # the schema
    table = LeaseTable(url)
    try:
        orphan = table.take("a", 600_000, a.api, a.console)  # ten minutes
        assert orphan is not None
    finally:
        table.close()
    a.start(wait=False)
    wait_role(a, "active", timeout=20)
    assert f"node a gives back the lease at epoch {orphan.epoch}" in a.log_file.read_text()


def test_a_node_started_while_its_store_is_unreachable_waits_for_it(
    pg: ThrowawayPostgres, tmp_path: Path
) -> None:
    """A node (re)started while the database fails over, or before it is up, waits for the store
    as a standby does rather than exit: no supervisor is needed to bring it back."""
    name = f"london_{uuid.uuid4().hex[:12]}"  # not made yet: the store cannot be reached
    url = f"postgresql://hotline@/{name}?host={pg.socket_dir}&port=5432"
    (a,), moscow = make_side(tmp_path, url, nodes=1)
    try:
        a.start(wait=False)
        _wait(lambda: "waiting for the store" in a.log_file.read_text(), "a waiting", 30)
        time.sleep(1)  # a few more tries
        assert a.process is not None
        assert a.process.poll() is None, a.log_file.read_text()  # still there, waiting
        pg.create_database(name)
        wait_role(a, "active", timeout=30)
    finally:
        a.close()
        moscow.close()
