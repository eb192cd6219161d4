"""Two real station processes on loopback, driven through the service API and the CLI: crashes,
a path cut mid-stream, impostors and replays, and the errors an engineer meets setting one up."""

from __future__ import annotations

import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from hotline.crypto.handshake_mac import add_mac, initiator_mac_key
from hotline.crypto.session import Initiator, LinkKeys
from hotline.protocol.envelope import LANES
from hotline.protocol.state import LinkState
from hotline.sim.pgserver import ThrowawayPostgres
from hotline.station.launch import StationProcess
from hotline.station.links import load_links
from hotline.store.sqlite import SqliteStore
from tests.tcpproxy import TcpProxy

LANE_NAMES = [lane.name for lane in LANES]


def _start(*stations: StationProcess) -> None:
    for station in stations:
        station.start()
    _wait(lambda: all(_link(s)["state"] == "UP" for s in stations), "both stations UP")


def _link(station: StationProcess) -> dict[str, Any]:
    links: list[dict[str, Any]] = station.call("GET", "/api/v1/status")["links"]
    return links[0]


def _wait(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass  # a station restarting
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _state(station: StationProcess) -> tuple[LinkState, SqliteStore]:
    """The station's store, read as a third party would, with its own keys to verify it."""
    identity = station.data.open_keystore(station.passphrase_file.read_bytes().rstrip(b"\n"))
    link = load_links(station.data, identity)[0]
    store = SqliteStore(station.data.store_file)
    return store.load(link.config), store


def _check_agreement(
    sender: StationProcess, receiver: StationProcess, accepted: set[tuple[str, int, str]]
) -> None:
    """Every accepted message arrived exactly once, in order per lane; chains and receipts agree."""
    _wait(lambda: _link(sender)["unreceipted"] == 0 and _link(sender)["in_agreement"]
          and _link(receiver)["in_agreement"], "receipts and agreement")  # fmt: skip
    out_state, out_store = _state(sender)
    in_state, in_store = _state(receiver)
    identity = sender.data.open_keystore(sender.passphrase_file.read_bytes().rstrip(b"\n"))
    link_id = load_links(sender.data, identity)[0].config.link_id
    sent = {(LANE_NAMES[r[0]], r[1], bytes(r[2]).hex()) for r in out_store._rows(
        "SELECT lane, seq, hash FROM outbox WHERE link_id = ?", (link_id,))}  # fmt: skip
    held = in_store._rows(
        "SELECT lane, seq, hash FROM inbox WHERE link_id = ? ORDER BY id", (link_id,)
    )
    received = [(LANE_NAMES[lane], seq, bytes(h).hex()) for lane, seq, h in held]
    assert accepted <= sent  # accepted means durable at the sender
    assert len(received) == len(set(received))  # no duplicates
    assert set(received) == sent  # no loss
    for lane in LANE_NAMES:  # in order per lane, as stored
        seqs = [seq for name, seq, _ in received if name == lane]
        assert seqs == list(range(1, len(seqs) + 1))
    assert out_state.outbound == in_state.inbound
    assert out_state.receipted == out_state.outbound
    for store in (out_store, in_store):
        store.close()


def _sender(
    station: StationProcess,
    link: str,
    count: int,
    tag: str,
    accepted: set[tuple[str, int, str]],
    lock: threading.Lock,
) -> None:
    rng = random.Random(tag)
    for i in range(count):
        body = {"text": f"{tag} message {i}", "lane": rng.choice(LANE_NAMES), "language": "en"}
        key = {"Idempotency-Key": f"{tag}-{i}"}
        while True:
            try:
                result = station.call("POST", f"/api/v1/links/{link}/messages", body, key)
                break
            except httpx.HTTPError:
                time.sleep(0.05)  # the station is being restarted: send it again, same key
        with lock:
            accepted.add((result["lane"], result["seq"], result["hash"]))


def test_a_thousand_messages_survive_sigkill_of_either_station(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    _start(london, moscow)
    accepted: set[tuple[str, int, str]] = set()
    lock = threading.Lock()
    senders = [
        threading.Thread(target=_sender, args=(london, "moscow", 250, f"t{n}", accepted, lock))
        for n in range(4)
    ]
    for thread in senders:
        thread.start()
    for victim in (moscow, moscow, london, moscow):
        time.sleep(random.uniform(0.3, 0.8))
        assert victim.kill(signal.SIGKILL) == -signal.SIGKILL
        time.sleep(0.2)
        victim.start()
    for thread in senders:
        thread.join(timeout=120)
    assert len(accepted) == 1000
    _check_agreement(london, moscow, accepted)
    _, store = _state(london)  # a send retried after a kill was not sent twice
    [(principal,)] = store._rows("SELECT COUNT(*) FROM outbox WHERE type = 0")
    store.close()
    assert principal == 1000


def _dialer_and_listener(
    a: StationProcess, b: StationProcess
) -> tuple[StationProcess, StationProcess]:
    identity = a.data.open_keystore(a.passphrase_file.read_bytes().rstrip(b"\n"))
    return (a, b) if load_links(a.data, identity)[0].dials else (b, a)


def _route_through_proxies(
    dialer: StationProcess,
    listener: StationProcess,
    rate: float | None = None,
    delays: tuple[float, ...] = (),
) -> list[TcpProxy]:
    """Make each of the dialer's paths go through a proxy we can cut (or slow down, or delay:
    `delays[i]` seconds each way on path i)."""
    targets = listener.data.config().station.listen
    delays = delays or (0.0,) * len(targets)
    proxies = [
        TcpProxy(("127.0.0.1", int(t.rpartition(":")[2])), rate, delay)
        for t, delay in zip(targets, delays, strict=True)
    ]
    link_dir = next((dialer.data.path / "links").iterdir())
    toml = (link_dir / "link.toml").read_text()
    for target, proxy in zip(targets, proxies, strict=True):
        toml = toml.replace(f'"{target}"', f'"{proxy.path}"')
    (link_dir / "link.toml").write_text(toml)
    return proxies


def test_traffic_moves_to_the_other_path_when_one_dies(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    dialer, listener = _dialer_and_listener(*stations)
    proxies = _route_through_proxies(dialer, listener)
    _start(dialer, listener)
    accepted: set[tuple[str, int, str]] = set()
    lock = threading.Lock()
    peer = _link(dialer)["name"]
    thread = threading.Thread(target=_sender, args=(dialer, peer, 300, "failover", accepted, lock))
    thread.start()
    time.sleep(0.3)
    proxies[0].cut()
    thread.join(timeout=120)
    _wait(lambda: _link(dialer)["state"] == "DEGRADED", "the link DEGRADED on the dialer")
    paths = {p["address"]: p["state"] for p in _link(dialer)["paths"]}
    assert paths == {proxies[0].path: "DOWN", proxies[1].path: "UP"}
    _check_agreement(dialer, listener, accepted)


def _send_raw(address: str, message: bytes) -> bytes:
    """Send one framed message to a station's path and return what comes back before it closes."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">I", len(message)) + message)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


def test_an_impostor_and_a_replayed_handshake_are_refused_and_logged(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    dialer, listener = _dialer_and_listener(*stations)
    proxies = _route_through_proxies(dialer, listener)
    _start(dialer, listener)
    identity = listener.data.open_keystore(listener.passphrase_file.read_bytes().rstrip(b"\n"))
    keys = load_links(listener.data, identity)[0].keys
    target = listener.data.config().station.listen[0]
    # An impostor: knows the link and the listener's public key, not the dialer's static key.
    impostor = Initiator(
        LinkKeys(keys.link_id, os.urandom(32), identity.public.dh, keys.psk), rng=os.urandom
    )
    message = impostor.start(time.time_ns())
    assert _send_raw(target, message) == b""
    # A replay: the dialer's genuine first message, recorded on the way, sent again.
    recorded = proxies[0].first_messages[0]
    assert _send_raw(target, recorded[4:]) == b""
    log = listener.log_file.read_text()
    assert f"ephemeral key {message[:32].hex()}" in log
    assert "refused: handshake replayed" in log
    _, store = _state(listener)
    actions = [row[0] for row in store._rows("SELECT action FROM audit")]
    store.close()
    assert actions.count("handshake refused") == 2
    assert _link(listener)["state"] == "UP"  # the genuine sessions were not disturbed


def _first_reply(address: str, message: bytes) -> bytes:
    """Send one framed message to a station's path; return the first framed message it sends
    back, or b"" if it closes without one."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">I", len(message)) + message)
        stream = sock.makefile("rb")
        head = stream.read(4)
        return stream.read(struct.unpack(">I", head)[0]) if len(head) == 4 else b""


def test_genuine_first_messages_are_accepted_in_any_order_and_each_only_once(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    # Two first messages of the dialer's, the later written one arriving first: what a slower
    # path does. Both are genuine and both open a session; each, sent again, is a replay.
    dialer, listener = _dialer_and_listener(*stations)
    _start(dialer, listener)
    identity = dialer.data.open_keystore(dialer.passphrase_file.read_bytes().rstrip(b"\n"))
    keys = load_links(dialer.data, identity)[0].keys
    target = listener.data.config().station.listen[0]
    now = time.time_ns()
    older, newer = (
        add_mac(initiator_mac_key(keys), Initiator(keys, rng=os.urandom).start(t))
        for t in (now - 300_000_000, now)
    )
    assert len(_first_reply(target, newer)) == 1161  # message 2
    assert len(_first_reply(target, older)) == 1161  # not a replay: written earlier, came later
    assert "handshake replayed" not in listener.log_file.read_text()
    for replayed in (older, newer):
        assert _first_reply(target, replayed) == b""
    assert "refused: handshake replayed" in listener.log_file.read_text()  # then counted
    _wait(lambda: _link(listener)["state"] == "UP", "the genuine sessions still UP")


def test_a_slower_path_opens_its_session_without_a_false_replay(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    # One path 0.3 s longer each way (a relay far away): at each start the dialer writes both
    # first messages at once and the slower one arrives after the other was accepted.
    dialer, listener = _dialer_and_listener(*stations)
    _route_through_proxies(dialer, listener, delays=(0.3, 0.0))
    _start(dialer, listener)
    for _ in range(3):
        dialer.kill()
        dialer.start()
        _wait(lambda: all(p["state"] == "UP" for p in _link(dialer)["paths"]), "both paths UP")
    assert "handshake replayed" not in listener.log_file.read_text()
    _, store = _state(listener)
    audit = store._rows("SELECT action, detail FROM audit WHERE action = 'handshake refused'")
    store.close()
    assert audit == []


def _serve(
    station: StationProcess, *extra: str, passphrase: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", "serve", "-d", str(station.data.path),
         "--passphrase-file", str(passphrase or station.passphrase_file), *extra],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_setup_errors_are_one_clear_line_each(
    stations: tuple[StationProcess, StationProcess], tmp_path: Path
) -> None:
    london, _moscow = stations
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase at all\n")
    done = _serve(london, passphrase=wrong)
    assert (done.returncode, done.stderr.strip()) == (
        3,
        "hotline: error: wrong passphrase, or the keystore file is damaged",
    )
    port = int(london.data.config().station.listen[1].rpartition(":")[2])
    with socket.create_server(("127.0.0.1", port)):
        done = _serve(london)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    london.start()
    done = _serve(london)
    assert done.returncode == 2
    assert "is in use by station process" in done.stderr
    london.close()
    config = london.data.config_file
    config.write_text(config.read_text() + "\n[extra]\nsetting = 1\n")
    done = _serve(london)
    assert done.returncode == 2
    assert "unknown field `extra`" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "serve", "-d", str(tmp_path / "nowhere")],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no station in" in done.stderr


def test_the_api_wants_its_token_checks_input_and_reports_metrics(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    _start(london, moscow)
    api = london.api
    assert httpx.get(f"{api}/health").json() == {"status": "ok"}
    assert httpx.get(f"{api}/api/v1/status").status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.get(f"{api}/api/v1/status", headers=wrong).status_code == 401
    auth = {"Authorization": f"Bearer {london.data.api_token()}"}
    bad_lane = {"text": "x", "lane": "URGENT"}
    assert (
        httpx.post(f"{api}/api/v1/links/moscow/messages", json=bad_lane, headers=auth).status_code
        == 422
    )
    empty = {"text": ""}
    assert (
        httpx.post(f"{api}/api/v1/links/moscow/messages", json=empty, headers=auth).status_code
        == 422
    )
    assert (
        httpx.post(
            f"{api}/api/v1/links/paris/messages", json={"text": "x"}, headers=auth
        ).status_code
        == 404
    )
    huge = {"text": "x" * 300_000}
    too_big = httpx.post(f"{api}/api/v1/links/moscow/messages", json=huge, headers=auth)
    assert too_big.status_code == 413
    ack = httpx.post(f"{api}/api/v1/links/moscow/inbox/FLASH/99/ack", json={}, headers=auth)
    assert ack.status_code == 404
    london.call("POST", "/api/v1/links/moscow/messages", {"text": "counted", "lane": "FLASH"})
    _wait(lambda: _link(london)["unreceipted"] == 0, "the receipt")
    metrics = httpx.get(f"{api}/metrics", headers=auth).text
    assert 'hotline_link_state{link="moscow"} 2.0' in metrics
    assert 'hotline_envelopes_sent_total{lane="FLASH",link="moscow"} 1.0' in metrics
    assert 'hotline_path_up{link="moscow",path=' in metrics
    schema = httpx.get(f"{api}/openapi.json").json()
    assert "/api/v1/links/{name}/messages" in schema["paths"]


def _small_disk() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (3_000_000, 3_000_000))


def test_a_full_disk_stops_the_station_loudly_and_loses_nothing_accepted(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    moscow.start()
    london.start(preexec=_small_disk)
    accepted: set[tuple[str, int, str]] = set()
    text = "x" * 4000
    for i in range(2000):
        try:
            result = london.call("POST", "/api/v1/links/moscow/messages", {"text": f"{i} {text}"})
        except httpx.HTTPError:
            break  # the disk is full: the station refused, then stopped
        accepted.add((result["lane"], result["seq"], result["hash"]))
    else:
        raise AssertionError("the disk never filled up")
    assert london.process is not None
    assert london.process.wait(timeout=30) != 0
    london.process = None
    log = london.log_file.read_text()
    assert "the store failed a commit" in log
    assert "hotline: error: store write failed and was rolled back" in log
    london.start()  # the disk has room again
    _check_agreement(london, moscow, accepted)


def test_a_station_on_postgresql_talks_to_one_on_sqlite(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    with ThrowawayPostgres() as server:
        server.create_database("london")
        url = f"postgresql://hotline@/london?host={server.socket_dir}&port=5432"
        config = london.data.config_file
        config.write_text(config.read_text().replace('url = ""', f'url = "{url}"'))
        _start(london, moscow)
        accepted: set[tuple[str, int, str]] = set()
        _sender(london, "moscow", 50, "pg", accepted, threading.Lock())
        _wait(
            lambda: _link(london)["unreceipted"] == 0 and _link(moscow)["in_agreement"], "delivery"
        )
        inbox = moscow.call("GET", "/api/v1/links/london/inbox?limit=1000")
        principal = [m for m in inbox if m["type"] != "test"]  # the station's own link tests aside
        assert {(m["lane"], m["seq"], m["hash"]) for m in principal} == accepted
        london.close()
        assert not london.data.store_file.exists()  # London's store was PostgreSQL all along
