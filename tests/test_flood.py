"""Strangers who reach a station's ports (docs/operations.md, "Floods"): bogus first messages are
counted, not stored; idle connections on the path ports and slow clients on the API do not keep
the authenticated link from reconnecting, nor the API from answering; a first message without
its MAC is refused before any Noise work. Real station processes on loopback only; the floods
come from other loopback addresses (127.0.0.2 and up: the kernel routes all of 127/8 to lo)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import resource
import selectors
import signal
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.crypto.handshake_mac import (
    MAC_LEN,
    add_mac,
    check_mac,
    initiator_mac_key,
    mac_key,
    match_mac,
    responder_mac_key,
)
from hotline.crypto.session import Initiator, LinkKeys
from hotline.station.launch import StationProcess
from hotline.station.limits import Gate, Ticket, source_of
from hotline.station.links import load_links
from hotline.station.refusals import AUDIT_ROWS_PER_HOUR, KINDS, Refusals
from tests.conftest import HOTLINE_VECTORS

Address = tuple[str, int]


# -- the MAC, as an independent implementation would check it ------------------------------------

# docs/protocol.md §3.9: the first vector of tests/vectors/hotline.json (`london-moscow`).
VECTOR_MAC_KEY = "a5e1ae7ac789eded7f5eae21cd510dba6eb2b59321157c5a299f4e384d687da2"
VECTOR_MAC = "14a6ad1edb491e1303c6eea139c69bbf"


def test_the_mac_vector_holds_and_any_changed_byte_is_refused() -> None:
    vector = json.loads(HOTLINE_VECTORS.read_text())["vectors"][0]
    link_id = bytes.fromhex(vector["init_prologue"])[8:]
    responder_static = bytes.fromhex(vector["init_remote_static"])
    message1 = bytes.fromhex(vector["messages"][0]["ciphertext"])
    key = mac_key(link_id, responder_static)
    # The same bytes from the standard library, as the spec writes them.
    assert hashlib.sha256(b"hotline-mac1-v1" + link_id + responder_static).hexdigest() == (
        VECTOR_MAC_KEY
    )
    assert hmac.new(key, message1, "sha256").hexdigest()[:32] == VECTOR_MAC
    assert (key.hex(), add_mac(key, message1)) == (
        VECTOR_MAC_KEY,
        message1 + bytes.fromhex(VECTOR_MAC),
    )
    framed = add_mac(key, message1)
    assert check_mac(key, framed) == message1
    for position in (0, 31, 32, 1000, len(message1) - 1, len(framed) - MAC_LEN, len(framed) - 1):
        altered = bytearray(framed)
        altered[position] ^= 0x01
        assert check_mac(key, bytes(altered)) is None
    assert check_mac(key, message1) is None  # no MAC at all
    assert check_mac(key, framed[:MAC_LEN]) is None
    other = mac_key(bytes(32), responder_static)
    assert match_mac([other, key], framed) == (1, message1)
    assert match_mac([other], framed) is None


def test_both_sides_derive_the_same_mac_key(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    dialer, listener = _roles(*stations)
    assert initiator_mac_key(_keys(dialer)) == responder_mac_key(_keys(listener))
    assert responder_mac_key(_keys(dialer)) != responder_mac_key(_keys(listener))


# -- the bounds, without processes ---------------------------------------------------------------


def test_refusals_cost_bounded_rows_and_lines_whatever_the_flood(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows: list[tuple[str, str, bytes]] = []
    now = [0.0]
    refusals = Refusals(
        lambda action, detail, evidence: rows.append((action, detail, evidence)),
        clock=lambda: now[0],
        wall=lambda: int(now[0] * 1e9),
    )
    with caplog.at_level(logging.INFO, logger="hotline.paths"):
        for n in range(100_000):  # two hours, from 1,750 addresses, of every kind
            now[0] = n * 0.072
            source = f"10.0.{n % 250}.{n % 7}"
            refusals.refuse(source, "192.0.2.1:4000", KINDS[n % 4], "junk", os.urandom(1300))
    assert refusals.counts == dict.fromkeys(KINDS, 25_000)
    assert len(rows) == 2 * AUDIT_ROWS_PER_HOUR  # the hard cap, each hour
    assert rows[AUDIT_ROWS_PER_HOUR - 1][0] == "handshake refusals not recorded"
    assert refusals.unaudited > 0
    assert all(len(evidence) <= 32 for _action, _detail, evidence in rows)
    # Per minute at most a first line and a summary for each of 16 sources (and the rest
    # together), per kind: 120 minutes here.
    assert len(caplog.records) <= 120 * 2 * 17 * len(KINDS)
    assert len(caplog.records) < 100_000 / 5


def test_the_gate_closes_the_oldest_waiting_connection_to_make_room() -> None:
    closed: list[str] = []

    def enter(name: str, source: str) -> Ticket | None:
        return gate.enter("127.0.0.1:4000", source, lambda: closed.append(name))

    gate = Gate(per_listener=3, per_source=2)
    a, b = enter("a", "192.0.2.1"), enter("b", "192.0.2.1")
    assert a is not None
    assert b is not None
    assert enter("c", "192.0.2.1") is not None  # past the source's cap: its oldest goes
    assert (closed, a.evicted) == (["a"], True)
    b.waiting = False  # being answered: never closed for room
    assert enter("d", "192.0.2.2") is not None
    assert enter("e", "192.0.2.3") is not None  # past the listener's cap: the oldest waiting
    assert closed == ["a", "c"]
    assert gate.pending("127.0.0.1:4000") == 3
    gate.leave(b)
    assert gate.pending("127.0.0.1:4000") == 2
    assert source_of(("2001:db8:1:2:3:4:5:6", 1, 0, 0)) == "2001:db8:1:2::/64"
    assert source_of(("::ffff:192.0.2.7", 1, 0, 0)) == "192.0.2.7"


# -- helpers -------------------------------------------------------------------------------------


def _keys(station: StationProcess) -> LinkKeys:
    identity = station.data.open_keystore(station.passphrase_file.read_bytes().rstrip(b"\n"))
    return load_links(station.data, identity)[0].keys


def _roles(a: StationProcess, b: StationProcess) -> tuple[StationProcess, StationProcess]:
    """(dialer, listener)."""
    identity = a.data.open_keystore(a.passphrase_file.read_bytes().rstrip(b"\n"))
    return (a, b) if load_links(a.data, identity)[0].dials else (b, a)


def _link(station: StationProcess) -> dict[str, Any]:
    links: list[dict[str, Any]] = station.call("GET", "/api/v1/status")["links"]
    return links[0]


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass  # a station restarting, or busy
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _up(*stations: StationProcess) -> None:
    _wait(lambda: all(_link(s)["state"] == "UP" for s in stations), "the link UP")


def _send_and_receipt(sender: StationProcess, receiver: StationProcess, text: str) -> None:
    link = receiver.name.lower()
    body = {"text": text, "lane": "FLASH", "language": "en"}
    sender.call("POST", f"/api/v1/links/{link}/messages", body)
    _wait(lambda: _link(sender)["unreceipted"] == 0, f"the receipt of {text!r}")


def _metrics(station: StationProcess) -> dict[str, float]:
    token = station.data.api_token()
    text = httpx.get(
        f"{station.api}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ).text
    found = re.findall(r"^(hotline_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+]+)$", text, re.MULTILINE)
    return {name: float(value) for name, value in found}


def _refused(station: StationProcess, kind: str) -> float:
    return _metrics(station).get(f'hotline_handshakes_refused_total{{kind="{kind}"}}', -1.0)


def _path_ports(station: StationProcess) -> list[Address]:
    return [("127.0.0.1", int(a.rpartition(":")[2])) for a in station.data.config().station.listen]


def _connect(target: Address, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    try:
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    return sock


def _exchange(target: Address, data: bytes, source: str = "127.0.0.1") -> bytes:
    """Send `data`, then read until the station closes the connection."""
    with _connect(target, source) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


def _framed(message: bytes) -> bytes:
    return struct.pack(">I", len(message)) + message


def _audit_rows(station: StationProcess) -> list[tuple[str, int]]:
    uri = f"file:{station.data.store_file}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        rows = db.execute("SELECT action, length(evidence) FROM audit").fetchall()
    db.close()
    return [(action, length or 0) for action, length in rows]


def _store_bytes(station: StationProcess) -> int:
    path = station.data.store_file
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _few_open_files() -> None:
    """The station starts with a low soft limit on open files, as most machines give (1,024,
    here 256 to keep the test small); its hard limit stays what it was."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


