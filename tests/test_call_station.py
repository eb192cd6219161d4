"""Calls between two real station processes on loopback: the audio arrives (checked against what
was spoken, by cross-correlation), loss and a cut on one path are not heard, blocked UDP falls
back to TCP, a flood of garbage datagrams changes nothing, a killed station's call ends at the
peer and both chains hold its record, and an unanswered call is a missed-call alarm.

Between the stations' media sockets stands tests/udprelay.py, which drops what a test says."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import pytest

from hotline.cli.softphone import Softphone
from hotline.protocol.callrecord import decode_record
from hotline.protocol.envelope import MessageType, decode_envelope
from hotline.station.call_api import OUTBOUND_FRAMES, keep_newest
from hotline.station.launch import StationProcess
from hotline.station.recording import WavWriter, read_wav
from tests.udprelay import UdpRelay

CALL = "/api/v1/links/{}/calls"
# What was heard matches what was spoken: above 0.8 on an idle machine, Opus and a jitter
# buffer's adjustments included; other speech of the same kind scores about 0.25, silence 0.
HEARD = 0.75


def speech_like(seconds: float, seed: int = 7) -> np.ndarray:
    """A voiced, syllabic signal (harmonics of a gliding pitch, switched on and off a few times
    a second): Opus codes it as speech, and it correlates with itself at one lag only."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(48000 * seconds)) / 48000
    f0 = 130 + 50 * np.sin(2 * np.pi * 0.6 * t) + 10 * rng.standard_normal() * np.sin(t)
    phase = 2 * np.pi * np.cumsum(f0) / 48000
    voice = sum(np.sin(k * phase) / k for k in range(1, 14))
    syllables = np.clip(np.sin(2 * np.pi * 2.7 * t + rng.uniform(0, 6)), 0, 1) ** 2
    signal_ = np.asarray(voice * syllables, dtype=np.float64)
    return np.asarray(signal_ / np.max(np.abs(signal_)) * 9000, dtype=np.int16)


def _best_lag(h: np.ndarray, s: np.ndarray) -> int:
    n = 1 << (len(h) + len(s)).bit_length()
    corr = np.fft.irfft(np.fft.rfft(h, n) * np.conj(np.fft.rfft(s, n)), n)[: len(h) - len(s) + 1]
    return int(np.argmax(corr))


def similarity(heard: np.ndarray, spoken: np.ndarray, window_s: float = 0.25) -> float:
    """How well what was heard matches what was spoken: the normalised cross-correlation of each
    quarter second of speech with what was heard near the best overall lag (within 60 ms, as a
    jitter buffer may shift the stream by a frame or two), weighted by the speech's energy."""
    h, s = heard.astype(np.float64), spoken.astype(np.float64)
    if len(h) < len(s):
        return 0.0
    lag = _best_lag(h, s)
    step, slack = int(48000 * window_s), 48 * 60
    total = weight = 0.0
    for start in range(0, len(s) - step + 1, step):
        piece = s[start : start + step]
        energy = float(np.dot(piece, piece))
        if energy < 1e-3 * step * 9000**2 / 100:
            continue  # a pause: nothing to recognise
        lo = max(0, lag + start - slack)
        region = h[lo : lag + start + step + slack]
        if len(region) < step:
            continue
        offset = _best_lag(region, piece)
        segment = region[offset : offset + step]
        score = np.dot(segment, piece) / np.sqrt(np.dot(segment, segment) * energy + 1e-9)
        total, weight = total + energy * float(score), weight + energy
    return total / weight if weight else 0.0


