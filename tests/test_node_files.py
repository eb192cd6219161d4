"""Attachment files on a side of several nodes (issue 14): the nodes share a store, not a disk,
so each file a node takes whole goes to the store before anyone is told it is held, and a node
that takes over copies back what its disk lacks. Real processes: London on two nodes sharing a
real PostgreSQL, Moscow on SQLite; and the store's side of it on SQLite, in process."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.protocol.callrecord import decode_record
from hotline.protocol.envelope import MessageType, decode_envelope
from hotline.station.files import FileStore
from hotline.station.launch import StationProcess
from hotline.station.launch_nodes import make_side, wait_role
from hotline.station.sidefiles import SideFiles
from hotline.station.storethread import StoreThread
from hotline.store.fileblobs import CHUNK
from hotline.store.postgres import PostgresStore
from hotline.store.sqlite import SqliteStore
from tests.test_call_station import Call, _set_calls
from tests.test_node_failover import _link, _start, _up, _wait, pg, url  # noqa: F401 - fixtures

# -- the store's side, in process -----------------------------------------------------------------


def _file(tmp_path: Path, data: bytes) -> tuple[str, bytes, Path]:
    sha = hashlib.sha256(data).digest()
    path = tmp_path / "attachments" / sha.hex()
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return f"attachments/{sha.hex()}", sha, path


def test_a_file_goes_into_the_store_in_chunks_and_comes_back_whole(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.sqlite")
    try:
        data = os.urandom(9 * CHUNK + 12345)  # more than one transaction's chunks
        name, sha, path = _file(tmp_path, data)
        assert store.file_blob(name) is None
        assert store.put_file_blob(name, sha, path) is True
        assert store.put_file_blob(name, sha, path) is False  # held already: not copied twice
        assert store.file_blobs() == {name: (sha, len(data))}
        assert b"".join(store.file_blob_chunks(name)) == data
    finally:
        store.close()


def test_a_copy_cut_short_is_not_a_file_and_the_next_copy_makes_it_whole(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.sqlite")
    try:
        data = os.urandom(3 * CHUNK)
        name, sha, path = _file(tmp_path, data)
        with store.transaction():  # what a node killed in the middle of a copy leaves
            store._execute(
                "INSERT INTO file_chunks (name, idx, data) VALUES (?, ?, ?)", (name, 0, b"junk")
            )
        assert store.file_blob(name) is None
        assert store.file_blobs() == {}
        assert store.put_file_blob(name, sha, path) is True
        assert b"".join(store.file_blob_chunks(name)) == data
    finally:
        store.close()


def test_a_node_copies_back_the_files_its_disk_lacks_and_checks_each(tmp_path: Path) -> None:
    async def scenario() -> None:
        replica = StoreThread(SqliteStore(tmp_path / "store.sqlite"))
        try:
            first = FileStore(tmp_path / "node-a" / "attachments")
            first.side = SideFiles(replica, tmp_path / "node-a")

            async def chunks(data: bytes) -> Any:
                yield data

            good, bad = os.urandom(2 * CHUNK + 1), os.urandom(1000)
            good_sha, _ = await first.upload(chunks(good))  # an upload goes to the store too
            bad_sha, _ = await first.upload(chunks(bad))
            recording = tmp_path / "node-a" / "recordings" / "0123456789abcdef-sent.opus"
            recording.parent.mkdir()
            recording.write_bytes(b"OggS" + os.urandom(5000))
            await first.side.keep(
                "recordings/0123456789abcdef-sent.opus",
                hashlib.sha256(recording.read_bytes()).digest(),
            )
            with pytest.raises(ValueError, match="not a file a side keeps"):
                await first.side.keep("../store.sqlite", bad_sha)

            def spoil(store: Any) -> None:  # a store is no more trusted than a disk
                with store.transaction():
                    store._execute(
                        "UPDATE file_chunks SET data = ? WHERE name = ?",
                        (b"x" * 1000, f"attachments/{bad_sha.hex()}"),
                    )

            await replica.call(spoil)
            second = FileStore(tmp_path / "node-b" / "attachments")  # the other node's disk
            side_b = SideFiles(replica, tmp_path / "node-b")
            assert second.size_of(good_sha) is None
            assert await side_b.restore_missing() == 2  # the good file and the recording
            assert second.path(good_sha).read_bytes() == good
            restored = tmp_path / "node-b" / "recordings" / "0123456789abcdef-sent.opus"
            assert restored.read_bytes() == recording.read_bytes()
            assert second.size_of(bad_sha) is None  # refused, not named
            leftovers = [p.name for p in (tmp_path / "node-b").rglob("*.part")]
            assert leftovers == []  # and nothing left behind
            assert await side_b.restore_missing() == 0  # held now: nothing to do
        finally:
            replica.close()

    asyncio.run(scenario())


# -- real processes -------------------------------------------------------------------------------


@pytest.fixture
def side(tmp_path: Path, url: str) -> Iterator[tuple[list[StationProcess], StationProcess]]:  # noqa: F811
    london, moscow = make_side(tmp_path, url, dialer="moscow")
    try:
        yield london, moscow
    finally:
        for station in [*london, moscow]:
            station.close()


def _token(station: StationProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {station.data.api_token()}"}


def _upload(station: StationProcess, data: bytes) -> dict[str, Any]:
    answer = httpx.post(
        f"{station.api}/api/v1/attachments", content=data, headers=_token(station), timeout=60
    )
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def _send_file(station: StationProcess, sha256: str) -> dict[str, Any]:
    body = {
        "text": "the file",
        "lane": "ROUTINE",
        "language": "en",
        "attachments": [{"sha256": sha256, "name": "report.bin"}],
    }
    result: dict[str, Any] = station.call(
        "POST", f"/api/v1/links/{_link(station)['name']}/messages", body
    )
    return result


def _box(station: StationProcess, box: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = station.call(
        "GET", f"/api/v1/links/{_link(station)['name']}/{box}"
    )
    return result


def _files_held(station: StationProcess, sent: dict[str, Any]) -> bool:
    return any(
        (m["lane"], m["seq"]) == (sent["lane"], sent["seq"]) and m["files_held"]
        for m in _box(station, "outbox")
    )


def _download(station: StationProcess, sha256: str) -> httpx.Response:
    return httpx.get(
        f"{station.api}/api/v1/attachments/{sha256}", headers=_token(station), timeout=60
    )


def test_a_file_received_by_a_node_that_dies_is_held_by_the_node_that_takes_over(
    side: tuple[list[StationProcess], StationProcess],
) -> None:
    (a, b), moscow = side
    _start([a, b], moscow)
    data = os.urandom(3 * CHUNK + 777)
    uploaded = _upload(moscow, data)
    sent = _send_file(moscow, uploaded["sha256"])
    _wait(lambda: _files_held(moscow, sent), "London's signed word that it holds the file")
    a.kill(signal.SIGKILL)  # its disk is gone with it: what London signed for must not be
    wait_role(b, "active")
    _wait(lambda: _up(b) and _up(moscow), "the link UP through node b")
    _wait(lambda: _download(b, uploaded["sha256"]).status_code == 200, "the file at node b")
    assert _download(b, uploaded["sha256"]).content == data


def test_a_file_sent_through_a_node_that_dies_reaches_the_peer_through_the_other(
    side: tuple[list[StationProcess], StationProcess],
) -> None:
    (a, b), moscow = side
    _start([a, b], moscow)
    moscow.kill(signal.SIGTERM)  # the peer away: the file waits at London to be fetched
    data = os.urandom(2 * CHUNK + 4242)
    uploaded = _upload(a, data)
    sent = _send_file(a, uploaded["sha256"])
    a.kill(signal.SIGKILL)
    wait_role(b, "active")
    moscow.start()
    _wait(lambda: _up(b) and _up(moscow), "the link UP through node b")
    _wait(lambda: _files_held(b, sent), "Moscow's signed word that it holds the file", timeout=90)
    assert _download(moscow, uploaded["sha256"]).content == data


def _london_records(store_url: str) -> list[Any]:
    store = PostgresStore(store_url)
    try:
        rows = store._rows("SELECT envelope FROM outbox WHERE type = ?", (MessageType.CALL_RECORD,))
    finally:
        store.close()
    return [decode_record(decode_envelope(bytes(r[0]), None).body.text) for r in rows]


def test_a_call_recorded_by_a_node_that_dies_is_held_by_the_node_that_takes_over(
    side: tuple[list[StationProcess], StationProcess],
    url: str,  # noqa: F811
) -> None:
    (a, b), moscow = side
    _set_calls(a, record=True)  # the caller's setting: both stations record
    _start([a, b], moscow)
    call = Call(a, moscow)
    assert call.status(a)["recorded"]
    time.sleep(1.0)  # a second of the call's frames in each recording
    call.end()
    _wait(lambda: bool(_london_records(url)), "London's call record")
    a.kill(signal.SIGKILL)
    wait_role(b, "active")
    (record,) = _london_records(url)
    assert sorted(r.name for r in record.recordings) == [
        f"{call.id}-received.opus",
        f"{call.id}-sent.opus",
    ]
    for recording in record.recordings:
        path = b.data.path / "recordings" / recording.name
        _wait(path.exists, f"{recording.name} at node b")
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == recording.sha256
        assert len(data) == recording.size > 0
