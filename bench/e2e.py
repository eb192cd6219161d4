"""End to end: two real `hotline serve` processes on loopback, driven through the service API.

    .venv/bin/python bench/e2e.py [--quick]

Both stations use the SQLite store (WAL, synchronous=FULL) in a fresh temporary directory (the
system's, never the working directory: a repository must not pick up their keys and stores).
They talk to each other on 127.0.0.1 only. Texts are 200 bytes, all in the ROUTINE lane.
Prints `name: value` lines (MB = 10**6 bytes):

  sqlite_commit_p50_ms / _p99_ms: one small SQLite commit (WAL, synchronous=FULL) in the same
      temporary directory: what the disk adds to each of the three commits on a message's way.
  latency_p50_ms / latency_p99_ms: at light load (10 messages/s, one at a time), from the start
      of the httpx call that sends a message at London (POST /api/v1/links/moscow/messages) to
      the moment London's event stream (GET /api/v1/events, read by httpx on a thread) reports it
      `receipted`: accepted durably at London, carried to Moscow, stored durably there, covered
      by Moscow's signed receipt, which London verified and stored. Targets: p50 <= 2 ms,
      p99 <= 10 ms.
  accept_p50_ms: the same messages, until the POST returned (accepted: durable at London).
  latency_in_station_p50_ms: from London's outbox timestamps (accepted_ns to receipted_ns): the
      part of the latency between London's two commits, without HTTP and the event stream.
  sustained_msgs_per_s_c<N>: N keep-alive HTTP connections, one request in flight on each, POST
      a fixed count of messages to London; timed from the first POST until London's status shows
      nothing unreceipted. The station groups concurrent sends into one transaction. These
      requests are written by hand (the same bytes httpx sends), because httpx spends more CPU
      per request than the station does, on the same two CPUs: see sustained_httpx_*.
  sustained_msgs_per_s: the best of those (target >= 5,000/s), at sustained_best_concurrency.
  sustained_cpu_us_per_msg_<london|moscow|client>: for that best run, the CPU time (user +
      system, from /proc) each process spent per message; sustained_cpu_share_london is London's
      CPU time divided by the run's wall time (1.00 = one CPU busy throughout).
  sustained_httpx_msgs_per_s_t16 / sustained_httpx_cpu_us_per_msg_client: the same measurement
      with 16 threads, each with its own httpx.Client, and what that client costs per message.
  failover_reset_s / failover_silent_s: the dialing station reaches each of the other's two paths
      through a small TCP proxy in this process, and sends one message every 10 ms. Right after
      one of its messages crosses a proxy, that path (the one in use) is cut, and the figure is
      the time from the cut until the first message sent after it is receipted. "reset": both of
      that path's connections are reset, so the stations see the end at once. "silent": the
      proxy forwards nothing more and closes nothing, as a cut cable does, so the stations notice
      only by silence (heartbeats every 0.5 s; silent for 1.5 s is dead). While cut, the path
      refuses new connections. Before each cut the sender pauses until everything is receipted
      and both paths are UP again, so that each cut starts from a link that has caught up.
      Several cuts each way: the worst is printed, each one in failover_<way>_runs_s. Target:
      <= 2 s. Also, per cut, failover_<way>_latency_after_ms: the median latency (POST to
      receipt) of the messages sent 2.5 to 3 s after the cut, when the link should be back to a
      few ms.
  peak_rss_mb_london / peak_rss_mb_moscow: VmHWM (the largest resident set the process ever had)
      of each station, the larger of the two pairs started: one for latency and rate, one with
      the proxies for failover. rss_mb_after_load_<station>: VmRSS (resident now) of the first
      pair once the rate runs are over. The peak is reached at start-up, when the keystore is
      unsealed (Argon2id with 64 MiB), not under traffic.

Not a test: it asserts nothing and prints figures; the stations and this client share the
machine's CPUs, so read them with that in mind (load_average_1min_start and _end show how busy
the machine was; the end figure counts this run's own processes too). Every loop is bounded in
count and time; the full run takes about two and a half minutes, --quick under 30 s (its figures
mean little).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sqlite3
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
    httpx_messages: int
    cuts_per_mode: int


FULL = Plan(300, 10.0, 20_000, (16, 64, 256), 5_000, 3)
QUICK = Plan(30, 10.0, 2_000, (16, 64, 256), 500, 1)
WARMUP_MESSAGES = 10
RECEIPT_TIMEOUT_S = 10.0
FAILOVER_INTERVAL_S = 0.010
# After a cut, the messages sent in this window (seconds after the cut) show whether the link has
# recovered its usual latency, once the failover itself (at most about 1.75 s) is over.
AFTER_CUT_S = (2.5, 3.0)
# One of our messages crosses a path as one chunk of about 425 bytes here (a 200-byte text, its
# envelope and signature, the frame and the transport's header and tag); heartbeats are 43 and
# 52 bytes, and the hello, receipt and checkpoint frames of an idle link under 300.
ENVELOPE_CHUNK_BYTES = 400


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


def memory_mb(pid: int, field: str) -> float:
    """VmHWM (peak resident set) or VmRSS (resident set now) of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no {field} for process {pid}")


