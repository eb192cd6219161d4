"""Acts through the service API are audited whatever the door (issue 15, item 4): `hotline send`
and `hotline ack` as the station host's user, other callers of the token as "api"; sends,
acknowledgements, uploads and calls. Real station processes on loopback."""

from __future__ import annotations

import getpass
import subprocess
import sys
import time
from typing import Any

import httpx

from hotline.station.launch import StationProcess
from hotline.store.sqlite import SqliteStore
from tests.consoledriver import wait_up


def _audit(station: StationProcess) -> list[tuple[str, str, str]]:
    """(actor, action, detail), oldest first, as the store keeps them."""
    store = SqliteStore(station.data.store_file)
    try:
        rows = store.audit_log(1000)
    finally:
        store.close()
    return [(actor, action, detail) for _, _, actor, action, detail, _ in reversed(rows)]


def _hotline(station: StationProcess, *args: str) -> str:
    command = [sys.executable, "-m", "hotline", *args, "--data-dir", str(station.data.path)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _api(station: StationProcess, path: str, body: Any, **headers: str) -> httpx.Response:
    auth = {"Authorization": f"Bearer {station.data.api_token()}", **headers}
    return httpx.post(f"{station.api}{path}", json=body, headers=auth, timeout=30)


def test_sends_acknowledgements_uploads_and_calls_through_the_api_are_audited_by_door(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    london.start()
    moscow.start()
    wait_up(london)
    wait_up(moscow)
    me = f"cli:{getpass.getuser()}"
    _hotline(london, "send", "--link", "moscow", "-p", "FLASH", "--key", "k1", "Stand by")
    _hotline(london, "send", "--link", "moscow", "-p", "FLASH", "--key", "k1", "Stand by")
    by_token = _api(london, "/api/v1/links/moscow/messages", {"text": "From a script"})
    forged = _api(london, "/api/v1/links/moscow/messages", {"text": "Forged"}, **{
        "X-Hotline-Actor": "admin"})  # fmt: skip
    uploaded = httpx.post(
        f"{london.api}/api/v1/attachments",
        content=b"minutes",
        headers={"Authorization": f"Bearer {london.data.api_token()}"},
        timeout=30,
    )
    call = _api(london, "/api/v1/links/moscow/calls", {"precedence": "IMMEDIATE", "person": "PM"})
    assert (by_token.status_code, forged.status_code) == (201, 201)
    assert uploaded.status_code == 201
    assert call.status_code == 201
    ended = _api(london, f"/api/v1/calls/{call.json()['id']}/end", {"reason": "wrong number"})
    assert ended.status_code == 200
    deadline = time.monotonic() + 30
    while all(m["text"] != "Stand by" for m in moscow.call("GET", "/api/v1/links/london/inbox")):
        assert time.monotonic() < deadline, "the FLASH did not arrive"
        time.sleep(0.1)
    _hotline(moscow, "ack", "--link", "london", "FLASH", "1", "--text", "Standing by")
    _hotline(moscow, "ack", "--link", "london", "ROUTINE", "2")  # no text: it says who
    by_api = _api(moscow, "/api/v1/links/london/inbox/ROUTINE/3/ack", {})
    assert by_api.status_code == 201
    deadline = time.monotonic() + 30
    wanted = {"Standing by", f"Acknowledged by {me[4:]} at the station host",
              "Acknowledged through the station's API"}  # fmt: skip
    while not wanted <= {m["text"] for m in london.call("GET", "/api/v1/links/moscow/inbox")}:
        assert time.monotonic() < deadline, "the acknowledgements did not arrive"
        time.sleep(0.1)

    sent = [row for row in _audit(london) if row[1] == "sent"]
    assert sent == [
        (me, "sent", "FLASH 1, principal"),  # once: the repeat under k1 sent nothing
        ("api", "sent", "ROUTINE 2, principal"),  # ROUTINE 1 is the station's own link test
        ("api", "sent", "ROUTINE 3, principal"),  # a name that is not the CLI's is not taken
    ]
    acts = {(actor, action) for actor, action, _ in _audit(london)}
    assert {("api", "uploaded"), ("api", "call placed"), ("api", "call ended")} <= acts
    assert (me, "acknowledged", "FLASH 1 (as FLASH 1)") in _audit(moscow)
