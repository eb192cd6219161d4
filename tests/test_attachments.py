"""Attachments between two real station processes on loopback: a file arrives whole and is
signed for; a transfer cut by SIGKILL of either side resumes from where it stood instead of
starting again; a message counts as delivered only when its files are held; and what a sender
may not do (too large, a file never uploaded, a name that is a path) is refused clearly."""

from __future__ import annotations

import hashlib
import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.protocol.envelope import decode_envelope
from hotline.protocol.statements import Signed
from hotline.protocol.transfer import Held
from hotline.station.launch import StationProcess
from hotline.station.links import load_links
from hotline.store.sqlite import SqliteStore
from tests.test_station import (
    _dialer_and_listener,
    _link,
    _route_through_proxies,
    _start,
    _wait,
)

MiB = 1024 * 1024


def _upload(station: StationProcess, data: bytes) -> dict[str, Any]:
    response = httpx.post(
        f"{station.api}/api/v1/attachments",
        content=data,
        headers={"Authorization": f"Bearer {station.data.api_token()}"},
        timeout=60,
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def _send(station: StationProcess, text: str, files: list[dict[str, str]]) -> dict[str, Any]:
    link = _link(station)["name"]
    body = {"text": text, "lane": "ROUTINE", "language": "en", "attachments": files}
    result: dict[str, Any] = station.call("POST", f"/api/v1/links/{link}/messages", body)
    return result


def _box(station: StationProcess, box: str) -> list[dict[str, Any]]:
    link = _link(station)["name"]
    result: list[dict[str, Any]] = station.call("GET", f"/api/v1/links/{link}/{box}")
    return result


def _download(station: StationProcess, sha256: str) -> httpx.Response:
    return httpx.get(
        f"{station.api}/api/v1/attachments/{sha256}",
        headers={"Authorization": f"Bearer {station.data.api_token()}"},
        timeout=60,
    )


def _delivered(station: StationProcess, sent: dict[str, Any]) -> bool:
    """Whether the sender holds the receiver's signed word for every file of the message."""
    return any(
        (m["lane"], m["seq"]) == (sent["lane"], sent["seq"]) and m["files_held"]
        for m in _box(station, "outbox")
    )


def _held_statements(sender: StationProcess) -> list[tuple[bytes, Any]]:
    """The receiver's signed Held statements, as the sender stored them, with the envelope."""
    identity = sender.data.open_keystore(sender.passphrase_file.read_bytes().rstrip(b"\n"))
    config = load_links(sender.data, identity)[0].config
    store = SqliteStore(sender.data.store_file)
    try:
        found = []
        for row in store.all_attachments(config.link_id):
            assert row.statement is not None, f"file {row.idx} of {row.seq} not signed for"
            held = Held.verify(Signed.from_bytes(row.statement), config.peer)
            data = store.outbound(config.link_id, row.lane, row.seq)
            assert data is not None
            assert held.covers(decode_envelope(data, identity.public), row.idx)
            found.append((row.sha256, held))
        return found
    finally:
        store.close()


def test_files_arrive_whole_are_signed_for_and_count_in_delivery(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    _start(london, moscow)
    map_bytes = os.urandom(5 * MiB + 12345)  # several windows, and a last chunk not full
    note = "Карта района. Map of the area.".encode()
    uploaded = [_upload(london, map_bytes), _upload(london, note)]
    assert uploaded[0] == {"sha256": hashlib.sha256(map_bytes).hexdigest(), "size": len(map_bytes)}
    assert _upload(london, note) == uploaded[1], "the same bytes are one file"
    files = [
        {"sha256": uploaded[0]["sha256"], "name": "map.bin", "media_type": "application/x-map"},
        {"sha256": uploaded[1]["sha256"], "name": "записка.txt", "media_type": "text/plain"},
    ]
    sent = _send(london, "Two files", files)

    _wait(lambda: _delivered(london, sent), "both files held by Moscow")
    arrived = next(m for m in _box(moscow, "inbox") if m["text"] == "Two files")
    assert [a["name"] for a in arrived["attachments"]] == ["map.bin", "записка.txt"]
    assert all(a["held_whole"] and a["held"] == a["size"] for a in arrived["attachments"])
    assert arrived["files_held"]
    got = _download(moscow, uploaded[0]["sha256"])
    assert got.status_code == 200
    assert got.content == map_bytes
    assert got.headers["content-disposition"].startswith("attachment"), "never shown inline"
    assert _download(moscow, uploaded[1]["sha256"]).content == note
    held = _held_statements(london)
    assert sorted(sha.hex() for sha, _ in held) == sorted(u["sha256"] for u in uploaded)
    assert not list((moscow.data.path / "attachments" / "partial").iterdir())


def test_the_cli_uploads_with_a_progress_bar_and_waits_for_delivery(
    stations: tuple[StationProcess, StationProcess], tmp_path: Path
) -> None:
    london, moscow = stations
    _start(london, moscow)
    photo = tmp_path / "фото.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(3 * MiB))
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "send", "--data-dir", str(london.data.path),
         "Фото прилагается", "--lang", "ru", "--attach", str(photo), "--wait"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "upload фото.png" in done.stdout
    assert "delivered: ROUTINE" in done.stdout
    arrived = next(m for m in _box(moscow, "inbox") if m["text"] == "Фото прилагается")
    assert arrived["attachments"][0]["media_type"] == "image/png"
    assert arrived["files_held"]
    missing = subprocess.run(
        [sys.executable, "-m", "hotline", "send", "--data-dir", str(london.data.path), "x",
         "--attach", str(tmp_path / "nothing.pdf")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode != 0
    assert "no such file" in missing.stderr


@pytest.mark.parametrize("victim", ["receiver", "sender"])
def test_a_transfer_cut_by_sigkill_resumes_where_it_stood(
    stations: tuple[StationProcess, StationProcess], victim: str
) -> None:
    london, moscow = stations
    dialer, listener = _dialer_and_listener(london, moscow)
    _route_through_proxies(dialer, listener, rate=25 * MiB)  # a few seconds for the file
    _start(london, moscow)
    data = os.urandom(90 * MiB)
    uploaded = _upload(london, data)
    files = [{"sha256": uploaded["sha256"], "name": "big.bin"}]
    sent = _send(london, "A large file", files)

    def peer_progress() -> int:
        message = next(m for m in _box(london, "outbox") if m["text"] == "A large file")
        held: int = message["attachments"][0].get("held", 0)
        return held

    # Durable progress is recorded every 16 MiB: once the peer has asked past 40 MiB, at least
    # 32 MiB are on Moscow's disk, recorded. The sender reports how far the peer asked.
    _wait(lambda: peer_progress() >= 40 * MiB, "40 MiB moved", timeout=120)
    station = moscow if victim == "receiver" else london
    station.kill()
    station.start()
    _wait(lambda: _delivered(london, sent), "the file held after the restart", timeout=120)
    assert _download(moscow, uploaded["sha256"]).content == data
    wants = [int(n) for n in re.findall(r"wants \w+ from byte (\d+)", london.log_file.read_text())]
    # The log names each stream the peer starts (not each window): the first from byte 0, the
    # one after the restart from what Moscow held durably.
    assert wants[0] == 0
    assert len(wants) >= 2
    assert wants[1] >= 16 * MiB, f"a restart must resume, not start over: {wants}"
    assert len(_held_statements(london)) == 1


def test_a_transfer_moves_to_the_other_path_when_its_path_dies(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    dialer, listener = _dialer_and_listener(london, moscow)
    proxies = _route_through_proxies(dialer, listener, rate=20 * MiB)
    _start(london, moscow)
    data = os.urandom(60 * MiB)
    uploaded = _upload(london, data)
    sent = _send(london, "Over two paths", [{"sha256": uploaded["sha256"], "name": "f.bin"}])

    def moved() -> int:
        message = next(m for m in _box(london, "outbox") if m["text"] == "Over two paths")
        held: int = message["attachments"][0].get("held", 0)
        return held

    _wait(lambda: moved() >= 16 * MiB, "16 MiB moved")
    paths = {p["address"]: p["state"] for p in _link(dialer)["paths"]}
    assert all(state == "UP" for state in paths.values())
    for proxy in proxies:  # cut the one carrying the file: whichever it is, cut it alone
        if proxy.moved_recently():
            proxy.cut()
            break
    else:
        raise AssertionError("no path was carrying the file")
    _wait(lambda: _delivered(london, sent), "the file held over the other path", timeout=120)
    assert _download(moscow, uploaded["sha256"]).content == data
    wants = [int(n) for n in re.findall(r"wants \w+ from byte (\d+)", london.log_file.read_text())]
    assert wants[0] == 0
    assert any(n > 0 for n in wants[1:]), f"it went on from where it stood: {wants}"


def test_what_a_sender_may_not_send_is_refused_clearly(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    config = london.data.config_file
    config.write_text(config.read_text().replace("max_size_mib = 100", "max_size_mib = 1"))
    _start(london, moscow)
    headers = {"Authorization": f"Bearer {london.data.api_token()}"}
    too_big = httpx.post(
        f"{london.api}/api/v1/attachments", content=b"x" * (MiB + 1), headers=headers, timeout=30
    )
    assert too_big.status_code == 413
    assert "limit" in too_big.json()["detail"]
    assert not list((london.data.path / "attachments" / "upload").iterdir()), "nothing left over"
    link = _link(london)["name"]

    def refused(files: list[dict[str, str]]) -> httpx.Response:
        body = {"text": "x", "attachments": files}
        return httpx.post(
            f"{london.api}/api/v1/links/{link}/messages", json=body, headers=headers, timeout=30
        )

    never = refused([{"sha256": "ab" * 32, "name": "ghost.pdf"}])
    assert never.status_code == 422
    assert "upload it first" in never.json()["detail"]
    real = _upload(london, b"%PDF-1.4 a small file")
    for name in ("../../etc/passwd", "a/b", "line\nbreak", ".."):
        answer = refused([{"sha256": real["sha256"], "name": name}])
        assert answer.status_code == 422, name
    bad_type = refused([{"sha256": real["sha256"], "name": "x.pdf", "media_type": "not a type"}])
    assert bad_type.status_code == 422
    sent = [m for m in _box(london, "outbox") if m["type"] != "test"]
    assert sent == [], "nothing refused was sent"
    assert _download(london, "00" * 32).status_code == 404
    assert _download(london, "../station.toml").status_code == 404


def _small_files() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (8 * MiB, 8 * MiB))


def test_a_receiver_that_cannot_write_a_file_says_so_keeps_working_and_resumes_later(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    london.start()
    moscow.start(preexec=_small_files)  # no file of Moscow's may grow past 8 MiB
    _wait(lambda: _link(london)["state"] == "UP", "the link UP")
    data = os.urandom(20 * MiB)
    sent = _send(london, "Too big for Moscow's disk", [{"sha256": _upload(london, data)["sha256"],
                                                         "name": "big.bin"}])  # fmt: skip
    _wait(lambda: "cannot write attachment" in moscow.log_file.read_text(), "the refusal logged")
    after = _send(london, "Text still goes through", [])
    _wait(
        lambda: any(m["text"] == "Text still goes through" for m in _box(moscow, "inbox")),
        "a text message after the failed write",
    )
    assert after["seq"] > sent["seq"]
    assert not _delivered(london, sent)
    moscow.kill()
    moscow.start()  # room again
    _wait(lambda: _delivered(london, sent), "the file held once Moscow can write it", timeout=90)
    assert _download(moscow, hashlib.sha256(data).hexdigest()).content == data


def test_a_file_over_the_receivers_limit_is_not_fetched_and_is_on_the_record(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    london, moscow = stations
    config = moscow.data.config_file
    config.write_text(config.read_text().replace("max_size_mib = 100", "max_size_mib = 1"))
    _start(london, moscow)
    files = [{"sha256": _upload(london, os.urandom(2 * MiB))["sha256"], "name": "plan.pdf"}]
    sent = _send(london, "A plan, too large for Moscow", files)
    _wait(
        lambda: any(m["text"] == "A plan, too large for Moscow" for m in _box(moscow, "inbox")),
        "the message itself",
    )

    def refusals() -> list[str]:
        store = SqliteStore(moscow.data.store_file)
        try:
            rows = store._rows("SELECT detail FROM audit WHERE action = 'attachment refused'")
            return [str(r[0]) for r in rows]
        finally:
            store.close()

    _wait(lambda: bool(refusals()), "the refusal on Moscow's record")
    assert "over this station's limit" in refusals()[0]
    assert "plan.pdf" in refusals()[0]
    assert not _delivered(london, sent), "never counted delivered without the file"
