"""Two stations joined by two real network paths, for the tests and the bench of issue 16.

London runs in the machine's own network namespace, Moscow in one made for the run
("hl-<random>") and started through `ip netns exec`. Three veth pairs join them: paths 1 and 2
(10.N.1.0/24 and 10.N.2.0/24, London .1 and Moscow .2) and a control link (10.N.3.0/24) that only
carries this process's calls to Moscow's API and is never cut. N is drawn at random among
second octets no route of the machine uses, so two runs never collide.

The faults are the kernel's own (the machines have no `tc netem`), applied inside Moscow's
namespace (but for a cable pulled at London's end), so London's side stays as it was:
- `cut(path)`: a silent cut, as a cable cut far away: every packet dropped both ways
  (`iptables -j DROP`), nothing refused or reset; `heal(path)` ends it;
- `lose(path, p)`: each packet dropped with probability p, both ways (`-m statistic`);
- `unplug(path)` / `plug(path)`: the cable out and in (`ip link set down/up`, at Moscow's end or
  at London's).

`sent_bytes(path)` reads what London has put on a path (its veth's counter), so a test can see
which path a message went on. Needs root (and `ip`, `iptables`); `Net.close` removes everything.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from hotline.station.launch import StationProcess, make_pair
from hotline.station.links import load_links

__all__ = [
    "PATHS",
    "Net",
    "can_run",
    "far_end",
    "link_status",
    "path_of",
    "path_states",
    "station_pair",
    "wait_for",
]

PATHS = (1, 2)
CONTROL = 3


def can_run() -> str | None:
    """None if this process can make namespaces; else why not."""
    if os.geteuid() != 0:
        return "needs root, to make network namespaces and veth pairs"
    return None


def _run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout


def _free_octet() -> int:
    used = _run("ip", "-4", "route", "show", "table", "all")
    for _ in range(200):
        octet = random.randint(64, 191)
        if f"10.{octet}." not in used:
            return octet
    raise RuntimeError("no free 10.N.0.0/16 for the test's paths")


class Net:
    """The namespace, the veth pairs and the faults on them."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"hl-{tag}"
        self.octet = _free_octet()
        self.outer = {n: f"hl{tag}o{n}" for n in (*PATHS, CONTROL)}  # London's ends
        self.inner = {n: f"hl{tag}i{n}" for n in (*PATHS, CONTROL)}  # Moscow's ends
        self._rules: dict[int, list[list[str]]] = {n: [] for n in PATHS}
        _run("ip", "netns", "add", self.name)
        try:
            self._join()
        except BaseException:
            self.close()
            raise

    def _join(self) -> None:
        self.inside("ip", "link", "set", "lo", "up")
        for n, outer in self.outer.items():
            inner = self.inner[n]
            _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            _run("ip", "link", "set", inner, "netns", self.name)
            _run("ip", "addr", "add", f"{self.host(n, 1)}/24", "dev", outer)
            _run("ip", "link", "set", outer, "up")
            self.inside("ip", "addr", "add", f"{self.host(n, 2)}/24", "dev", inner)
            self.inside("ip", "link", "set", inner, "up")

    def host(self, n: int, side: int) -> str:
        """The address of path (or control link) `n` at London (side 1) or Moscow (side 2)."""
        return f"10.{self.octet}.{n}.{side}"

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def inside(self, *command: str) -> str:
        return _run(*self.prefix, *command)

    # -- faults ----------------------------------------------------------------------------------

    def _add(self, n: int, *match: str) -> None:
        for chain, direction in (("INPUT", "-i"), ("OUTPUT", "-o")):
            rule = [chain, direction, self.inner[n], *match, "-j", "DROP"]
            self.inside("iptables", "-I", *rule)
            self._rules[n].append(rule)

    def cut(self, n: int) -> None:
        self._add(n)

    def lose(self, n: int, probability: float) -> None:
        self._add(n, "-m", "statistic", "--mode", "random", "--probability", f"{probability}")

    def heal(self, n: int) -> None:
        """End every cut and loss on path `n`."""
        while self._rules[n]:
            self.inside("iptables", "-D", *self._rules[n].pop())

    def unplug(self, n: int, end: int = 2) -> None:
        """Pull path `n`'s cable out at Moscow's end (`end` 2) or at London's (1): that end's
        interface is down, the other's has no carrier and drops what it is given."""
        self._link(n, end, "down")

    def plug(self, n: int, end: int = 2) -> None:
        self._link(n, end, "up")

    def _link(self, n: int, end: int, state: str) -> None:
        if end == 1:
            _run("ip", "link", "set", self.outer[n], state)
        else:
            self.inside("ip", "link", "set", self.inner[n], state)

    def sent_bytes(self, n: int) -> int:
        """Bytes London has sent on path `n` so far (its veth's counter)."""
        return int(Path(f"/sys/class/net/{self.outer[n]}/statistics/tx_bytes").read_text())

    def close(self) -> None:
        """Remove the namespace and the veth pairs (deleting one end deletes the pair)."""
        for outer in self.outer.values():
            subprocess.run(["ip", "link", "del", outer], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)


@contextmanager
def station_pair(root: Path) -> Iterator[tuple[Net, StationProcess, StationProcess]]:
    """London here and Moscow in a fresh namespace, paired on paths 1 and 2, started; all
    stopped and removed afterwards."""
    net = Net()
    try:
        london_hosts = [net.host(n, 1) for n in PATHS] + ["127.0.0.1"]
        moscow_hosts = [net.host(n, 2) for n in (*PATHS, CONTROL)]
        london, moscow = make_pair(root, hosts=(london_hosts, moscow_hosts))
        moscow.prefix = net.prefix
        try:
            for station in (london, moscow):
                station.start(wait=False)
            for station in (london, moscow):
                station.wait_ready()
            yield net, london, moscow
        finally:
            try:
                london.close()
            finally:
                moscow.close()
    finally:
        net.close()


def path_of(address: str) -> int:
    """Which path a status entry's address is on: 10.N.<path>.x:port."""
    return int(address.split(".")[2])


def link_status(station: StationProcess) -> dict[str, Any]:
    links: list[dict[str, Any]] = station.call("GET", "/api/v1/status")["links"]
    return links[0]


def path_states(station: StationProcess) -> dict[int, tuple[str, int]]:
    """Per path, its state at `station` and since when (ns, the station's clock)."""
    return {
        path_of(p["address"]): (p["state"], p["since_ns"]) for p in link_status(station)["paths"]
    }


def wait_for(condition: Callable[[], object], what: str, timeout: float) -> float:
    """Poll `condition` every 10 ms until it is true; how long that took (s). Raises
    AssertionError after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if condition():
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def far_end(london: StationProcess) -> int:
    """The end of a path away from the station that dials (1 London's, 2 Moscow's): a cable
    pulled there swallows the dialer's connection attempts rather than refusing them."""
    identity = london.data.open_keystore(london.passphrase_file.read_bytes().rstrip(b"\n"))
    return 2 if load_links(london.data, identity)[0].dials else 1
