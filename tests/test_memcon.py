"""The calls page and the record of conversation, through the console (issue 12, sections 3 and
4): every call from the call records in London's chain; a memcon written after a call by a
note-taker, reviewed by another person and certified by a supervisor, each step signed and
audited, under the rules of translations; the recordings played only for those who may hear
them, as audio/ogg with nosniff, only as recorded; a missed call an alarm on the board until it is
acknowledged from the calls page. London's console in process, over a real station's store."""

# ruff: noqa: F811 - the tests take fixtures imported from test_console by name
from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from typing import Any

import httpx
import pytest

from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.callframes import CallInvite
from hotline.protocol.callrecord import CallRecord, MediaFigures, Party, Recording, encode_record
from hotline.protocol.envelope import Lane, MessageType
from hotline.protocol.statements import Signed
from hotline.station.runtime import Station

# The console's fixtures, shared: pytest finds them by these names, which the tests then take.
from tests.test_console import (  # noqa: F401
    _close_clients,
    anyio_backend,
    app,
    arrived,
    audit_actions,
    client,
    pair,
    signed_in,
    station,
)

S = 10**9
AGREED = "Договорились созвониться снова в 14:00."
NOTES = f"The principals agreed to speak again at 14:00 UTC.\n{AGREED}"
OGG = b"OggS\x00\x02" + bytes(range(256)) * 4  # not real Opus: the bytes a record seals


async def called(station: Station, recordings: tuple[bytes, ...] = ()) -> tuple[int, CallRecord]:
    """A call London placed and Moscow answered, as London's call desk records it when it ends:
    its record in London's chain (ROUTINE), and its recordings in the recordings directory."""
    call_id, now = secrets.token_hex(16), time.time_ns()
    named = tuple(
        Recording(f"{call_id}-{i}.opus", hashlib.sha256(data).hexdigest(), len(data))
        for i, data in enumerate(recordings)
    )
    folder = station.data.path / "recordings"
    folder.mkdir(mode=0o700, exist_ok=True)
    for rec, data in zip(named, recordings, strict=True):
        (folder / rec.name).write_bytes(data)
    record = CallRecord(
        version=1, call_id=call_id, direction="outgoing", precedence="IMMEDIATE",
        caller=Party("London", "alice", "principal"), answerer=Party("Moscow", "ivan", "principal"),
        invited_ns=now - 100 * S, answered_ns=now - 95 * S, ended_ns=now,
        end_reason="ended here: hung up", media=MediaFigures(4000, 3990, 3, 2, 1, 1),
        transport="udp", recorded=bool(named), recordings=named, participants=(),
    )  # fmt: skip
    runtime = station.links["moscow"]
    envelope = await runtime.send(
        Lane.ROUTINE, MessageType.CALL_RECORD, "zxx", encode_record(record)
    )
    return envelope.seq, record


def _at(seq: int) -> str:
    return f"/console/call-records/moscow/{seq}"


async def _post(browser: httpx.AsyncClient, csrf: str, path: str, body: dict[str, Any]) -> Any:
    return await browser.post(path, json=body, headers={"X-CSRF-Token": csrf})


# -- the record of conversation -----------------------------------------------------------------


@pytest.mark.anyio
async def test_a_memcon_is_written_reviewed_by_another_and_certified_by_a_supervisor(
    app: Any, station: Station
) -> None:
    seq, record = await called(station)
    vera, vera_csrf, vera_name = await signed_in(app, station, "translator")
    lev, lev_csrf, lev_name = await signed_in(app, station, "translator")
    boss, boss_csrf, boss_name = await signed_in(app, station, "supervisor")
    clerk, clerk_csrf, _ = await signed_in(app, station, "operator")

    attempt = {"language": "en", "text": NOTES}
    assert (await _post(clerk, clerk_csrf, f"{_at(seq)}/memcon", attempt)).status_code == 403
    written = await _post(vera, vera_csrf, f"{_at(seq)}/memcon", attempt)
    assert written.status_code == 201, written.text
    memcon = written.json()["hash"]
    assert written.json()["kind"] == "memcon"

    own = await _post(vera, vera_csrf, f"{_at(seq)}/memcon/{memcon}/review", {})
    assert own.status_code == 409
    assert "someone other than its author" in own.json()["detail"]
    early = await _post(boss, boss_csrf, f"{_at(seq)}/memcon/{memcon}/certify", {})
    assert early.status_code == 409
    assert "reviewed before it is certified" in early.json()["detail"]
    reviewed = await _post(lev, lev_csrf, f"{_at(seq)}/memcon/{memcon}/review", {"remark": "ok"})
    assert reviewed.status_code == 201
    assert (
        await _post(lev, lev_csrf, f"{_at(seq)}/memcon/{memcon}/certify", {})
    ).status_code == 403
    certified = await _post(boss, boss_csrf, f"{_at(seq)}/memcon/{memcon}/certify", {})
    assert certified.status_code == 201
    again = await _post(boss, boss_csrf, f"{_at(seq)}/memcon/{memcon}/certify", {})
    assert again.status_code == 409
    assert "certified by you already" in again.json()["detail"]
    closed = await _post(lev, lev_csrf, f"{_at(seq)}/memcon", {"language": "en", "text": "v2"})
    assert closed.status_code == 409, "a certified record of conversation is closed"

    shown = (await clerk.get(_at(seq))).json()
    assert (shown["id"], shown["memcon"]) == (record.call_id, "certified")
    assert [(a["kind"], a["person"]) for a in shown["annotations"]] == [
        ("memcon", vera_name), ("review", lev_name), ("certification", boss_name)
    ]  # fmt: skip
    assert shown["annotations"][0]["text"] == NOTES
    runtime = station.links["moscow"]
    config = runtime.link.config
    assert station.store is not None
    stored = await station.store.call(
        lambda s: s.annotations_of(config.link_id, int(Lane.ROUTINE), seq)
    )
    signed = [Annotation.verify(Signed.from_bytes(row), config.identity.public) for row in stored]
    assert [a.kind for a in signed] == [Kind.MEMCON, Kind.REVIEW, Kind.CERTIFICATION]
    assert all(a.body.direction == config.direction for a in signed), "about our own record"
    assert "memcon written" in await audit_actions(station, vera_name)
    assert "memcon reviewed" in await audit_actions(station, lev_name)
    assert "memcon certified" in await audit_actions(station, boss_name)
    log = (await clerk.get("/console/call-log")).json()["calls"]
    assert next(c for c in log if c["id"] == record.call_id)["memcon"] == "certified"


