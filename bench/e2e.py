"""End to end: two real `hotline serve` processes on loopback, driven through the service API.

    .venv/bin/python bench/e2e.py [--quick]

Both stations use the SQLite store (WAL, synchronous=FULL) in a temporary directory under the
working directory, and talk to each other on 127.0.0.1 only; the benchmark drives them through
their service APIs with httpx, exactly as the console and the `hotline` commands do. Texts are
200 bytes, all in the ROUTINE lane. Prints `name: value` lines:

  latency_p50_ms / latency_p99_ms: at light load (10 messages/s, one at a time), from the start
      of the API call that sends a message at London (POST /api/v1/links/moscow/messages) to the
      moment London's event stream (GET /api/v1/events, read on a thread) reports that message
      `receipted`: accepted durably at London, carried to Moscow, stored durably there, and
      covered by Moscow's signed receipt, which London verified and stored. Targets: p50 <= 2 ms,
      p99 <= 10 ms.
  accept_p50_ms: the same messages, until the POST returned (accepted, durable at London).
  latency_in_station_p50_ms: from London's store timestamps (outbox accepted_ns to receipted_ns),
      the part of the latency inside the two stations, without HTTP and the event stream.
  sustained_msgs_per_s_c<N>: N concurrent API clients (one asyncio httpx client, N requests in
      flight) POST a fixed count of messages to London; from the first POST until London's status
      shows no unreceipted message. The station groups concurrent sends into one transaction.
  sustained_msgs_per_s: the best of those (target >= 5,000/s).
  sustained_cpu_us_per_msg_<who>: for the best run, CPU time (user + system) per message of each
      process: London, Moscow, and this benchmark's client; the CPU time London spent, divided
      by the run's wall time, is sustained_cpu_share_london (1.0 = one CPU busy all the time).
  failover_reset_s / failover_silent_s: the dialing station's two paths each go through a small
      TCP proxy in this process; it sends one message every 10 ms; the path carrying the traffic
      (the one the proxies see carrying it) is cut, and the figure is the time from the cut until
      the first message sent after the cut is receipted. "reset": the proxy resets both of that
      path's connections, so the stations see the end at once. "silent": the proxy stops
      forwarding bytes and closes nothing (a cut cable): the stations notice only by silence
      (heartbeats every 0.5 s, a session silent for 1.5 s is dead). While cut, the path refuses
      new connections; it is healed before the next cut. The worst of several cuts is printed
      (each one in ..._runs_s). Target: <= 2 s.
  peak_rss_mb_london / peak_rss_mb_moscow: VmHWM of each station process (the highest resident
      set it ever had), the larger of the two pairs of stations this run starts.

Not a test: it asserts nothing and prints figures; the stations and this client share the
machine's CPUs, so read the figures with that in mind. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hotline.station.launch import StationProcess, make_pair
from hotline.station.links import load_links

TEXT = "x" * 200
LANE = "ROUTINE"
BODY = {"text": TEXT, "lane": LANE, "type": "principal", "language": "en"}
Key = tuple[str, int]  # (lane, seq) of one message


@dataclass(frozen=True, slots=True)
class Plan:
    latency_messages: int
    latency_rate: float
    sustained_messages: int
    concurrency: tuple[int, ...]
    cuts_per_mode: int


FULL = Plan(300, 10.0, 20_000, (4, 16, 64), 3)
QUICK = Plan(30, 10.0, 2_000, (4, 16, 64), 1)
WARMUP_MESSAGES = 10
RECEIPT_TIMEOUT_S = 10.0
FAILOVER_INTERVAL_S = 0.010


def emit(name: str, value: object) -> None:
    print(f"{name}: {value}", flush=True)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if condition():
                return
        time.sleep(0.02)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def link_status(station: StationProcess) -> dict[str, Any]:
    links: list[dict[str, Any]] = station.call("GET", "/api/v1/status")["links"]
    return links[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmHWM for process {pid}")


def pid_of(station: StationProcess) -> int:
    if station.process is None:
        raise RuntimeError(f"{station.name} is not running")
    return station.process.pid


def start_pair(stations: tuple[StationProcess, StationProcess]) -> None:
    for station in stations:
        station.start(wait=False)
    for station in stations:
        station.wait_ready()
    wait_for(lambda: all(link_status(s)["state"] == "UP" for s in stations), "links UP", 30)


# -- the event stream ----------------------------------------------------------------------------


class Receipts:
    """A station's event stream, read on a thread: when each (lane, seq) was reported receipted."""

    def __init__(self, station: StationProcess) -> None:
        self._url = f"{station.api}/api/v1/events"
        self._token = station.data.api_token()
        self._at: dict[Key, float] = {}
        self._changed = threading.Condition()
        self._ready = threading.Event()
        self._stopping = False
        self._socket: socket.socket | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the event stream of {station.name} did not open: {self.error}")

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            with (
                httpx.Client(headers=headers, timeout=httpx.Timeout(10, read=None)) as client,
                client.stream("GET", self._url) as response,
            ):
                response.raise_for_status()
                stream = response.extensions.get("network_stream")
                if stream is not None:
                    self._socket = stream.get_extra_info("socket")
                for line in response.iter_lines():
                    self._ready.set()  # the first line comes once the station is listening for us
                    if self._stopping:
                        return
                    if line.startswith("data:"):
                        self._on_event(json.loads(line[5:]))
        except (httpx.HTTPError, OSError) as exc:
            if not self._stopping:
                self.error = exc

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") != "receipted":
            return
        now = time.perf_counter()
        with self._changed:
            self._at[(event["lane"], event["seq"])] = now
            self._changed.notify_all()

    def wait(self, key: Key, timeout: float) -> float | None:
        """When `key` was receipted (time.perf_counter), or None if not within `timeout`."""
        with self._changed:
            self._changed.wait_for(lambda: key in self._at, timeout)
            return self._at.get(key)

    def close(self) -> None:
        self._stopping = True
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading
        self._thread.join(5)


