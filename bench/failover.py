"""One side on two machines (issue 14): how long a side is away when a machine of it fails.

    .venv/bin/python bench/failover.py [--runs 3] [--failovers 50] [--sustained-messages 3000]

Real processes on loopback, as in tests/test_node_patroni.py: two PostgreSQL servers under
Patroni with etcd (tests/patroni.py; synchronous_mode_strict, loop_wait 1), London on two nodes
reaching them through one multi-host connection string, Moscow on SQLite, the nodes' lease at the
tests' timing (lease_ms 1500, renew_ms 300, poll_ms 200; `--lease-ms`, `--renew-ms` and
`--poll-ms` change it; the defaults of station.toml are 4000, 1000 and 500). One message
goes from London every 20 ms, to whichever node answers. Each figure is the median of `--runs`
runs (and every run is printed), one after the other on the same cluster and side:

  db_primary_killed_to_accepted_s: the postmaster of the PostgreSQL primary is killed (SIGKILL);
      until London answers 201 to a message whose request started after the kill. Patroni
      promotes the synchronous standby; the active node's store fails, it steps down and a node
      takes the lease again on the new primary. Goal <= 15 s.
  node_killed_to_link_up_s: the active London node is killed (SIGKILL); until the other node is
      active and the link is UP at both sides (every path of that node). The lease's remainder,
      the standby's poll, the start and the peer's redial. Goal <= 5 s. The killed node is
      started again (a standby) before the next run.

  failovers_done / failovers_lost / failovers_duplicated: `--failovers` faults (default 50;
      0: none), in turn a SIGKILL of the active node (started again at once, as a supervisor
      would) and of the primary's postmaster, each once the side is whole again and both ways
      carry traffic, while both sides send (a message every 10 ms each way, London's to
      whichever node answers, as in tests/test_node_failover.py); no new fault once
      `--budget-s` has gone by (failovers_done says how many were made). Then, once every
      message is receipted: how many messages a side accepted (201) that the other does not
      hold (lost), how many envelopes the other holds more than once (duplicated), how many
      the sender committed but the other does not hold (failovers_committed_undelivered), the
      lanes received out of order, and whether both stores verify. Goal: 0 lost, 0
      duplicated.
  sustained_msgs_per_s_replicated / sustained_msgs_per_s_sqlite: `--sustained-messages` (0:
      not measured) ROUTINE messages POSTed to London over 16 keep-alive connections, timed
      until London's status shows nothing unreceipted (bench/e2e.py's measurement), first on
      the active node of the side above (its store on the Patroni cluster, every commit waiting
      for the synchronous standby), then on a fresh pair of SQLite stations, side by side.

Prints `name: value` lines (and a line per failover). With the defaults it takes about six
minutes here (2 CPUs). It needs etcd and patroni (apt-get install etcd-server patroni) and
root or a "postgres" user (PostgreSQL refuses root).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness of the tests
from tests.patroni import PatroniCluster, can_run
from tests.test_node_failover import LANE_NAMES, _identity_link, _rows, _Senders

from e2e import _lean, sustained
from hotline.station.launch import StationProcess, make_pair
from hotline.station.launch_nodes import Timing, make_side, node_of, wait_role
from hotline.store.postgres import PostgresStore
from hotline.store.sqlite import SqliteStore

SEND_EVERY_S = 0.02
WAIT_S = 90.0  # the most any one step may take before the run is declared failed


class Sender:
    """One message from London every SEND_EVERY_S, to whichever node answers; when each 201
    came, and when its request had started."""

    def __init__(self, london: list[StationProcess]) -> None:
        self.london = london
        self.accepted: list[tuple[float, float]] = []  # (request started, answered)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sender:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def first_after(self, moment: float) -> float | None:
        with self.lock:
            return next((done for started, done in self.accepted if started > moment), None)

    def _run(self) -> None:
        token = {"Authorization": f"Bearer {self.london[0].data.api_token()}"}
        index, turn = 0, 0
        with httpx.Client(headers=token, timeout=3) as client:
            while not self.stop.is_set():
                body = {"text": f"bench {turn}", "type": "service"}
                started = time.monotonic()
                try:
                    url = f"{self.london[index].api}/api/v1/links/moscow/messages"
                    client.post(url, json=body).raise_for_status()
                except httpx.HTTPError:
                    index = (index + 1) % len(self.london)  # a standby, or a node away
                    time.sleep(SEND_EVERY_S)
                    continue
                with self.lock:
                    self.accepted.append((started, time.monotonic()))
                turn += 1
                time.sleep(SEND_EVERY_S)


def wait(condition: Any, what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def link_up(station: StationProcess) -> bool:
    links = station.call("GET", "/api/v1/status")["links"]
    return bool(links[0]["state"] == "UP")


def active_node(london: list[StationProcess]) -> StationProcess | None:
    for node in london:
        if node.process is not None and (node_of(node) or {}).get("role") == "active":
            return node
    return None


def settled(london: list[StationProcess], moscow: StationProcess, sender: Sender) -> None:
    """Wait until one node is active, the link is UP at both sides and London accepts."""
    found: list[StationProcess] = []

    def ready() -> bool:
        active = active_node(london)
        found[:] = [active] if active is not None else []
        return active is not None and link_up(active) and link_up(moscow)

    wait(ready, "one active node and the link UP")
    now = time.monotonic()
    wait(lambda: sender.first_after(now) is not None, "London accepting")


def database_run(cluster: PatroniCluster, london: list[StationProcess], sender: Sender) -> float:
    killed = cluster.kill_primary()
    moment = time.monotonic()
    wait(lambda: sender.first_after(moment) is not None, "London accepting after the kill")
    figure = (sender.first_after(moment) or moment) - moment
    cluster.wait_failover(killed, WAIT_S)  # healthy again before the next run
    return figure


def node_run(london: list[StationProcess], moscow: StationProcess) -> float:
    victim = active_node(london)
    if victim is None:
        raise RuntimeError("no active node to kill")
    victim.kill(signal.SIGKILL)
    moment = time.monotonic()
    others = [node for node in london if node is not victim]

    def up_again() -> bool:
        active = active_node(others)
        return active is not None and link_up(active) and link_up(moscow)

    wait(up_again, "the link UP through the other node")
    figure = time.monotonic() - moment
    victim.start(wait=False)
    wait_role(victim, "standby")
    return figure


def whole_and_carrying(
    london: list[StationProcess], moscow: StationProcess, senders: _Senders
) -> None:
    """One active node, the link UP at both sides, and messages accepted both ways since."""
    found: list[StationProcess] = []

    def ready() -> bool:
        active = active_node(london)
        found[:] = [active] if active is not None else []
        return active is not None and link_up(active) and link_up(moscow)

    wait(ready, "one active node and the link UP")
    before = senders.count("london"), senders.count("moscow")
    wait(
        lambda: senders.count("london") > before[0] + 5 and senders.count("moscow") > before[1] + 5,
        "traffic both ways",
    )


def fail_over(
    kind: str, cluster: PatroniCluster, london: list[StationProcess], moscow: StationProcess
) -> None:
    """One fault: the active node killed and started again, or the primary's postmaster killed."""
    if kind == "node":
        victim = active_node(london)
        if victim is None:
            raise RuntimeError("no active node to kill")
        victim.kill(signal.SIGKILL)
        victim.start(wait=False)
    else:
        cluster.wait_failover(cluster.kill_primary(), WAIT_S)
    for node in london:  # every node running again (as a standby, or the active one)
        wait(
            lambda node=node: (node_of(node) or {}).get("role") in ("active", "standby"),
            f"{node.name} running again",
        )


