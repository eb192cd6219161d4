"""FLASH and reconnects over two real network paths (issue 16): two `hotline serve` processes,
London in this machine's network namespace and Moscow in one of its own, joined by two veth
pairs (the harness of tests/test_netpaths.py, tests/netns.py). Needs root.

    .venv/bin/python bench/netpaths.py [--quick]

The faults are the kernel's, inside Moscow's namespace: a silent cut drops every packet of a path
both ways (iptables DROP: nothing refused, nothing reset); loss drops each packet with a
probability, both ways (iptables -m statistic --mode random); a pulled cable is `ip link set
down` on one end. "The path in use" is the one London's ROUTINE traffic goes on: the one whose
byte counter one 8 KB ROUTINE message moves. Times are from the start of the POST that sends a
message at London to London's event stream reporting it receipted (as in bench/e2e.py), or, for
reconnects, from `ip link set up` to the later of the times both stations' status gives for
the path being UP again (`since_ns`, this machine's clock). Prints `name: value` lines:

  flash_idle_p50_ms / _p99_ms: FLASH messages of 200 bytes, one every 100 ms, on an idle link
      with both paths clean: the reference for the backlog figure.
  flash_after_silent_cut_ms: the worst of several FLASH messages, each sent right after a silent
      cut of the path in use (each run in flash_after_silent_cut_runs_ms). Goal: <= 100 ms.
  flash_behind_backlog_ms: 1,000 ROUTINE messages of 200 bytes are accepted at once while the
      path in use loses 30% of its packets each way, and then a FLASH. Goal: <= 10 times
      flash_idle_p50_ms (the ratio is flash_behind_backlog_ratio). Also how many of the ROUTINE
      were receipted only after the FLASH (flash_behind_backlog_routine_overtaken: the FLASH
      is sent once all 1,000 are accepted, and some go meanwhile) and how long the backlog took
      to drain (_drained_s, from the first ROUTINE POST). With --one-path (also in the full
      run), the same with the other path unplugged: flash_behind_backlog_one_path_ms, where the
      FLASH has no clean path to take.
  reconnect_after_restore_p50_ms / _p99_ms / _max_ms: a path's cable pulled at the end away
      from the dialing station (its connection attempts vanish, as on a cut far away), left out
      for 1.5 to 5 s after both stations saw it DOWN, then plugged in. Goal: p99 <= 1000 ms.
      Both stations see a cable plugged in at once, but the dialer's kernel must first learn the
      peer's hardware address again (ARP), which it asks for once a second.
  reconnect_near_end_p50_ms / _p99_ms / _max_ms (full run only): the same with the cable pulled
      at the dialer's own end: its attempts fail at once (no route), and ARP starts afresh.
  reconnect_after_long_outage_ms (full run only): the same after 70 s out, when the dialer
      pauses up to 5 s between attempts.

Not a test: it asserts nothing. The stations and this client share the machine's CPUs.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness of the tests
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers of bench/e2e.py
from tests.netns import (
    PATHS,
    Net,
    can_run,
    far_end,
    link_status,
    path_states,
    station_pair,
    wait_for,
)

from e2e import LeanClient, Receipts, emit, percentile
from hotline.station.launch import StationProcess

SMALL = "x" * 200
MARKER = "Ж" * 4000  # 8,000 bytes: tells the path in use on a byte counter
BACKLOG = 1000
LOSS = 0.3


@dataclass(frozen=True, slots=True)
class Plan:
    idle: int
    cuts: int
    restores: int
    near_restores: int
    one_path: bool
    long_outage: bool


FULL = Plan(idle=30, cuts=10, restores=12, near_restores=6, one_path=True, long_outage=True)
QUICK = Plan(idle=10, cuts=3, restores=3, near_restores=0, one_path=False, long_outage=False)


class Bench:
    def __init__(self, net: Net, london: StationProcess, moscow: StationProcess) -> None:
        self.net, self.london, self.moscow = net, london, moscow
        self.link = link_status(london)["name"]
        self.receipts = Receipts(london)

    def post(self, lane: str, text: str = SMALL) -> tuple[float, tuple[str, int]]:
        body = {"text": text, "lane": lane, "type": "principal", "language": "en"}
        started = time.perf_counter()
        accepted = self.london.call("POST", f"/api/v1/links/{self.link}/messages", body)
        return started, (accepted["lane"], accepted["seq"])

    def latency_ms(self, lane: str, timeout: float = 60) -> float | None:
        started, key = self.post(lane)
        at = self.receipts.wait(key, timeout)
        return None if at is None else (at - started) * 1000

    def all_up(self) -> None:
        wait_for(
            lambda: all(
                state == "UP"
                for s in (self.london, self.moscow)
                for state, _ in path_states(s).values()
            ),
            "both paths UP at both stations",
            60,
        )

    def path_in_use(self) -> int:
        before = {n: self.net.sent_bytes(n) for n in PATHS}
        _, key = self.post("ROUTINE", MARKER)
        self.receipts.wait(key, 30)
        sent = {n: self.net.sent_bytes(n) - before[n] for n in PATHS}
        return max(PATHS, key=lambda n: sent[n])

    def close(self) -> None:
        self.receipts.close()


def show_ms(name: str, values: list[float | None]) -> None:
    emit(name, ", ".join("timeout" if v is None else f"{v:.0f}" for v in values))


def bench_idle(bench: Bench, plan: Plan) -> float:
    bench.all_up()
    samples = []
    for _ in range(plan.idle):
        latency = bench.latency_ms("FLASH", 10)
        if latency is not None:
            samples.append(latency)
        time.sleep(0.1)
    emit("flash_idle_p50_ms", f"{statistics.median(samples):.1f}")
    emit("flash_idle_p99_ms", f"{percentile(samples, 99):.1f}")
    return statistics.median(samples)


def bench_silent_cut(bench: Bench, plan: Plan) -> None:
    runs: list[float | None] = []
    for _ in range(plan.cuts):
        bench.all_up()
        time.sleep(1.0)  # heartbeats on both paths
        victim = bench.path_in_use()
        bench.net.cut(victim)
        try:
            runs.append(bench.latency_ms("FLASH", 30))
        finally:
            bench.net.heal(victim)
    show_ms("flash_after_silent_cut_runs_ms", runs)
    worst = None if None in runs else max(r for r in runs if r is not None)
    emit("flash_after_silent_cut_ms", "timeout" if worst is None else f"{worst:.0f}")


def queue_backlog(bench: Bench) -> list[tuple[str, int]]:
    """BACKLOG ROUTINE messages accepted as fast as the station takes them (16 connections)."""
    keys: list[tuple[str, int]] = []
    lock = threading.Lock()

    def send(count: int) -> None:
        client = LeanClient(bench.london, bench.link)
        try:
            for _ in range(count):
                accepted = client.post()
                with lock:
                    keys.append((accepted["lane"], accepted["seq"]))
        finally:
            client.close()

    threads = [
        threading.Thread(target=send, args=(BACKLOG // 16 + (i < BACKLOG % 16),)) for i in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return keys


def bench_backlog(bench: Bench, idle_ms: float, one_path: bool) -> None:
    name = "flash_behind_backlog_one_path" if one_path else "flash_behind_backlog"
    bench.all_up()
    time.sleep(1.0)
    victim = bench.path_in_use()
    other = 3 - victim
    if one_path:
        bench.net.unplug(other)
    bench.net.lose(victim, LOSS)
    try:
        started = time.perf_counter()
        keys = queue_backlog(bench)
        queued_s = time.perf_counter() - started
        flash_started, flash = bench.post("FLASH")
        flash_at = bench.receipts.wait(flash, 120)
        last = max(keys, key=lambda k: k[1])
        drained_at = bench.receipts.wait(last, 180)
        overtaken = sum(
            1
            for k in keys
            if flash_at is not None and ((at := bench.receipts.wait(k, 0)) is None or at > flash_at)
        )
    finally:
        bench.net.heal(victim)
        if one_path:
            bench.net.plug(other)
    emit(f"{name}_queued_s", f"{queued_s:.2f}")
    if flash_at is None:
        emit(f"{name}_ms", "timeout")
    else:
        flash_ms = (flash_at - flash_started) * 1000
        emit(f"{name}_ms", f"{flash_ms:.0f}")
        emit(f"{name}_ratio", f"{flash_ms / idle_ms:.1f}")
        emit(f"{name}_routine_overtaken", overtaken)
    drained = "timeout" if drained_at is None else f"{drained_at - started:.1f}"
    emit(f"{name}_drained_s", drained)


def one_restore(bench: Bench, path: int, end: int, out_s: float) -> float | None:
    bench.all_up()
    bench.net.unplug(path, end)
    try:
        wait_for(
            lambda: (
                path_states(bench.london)[path][0] == path_states(bench.moscow)[path][0] == "DOWN"
            ),
            "the path DOWN at both stations",
            30,
        )
        time.sleep(out_s)
    finally:
        plugged_ns = time.time_ns()
        bench.net.plug(path, end)
    stations = (bench.london, bench.moscow)
    try:
        wait_for(lambda: all(path_states(s)[path][0] == "UP" for s in stations), "UP", 30)
    except AssertionError:
        return None
    # When each station's status says the path came UP (its own clock: this machine's)
    return (max(path_states(s)[path][1] for s in stations) - plugged_ns) / 1e6


def restores(bench: Bench, name: str, end: int, count: int) -> None:
    runs = [one_restore(bench, PATHS[i % 2], end, random.uniform(1.5, 5.0)) for i in range(count)]
    show_ms(f"{name}_runs_ms", runs)
    done = [r for r in runs if r is not None]
    if len(done) < len(runs):
        emit(f"{name}_timeouts", len(runs) - len(done))
    if done:
        emit(f"{name}_p50_ms", f"{statistics.median(done):.0f}")
        emit(f"{name}_p99_ms", f"{percentile(done, 99):.0f}")
        emit(f"{name}_max_ms", f"{max(done):.0f}")


def bench_reconnect(bench: Bench, plan: Plan) -> None:
    end = far_end(bench.london)
    emit("reconnect_dialer", "London" if end == 2 else "Moscow")
    restores(bench, "reconnect_after_restore", end, plan.restores)
    if plan.near_restores:
        restores(bench, "reconnect_near_end", 3 - end, plan.near_restores)
    if plan.long_outage:
        long = one_restore(bench, 1, end, 70.0)
        emit("reconnect_after_long_outage_ms", "timeout" if long is None else f"{long:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run, to check it works")
    parser.add_argument("--one-path", action="store_true", help="add the one-path backlog run")
    args = parser.parse_args()
    why_not = can_run()
    if why_not is not None:
        sys.exit(f"bench/netpaths.py {why_not}")
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    emit("cpus", os.cpu_count())
    emit("mode", "quick" if plan is QUICK else "full")
    emit("load_average_1min_start", f"{os.getloadavg()[0]:.2f}")
    with (
        tempfile.TemporaryDirectory(prefix="hotline-netpaths-") as directory,
        station_pair(Path(directory)) as (net, london, moscow),
    ):
        bench = Bench(net, london, moscow)
        try:
            idle_ms = bench_idle(bench, plan)
            bench_silent_cut(bench, plan)
            bench_backlog(bench, idle_ms, one_path=False)
            if plan.one_path or args.one_path:
                bench_backlog(bench, idle_ms, one_path=True)
            bench_reconnect(bench, plan)
        finally:
            bench.close()
    emit("load_average_1min_end", f"{os.getloadavg()[0]:.2f}")
    emit("bench_runtime_s", f"{time.perf_counter() - started:.1f}")


if __name__ == "__main__":
    main()