@pytest.fixture(autouse=True)
def _enough_files_for_the_flood() -> None:
    """This process holds the flood's sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1 << 16), hard))


# -- bogus first messages ------------------------------------------------------------------------


def _bogus_flood(target: Address, source: str, count: int, seed: int) -> None:
    for n in range(count):
        size = 1273 + (seed * 7919 + n * 104729) % 3000  # the length of a plausible message 1
        assert _exchange(target, _framed(os.urandom(size)), source) == b""


def test_bogus_first_messages_are_counted_not_stored(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    dialer, listener = _roles(*stations)
    listener.start()
    dialer.start()
    _up(dialer, listener)
    rows_before, bytes_before = len(_audit_rows(listener)), _store_bytes(listener)
    log_before = len(listener.log_file.read_text().splitlines())
    sources = [f"127.0.0.{n}" for n in range(2, 6)]
    targets = _path_ports(listener)
    floods = [
        threading.Thread(target=_bogus_flood, args=(targets[n % 2], source, 500, n))
        for n, source in enumerate(sources)
    ]
    for thread in floods:
        thread.start()
    for thread in floods:
        thread.join(timeout=300)
    rows = _audit_rows(listener)[rows_before:]
    # One row at the first, a summary as its 10 minutes end (once at most, here), then the
    # first of the next 10 minutes: never a row per message.
    assert len(rows) <= 3
    assert all(evidence <= 32 for _action, evidence in rows)  # a sample, never the message
    assert _store_bytes(listener) - bytes_before < 256 * 1024
    log = listener.log_file.read_text().splitlines()[log_before:]
    assert len([line for line in log if "hotline.paths" in line]) <= 4 * len(sources)
    assert _refused(listener, "mac") == 2000  # every one counted, none given to Noise
    assert _metrics(listener)["hotline_handshakes_checked_total"] >= 1  # the genuine ones only
    _send_and_receipt(dialer, listener, "after the flood")
    _send_and_receipt(listener, dialer, "and back")
    assert listener.process is not None
    assert listener.process.poll() is None


# -- the MAC is checked before Noise -------------------------------------------------------------


def test_a_first_message_without_its_mac_is_refused_before_noise(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    dialer, listener = _roles(*stations)
    listener.start()
    dialer.start()
    _up(dialer, listener)
    target = _path_ports(listener)[0]
    genuine_keys = _keys(dialer)
    checked = _metrics(listener)["hotline_handshakes_checked_total"]
    initiator = Initiator(genuine_keys, rng=os.urandom)
    message1 = initiator.start(time.time_ns())
    framed = add_mac(initiator_mac_key(genuine_keys), message1)
    # The dialer's own first message with one bit of its MAC changed: refused, no Noise run.
    altered = framed[:-1] + bytes([framed[-1] ^ 0x80])
    assert _exchange(target, _framed(altered)) == b""
    assert _refused(listener, "mac") == 1
    assert _metrics(listener)["hotline_handshakes_checked_total"] == checked
    assert "no valid first-message MAC" in listener.log_file.read_text()
    # The same message with its MAC: the handshake completes (message 2 comes back).
    with _connect(target) as sock:
        sock.sendall(_framed(framed))
        (length,) = struct.unpack(">I", sock.recv(4, socket.MSG_WAITALL))
        reply = sock.recv(length, socket.MSG_WAITALL)
    assert initiator.finish(reply, time.time_ns()).session.confirmed
    assert _metrics(listener)["hotline_handshakes_checked_total"] == checked + 1
    # An impostor who has the link's public material (so a valid MAC), not the dialer's key:
    # past the MAC, refused by Noise.
    impostor_keys = LinkKeys(
        genuine_keys.link_id, os.urandom(32), genuine_keys.peer_static, genuine_keys.psk
    )
    impostor = Initiator(impostor_keys, rng=os.urandom).start(time.time_ns())
    assert _exchange(target, _framed(add_mac(initiator_mac_key(genuine_keys), impostor))) == b""
    assert _refused(listener, "handshake") == 1
    assert _refused(listener, "mac") == 1
    _up(dialer, listener)


# -- idle connections ----------------------------------------------------------------------------


class IdleFlood:
    """Connections opened to `targets` and held open, sending nothing (or half a length): each
    one the station closes is opened again at once, until stopped. Connects do not block, as an
    attacker's would not: a full accept queue holds back no other slot."""

    def __init__(self, targets: list[Address], sources: list[str], per_target: int) -> None:
        self._slots = [(t, sources[n % len(sources)]) for t in targets for n in range(per_target)]
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self.opened = 0  # connections established, counting those opened again
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        closed = list(range(len(self._slots)))
        while not self._stop.is_set():
            closed = [index for index in closed if not self._open(index)]
            for key, events in self._selector.select(0.02):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if events & selectors.EVENT_WRITE and not sock.getsockopt(
                    socket.SOL_SOCKET, socket.SO_ERROR
                ):
                    self._connected(sock, key.data)
                    continue
                self._selector.unregister(sock)  # refused, reset or closed by the station
                sock.close()
                closed.append(key.data)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]

    def _open(self, index: int) -> bool:
        target, source = self._slots[index]
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.bind((source, 0))
            sock.connect_ex(target)
        except OSError:
            sock.close()
            return False
        self._selector.register(sock, selectors.EVENT_WRITE, index)
        return True

    def _connected(self, sock: socket.socket, index: int) -> None:
        self.opened += 1
        self._selector.modify(sock, selectors.EVENT_READ, index)
        if index % 2:
            with contextlib.suppress(OSError):
                sock.send(b"\x00\x00")  # half a length, then nothing

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