def delivery(
    active: StationProcess, moscow: StationProcess, url: str, accepted: set[Any]
) -> dict[str, int]:
    """Both ways, once every message is receipted: what was lost, duplicated, out of order."""

    def caught_up() -> bool:
        mine = active.call("GET", "/api/v1/status")["links"][0]
        theirs = moscow.call("GET", "/api/v1/status")["links"][0]
        return not mine["unreceipted"] and not theirs["unreceipted"] and mine["in_agreement"]

    wait(caught_up, "every message receipted, both ways", 180)
    london_link, moscow_link = _identity_link(active), _identity_link(moscow)
    london_store, moscow_store = PostgresStore(url), SqliteStore(moscow.data.store_file)
    counts = {"accepted": 0, "lost": 0, "duplicated": 0, "committed_undelivered": 0}
    counts |= {"out_of_order_lanes": 0, "stores_verify": 1}
    try:
        for store, link in ((london_store, london_link), (moscow_store, moscow_link)):
            try:
                store.verify(link.config)
            except Exception as exc:  # reported as a figure, and why
                print(f"a store does not verify: {exc}", flush=True)
                counts["stores_verify"] = 0
        link_id = london_link.config.link_id
        for origin, out_store, in_store in (
            ("london", london_store, moscow_store),
            ("moscow", moscow_store, london_store),
        ):
            outbox, inbox = _rows(out_store, "outbox", link_id), _rows(in_store, "inbox", link_id)
            sent = {(lane, seq, h) for o, lane, seq, h in accepted if o == origin}
            counts["accepted"] += len(sent)
            counts["lost"] += len(sent - set(inbox))
            counts["duplicated"] += len(inbox) - len(set(inbox))
            counts["committed_undelivered"] += len(set(outbox) - set(inbox))
            for lane in LANE_NAMES:
                seqs = [seq for name, seq, _ in inbox if name == lane]
                counts["out_of_order_lanes"] += seqs != list(range(1, len(seqs) + 1))
    finally:
        london_store.close()
        moscow_store.close()
    return counts


