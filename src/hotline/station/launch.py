"""Two paired stations on loopback, as real `hotline serve` processes: for the demo, the tests
with real processes, and the end-to-end benchmark.

`make_pair` creates both data directories (keys, cards, configuration), pairs them by their cards
with the short authentication string of docs/protocol.md §6.1 (over both cards and a fresh value
of each) checked in code, and writes each passphrase to a file the test or demo owns.
`StationProcess` starts, kills (SIGKILL or SIGTERM) and restarts one station and talks to its
service API. Both take what the network-namespace tests need (tests/netns.py): addresses other
than loopback, and a command to run a station through (`ip netns exec NAME`).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hotline.crypto.identity import SAS_NONCE_LEN, short_authentication_string
from hotline.station.datadir import DataDir, write_atomically
from hotline.station.links import add_link

__all__ = ["StationProcess", "free_ports", "make_pair"]

READY_TIMEOUT_S = 30.0


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that were free a moment ago for TCP and for UDP alike (the kernel
    picks them): a path's media socket takes the UDP port of the same number as its TCP one, and
    a port free for TCP may be some socket's UDP port (a station failed to start on one)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(count * 20):  # bounded: a port taken for UDP is passed over
            if len(ports) == count:
                return ports
            tcp = socket.socket()
            held.append(tcp)
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(udp)
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
        if len(ports) == count:
            return ports
        raise OSError(f"no {count} ports free for both TCP and UDP on 127.0.0.1")
    finally:
        for s in held:
            s.close()


@dataclass
class StationProcess:
    name: str
    data: DataDir
    passphrase_file: Path
    log_file: Path
    process: subprocess.Popen[bytes] | None = None
    pairing_string: str = ""  # the short authentication string both sides compared at pairing
    prefix: list[str] = field(default_factory=list)  # run through this, e.g. `ip netns exec ns`
    _client: httpx.Client | None = field(default=None, repr=False)

    @property
    def api(self) -> str:
        return f"http://{self.data.config().api.listen}"

    @property
    def console(self) -> str:
        return f"http://{self.data.config().console.listen}"

    def start(self, wait: bool = True, preexec: Callable[[], object] | None = None) -> None:
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our own command, our own arguments
            [*self.prefix, sys.executable, "-m", "hotline", "serve",
             "--data-dir", str(self.data.path),
             "--passphrase-file", str(self.passphrase_file), "--verbose"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=preexec,  # noqa: PLW1509 - for tests that limit the child's resources
        )  # fmt: skip
        log.close()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_file.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.api}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not come up: {self.log_file.read_text()[-2000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> int | None:
        if self.process is None:
            return None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        if self._client is None:
            self._client = httpx.Client(
                headers={"Authorization": f"Bearer {self.data.api_token()}"}, timeout=30
            )
        response = self._client.request(method, f"{self.api}{path}", json=body, headers=headers)
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        """Stop the station (SIGTERM; SIGKILL if it has not gone within 30 s) and the client."""
        try:
            if self.process is not None:
                try:
                    self.kill(signal.SIGTERM)
                except subprocess.TimeoutExpired:
                    self.kill(signal.SIGKILL)
                    raise
        finally:
            if self._client is not None:
                self._client.close()
                self._client = None


def make_pair(
    root: Path,
    names: tuple[str, str] = ("London", "Moscow"),
    paths: int = 2,
    hosts: tuple[Sequence[str], Sequence[str]] | None = None,
) -> tuple[StationProcess, StationProcess]:
    """Two stations in `root`, initialised and paired, not yet started. `hosts`: for each
    station, the address of each path and then of its API and console (default: 127.0.0.1)."""
    each = paths + 2  # the API, the console, the paths
    ports = free_ports(2 * each)
    stations = []
    for index, name in enumerate(names):
        mine = ports[index * each : (index + 1) * each]
        data = DataDir(root / name.lower())
        passphrase_file = root / f"{name.lower()}.passphrase"
        passphrase = secrets.token_urlsafe(24).encode()
        root.mkdir(parents=True, exist_ok=True)
        write_atomically(passphrase_file, passphrase + b"\n", mode=0o600)
        host = list(hosts[index]) if hosts else ["127.0.0.1"] * (paths + 1)
        listen = [f"{h}:{p}" for h, p in zip(host[:paths], mine[2:], strict=True)]
        data.init(
            name, passphrase, listen, api=f"{host[-1]}:{mine[0]}", console=f"{host[-1]}:{mine[1]}"
        )
        log_file = root / f"{name.lower()}.log"
        stations.append(StationProcess(name, data, passphrase_file, log_file))
    a, b = stations
    cards = (a.data.card(), b.data.card())
    # Both operators read the same short authentication string: the cards arrived unaltered.
    # (Here both stations' values are in one process; `hotline pair` commits to each first.)
    nonces = (secrets.token_bytes(SAS_NONCE_LEN), secrets.token_bytes(SAS_NONCE_LEN))
    strings = {
        short_authentication_string(cards[0].identity, nonces[0], cards[1].identity, nonces[1]),
        short_authentication_string(cards[1].identity, nonces[1], cards[0].identity, nonces[0]),
    }
    if len(strings) != 1:
        raise RuntimeError("the pairing strings differ")
    a.pairing_string = b.pairing_string = strings.pop()
    for station, peer_card in ((a, cards[1]), (b, cards[0])):
        identity = station.data.open_keystore(station.passphrase_file.read_bytes().rstrip(b"\n"))
        add_link(station.data, identity, peer_card, int(time.time()))
    os.sync()
    return a, b