def peak_rss_mb(pid: int) -> float:
    return memory_mb(pid, "VmHWM")


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


# -- requests written by hand -------------------------------------------------------------------


def lean_request(station: StationProcess, link: str) -> tuple[str, int, bytes]:
    """Host, port, and the bytes of one POST of BODY: what httpx sends, without httpx's cost."""
    host, _, port = station.api.removeprefix("http://").rpartition(":")
    body = json.dumps(BODY).encode()
    request = (
        f"POST /api/v1/links/{link}/messages HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {station.data.api_token()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    return host, int(port), request


def lean_head(head: bytes) -> tuple[str, int]:
    """The status line and the Content-Length of a response head (uvicorn always sends one)."""
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(line.partition(":")[2]) for line in lines if line.lower().startswith("content-length:")
    )
    return lines[0], length


def lean_check(status: str, answer: bytes) -> dict[str, Any]:
    if status.split()[1] != "201":
        raise RuntimeError(f"{status}: {answer.decode(errors='replace')}")
    result: dict[str, Any] = json.loads(answer)
    return result


class LeanClient:
    """One keep-alive connection to a station's API, one POST at a time."""

    def __init__(self, station: StationProcess, link: str) -> None:
        host, port, self._request = lean_request(station, link)
        self._socket = socket.create_connection((host, port), timeout=30)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._file = self._socket.makefile("rb")

    def post(self) -> dict[str, Any]:
        self._socket.sendall(self._request)
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self._file.readline(65536)
            if not line:
                raise RuntimeError("the station closed the connection")
            head += line
        status, length = lean_head(head)
        return lean_check(status, self._file.read(length))

    def close(self) -> None:
        self._file.close()
        self._socket.close()


# -- 1. latency at light load --------------------------------------------------------------------


def bench_latency(
    name: str,
    count: int,
    rate: float,
    post: Callable[[], dict[str, Any]],
    receipts: Receipts,
) -> list[Key]:
    """Send `count` messages one at a time at `rate` per second; returns the messages timed."""
    latencies: list[float] = []
    accepts: list[float] = []
    timed: list[Key] = []
    missing = 0
    next_at = time.perf_counter()
    for index in range(WARMUP_MESSAGES + count):
        next_at += 1 / rate
        time.sleep(max(0.0, next_at - time.perf_counter()))
        started = time.perf_counter()
        result = post()
        accepted = time.perf_counter()
        key = (result["lane"], result["seq"])
        at = receipts.wait(key, RECEIPT_TIMEOUT_S)
        if index < WARMUP_MESSAGES:
            continue
        timed.append(key)
        accepts.append((accepted - started) * 1000)
        if at is None:
            missing += 1
        else:
            latencies.append((at - started) * 1000)
    if missing:
        emit(f"{name}_not_receipted", missing)
    emit(f"{name}_p50_ms", f"{statistics.median(latencies):.2f}")
    emit(f"{name}_p99_ms", f"{percentile(latencies, 99):.2f}")
    emit(f"{name}_max_ms", f"{max(latencies):.2f}")
    emit(f"{name.replace('latency', 'accept')}_p50_ms", f"{statistics.median(accepts):.2f}")
    return timed