# -- 1. latency at light load --------------------------------------------------------------------


def bench_latency(plan: Plan, london: StationProcess, link: str, receipts: Receipts) -> None:
    path = f"/api/v1/links/{link}/messages"
    latencies: list[float] = []
    accepts: list[float] = []
    missing = 0
    next_at = time.perf_counter()
    for index in range(WARMUP_MESSAGES + plan.latency_messages):
        next_at += 1 / plan.latency_rate
        time.sleep(max(0.0, next_at - time.perf_counter()))
        started = time.perf_counter()
        result = london.call("POST", path, BODY)
        accepted = time.perf_counter()
        at = receipts.wait((result["lane"], result["seq"]), RECEIPT_TIMEOUT_S)
        if index < WARMUP_MESSAGES:
            continue
        accepts.append((accepted - started) * 1000)
        if at is None:
            missing += 1
        else:
            latencies.append((at - started) * 1000)
    rows = london.call("GET", f"/api/v1/links/{link}/outbox?limit={plan.latency_messages}")
    inside = [
        (row["receipted_ns"] - row["accepted_ns"]) / 1e6 for row in rows if row["receipted_ns"]
    ]
    emit("latency_messages", len(latencies))
    if missing:
        emit("latency_not_receipted", missing)
    emit("latency_p50_ms", f"{statistics.median(latencies):.2f}")
    emit("latency_p99_ms", f"{percentile(latencies, 99):.2f}")
    emit("latency_max_ms", f"{max(latencies):.2f}")
    emit("accept_p50_ms", f"{statistics.median(accepts):.2f}")
    emit("latency_in_station_p50_ms", f"{statistics.median(inside):.2f}")


# -- 2. sustained messages per second ------------------------------------------------------------


