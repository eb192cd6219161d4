"""Sends that can be retried (issue 16): a client that did not hear the answer sends again under
the same Idempotency-Key and gets the first's message, never a second one; real station
processes on loopback, the API and `hotline send`."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import httpx

from hotline.protocol.envelope import decode_envelope
from hotline.station.launch import StationProcess
from hotline.store.sqlite import SqliteStore
from tests.consoledriver import wait_up

ROUTE = "/api/v1/links/moscow/messages"


def _post(station: StationProcess, body: dict[str, Any], key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {station.data.api_token()}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(f"{station.api}{ROUTE}", json=body, headers=headers, timeout=30)


def _sent_texts(station: StationProcess) -> list[str]:
    """The principal messages in the station's outbox, read from its store."""
    store = SqliteStore(station.data.store_file)
    try:
        rows = store._rows("SELECT envelope FROM outbox WHERE type = 0 ORDER BY lane, seq")
    finally:
        store.close()
    return [decode_envelope(bytes(data), None).body.text for (data,) in rows]


def _send_losing_the_answer(station: StationProcess, body: dict[str, Any], key: str) -> None:
    """One send whose answer never reaches the client, as when the network drops it or the
    station dies before it is written: the request goes out whole, the connection is closed
    the moment the answer's first byte arrives, unread."""
    payload = json.dumps(body).encode()
    host, port = station.api.removeprefix("http://").rsplit(":", 1)
    request = (
        f"POST {ROUTE} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {station.data.api_token()}\r\nIdempotency-Key: {key}\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode() + payload
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        assert sock.recv(1)  # the station has answered: it had accepted the message


def test_a_retry_after_a_lost_answer_and_a_kill_is_answered_with_the_first_message(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    london.start()
    moscow.start()
    wait_up(london)
    body = {"text": "Stand by for the minister", "lane": "FLASH"}
    _send_losing_the_answer(london, body, "retry-1")
    assert london.kill(signal.SIGKILL) == -signal.SIGKILL
    london.start()
    retried = _post(london, body, "retry-1")
    again = _post(london, body, "retry-1")
    assert (retried.status_code, again.status_code) == (200, 200)
    assert retried.json() == again.json()
    assert retried.json()["lane"] == "FLASH"
    assert _sent_texts(london) == ["Stand by for the minister"]
    fresh = _post(london, {**body, "text": "A second message"}, "retry-2")
    assert fresh.status_code == 201
    assert fresh.json()["seq"] == retried.json()["seq"] + 1  # the chain went on from the first


def test_a_key_used_for_another_message_or_malformed_is_refused_and_sends_nothing(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, _ = stations
    london.start()
    first = _post(london, {"text": "Agenda at 14:00"}, "agenda")
    assert first.status_code == 201
    reused = _post(london, {"text": "Agenda at 15:00"}, "agenda")
    other_lane = _post(london, {"text": "Agenda at 14:00", "lane": "FLASH"}, "agenda")
    spaced = _post(london, {"text": "x"}, "two words")
    long = _post(london, {"text": "x"}, "k" * 256)
    both = _post(london, {"text": "x", "idempotency_key": "one"}, "other")
    for refused in (reused, other_lane):
        assert refused.status_code == 422
        assert "named a different message" in refused.json()["detail"]
    for refused in (spaced, long):
        assert refused.status_code == 422
        assert "Idempotency-Key" in refused.json()["detail"]
    assert both.status_code == 422
    assert "differ" in both.json()["detail"]
    in_body = _post(london, {"text": "By the body's key", "idempotency_key": "body-1"}, None)
    by_header = _post(london, {"text": "By the body's key"}, "body-1")
    assert (in_body.status_code, by_header.status_code) == (201, 200)
    assert _sent_texts(london) == ["Agenda at 14:00", "By the body's key"]


def test_repeats_racing_each_other_make_one_message(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, _ = stations
    london.start()
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def send() -> None:
        answer = _post(london, {"text": "One call, please", "lane": "IMMEDIATE"}, "race")
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(a.status_code for a in answers) == [200] * 11 + [201]
    assert len({a.content for a in answers}) == 1
    assert _sent_texts(london) == ["One call, please"]


def _send_command(station: StationProcess, *args: str) -> list[str]:
    where = ["--data-dir", str(station.data.path), "--link", "moscow", "-p", "PRIORITY"]
    return [sys.executable, "-m", "hotline", "send", *where, *args]


def test_hotline_send_tries_again_until_the_station_answers_and_sends_once(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, _ = stations
    command = _send_command(london, "--retry-for", "60", "--key", "cli-1", "Hello from the CLI")
    early = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # the station is down: the command keeps trying
    assert early.poll() is None
    london.start()
    out, err = early.communicate(timeout=90)
    assert early.returncode == 0, err
    assert "accepted: PRIORITY 1 to moscow" in out
    assert "trying again under key cli-1" in err
    repeat = subprocess.run(command, check=False, capture_output=True, text=True, timeout=90)
    assert repeat.returncode == 0, repeat.stderr
    assert "accepted: PRIORITY 1 to moscow (by an earlier try" in repeat.stdout
    assert _sent_texts(london) == ["Hello from the CLI"]


def test_hotline_send_says_when_nobody_knows_whether_it_was_sent(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, _ = stations  # never started
    command = _send_command(london, "--retry-for", "1", "--key", "cli-2", "Anyone there?")
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--key cli-2" in result.stderr
    assert "not known" in result.stderr