def failovers(
    count: int,
    budget_s: float,
    cluster: PatroniCluster,
    london: list[StationProcess],
    moscow: StationProcess,
    url: str,
) -> None:
    started, done = time.monotonic(), 0
    with _Senders(london, moscow) as senders:
        whole_and_carrying(london, moscow, senders)
        for number in range(count):
            if time.monotonic() - started > budget_s:
                break
            kind = "node" if number % 2 == 0 else "database"
            began = time.monotonic()
            fail_over(kind, cluster, london, moscow)
            whole_and_carrying(london, moscow, senders)
            done += 1
            print(f"failover {done}: {kind}; carrying both ways again after "
                  f"{time.monotonic() - began:.1f} s", flush=True)  # fmt: skip
    active = active_node(london)
    if active is None:
        raise RuntimeError("no active node after the failovers")
    counts = delivery(active, moscow, url, senders.accepted)
    print(f"failovers_done: {done}  (in {time.monotonic() - started:.0f} s)")
    for name, value in counts.items():
        print(f"failovers_{name}: {value}", flush=True)


def rate(london: StationProcess, moscow: StationProcess, count: int) -> float:
    """bench/e2e.py's sustained rate: `count` messages over 16 connections, after a warm-up."""
    sustained(london, moscow, "moscow", 300, 16, _lean)
    return sustained(london, moscow, "moscow", count, 16, _lean).msgs_per_s


def sqlite_rate(count: int) -> float:
    with tempfile.TemporaryDirectory(prefix="hotline-failover-sqlite-") as root:
        london, moscow = make_pair(Path(root))
        try:
            london.start()
            moscow.start()
            wait(lambda: link_up(london) and link_up(moscow), "the SQLite pair's link UP")
            return rate(london, moscow, count)
        finally:
            london.close()
            moscow.close()


def emit(name: str, values: list[float]) -> None:
    shown = ", ".join(f"{value:.2f}" for value in values)
    print(f"{name}: {statistics.median(values):.2f}  (runs: {shown})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (default 3; 0: none)")
    parser.add_argument("--failovers", type=int, default=50, help="faults (default 50; 0: none)")
    parser.add_argument(
        "--budget-s", type=float, default=900, help="no new fault after this long (default 900)"
    )
    parser.add_argument(
        "--sustained-messages", type=int, default=3000, help="per rate (default 3000; 0: none)"
    )
    parser.add_argument("--lease-ms", type=int, default=1500, help="the nodes' lease_ms")
    parser.add_argument("--renew-ms", type=int, default=300, help="the nodes' renew_ms")
    parser.add_argument("--poll-ms", type=int, default=200, help="the nodes' poll_ms")
    args = parser.parse_args()
    if not 0 <= args.runs <= 20:
        parser.error("--runs: 0 to 20")
    if not 0 <= args.failovers <= 1000 or not 0 < args.budget_s <= 7200:
        parser.error("--failovers: 0 to 1000; --budget-s: up to 7200")
    if not 0 <= args.sustained_messages <= 100_000:
        parser.error("--sustained-messages: 0 to 100000")
    reason = can_run()
    if reason is not None:
        sys.exit(f"bench/failover.py: cannot run: {reason}")
    if not 3 * args.renew_ms <= args.lease_ms <= 600_000 or not 10 <= args.poll_ms <= 60_000:
        parser.error("lease_ms is at least 3 renew_ms (and at most 600000); poll_ms 10 to 60000")
    timing = Timing(args.lease_ms, args.renew_ms, args.poll_ms)
    print(f"lease_ms: {timing.lease_ms}  renew_ms: {timing.renew_ms}  poll_ms: {timing.poll_ms}")
    with tempfile.TemporaryDirectory(prefix="hotline-failover-") as root, PatroniCluster() as pg:
        url = pg.create_database(f"london_{uuid.uuid4().hex[:12]}")
        london, moscow = make_side(Path(root), url, timing=timing)
        try:
            for node in london:
                node.start(wait=False)
                wait_role(node, "active" if node is london[0] else "standby")
            moscow.start()
            database: list[float] = []
            nodes: list[float] = []
            if args.runs:
                with Sender(london) as sender:
                    for _ in range(args.runs):
                        settled(london, moscow, sender)
                        database.append(database_run(pg, london, sender))
                    for _ in range(args.runs):
                        settled(london, moscow, sender)
                        nodes.append(node_run(london, moscow))
                emit("db_primary_killed_to_accepted_s", database)
                emit("node_killed_to_link_up_s", nodes)
            if args.sustained_messages:
                wait(lambda: active_node(london) is not None, "an active node")
                active = active_node(london)
                assert active is not None
                wait(lambda: link_up(active) and link_up(moscow), "the link UP")
                replicated = rate(active, moscow, args.sustained_messages)
                print(f"sustained_msgs_per_s_replicated: {replicated:.0f}", flush=True)
            if args.failovers:
                failovers(args.failovers, args.budget_s, pg, london, moscow, url)
        finally:
            for station in [*london, moscow]:
                if station.process is not None:
                    station.process.send_signal(signal.SIGTERM)
            for station in [*london, moscow]:
                station.close()
    if args.sustained_messages:
        print(f"sustained_msgs_per_s_sqlite: {sqlite_rate(args.sustained_messages):.0f}")


if __name__ == "__main__":
    main()