async def _post_many(station: StationProcess, link: str, count: int, concurrency: int) -> None:
    headers = {"Authorization": f"Bearer {station.data.api_token()}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    left = [count]
    async with httpx.AsyncClient(
        base_url=station.api, headers=headers, limits=limits, timeout=60
    ) as client:

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                response = await client.post(f"/api/v1/links/{link}/messages", json=BODY)
                response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def sustained(
    london: StationProcess, moscow: StationProcess, link: str, count: int, concurrency: int
) -> tuple[float, dict[str, float], float]:
    """Messages per second; CPU µs per message of each process; London's share of one CPU."""
    pids = {"london": pid_of(london), "moscow": pid_of(moscow)}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    client_before = time.process_time()
    started = time.perf_counter()
    asyncio.run(_post_many(london, link, count, concurrency))
    deadline = time.monotonic() + 120
    while link_status(london)["unreceipted"] and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    used["client"] = time.process_time() - client_before
    per_message = {name: seconds / count * 1e6 for name, seconds in used.items()}
    return count / elapsed, per_message, used["london"] / elapsed


def bench_sustained(plan: Plan, london: StationProcess, moscow: StationProcess, link: str) -> None:
    sustained(london, moscow, link, 500, 16)  # warm-up
    best: tuple[float, dict[str, float], float, int] | None = None
    for concurrency in plan.concurrency:
        rate, per_message, share = sustained(
            london, moscow, link, plan.sustained_messages, concurrency
        )
        emit(f"sustained_msgs_per_s_c{concurrency}", f"{rate:.0f}")
        if best is None or rate > best[0]:
            best = (rate, per_message, share, concurrency)
    assert best is not None
    rate, per_message, share, concurrency = best
    emit("sustained_msgs_per_s", f"{rate:.0f}")
    emit("sustained_best_concurrency", concurrency)
    for name, micros in per_message.items():
        emit(f"sustained_cpu_us_per_msg_{name}", f"{micros:.0f}")
    emit("sustained_cpu_share_london", f"{share:.2f}")


# -- 3. failover ---------------------------------------------------------------------------------


class _Pipe:
    """One proxied connection: the dialer's socket and ours to the listener."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.sockets = (client, server)
        self.silent = False  # bytes are read and dropped, nothing is closed
        self.reset = False  # the connection ends with a reset, no orderly close is passed on
        self.pumps = 2
        self.lock = threading.Lock()

    def pump_done(self) -> bool:
        with self.lock:
            self.pumps -= 1
            return self.pumps == 0


class CuttablePath:
    """A TCP proxy on 127.0.0.1 standing for one network path, that can be cut two ways."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.bytes_forwarded = 0  # from the dialer towards the listener
        self._pipes: set[_Pipe] = set()
        self._lock = threading.Lock()
        self._accept_in_thread()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept_in_thread(self) -> None:
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the path was cut: the listening socket is closed
            try:
                server = socket.create_connection(self._target, timeout=2)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pipe = _Pipe(client, server)
            with self._lock:
                self._pipes.add(pipe)
            for direction in (0, 1):
                threading.Thread(target=self._pump, args=(pipe, direction), daemon=True).start()

    def _pump(self, pipe: _Pipe, direction: int) -> None:
        source, sink = pipe.sockets[direction], pipe.sockets[1 - direction]
        try:
            while data := source.recv(65536):
                if pipe.silent:
                    continue  # lost on the wire
                sink.sendall(data)
                if direction == 0:
                    with self._lock:
                        self.bytes_forwarded += len(data)
        except OSError:
            pass
        finally:
            if not (pipe.silent or pipe.reset):
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)  # pass the orderly close on
            if pipe.pump_done():
                for s in pipe.sockets:
                    s.close()  # with SO_LINGER 0 after a reset cut: the peer gets an RST
                with self._lock:
                    self._pipes.discard(pipe)

    def _refuse_new(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._listener.close()

    def cut_reset(self) -> None:
        """Refuse new connections and reset the live ones: both stations see the end at once."""
        self._refuse_new()
        with self._lock:
            pipes = list(self._pipes)
        linger = struct.pack("ii", 1, 0)
        for pipe in pipes:
            pipe.reset = True
            for s in pipe.sockets:
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    s.shutdown(socket.SHUT_RD)  # wakes its pump, which closes: RST, not FIN

    def cut_silent(self) -> None:
        """Stop forwarding and close nothing, as a cut cable: only silence tells the stations."""
        with self._lock:
            for pipe in self._pipes:
                pipe.silent = True
        self._refuse_new()

    def heal(self) -> None:
        """The path works again: reset what is left of the cut connections, accept new ones."""
        self.cut_reset()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._accept_in_thread()

    def close(self) -> None:
        self.cut_reset()


def route_through_paths(dialer: StationProcess, listener: StationProcess) -> list[CuttablePath]:
    """Rewrite the dialer's link.toml so that it dials each of the listener's paths via a proxy."""
    targets = listener.data.config().station.listen
    paths = [CuttablePath(int(t.rpartition(":")[2])) for t in targets]
    link_toml = next((dialer.data.path / "links").iterdir()) / "link.toml"
    text = link_toml.read_text()
    for target, path in zip(targets, paths, strict=True):
        if f'"{target}"' not in text:
            raise RuntimeError(f"{target} is not in {link_toml}")
        text = text.replace(f'"{target}"', f'"{path.address}"')
    link_toml.write_text(text)
    return paths


def dialer_first(a: StationProcess, b: StationProcess) -> tuple[StationProcess, StationProcess]:
    identity = a.data.open_keystore(a.passphrase_file.read_bytes().rstrip(b"\n"))
    return (a, b) if load_links(a.data, identity)[0].dials else (b, a)


class SteadySender:
    """Sends one message every `interval` seconds on a thread; remembers when each was sent."""

    def __init__(self, station: StationProcess, link: str, interval: float) -> None:
        self._url = f"{station.api}/api/v1/links/{link}/messages"
        self._token = station.data.api_token()
        self._interval = interval
        self.sent: list[tuple[float, Key]] = []  # (time.perf_counter at the POST, (lane, seq))
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"}
        with httpx.Client(headers=headers, timeout=10) as client:
            next_at = time.perf_counter()
            while not self._stop.is_set():
                next_at = max(next_at + self._interval, time.perf_counter())
                self._stop.wait(max(0.0, next_at - time.perf_counter()))
                started = time.perf_counter()
                try:
                    response = client.post(self._url, json=BODY)
                    response.raise_for_status()
                except httpx.HTTPError:
                    self.failures += 1
                    continue
                result = response.json()
                self.sent.append((started, (result["lane"], result["seq"])))

    def first_after(self, moment: float, timeout: float) -> Key | None:
        """The first message whose POST started at or after `moment`, once it is accepted."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            later = [key for started, key in self.sent[-100:] if started >= moment]
            if later:
                return later[0]
            time.sleep(0.001)
        return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def active_path(paths: list[CuttablePath], window: float = 0.2) -> int:
    """The path the dialer's messages travel on: the one that forwarded the most bytes lately."""
    before = [p.bytes_forwarded for p in paths]
    time.sleep(window)
    moved = [p.bytes_forwarded - b for p, b in zip(paths, before, strict=True)]
    return max(range(len(paths)), key=moved.__getitem__)


def one_cut(
    mode: str,
    dialer: StationProcess,
    paths: list[CuttablePath],
    sender: SteadySender,
    receipts: Receipts,
) -> float | None:
    wait_for(
        lambda: all(p["state"] == "UP" for p in link_status(dialer)["paths"]),
        "both paths UP on the dialer",
        30,
    )
    time.sleep(1.2)  # a few heartbeats on each path: both have a measured round trip
    victim = paths[active_path(paths)]
    cut_at = time.perf_counter()
    if mode == "reset":
        victim.cut_reset()
    else:
        victim.cut_silent()
    try:
        key = sender.first_after(cut_at, RECEIPT_TIMEOUT_S)
        at = receipts.wait(key, RECEIPT_TIMEOUT_S) if key is not None else None
        return None if at is None else at - cut_at
    finally:
        victim.heal()


def bench_failover(plan: Plan, root: Path) -> dict[str, float]:
    """Cut the busy path of a fresh pair, both ways, `plan.cuts_per_mode` times each."""
    dialer, listener = dialer_first(*make_pair(root))
    paths = route_through_paths(dialer, listener)
    receipts: Receipts | None = None
    sender: SteadySender | None = None
    results: dict[str, list[float | None]] = {"reset": [], "silent": []}
    try:
        start_pair((dialer, listener))
        link = link_status(dialer)["name"]
        receipts = Receipts(dialer)
        sender = SteadySender(dialer, link, FAILOVER_INTERVAL_S)
        for _ in range(plan.cuts_per_mode):
            for mode, runs in results.items():
                runs.append(one_cut(mode, dialer, paths, sender, receipts))
        sender.stop()
        last = sender.sent[-1][1] if sender.sent else None
        all_receipted = last is None or receipts.wait(last, RECEIPT_TIMEOUT_S) is not None
        emit("failover_dialer", dialer.name)
        emit("failover_messages_sent", len(sender.sent))
        emit("failover_all_receipted", "yes" if all_receipted else "no")
        if sender.failures:
            emit("failover_send_failures", sender.failures)
        for mode, runs in results.items():
            shown = ", ".join("timeout" if r is None else f"{r:.3f}" for r in runs)
            emit(f"failover_{mode}_runs_s", shown)
            worst = None if None in runs else max(r for r in runs if r is not None)
            emit(f"failover_{mode}_s", "timeout" if worst is None else f"{worst:.3f}")
        return {
            dialer.name: peak_rss_mb(pid_of(dialer)),
            listener.name: peak_rss_mb(pid_of(listener)),
        }
    finally:
        if sender is not None:
            sender.stop()
        if receipts is not None:
            receipts.close()
        for station in (dialer, listener):
            station.close()
        for path in paths:
            path.close()


# -- the run -------------------------------------------------------------------------------------


def bench_load(plan: Plan, root: Path) -> dict[str, float]:
    """Latency and sustained rate on a pair joined directly; returns each station's peak RSS."""
    london, moscow = make_pair(root)
    receipts: Receipts | None = None
    try:
        start_pair((london, moscow))
        link = link_status(london)["name"]
        receipts = Receipts(london)
        bench_latency(plan, london, link, receipts)
        receipts.close()  # not listened to while the rate is measured
        receipts = None
        bench_sustained(plan, london, moscow, link)
        return {london.name: peak_rss_mb(pid_of(london)), moscow.name: peak_rss_mb(pid_of(moscow))}
    finally:
        if receipts is not None:
            receipts.close()
        for station in (london, moscow):
            station.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run, to check it works")
    plan = QUICK if parser.parse_args().quick else FULL
    started = time.perf_counter()
    emit("python", sys.version.split()[0])
    emit("cpus", os.cpu_count())
    emit("mode", "quick" if plan is QUICK else "full")
    with tempfile.TemporaryDirectory(prefix="hotline-e2e-", dir=".") as directory:
        rss = bench_load(plan, Path(directory) / "load")
        for name, mb in bench_failover(plan, Path(directory) / "failover").items():
            rss[name] = max(rss.get(name, 0.0), mb)
    for name, mb in sorted(rss.items()):
        emit(f"peak_rss_mb_{name.lower()}", f"{mb:.1f}")
    emit("bench_runtime_s", f"{time.perf_counter() - started:.1f}")


if __name__ == "__main__":
    main()