def _wait(condition: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _up(*stations: StationProcess) -> None:
    for station in stations:
        _wait(
            lambda s=station: s.call("GET", "/api/v1/status")["links"][0]["state"] == "UP",
            f"{station.name} UP",
        )


def _media_via(station: StationProcess, addresses: list[str]) -> None:
    """Send this station's media to `addresses` (the relay) instead of the peer's card paths."""
    (link_toml,) = (station.data.path / "links").glob("*/link.toml")
    quoted = ", ".join(f'"{a}"' for a in addresses)
    link_toml.write_text(link_toml.read_text() + f"media = [{quoted}]\n")


def _set_calls(station: StationProcess, **settings: object) -> None:
    path = station.data.config_file
    text = path.read_text()
    for key, value in settings.items():
        rendered = str(value).lower() if isinstance(value, bool) else str(value)
        lines = [f"{key} = {rendered}" if line.startswith(f"{key} =") else line
                 for line in text.splitlines()]  # fmt: skip
        text = "\n".join(lines) + "\n"
    path.write_text(text)


def _udp_addresses(station: StationProcess) -> list[tuple[str, int]]:
    result = []
    for address in station.data.config().station.listen:
        host, _, port = address.rpartition(":")
        result.append((host, int(port)))
    return result


def _start_relayed(london: StationProcess, moscow: StationProcess) -> UdpRelay:
    relay = UdpRelay(_udp_addresses(london), _udp_addresses(moscow))
    _media_via(london, relay.for_a())
    _media_via(moscow, relay.for_b())
    london.start()
    moscow.start()
    _up(london, moscow)
    return relay


@pytest.fixture
def relayed(stations: tuple[StationProcess, StationProcess]) -> Iterator[Any]:
    """Both stations started, their media through a relay with two paths."""
    london, moscow = stations
    relay = _start_relayed(london, moscow)
    try:
        yield london, moscow, relay
    finally:
        relay.close()


class Call:
    """A call placed from London and answered at Moscow, each with a softphone."""

    def __init__(self, london: StationProcess, moscow: StationProcess, precedence: str = "FLASH"):
        self.london, self.moscow = london, moscow
        body = {"precedence": precedence, "person": "A. Smith", "role": "principal"}
        self.id = london.call("POST", CALL.format("moscow"), body)["id"]
        _wait(lambda: self.state(moscow) == "ringing_in", "Moscow to ring")
        answer = {"person": "I. Petrov", "role": "principal"}
        moscow.call("POST", f"/api/v1/calls/{self.id}/answer", answer)
        _wait(lambda: self.state(london) == "active", "London to hear the answer")
        self.at_london = self._phone(london, "A. Smith")
        self.at_moscow = self._phone(moscow, "I. Petrov")

    def _phone(self, station: StationProcess, person: str) -> Softphone:
        api = station.data.config().api.listen
        return Softphone(api, station.data.api_token(), self.id, person, "principal")

    def state(self, station: StationProcess) -> str:
        return str(station.call("GET", f"/api/v1/calls/{self.id}")["state"])

    def status(self, station: StationProcess) -> dict[str, Any]:
        result: dict[str, Any] = station.call("GET", f"/api/v1/calls/{self.id}")
        return result

    def speak_from_london(self, speech: np.ndarray) -> None:
        self.at_moscow.start(None)
        done = []
        self.at_london.start(speech, on_done=lambda: done.append(True))
        _wait(lambda: done, "London to finish speaking", timeout=len(speech) / 48000 + 10)
        time.sleep(0.5)  # the last frames on their way

    def end(self) -> None:
        self.london.call("POST", f"/api/v1/calls/{self.id}/end", {"reason": "finished"})
        _wait(lambda: self.state(self.moscow) == "ended", "Moscow to hear the end")
        self.at_london.close()
        self.at_moscow.close()


def _records(station: StationProcess) -> list[Any]:
    """The call records in this station's own chain, decoded."""
    from hotline.store.sqlite import SqliteStore  # noqa: PLC0415

    store = SqliteStore(station.data.store_file)
    try:
        rows = store._rows("SELECT envelope FROM outbox WHERE type = ?", (MessageType.CALL_RECORD,))
    finally:
        store.close()
    return [decode_record(decode_envelope(bytes(r[0]), None).body.text) for r in rows]


def test_a_call_carries_the_voice_both_ways_and_both_chains_record_it(relayed: Any) -> None:
    london, moscow, _relay = relayed
    call = Call(london, moscow)
    spoken = speech_like(3.0)
    call.speak_from_london(spoken)
    heard = call.at_moscow.heard.audio()
    assert similarity(heard, spoken) > HEARD
    figures = call.status(moscow)["media"]
    assert figures["transport"] == "udp"
    assert figures["received"]["lost"] == 0
    assert {p["path"] for p in figures["paths"] if p["received"]} == {0, 1}  # both paths carry it
    metrics = httpx.get(
        f"{moscow.api}/metrics", headers={"Authorization": f"Bearer {moscow.data.api_token()}"}
    ).text
    assert 'hotline_calls_active{link="london"} 1.0' in metrics
    assert 'hotline_call_path_rtt_seconds{link="london",path="1"}' in metrics
    assert 'hotline_call_frames_total{fate="lost",link="london"} 0.0' in metrics
    assert 'hotline_call_playout_waits_total{link="london",outcome="in_vain"}' in metrics
    call.end()
    _wait(lambda: _records(london) and _records(moscow), "both call records")
    (ours,), (theirs,) = _records(london), _records(moscow)
    assert ours.call_id == theirs.call_id == call.id
    assert (ours.direction, theirs.direction) == ("outgoing", "incoming")
    assert ours.caller.person == theirs.caller.person == "A. Smith"
    assert ours.answerer is not None
    assert ours.answerer.person == "I. Petrov"
    assert theirs.media.frames_received >= 140  # about 3 s of 20 ms frames
    assert ours.end_reason.startswith("ended here")
    assert theirs.end_reason.startswith("ended by")


def test_loss_on_one_path_and_then_its_cut_are_not_heard(relayed: Any) -> None:
    london, moscow, relay = relayed
    relay.set_loss(0, 0.2)
    call = Call(london, moscow)
    spoken = speech_like(4.0, seed=3)
    call.at_moscow.start(None)
    done: list[bool] = []
    call.at_london.start(spoken, on_done=lambda: done.append(True))
    time.sleep(2.0)
    relay.set_loss(0, 1.0)  # the cable of path 0 is cut mid-call, silently
    _wait(lambda: done, "London to finish speaking")
    time.sleep(0.5)
    received = call.status(moscow)["media"]["received"]
    assert received["lost"] == 0
    # A frame the loaded machine hands over after its turn is concealed in place and then played
    # (lost stays 0): a few, with the buffer's 5 ms floor. A path's loss leaking through would
    # conceal one frame in five, 40 or more.
    assert received["concealed"] <= 10, received
    assert relay.paths[0].dropped > 50  # the relay did drop: path 1 carried what was heard
    assert similarity(call.at_moscow.heard.audio(), spoken) > HEARD, call.status(moscow)["media"]
    call.end()


def test_a_call_on_one_path_moves_to_the_other_when_its_path_is_cut(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    for station in stations:
        _set_calls(station, all_paths=False)
    relay = _start_relayed(london, moscow)
    try:
        call = Call(london, moscow)
        spoken = speech_like(4.0, seed=5)
        call.at_moscow.start(None)
        done: list[bool] = []
        call.at_london.start(spoken, on_done=lambda: done.append(True))
        time.sleep(1.5)
        sent = [p["sent"] for p in call.status(london)["media"]["paths"]]
        used = sent.index(max(sent))
        # One path carries the frames, the other only probes (a loaded machine may have
        # answered a probe late and sent a few on the other meanwhile).
        assert min(sent) <= max(sent) // 4, sent
        relay.set_loss(used, 1.0)  # that path's cable is cut, silently, both ways
        _wait(lambda: done, "London to finish speaking")
        time.sleep(0.5)
        media = call.status(moscow)["media"]
        after = [p["sent"] for p in call.status(london)["media"]["paths"]]
        assert after[1 - used] > 100, after  # the rest of the speech went on the other path
        # Three probes of 60 ms unanswered and the frames on their way: a fifth of a second
        # (up to half of one on a loaded machine); staying on the cut path, the 2.5 s after it.
        assert media["received"]["lost"] + media["received"]["concealed"] <= 30, media
        call.end()
    finally:
        relay.close()


def test_blocked_udp_falls_back_to_tcp(relayed: Any) -> None:
    london, moscow, relay = relayed
    relay.set_loss(0, 1.0)
    relay.set_loss(1, 1.0)
    call = Call(london, moscow)
    spoken = speech_like(3.0, seed=5)
    call.speak_from_london(spoken)
    assert call.status(moscow)["media"]["transport"] == "tcp"
    assert call.status(london)["media"]["sent"]["tcp_frames"] > 100
    assert similarity(call.at_moscow.heard.audio(), spoken) > HEARD, call.status(moscow)["media"]
    call.end()
    _wait(lambda: _records(moscow), "Moscow's record")
    assert _records(moscow)[0].transport == "tcp"


def test_a_flood_of_garbage_datagrams_does_not_disturb_a_call(relayed: Any) -> None:
    london, moscow, _relay = relayed
    call = Call(london, moscow)
    spoken = speech_like(3.0, seed=11)
    targets = _udp_addresses(moscow)
    stop = time.monotonic() + 3.5
    flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    call.at_moscow.start(None)
    done: list[bool] = []
    call.at_london.start(spoken, on_done=lambda: done.append(True))
    sent = 0
    while time.monotonic() < stop and sent < 200_000:  # bounded in count and time
        data = bytes([1]) + os.urandom(4) + os.urandom(80)
        flood.sendto(data, targets[sent % len(targets)])
        sent += 1
        if sent % 200 == 0:
            time.sleep(0.002)
    flood.close()
    _wait(lambda: done, "London to finish speaking")
    time.sleep(0.5)
    received = call.status(moscow)["media"]["received"]
    assert sent > 1000
    assert received["lost"] == 0
    assert similarity(call.at_moscow.heard.audio(), spoken) > HEARD, call.status(moscow)["media"]
    call.end()


def _stuck_listener(station: StationProcess, call_id: str) -> socket.socket:
    """A participant whose client joins the call's media connection and then reads nothing (a
    frozen browser tab): the WebSocket handshake by hand, on a socket with a small receive
    buffer, so that what the station sends it backs up within a second."""
    host, _, port = station.data.config().api.listen.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(
        (
            f"GET /api/v1/calls/{call_id}/media?person=Note-taker&role=listener HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {station.data.api_token()}\r\n\r\n"
        ).encode()
    )
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


def test_a_participant_who_reads_nothing_costs_the_others_nothing(relayed: Any) -> None:
    """A listener's client stops reading (its tab froze) while London speaks: Moscow's principal
    still hears every word, the station still answers, and the call ends as calls do. (These
    8 s back up in the kernel's socket buffer; past its few MB, the station's queue for that
    client keeps the newest half second: test_a_slow_client_is_queued_the_newest_audio.)"""
    london, moscow, _relay = relayed
    call = Call(london, moscow)
    stuck = _stuck_listener(moscow, call.id)
    try:
        _wait(lambda: len(call.status(moscow)["participants"]) == 2, "the listener to join")
        spoken = speech_like(8.0, seed=13)
        call.speak_from_london(spoken)
        heard = call.at_moscow.heard.audio()
        assert similarity(heard, spoken) > HEARD, call.status(moscow)["media"]
        assert call.status(moscow)["media"]["received"]["lost"] == 0
        people = {p["person"]: p for p in call.status(moscow)["participants"]}
        assert people["Note-taker"]["role"] == "listener"  # still in the call, however slow
        call.end()
        _wait(lambda: _records(moscow), "Moscow's record")
    finally:
        stuck.close()


def test_a_slow_client_is_queued_the_newest_audio() -> None:
    async def fill() -> list[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(OUTBOUND_FRAMES)
        for n in range(OUTBOUND_FRAMES + 10):  # never waits, however many come
            keep_newest(queue, n.to_bytes(2, "big"))
        return [queue.get_nowait() for _ in range(queue.qsize())]

    kept = asyncio.run(fill())
    assert kept == [n.to_bytes(2, "big") for n in range(10, OUTBOUND_FRAMES + 10)]


def test_a_station_killed_mid_call_ends_it_at_the_peer_and_records_it_on_restart(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    _set_calls(london, record=True)  # the caller's setting: both stations record
    relay = _start_relayed(london, moscow)
    try:
        call = Call(london, moscow)
        assert call.status(moscow)["recorded"]
        call.at_london.start(speech_like(2.0))
        time.sleep(1.0)
        moscow.kill(signal.SIGKILL)
        _wait(lambda: call.state(london) == "ended", "London to end the call", timeout=10)
        assert call.status(london)["end_reason"] == "peer lost"
        call.at_london.close()
        moscow.start()
        _wait(lambda: _records(london) and _records(moscow), "both call records")
    finally:
        relay.close()
    (theirs,) = _records(moscow)
    assert theirs.call_id == call.id
    assert theirs.end_reason == "station stopped during the call"
    assert theirs.answered_ns is not None
    # What Moscow had recorded when it was killed is named in its record, hash and all.
    names = sorted(r.name for r in theirs.recordings)
    assert names == [f"{call.id}-received.opus", f"{call.id}-sent.opus"]
    for recording in theirs.recordings:
        data = (moscow.data.path / "recordings" / recording.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == recording.sha256
        assert len(data) == recording.size > 0
    (ours,) = _records(london)
    assert len(ours.recordings) == 2  # London's, sealed when it ended the call


def test_an_unanswered_call_is_a_missed_call_alarm_at_the_callee(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    for station in stations:
        _set_calls(station, ring_timeout_s=5)
    london.start()
    moscow.start()
    _up(london, moscow)
    body = {"precedence": "IMMEDIATE", "person": "A. Smith", "role": "principal"}
    call_id = london.call("POST", CALL.format("moscow"), body)["id"]

    def missed() -> list[dict[str, Any]]:
        alarms = moscow.call("GET", "/api/v1/status").get("alarms", [])
        return [a for a in alarms if a["kind"] == "missed_call"]

    alarms = _wait(missed, "the missed-call alarm", timeout=20)
    assert "A. Smith" in alarms[0]["text"]
    assert london.call("GET", f"/api/v1/calls/{call_id}")["end_reason"].endswith("no answer")
    moscow.close()  # a restart forgets the call table, not the missed call
    moscow.start()
    _up(london, moscow)
    assert "A. Smith" in _wait(missed, "the missed-call alarm after a restart")[0]["text"]
    [waiting] = moscow.call("GET", "/api/v1/calls")["missed"]
    assert (waiting["id"], waiting["caller"]["person"]) == (call_id, "A. Smith")
    moscow.call("POST", f"/api/v1/calls/{call_id}/missed/acknowledge")
    _wait(lambda: not missed(), "the alarm to clear", timeout=10)
    moscow.close()  # acknowledged for good
    moscow.start()
    _up(london, moscow)
    assert not missed()
    assert moscow.call("GET", "/api/v1/calls")["missed"] == []


def test_hotline_call_speaks_a_wav_file_and_the_peer_writes_what_it_heard(
    stations: tuple[StationProcess, StationProcess], tmp_path: Path
) -> None:
    london, moscow = stations
    london.start()
    moscow.start()
    _up(london, moscow)
    spoken = speech_like(3.0, seed=2)
    source, heard_file = tmp_path / "spoken.wav", tmp_path / "heard.wav"
    with WavWriter(source) as writer:
        writer.write(spoken)
    hotline = [sys.executable, "-m", "hotline", "call"]
    answering = subprocess.Popen(
        [*hotline, "--data-dir", str(moscow.data.path), "--answer", "--person", "I. Petrov",
         "--record-to", str(heard_file), "--wait", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    calling = subprocess.run(
        [*hotline, "--data-dir", str(london.data.path), "-p", "FLASH", "--person", "A. Smith",
         "--play", str(source), "--wait", "30"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    out, _ = answering.communicate(timeout=30)
    assert calling.returncode == 0, calling.stdout + calling.stderr
    assert answering.returncode == 0, out
    assert "ringing moscow (FLASH call" in calling.stdout
    assert "answering FLASH call from A. Smith" in out.decode()
    assert similarity(read_wav(heard_file), spoken) > HEARD


def test_the_similarity_measure_tells_speech_from_other_speech_and_silence() -> None:
    """The measure the tests above rely on: high for the same speech delayed, low otherwise."""
    spoken, other = speech_like(3.0, seed=1), speech_like(3.0, seed=2)
    pad = np.zeros(48000, dtype=np.int16)
    assert similarity(np.concatenate([pad, spoken, pad]), spoken) > 0.95
    assert similarity(np.concatenate([pad, other, pad]), spoken) < 0.5
    assert similarity(np.zeros(len(spoken) + 96000, dtype=np.int16), spoken) == 0.0


def test_a_path_whose_address_moves_is_followed_and_a_forged_datagram_moves_nothing(
    relayed: Any,
) -> None:
    london, moscow, relay = relayed
    relay.set_loss(1, 1.0)  # path 1 is cut: path 0 alone carries the call
    call = Call(london, moscow)
    spoken = speech_like(4.0, seed=13)
    call.at_moscow.start(None)
    call.at_london.start(spoken[: 48000 * 2])
    time.sleep(1.0)
    relay.rebind(0)  # London's datagrams reach Moscow from a new port, as after a NAT reboot
    # Someone else sends a datagram that names Moscow's receiver index from yet another port:
    # it does not authenticate, so Moscow goes on sending where it did.
    forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    header = relay.paths[0].last_toward_b[:13]
    for _ in range(50):
        forger.sendto(header + os.urandom(100), _udp_addresses(moscow)[0])
    forger.close()
    time.sleep(2.5)
    media = call.status(moscow)["media"]
    assert media["received"]["forged"] >= 50
    # Moscow followed London to the new port, and not the forger: London still hears path 0
    # (path 1 is cut), through the new port (the old one is closed).
    assert call.status(london)["media"]["paths"][0]["live"]
    before = relay.paths[0].to_a
    time.sleep(0.5)
    assert relay.paths[0].to_a > before + 20
    call.end()


def test_a_restart_does_not_record_a_call_twice(relayed: Any) -> None:
    """Killed after its call record was committed but before the call's note was cleared (two
    transactions): on restart the station finds the record and writes no second one."""
    london, moscow, _relay = relayed
    call = Call(london, moscow)
    call.end()
    _wait(lambda: len(_records(moscow)) == 1, "Moscow's record")
    moscow.kill(signal.SIGKILL)
    from hotline.store.sqlite import SqliteStore  # noqa: PLC0415

    store = SqliteStore(moscow.data.store_file)
    try:  # the note as it stood before the record was written
        (link_id,) = store._rows("SELECT link_id FROM links", ())[0]
        record = _records(moscow)[0]
        store.set_open_call(bytes(link_id), call.id, msgspec.json.encode(record).decode())
    finally:
        store.close()
    moscow.start()
    _up(moscow)
    time.sleep(2)  # the start-up's bookkeeping is done within a second
    assert len(_records(moscow)) == 1
    store = SqliteStore(moscow.data.store_file)
    try:
        assert store.open_calls(bytes(link_id)) == []  # and the stale note is gone
    finally:
        store.close()
