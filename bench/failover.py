"""One side on two machines (issue 14): how long a side is away when a machine of it fails.

    .venv/bin/python bench/failover.py [--runs 3]

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

Prints `name: value` lines. It needs etcd and patroni (apt-get install etcd-server patroni) and
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

from hotline.station.launch import StationProcess
from hotline.station.launch_nodes import Timing, make_side, node_of, wait_role

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


def emit(name: str, values: list[float]) -> None:
    shown = ", ".join(f"{value:.2f}" for value in values)
    print(f"{name}: {statistics.median(values):.2f}  (runs: {shown})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument("--lease-ms", type=int, default=1500, help="the nodes' lease_ms")
    parser.add_argument("--renew-ms", type=int, default=300, help="the nodes' renew_ms")
    parser.add_argument("--poll-ms", type=int, default=200, help="the nodes' poll_ms")
    args = parser.parse_args()
    if not 1 <= args.runs <= 20:
        parser.error("--runs: 1 to 20")
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
            with Sender(london) as sender:
                for _ in range(args.runs):
                    settled(london, moscow, sender)
                    database.append(database_run(pg, london, sender))
                for _ in range(args.runs):
                    settled(london, moscow, sender)
                    nodes.append(node_run(london, moscow))
            emit("db_primary_killed_to_accepted_s", database)
            emit("node_killed_to_link_up_s", nodes)
        finally:
            for station in [*london, moscow]:
                if station.process is not None:
                    station.process.send_signal(signal.SIGTERM)
            for station in [*london, moscow]:
                station.close()


if __name__ == "__main__":
    main()
