"""Real messages while strangers flood the receiving station: two `hotline serve` processes on
loopback, and a bounded flood against the one that accepts the link's paths.

    .venv/bin/python bench/flood.py [--quick] [--rate N] [--seconds S]

The flood, all from loopback addresses other than the stations' own (127.0.0.2 and up; the
kernel routes all of 127/8 to lo), for a fixed time:

* bogus first messages: connections to the path ports, each sending a plausible framed message 1
  (1,273 to 2,272 random bytes) and closing, at a target rate (default 10,000 a second), from
  FLOOD_PROCESSES processes and 200 source addresses;
* idle connections: IDLE_CONNECTIONS held open on the path ports, half of them with half a
  length sent (each one the station closes, at its handshake timeout, is opened again at once);
* slowloris: SLOW_CONNECTIONS on each of the receiving station's API and console, sending a
  request head a few bytes a second (opened again when closed).

Prints `name: value` lines:

  idle_latency_p50_ms / _p99_ms: messages sent one at a time, 10 a second, from the dialing
      station's API (POST /api/v1/links/<peer>/messages) until its event stream reports them
      `receipted` (stored at the receiving station, receipted, receipt verified), no flood.
  flood_latency_p50_ms / _p99_ms: the same while the flood runs; flood_vs_idle_p50 / _p99: the
      ratios (goal: within 2).
  flood_offered_per_s: bogus first messages the flood's processes sent per second;
  flood_refused_per_s: those the station counted refused (hotline_handshakes_refused_total,
      every kind), per second of the flood: what the station kept up with.
  flood_refused_<kind>: the station's count of each kind during the flood (mac, handshake,
      incomplete, limit), and http_closed_<reason> for the API and console together.
  cpu_us_per_refused: the receiving station's CPU time (user + system, /proc) during the flood,
      less its CPU rate measured idle, divided by the connections it refused: what one refused
      connection costs, all included (accept, read, MAC, close, counting). cpu_share_receiving:
      its CPU seconds per second of the flood (1.00 = one CPU busy).
  audit_rows_added / audit_bytes_added: what the flood wrote to the receiving station's audit
      table (its details and evidence), the only table strangers' input reaches.

Not a test: it asserts nothing. The flood, the stations and this client share the machine's
CPUs (cpus, load averages), so the flood's own CPU is taken from the stations; read the
latency figures with that in mind. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import re
import selectors
import socket
import sqlite3
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from e2e import Receipts, cpu_seconds, emit, percentile, pid_of, start_pair
from hotline.station.launch import StationProcess, make_pair
from hotline.station.links import load_links

Address = tuple[str, int]
FLOOD_PROCESSES = 2
IDLE_CONNECTIONS = 400  # under the caps (256 a listener, 16 a source): held, not churned
SLOW_CONNECTIONS = 200
MESSAGE_RATE = 10.0
RECEIPT_TIMEOUT_S = 10.0
SOURCES = [f"127.0.0.{n}" for n in range(2, 202)]


# -- the flood -----------------------------------------------------------------------------------


def bogus_flood(
    targets: list[Address], rate: float, seconds: float, seed: int, sent: Any, go: Any
) -> None:
    """One process: non-blocking connects at `rate` a second, each sending a framed bogus
    message 1 once connected, then closing."""
    go.wait(60)
    selector = selectors.DefaultSelector()
    payloads = [os.urandom(1273 + 97 * n) for n in range(11)]
    started = time.perf_counter()
    count = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        while count < rate * elapsed and len(selector.get_map()) < 512:
            sock = socket.socket()
            sock.setblocking(False)
            try:
                sock.bind((SOURCES[(seed + count) % len(SOURCES)], 0))
                sock.connect_ex(targets[count % len(targets)])
            except OSError:
                sock.close()
                break
            selector.register(sock, selectors.EVENT_WRITE, payloads[count % len(payloads)])
            count += 1
        for key, _events in selector.select(0.001):
            sock = key.fileobj  # type: ignore[assignment]
            selector.unregister(sock)
            with contextlib.suppress(OSError):
                if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    sock.send(struct.pack(">I", len(key.data)) + key.data)
                    with sent.get_lock():
                        sent.value += 1
            sock.close()
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]


class Holder:
    """Connections held open to `targets`, each sending `opening` and then `drip` every second;
    each one closed by the station is opened again at once."""

    def __init__(self, targets: list[Address], count: int, opening: bytes, drip: bytes) -> None:
        self._slots = [targets[n % len(targets)] for n in range(count)]
        self._opening, self._drip = opening, drip
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self.reopened = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        closed, next_drip = list(range(len(self._slots))), time.monotonic() + 1
        while not self._stop.is_set():
            closed = [index for index in closed if not self._open(index)]
            for key, events in self._selector.select(0.02):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if events & selectors.EVENT_WRITE and not sock.getsockopt(
                    socket.SOL_SOCKET, socket.SO_ERROR
                ):
                    self._selector.modify(sock, selectors.EVENT_READ, key.data)
                    with contextlib.suppress(OSError):
                        sock.send(self._opening)
                    continue
                self._selector.unregister(sock)
                sock.close()
                closed.append(key.data)
                self.reopened += 1
            if self._drip and time.monotonic() > next_drip:
                next_drip += 1
                for key in list(self._selector.get_map().values()):
                    with contextlib.suppress(OSError):
                        key.fileobj.send(self._drip)  # type: ignore[union-attr]
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]

    def _open(self, index: int) -> bool:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.bind((SOURCES[index % len(SOURCES)], 0))
            sock.connect_ex(self._slots[index])
        except OSError:
            sock.close()
            return False
        self._selector.register(sock, selectors.EVENT_WRITE, index)
        return True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


# -- measuring -----------------------------------------------------------------------------------


def latencies(sender: StationProcess, link: str, receipts: Receipts, count: int) -> list[float]:
    body = {"text": "x" * 200, "lane": "ROUTINE", "type": "principal", "language": "en"}
    times: list[float] = []
    next_at = time.perf_counter()
    for _ in range(count):
        next_at += 1 / MESSAGE_RATE
        time.sleep(max(0.0, next_at - time.perf_counter()))
        started = time.perf_counter()
        result = sender.call("POST", f"/api/v1/links/{link}/messages", body)
        at = receipts.wait((result["lane"], result["seq"]), RECEIPT_TIMEOUT_S)
        if at is not None:
            times.append((at - started) * 1000)
    return times


def metrics(station: StationProcess) -> dict[str, float]:
    text = httpx.get(
        f"{station.api}/metrics",
        headers={"Authorization": f"Bearer {station.data.api_token()}"},
        timeout=30,
    ).text
    found = re.findall(r"^(hotline_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+]+)$", text, re.MULTILINE)
    return {name: float(value) for name, value in found}


def refused(before: dict[str, float], after: dict[str, float], kind: str) -> float:
    name = f'hotline_handshakes_refused_total{{kind="{kind}"}}'
    return after.get(name, 0.0) - before.get(name, 0.0)


def http_closed(before: dict[str, float], after: dict[str, float], reason: str) -> float:
    names = [n for n in after if n.startswith("hotline_http_waiting_closed") and reason in n]
    return sum(after[n] - before.get(n, 0.0) for n in names)


def audit_state(station: StationProcess) -> tuple[int, int]:
    """Rows in the audit table, and their bytes (detail and evidence)."""
    uri = f"file:{station.data.store_file}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        rows, size = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(detail) + COALESCE(LENGTH(evidence), 0)), 0) "
            "FROM audit"
        ).fetchone()
    return int(rows), int(size)


def address(listen: str) -> Address:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def summary(name: str, samples: list[float]) -> tuple[float, float]:
    p50, p99 = statistics.median(samples), percentile(samples, 99)
    emit(f"{name}_latency_p50_ms", f"{p50:.2f}")
    emit(f"{name}_latency_p99_ms", f"{p99:.2f}")
    return p50, p99


def run(root: Path, rate: float, seconds: float, messages: int) -> None:
    pair = make_pair(root)
    identity = pair[0].data.open_keystore(pair[0].passphrase_file.read_bytes().rstrip(b"\n"))
    sender, receiver = pair if load_links(pair[0].data, identity)[0].dials else pair[::-1]
    try:
        start_pair(pair)
        link = receiver.name.lower()
        receipts = Receipts(sender)
        latencies(sender, link, receipts, 10)  # warm-up
        pid = pid_of(receiver)
        cpu_before, idle_started = cpu_seconds(pid), time.perf_counter()
        idle = latencies(sender, link, receipts, messages)
        idle_cpu_rate = (cpu_seconds(pid) - cpu_before) / (time.perf_counter() - idle_started)
        idle_p50, idle_p99 = summary("idle", idle)
        flooded = flood(receiver, sender, link, receipts, rate, seconds, messages, idle_cpu_rate)
        flood_p50, flood_p99 = summary("flood", flooded)
        emit("flood_vs_idle_p50", f"{flood_p50 / idle_p50:.2f}")
        emit("flood_vs_idle_p99", f"{flood_p99 / idle_p99:.2f}")
        receipts.close()
    finally:
        for station in pair:
            station.close()


def flood(
    receiver: StationProcess,
    sender: StationProcess,
    link: str,
    receipts: Receipts,
    rate: float,
    seconds: float,
    messages: int,
    idle_cpu_rate: float,
) -> list[float]:
    config = receiver.data.config()
    paths = [address(a) for a in config.station.listen]
    http = [address(config.api.listen), address(config.console.listen)]
    rows_before, size_before = audit_state(receiver)
    spawn = multiprocessing.get_context("spawn")  # this process has threads: no fork
    sent, go = spawn.Value("q", 0), spawn.Event()
    processes = [
        spawn.Process(
            target=bogus_flood, args=(paths, rate / FLOOD_PROCESSES, seconds, n * 101, sent, go)
        )
        for n in range(FLOOD_PROCESSES)
    ]
    for process in processes:
        process.start()
    time.sleep(2)  # the processes import and wait for `go`
    before, pid = metrics(receiver), pid_of(receiver)
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    go.set()
    holders = [
        Holder(paths, IDLE_CONNECTIONS, b"\x00\x00", b""),
        Holder(http, 2 * SLOW_CONNECTIONS, b"GET /health HTTP/1.1\r\n", b"X-a: b\r\n"),
    ]
    time.sleep(1)  # the flood at full strength before the first message
    measured = latencies(sender, link, receipts, min(messages, int((seconds - 2) * MESSAGE_RATE)))
    for process in processes:
        process.join(seconds + 30)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before
    after = metrics(receiver)
    for holder in holders:
        holder.stop()
    kinds = ("mac", "handshake", "incomplete", "limit")
    total = sum(refused(before, after, kind) for kind in kinds)
    emit("flood_seconds", f"{elapsed:.1f}")
    emit("flood_offered_per_s", f"{sent.value / seconds:.0f}")
    emit("flood_refused_per_s", f"{total / elapsed:.0f}")
    for kind in kinds:
        emit(f"flood_refused_{kind}", f"{refused(before, after, kind):.0f}")
    for reason in ("head timeout", "head too large", "room made"):
        emit(f"http_closed_{reason.replace(' ', '_')}", f"{http_closed(before, after, reason):.0f}")
    emit("idle_connections_reopened", holders[0].reopened)
    emit("slow_connections_reopened", holders[1].reopened)
    emit("cpu_share_receiving", f"{cpu / elapsed:.2f}")
    if total:
        emit("cpu_us_per_refused", f"{(cpu - idle_cpu_rate * elapsed) / total * 1e6:.1f}")
    rows_after, size_after = audit_state(receiver)
    emit("audit_rows_added", rows_after - rows_before)
    emit("audit_bytes_added", size_after - size_before)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run, to check it works")
    parser.add_argument(
        "--rate", type=float, default=10_000.0, help="bogus first messages a second"
    )
    parser.add_argument("--seconds", type=float, default=None, help="how long the flood runs")
    args = parser.parse_args()
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    messages = 30 if args.quick else 150
    emit("python", sys.version.split()[0])
    emit("cpus", os.cpu_count())
    emit("mode", "quick" if args.quick else "full")
    emit("flood_target_per_s", f"{args.rate:.0f}")
    emit("load_average_1min_start", f"{os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hotline-flood-") as directory:
        run(Path(directory), args.rate, seconds, messages)
    emit("load_average_1min_end", f"{os.getloadavg()[0]:.2f}")
    emit("bench_runtime_s", f"{time.perf_counter() - started:.1f}")


if __name__ == "__main__":
    main()