@pytest.mark.anyio
async def test_one_call_has_one_certified_record_and_no_one_checks_it_twice(
    app: Any, station: Station
) -> None:
    seq, _record = await called(station)
    vera, vera_csrf, _ = await signed_in(app, station, "translator")
    boss, boss_csrf, _ = await signed_in(app, station, "supervisor")
    chief, chief_csrf, _ = await signed_in(app, station, "supervisor")
    first = await _post(vera, vera_csrf, f"{_at(seq)}/memcon", {"language": "en", "text": "A"})
    second = await _post(vera, vera_csrf, f"{_at(seq)}/memcon", {"language": "en", "text": "B"})
    one, two = first.json()["hash"], second.json()["hash"]
    for memcon in (one, two):
        assert (
            await _post(boss, boss_csrf, f"{_at(seq)}/memcon/{memcon}/review", {})
        ).status_code == 201
    own_review = await _post(boss, boss_csrf, f"{_at(seq)}/memcon/{one}/certify", {})
    assert own_review.status_code == 409
    assert "someone other than its reviewer" in own_review.json()["detail"]
    at_once = await asyncio.gather(
        *(_post(chief, chief_csrf, f"{_at(seq)}/memcon/{m}/certify", {}) for m in (one, two))
    )
    assert sorted(a.status_code for a in at_once) == [201, 409], "one record per call certified"
    (certified,) = [m for m, a in zip((one, two), at_once, strict=True) if a.status_code == 201]
    review_after = await _post(chief, chief_csrf, f"{_at(seq)}/memcon/{certified}/review", {})
    assert review_after.status_code == 409  # its certifier does not review it as well


@pytest.mark.anyio
async def test_a_memcon_is_only_of_our_own_call_records(app: Any, station: Station) -> None:
    """Not of a message, not of a record that is not there; and the peer's message at the same
    place in its own chain keeps its own translations, apart from our record's memcon."""
    vera, csrf, _ = await signed_in(app, station, "translator")
    message = await station.links["moscow"].send(Lane.ROUTINE, MessageType.SERVICE, "en", "hi")
    body = {"language": "en", "text": NOTES}
    assert (await _post(vera, csrf, f"{_at(message.seq)}/memcon", body)).status_code == 404
    assert (await _post(vera, csrf, f"{_at(999_999)}/memcon", body)).status_code == 404
    assert (await vera.get(_at(message.seq))).status_code == 404
    seq, _record = await called(station)
    their = await arrived(station, "привет")
    while their != seq:  # the peer's ROUTINE message at the same seq as our record
        if their < seq:
            their = await arrived(station, "привет")
        else:
            seq, _record = await called(station)
    blank = await _post(vera, csrf, f"{_at(seq)}/memcon", {"language": "en", "text": " \n"})
    assert blank.status_code == 409
    assert (await _post(vera, csrf, f"{_at(seq)}/memcon", body)).status_code == 201
    translated = await _post(vera, csrf, f"/console/messages/moscow/in/ROUTINE/{seq}/"
                             "translations", {"language": "en", "text": "hello"})  # fmt: skip
    assert translated.status_code == 201
    message_view = (await vera.get(f"/console/messages/moscow/in/ROUTINE/{seq}")).json()
    assert [a["kind"] for a in message_view["annotations"]] == ["translation"]
    record_view = (await vera.get(_at(seq))).json()
    assert [a["kind"] for a in record_view["annotations"]] == ["memcon"]