@pytest.fixture
def idle_flood() -> Iterator[Callable[[list[Address], int], IdleFlood]]:
    floods: list[IdleFlood] = []

    def start(targets: list[Address], per_target: int) -> IdleFlood:
        sources = [f"127.0.0.{n}" for n in range(2, 62)]
        floods.append(IdleFlood(targets, sources, per_target))
        return floods[-1]

    yield start
    for flood in floods:
        flood.stop()


def test_the_link_reconnects_while_idle_connections_hold_the_path_ports(
    stations: tuple[StationProcess, StationProcess],
    idle_flood: Callable[[list[Address], int], IdleFlood],
) -> None:
    dialer, listener = _roles(*stations)
    listener.start(preexec=_few_open_files)
    dialer.start()
    _up(dialer, listener)
    flood = idle_flood(_path_ports(listener), 300)
    _wait(lambda: flood.opened >= 600, "600 idle connections")
    time.sleep(1)
    assert dialer.kill(signal.SIGKILL) == -signal.SIGKILL  # every session of the link is gone
    dialer.start()
    _up(dialer, listener)
    assert httpx.get(f"{listener.api}/health", timeout=10).status_code == 200  # a new connection
    _send_and_receipt(dialer, listener, "through the idle flood")
    _send_and_receipt(listener, dialer, "and back")
    assert _metrics(listener)['hotline_handshakes_refused_total{kind="limit"}'] > 0


# -- slow clients on the API ---------------------------------------------------------------------


def test_the_api_answers_while_slow_clients_hold_it_and_idle_ones_are_closed(
    stations: tuple[StationProcess, StationProcess],
    idle_flood: Callable[[list[Address], int], IdleFlood],
) -> None:
    dialer, listener = _roles(*stations)
    listener.start(preexec=_few_open_files)
    dialer.start()
    _up(dialer, listener)
    host, _, port = listener.data.config().api.listen.rpartition(":")
    api = (host, int(port))
    with _connect(api) as idle:
        flood = idle_flood([api], 400)
        _wait(lambda: flood.opened >= 400, "400 slow connections to the API")
        for n in range(10):
            assert _link(listener)["state"] == "UP", n  # on a kept-alive connection
            assert httpx.get(f"{listener.api}/health", timeout=10).status_code == 200, n  # new
        _send_and_receipt(listener, dialer, "while the API is held")
        idle.settimeout(30)
        assert idle.recv(1) == b""  # a connection that sent nothing was closed