def bench_latencies(plan: Plan, london: StationProcess, link: str, receipts: Receipts) -> None:
    path = f"/api/v1/links/{link}/messages"
    emit("latency_messages", plan.latency_messages)
    timed = bench_latency(
        "latency",
        plan.latency_messages,
        plan.latency_rate,
        lambda: london.call("POST", path, BODY),
        receipts,
    )
    rows = london.call("GET", f"/api/v1/links/{link}/outbox?limit={len(timed) + 200}")
    wanted = set(timed)
    inside = [
        (row["receipted_ns"] - row["accepted_ns"]) / 1e6
        for row in rows
        if (row["lane"], row["seq"]) in wanted and row["receipted_ns"]
    ]
    emit("latency_in_station_p50_ms", f"{statistics.median(inside):.2f}")
    lean = LeanClient(london, link)
    try:
        bench_latency(
            "latency_lean", plan.latency_messages // 3, plan.latency_rate, lean.post, receipts
        )
    finally:
        lean.close()


# -- 2. sustained messages per second ------------------------------------------------------------


async def _post_lean(station: StationProcess, link: str, count: int, concurrency: int) -> None:
    """POST `count` messages over `concurrency` keep-alive connections, one request in flight on
    each, written by hand: httpx costs more CPU per request than the station does, on the CPUs
    the stations need."""
    host, port, request = lean_request(station, link)
    left = [count]

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while left[0] > 0:
                left[0] -= 1
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
                status, length = lean_head(head)
                lean_check(status, await reader.readexactly(length))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))


def _post_httpx(station: StationProcess, link: str, count: int, concurrency: int) -> None:
    """The same with httpx: `concurrency` threads, each with a client of its own."""
    headers = {"Authorization": f"Bearer {station.data.api_token()}"}
    left = [count]
    lock = threading.Lock()
    errors: list[Exception] = []

    def worker() -> None:
        try:
            with httpx.Client(base_url=station.api, headers=headers, timeout=60) as client:
                while True:
                    with lock:
                        if left[0] <= 0:
                            return
                        left[0] -= 1
                    client.post(f"/api/v1/links/{link}/messages", json=BODY).raise_for_status()
        except Exception as exc:  # reported by the caller, after the other threads end
            errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    if errors:
        raise errors[0]


@dataclass(frozen=True, slots=True)
class Rate:
    msgs_per_s: float
    cpu_us_per_msg: dict[str, float]  # london, moscow, client
    london_cpu_share: float  # London's CPU seconds per second of the run


def sustained(
    london: StationProcess,
    moscow: StationProcess,
    link: str,
    count: int,
    concurrency: int,
    post: Callable[[StationProcess, str, int, int], None],
) -> Rate:
    """From the first POST until London's status shows nothing unreceipted."""
    pids = {"london": pid_of(london), "moscow": pid_of(moscow)}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    client_before = time.process_time()
    started = time.perf_counter()
    post(london, link, count, concurrency)
    deadline = time.monotonic() + 120
    while link_status(london)["unreceipted"]:
        if time.monotonic() > deadline:
            raise RuntimeError("messages still unreceipted 120 s after the last POST")
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    used["client"] = time.process_time() - client_before
    per_message = {name: seconds / count * 1e6 for name, seconds in used.items()}
    return Rate(count / elapsed, per_message, used["london"] / elapsed)


def _lean(station: StationProcess, link: str, count: int, concurrency: int) -> None:
    asyncio.run(_post_lean(station, link, count, concurrency))