# -- the recordings -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_recording_plays_for_those_who_may_hear_it_as_audio_ogg(
    app: Any, station: Station
) -> None:
    seq, record = await called(station, (OGG, OGG[::-1]))
    name = record.recordings[0].name
    path = f"{_at(seq)}/recordings/{name}"
    auditor, _, auditor_name = await signed_in(app, station, "auditor")
    boss, _, _ = await signed_in(app, station, "supervisor")
    for role in ("operator", "translator", "admin"):
        browser, _, _ = await signed_in(app, station, role)
        assert (await browser.get(path)).status_code == 403, role
    played = await auditor.get(path)
    assert played.status_code == 200
    assert played.content == OGG
    assert played.headers["content-type"] == "audio/ogg"
    assert played.headers["x-content-type-options"] == "nosniff"
    assert played.headers["content-disposition"].startswith("inline")
    part = await boss.get(path, headers={"Range": "bytes=10-19"})
    assert (part.status_code, part.content) == (206, OGG[10:20])
    assert (await auditor.get(f"{_at(seq)}/recordings/other.opus")).status_code == 404
    assert (await auditor.get(f"{_at(seq)}/recordings/..%2Fstore.db")).status_code == 404
    (station.data.path / "recordings" / name).write_bytes(OGG[:-1] + b"X")  # not as recorded
    assert (await auditor.get(path)).status_code == 404
    assert (await audit_actions(station, auditor_name)).count("recording played") == 1


# -- missed calls -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_missed_call_is_an_alarm_until_acknowledged_from_the_calls_page(
    app: Any, station: Station
) -> None:
    desk = station.links["moscow"].calls
    assert desk is not None
    call_id = os.urandom(16)
    desk.on_frame(CallInvite(call_id, int(Lane.FLASH), "ivan", "principal", False,
                             os.urandom(32), 7, 20))  # fmt: skip
    while call_id not in desk.live or desk._noting is not None:  # noted before it rings
        await asyncio.sleep(0.01)
    desk.tick(time.time_ns() + (station.config.calls.ring_timeout_s + 1) * S)
    while desk._tasks:  # its record is written
        await asyncio.sleep(0.01)
    await station.discipline.review(time.time_ns())
    clerk, csrf, name = await signed_in(app, station, "operator")
    auditor, auditor_csrf, _ = await signed_in(app, station, "auditor")

    board = (await clerk.get("/console/board")).json()
    alarm = next(a for a in board["alarms"] if a["kind"] == "missed_call")
    assert call_id.hex() in alarm["id"]
    assert "FLASH call from ivan" in alarm["text"]
    log = (await clerk.get("/console/call-log")).json()
    assert [m["id"] for m in log["missed"]] == [call_id.hex()]
    row = next(c for c in log["calls"] if c["id"] == call_id.hex())
    assert (row["missed"], row["missed_waiting"], row["answerer"]) == (True, True, None)
    assert (row["precedence"], row["caller"]["person"], row["end_reason"]) == (
        "FLASH", "ivan", "no answer"
    )  # fmt: skip

    ack = f"/console/calls/{call_id.hex()}/missed/acknowledge"
    assert (await _post(auditor, auditor_csrf, ack, {})).status_code == 403
    done = await _post(clerk, csrf, ack, {})
    assert done.status_code == 200, done.text
    board = (await clerk.get("/console/board")).json()
    assert not [a for a in board["alarms"] if a["kind"] == "missed_call"], "cleared at once"
    log = (await clerk.get("/console/call-log")).json()
    assert log["missed"] == []
    assert next(c for c in log["calls"] if c["id"] == call_id.hex())["missed_waiting"] is False
    assert (await _post(clerk, csrf, ack, {})).status_code == 404, "acknowledged once"
    assert "missed call acknowledged" in await audit_actions(station, name)


@pytest.mark.anyio
async def test_the_calls_page_lists_calls_from_the_chain_not_only_from_memory(
    app: Any, station: Station
) -> None:
    seq, record = await called(station)
    desk = station.links["moscow"].calls
    assert desk is not None
    desk.recent.clear()  # as after a restart: the desk remembers nothing
    clerk, _, _ = await signed_in(app, station, "operator")
    log = (await clerk.get("/console/call-log")).json()["calls"]
    row = next(c for c in log if c["id"] == record.call_id)
    assert row["record"] == {"seq": seq}
    assert row["caller"] == {"station": "London", "person": "alice", "role": "principal"}
    assert row["answerer"]["person"] == "ivan"
    assert row["duration_ns"] == 95 * S
    assert (row["end_reason"], row["recorded"], row["memcon"]) == ("ended here: hung up", False,
                                                                   "none")  # fmt: skip
    assert (await clerk.get("/console/call-log?limit=0")).status_code == 422
