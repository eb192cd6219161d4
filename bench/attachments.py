"""How fast an attachment moves between two station processes on loopback, and what memory it
costs them.

    .venv/bin/python bench/attachments.py [--mib 1024] [--quick]

Two real stations (bench/e2e.py's pair, SQLite, one TCP path each way on 127.0.0.1), the file
limit raised to fit. A file of random bytes is uploaded to London's API, then sent with a message;
the clock runs from the send until London holds Moscow's signed Held statement for the file
(every byte written at Moscow, synced, hashed, the statement signed, sent and stored). Done for a
small file first (a quarter of the size, at least 64 MiB), then the full one, so the resident sets
can be compared: they must not grow with the file. Prints `name: value` lines:

  attachment_mib: the file's size
  upload_mb_per_s: the upload to London's API (MB = 10**6 bytes)
  transfer_s / transfer_mb_per_s: send to signed-for, for the full file
  transfer_mb_per_s_small: the same for the small one
  rss_mb_<station>_idle: VmRSS of each station before the transfers
  rss_mb_<station>_peak_small / rss_mb_<station>_peak_full: the largest VmRSS sampled (every
      20 ms) during each transfer
  cpu_s_<station>_<size>mib: CPU seconds (user, system) each station spent on a transfer
  flash_receipt_ms_during_<size>mib_median / _max: FLASH messages sent every 50 ms while the
      file moves (at most 20): from accepted at London to Moscow's receipt at London

Everything is in the system's temporary directory. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from hotline.station.launch import StationProcess, make_pair

MiB = 1024 * 1024


def emit(name: str, value: object) -> None:
    print(f"{name}: {value}", flush=True)


def cpu_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler:
    """The largest VmRSS of each process, sampled until stopped."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], rss_mb(pid))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return self.peak


def random_file(size: int) -> Iterator[bytes]:
    left = size
    while left:
        block = os.urandom(min(MiB, left))
        left -= len(block)
        yield block


def transfer(
    london: StationProcess, size: int, pids: dict[str, int]
) -> tuple[float, float, dict[str, float]]:
    """(upload seconds, send-to-held seconds, peak RSS per station during the transfer)."""
    headers = {"Authorization": f"Bearer {london.data.api_token()}"}
    started = time.perf_counter()
    uploaded = httpx.post(
        f"{london.api}/api/v1/attachments", content=random_file(size), headers=headers, timeout=600
    ).json()
    upload_s = time.perf_counter() - started
    link = london.call("GET", "/api/v1/status")["links"][0]["name"]
    sampler = Sampler(pids)
    cpu_before = {name: cpu_s(pid) for name, pid in pids.items()}
    started, started_ns = time.perf_counter(), time.time_ns()
    body = {"text": "a file", "attachments": [{"sha256": uploaded["sha256"], "name": "f.bin"}]}
    sent = london.call("POST", f"/api/v1/links/{link}/messages", body)
    deadline, flashes = time.monotonic() + 600, 0
    while time.monotonic() < deadline:
        outbox = london.call("GET", f"/api/v1/links/{link}/outbox?limit=50")
        if any(
            (m["lane"], m["seq"], m.get("files_held")) == (sent["lane"], sent["seq"], True)
            for m in outbox
        ):
            break
        if flashes < 20:  # FLASH messages while the file moves: they must not wait behind it
            flash = {"text": "FLASH during a transfer", "lane": "FLASH", "type": "service"}
            london.call("POST", f"/api/v1/links/{link}/messages", flash)
            flashes += 1
        time.sleep(0.05)
    else:
        raise SystemExit("the file was not held within 10 minutes")
    outbox = london.call("GET", f"/api/v1/links/{link}/outbox?limit=100")
    waits = sorted(
        (m["receipted_ns"] - m["accepted_ns"]) / 1e6
        for m in outbox
        if m["lane"] == "FLASH" and m["receipted_ns"] and m["accepted_ns"] > started_ns
    )
    if waits:
        emit(f"flash_receipt_ms_during_{size // MiB}mib_median", f"{waits[len(waits) // 2]:.1f}")
        emit(f"flash_receipt_ms_during_{size // MiB}mib_max", f"{waits[-1]:.1f}")
    seconds = time.perf_counter() - started
    for name, pid in pids.items():
        (user, system), (user0, system0) = cpu_s(pid), cpu_before[name]
        emit(
            f"cpu_s_{name}_{size // MiB}mib",
            f"{user - user0:.2f} user, {system - system0:.2f} system",
        )
    return upload_s, seconds, sampler.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="the full file's size in MiB")
    parser.add_argument("--quick", action="store_true", help="a 256 MiB file")
    args = parser.parse_args()
    full = (256 if args.quick else max(64, args.mib)) * MiB
    small = max(64 * MiB, full // 4)
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        london, moscow = make_pair(Path(tmp))
        for station in (london, moscow):
            config = station.data.config_file
            limit = f"max_size_mib = {full // MiB + 1}"
            config.write_text(config.read_text().replace("max_size_mib = 100", limit))
        try:
            for station in (london, moscow):
                station.start()
            while london.call("GET", "/api/v1/status")["links"][0]["state"] != "UP":
                time.sleep(0.1)
            assert london.process is not None
            assert moscow.process is not None
            pids = {"london": london.process.pid, "moscow": moscow.process.pid}
            emit("attachment_mib", full // MiB)
            for name, pid in pids.items():
                emit(f"rss_mb_{name}_idle", f"{rss_mb(pid):.0f}")
            _, seconds, peak = transfer(london, small, pids)
            emit("transfer_mb_per_s_small", f"{small / seconds / 1e6:.0f}")
            for name in pids:
                emit(f"rss_mb_{name}_peak_small", f"{peak[name]:.0f}")
            upload_s, seconds, peak = transfer(london, full, pids)
            emit("upload_mb_per_s", f"{full / upload_s / 1e6:.0f}")
            emit("transfer_s", f"{seconds:.2f}")
            emit("transfer_mb_per_s", f"{full / seconds / 1e6:.0f}")
            for name in pids:
                emit(f"rss_mb_{name}_peak_full", f"{peak[name]:.0f}")
        finally:
            for station in (london, moscow):
                station.close()


if __name__ == "__main__":
    main()