def bench_sustained(plan: Plan, london: StationProcess, moscow: StationProcess, link: str) -> None:
    sustained(london, moscow, link, 500, 16, _lean)  # warm-up
    best: tuple[Rate, int] | None = None
    for concurrency in plan.concurrency:
        rate = sustained(london, moscow, link, plan.sustained_messages, concurrency, _lean)
        emit(f"sustained_msgs_per_s_c{concurrency}", f"{rate.msgs_per_s:.0f}")
        if best is None or rate.msgs_per_s > best[0].msgs_per_s:
            best = (rate, concurrency)
    assert best is not None
    rate, concurrency = best
    emit("sustained_msgs_per_s", f"{rate.msgs_per_s:.0f}")
    emit("sustained_best_concurrency", concurrency)
    for name, micros in rate.cpu_us_per_msg.items():
        emit(f"sustained_cpu_us_per_msg_{name}", f"{micros:.0f}")
    emit("sustained_cpu_share_london", f"{rate.london_cpu_share:.2f}")
    threads = 16
    rate = sustained(london, moscow, link, plan.httpx_messages, threads, _post_httpx)
    emit(f"sustained_httpx_msgs_per_s_t{threads}", f"{rate.msgs_per_s:.0f}")
    emit("sustained_httpx_cpu_us_per_msg_client", f"{rate.cpu_us_per_msg['client']:.0f}")


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
        self.last_envelope_at = 0.0  # time.perf_counter when it last forwarded a message of ours
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
                if direction == 0 and len(data) >= ENVELOPE_CHUNK_BYTES:
                    self.last_envelope_at = time.perf_counter()  # one of our messages
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
        self._going = threading.Event()
        self._posting = threading.Lock()  # held while a POST is on its way
        self._thread = threading.Thread(target=self._run, name="sender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"}
        with httpx.Client(headers=headers, timeout=10) as client:
            next_at = time.perf_counter()
            while not self._stop.is_set():
                if not self._going.wait(0.05):
                    next_at = time.perf_counter()
                    continue
                next_at = max(next_at + self._interval, time.perf_counter())
                self._stop.wait(max(0.0, next_at - time.perf_counter()))
                with self._posting:
                    if not self._going.is_set():
                        continue
                    started = time.perf_counter()
                    try:
                        response = client.post(self._url, json=BODY)
                        response.raise_for_status()
                    except httpx.HTTPError:
                        self.failures += 1
                        continue
                    result = response.json()
                    self.sent.append((started, (result["lane"], result["seq"])))

    def resume(self) -> None:
        self._going.set()

    def pause(self) -> None:
        """Send no more; returns once the POST on its way, if any, has been answered."""
        self._going.clear()
        with self._posting:
            pass

    def first_after(self, moment: float, timeout: float) -> Key | None:
        """The first message whose POST started at or after `moment`, once it is accepted."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            later = [key for started, key in self.sent[-1000:] if started >= moment]
            if later:
                return later[0]
            time.sleep(0.001)
        return None

    def sent_between(self, start: float, end: float) -> list[tuple[float, Key]]:
        return [(started, key) for started, key in self.sent[-1000:] if start <= started < end]

    def stop(self) -> None:
        self._stop.set()
        self._going.set()
        self._thread.join(15)


def path_in_use(paths: list[CuttablePath]) -> CuttablePath:
    """The path the dialer's messages travel on now: the one that carried the latest of them.
    (The dialer sends on the path with the lowest measured round trip; on loopback the two are
    close, so it changes from time to time.)"""
    start = time.perf_counter()
    while time.perf_counter() - start < 1.0:
        latest = max(paths, key=lambda p: p.last_envelope_at)
        if time.perf_counter() - latest.last_envelope_at < 0.002:
            return latest  # one just crossed it: cut now, while its receipt is on the way
        time.sleep(0.0005)
    return max(paths, key=lambda p: p.last_envelope_at)


@dataclass(frozen=True, slots=True)
class Cut:
    seconds: float | None  # from the cut to the receipt of the first message sent after it
    after_ms: float  # median latency of the messages sent AFTER_CUT_S after the cut


def one_cut(
    mode: str,
    dialer: StationProcess,
    paths: list[CuttablePath],
    sender: SteadySender,
    receipts: Receipts,
) -> Cut:
    """One cut of the path in use, on a link that has caught up: all receipted, both paths UP."""
    sender.pause()
    wait_for(lambda: link_status(dialer)["unreceipted"] == 0, "all receipted", 30)
    wait_for(
        lambda: all(p["state"] == "UP" for p in link_status(dialer)["paths"]),
        "both paths UP on the dialer",
        30,
    )
    sender.resume()
    time.sleep(1.2)  # a few heartbeats on each path: both have a measured round trip
    victim = path_in_use(paths)
    cut_at = time.perf_counter()
    if mode == "reset":
        victim.cut_reset()
    else:
        victim.cut_silent()
    try:
        key = sender.first_after(cut_at, RECEIPT_TIMEOUT_S)
        at = receipts.wait(key, RECEIPT_TIMEOUT_S) if key is not None else None
        start, end = cut_at + AFTER_CUT_S[0], cut_at + AFTER_CUT_S[1]
        time.sleep(max(0.0, end - time.perf_counter()))
        after = []
        for started, later in sender.sent_between(start, end):
            seen = receipts.wait(later, RECEIPT_TIMEOUT_S)
            after.append(RECEIPT_TIMEOUT_S if seen is None else seen - started)
        after_ms = statistics.median(after) * 1000 if after else RECEIPT_TIMEOUT_S * 1000
        return Cut(None if at is None else at - cut_at, after_ms)
    finally:
        victim.heal()


def bench_failover(plan: Plan, root: Path) -> dict[str, float]:
    """Cut the path in use on a fresh pair, both ways, `plan.cuts_per_mode` times each."""
    dialer, listener = dialer_first(*make_pair(root))
    paths = route_through_paths(dialer, listener)
    receipts: Receipts | None = None
    sender: SteadySender | None = None
    results: dict[str, list[Cut]] = {"reset": [], "silent": []}
    try:
        start_pair((dialer, listener))
        link = link_status(dialer)["name"]
        receipts = Receipts(dialer)
        sender = SteadySender(dialer, link, FAILOVER_INTERVAL_S)
        sender.resume()
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
        for mode, cuts in results.items():
            times = [c.seconds for c in cuts]
            shown = ", ".join("timeout" if t is None else f"{t:.3f}" for t in times)
            emit(f"failover_{mode}_runs_s", shown)
            worst = None if None in times else max(t for t in times if t is not None)
            emit(f"failover_{mode}_s", "timeout" if worst is None else f"{worst:.3f}")
            after = ", ".join(f"{c.after_ms:.0f}" for c in cuts)
            emit(f"failover_{mode}_latency_after_ms", after)
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


def bench_commit(root: Path, count: int = 200) -> None:
    """The disk's part of every step: one small SQLite commit as the store makes it."""
    root.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(root / "commit.db", isolation_level=None)
    try:
        for pragma in ("journal_mode = WAL", "synchronous = FULL"):
            db.execute(f"PRAGMA {pragma}")
        db.execute("CREATE TABLE t (data BLOB)")
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (?)", (os.urandom(500),))
            db.execute("COMMIT")
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        db.close()
    emit("sqlite_commit_p50_ms", f"{statistics.median(samples):.2f}")
    emit("sqlite_commit_p99_ms", f"{percentile(samples, 99):.2f}")


