"""How fast the link is: two link cores in one process over an in-memory pipe, with real stores.

    .venv/bin/python bench/link.py [--quick]

Prints `name: value` lines:
  durable_msgs_per_s_<backend>_batch<N>: messages per second, each accepted durably at the sender,
      stored durably at the receiver and covered by a receipt stored back at the sender; the
      sender accepts N messages per transaction (group commit); 200-byte texts. Both stations
      run in this one process, one after the other.
  station_msgs_per_s_<backend>_batch<N>: the same run, counting only the busier station's time
      (its core calls and its commits): what one station can sustain when, as deployed, each
      station has a machine of its own.
  latency_<backend>_p50_ms / _p99_ms: accept-to-receipt time at 100 messages/s offered load, one
      message per transaction: from the operator's send() to the sender's commit of the receipt.
  sim_seeds_per_min: the deterministic simulator's speed, one process.

SQLite runs on a file in the working directory's file system (synchronous=FULL: every commit
waits for the disk); PostgreSQL on a throwaway server with fsync on. Not a test: it asserts
nothing and prints figures; read them with the machine's noise in mind.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hotline.crypto.identity import StationIdentity
from hotline.crypto.session import link_id_for
from hotline.protocol.envelope import Lane, MessageType
from hotline.protocol.link import LinkCore
from hotline.protocol.state import LinkConfig, LinkState, Output, Receipted
from hotline.sim.pgserver import ThrowawayPostgres
from hotline.sim.scenario import run_seed
from hotline.store.base import SqlStore
from hotline.store.postgres import PostgresStore
from hotline.store.sqlite import SqliteStore

TEXT = "x" * 200
SID = 1


class Pair:
    """Two stations, each a core and its store, joined by a pipe that delivers at once."""

    def __init__(self, open_store: Callable[[str], SqlStore]) -> None:
        a, b = (
            StationIdentity.from_random(os.urandom(96)),
            StationIdentity.from_random(os.urandom(96)),
        )
        link_id = link_id_for(a.public, b.public)
        self.configs = (LinkConfig(link_id, a, b.public), LinkConfig(link_id, b, a.public))
        self.stores = (open_store("a"), open_store("b"))
        self.cores: list[LinkCore] = []
        for store, config in zip(self.stores, self.configs, strict=True):
            store.add_link(config, time.time_ns())
            self.cores.append(LinkCore(config, LinkState.new(config), time.time_ns()))
        self.receipted = 0
        self.busy = [0.0, 0.0]  # seconds each station spent in its core calls and commits
        self.deliver(0, self.cores[0].session_opened(SID, time.time_ns()))
        self.deliver(1, self.cores[1].session_opened(SID, time.time_ns()))

    def deliver(self, side: int, output: Output) -> None:
        """Commit, then carry the packets to the other side, until the pipe is quiet."""
        queue = [(side, output)]
        while queue:
            who, out = queue.pop(0)
            started = time.perf_counter()
            self.stores[who].commit(self.configs[who].link_id, out.batch, time.time_ns())
            packets = out.packets
            self.busy[who] += time.perf_counter() - started
            if who == 0:
                self.receipted += sum(1 for e in out.events if isinstance(e, Receipted))
            for sid, packet in packets:
                started = time.perf_counter()
                reply = self.cores[1 - who].receive(sid, packet, time.time_ns())
                self.busy[1 - who] += time.perf_counter() - started
                queue.append((1 - who, reply))

    def send_batch(self, count: int) -> None:
        output = Output()
        started = time.perf_counter()
        for _ in range(count):
            output.merge(
                self.cores[0].send(Lane.ROUTINE, MessageType.PRINCIPAL, "en", TEXT, time.time_ns())
            )
        self.busy[0] += time.perf_counter() - started
        self.deliver(0, output)

    def close(self) -> None:
        for store in self.stores:
            store.close()


def throughput(
    open_store: Callable[[str], SqlStore], batch: int, total: int
) -> tuple[float, float]:
    """Messages per second end to end, and for the busier station alone."""
    pair = Pair(open_store)
    pair.send_batch(batch)  # warm-up
    pair.busy = [0.0, 0.0]
    start, goal = time.perf_counter(), pair.receipted + total
    while pair.receipted < goal:
        pair.send_batch(batch)
    elapsed = time.perf_counter() - start
    pair.close()
    return total / elapsed, total / max(pair.busy)


def latency(open_store: Callable[[str], SqlStore], count: int, rate: float) -> list[float]:
    pair = Pair(open_store)
    samples = []
    next_at = time.perf_counter()
    for _ in range(count):
        next_at += 1 / rate
        time.sleep(max(0.0, next_at - time.perf_counter()))
        before = pair.receipted
        started = time.perf_counter()
        pair.send_batch(1)
        if pair.receipted > before:
            samples.append((time.perf_counter() - started) * 1000)
    pair.close()
    return samples


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def run_backend(name: str, open_store: Callable[[str], SqlStore], quick: bool) -> None:
    for batch in (1, 10, 100, 500):
        total = max(batch, 200 if quick else 5000 if batch > 1 else 1000)
        end_to_end, station = throughput(open_store, batch, total)
        print(f"durable_msgs_per_s_{name}_batch{batch}: {end_to_end:.0f}")
        print(f"station_msgs_per_s_{name}_batch{batch}: {station:.0f}")
    samples = latency(open_store, 20 if quick else 500, 100.0)
    print(f"latency_{name}_p50_ms: {statistics.median(samples):.2f}")
    print(f"latency_{name}_p99_ms: {percentile(samples, 99):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run, to check it works")
    quick = parser.parse_args().quick
    print(f"python: {sys.version.split()[0]}")
    print(f"cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as directory:
        counter = iter(range(10**6))
        run_backend(
            "sqlite", lambda n: SqliteStore(Path(directory) / f"{n}{next(counter)}.db"), quick
        )
    with ThrowawayPostgres(durable=True) as server:
        counter = iter(range(10**6))
        run_backend(
            "postgres",
            lambda n: PostgresStore(server.create_database(f"{n}{next(counter)}")),
            quick,
        )
    seeds = 5 if quick else 100
    started = time.perf_counter()
    for seed in range(seeds):
        run_seed(seed)
    print(f"sim_seeds_per_min: {seeds / (time.perf_counter() - started) * 60:.0f}")


if __name__ == "__main__":
    main()