# -- the run -------------------------------------------------------------------------------------


def bench_load(plan: Plan, root: Path) -> dict[str, float]:
    """Latency and sustained rate on a pair joined directly; returns each station's peak RSS."""
    london, moscow = make_pair(root)
    receipts: Receipts | None = None
    try:
        start_pair((london, moscow))
        link = link_status(london)["name"]
        receipts = Receipts(london)
        bench_latencies(plan, london, link, receipts)
        receipts.close()  # not listened to while the rate is measured
        receipts = None
        bench_sustained(plan, london, moscow, link)
        for station in (london, moscow):
            emit(
                f"rss_mb_after_load_{station.name.lower()}",
                f"{memory_mb(pid_of(station), 'VmRSS'):.1f}",
            )
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
    emit("load_average_1min_start", f"{os.getloadavg()[0]:.2f}")  # others' work on the machine
    with tempfile.TemporaryDirectory(prefix="hotline-e2e-") as directory:
        bench_commit(Path(directory) / "commit")
        rss = bench_load(plan, Path(directory) / "load")
        for name, mb in bench_failover(plan, Path(directory) / "failover").items():
            rss[name] = max(rss.get(name, 0.0), mb)
    for name, mb in sorted(rss.items()):
        emit(f"peak_rss_mb_{name.lower()}", f"{mb:.1f}")
    emit("load_average_1min_end", f"{os.getloadavg()[0]:.2f}")
    emit("bench_runtime_s", f"{time.perf_counter() - started:.1f}")


if __name__ == "__main__":
    main()
