"""The audit log and the traffic as people search them (issue 15, items 11 and 18), through the
console's routes on a real station in this test's event loop: audit rows in words in English and
Russian with their link, whatever door wrote them (the stored rows untouched); filters by person,
action, link and time; a text search; "older"/"newer" pages of bounded size; the CSV export for
auditors, audited itself. (tests/test_console_records_browser.py looks at the same pages.)"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hotline.console.app import make_console_app
from hotline.crypto.identity import StationIdentity
from hotline.protocol.envelope import Lane, MessageType
from hotline.station.launch import StationProcess
from hotline.station.runtime import Station
from tests import test_console as tc
from tests.inprocess import london_and_identity, running


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[StationProcess, StationIdentity]:
    return london_and_identity(tmp_path_factory.mktemp("records"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def station(pair: tuple[StationProcess, StationIdentity]) -> AsyncIterator[Station]:
    async with running(*pair) as station:
        yield station


@pytest.fixture
async def app(station: Station, _close_clients: None) -> Any:
    return make_console_app(station, station.config.console, tls=False)


_close_clients = tc._close_clients


async def stored(station: Station, actor: str, action: str, detail: str, link: bool) -> None:
    """An audit row as a door of the station writes it (with the link's id, or without)."""
    assert station.store is not None
    link_id = station.links["moscow"].link.config.link_id if link else None
    now = time.time_ns()
    await station.store.call(lambda s: s.audit_person(actor, action, detail, now, link_id))


def row_of(page: dict[str, Any], action: str, detail: str) -> dict[str, Any]:
    return next(r for r in page["rows"] if r["action"] == action and r["detail"] == detail)


@pytest.mark.anyio
async def test_audit_rows_read_in_words_in_both_languages_with_their_link(
    app: Any, station: Station
) -> None:
    auditor, _, _ = await tc.signed_in(app, station, "auditor")
    await stored(station, "anna", "silenced", "flash:moscow:1", link=False)
    await stored(station, "boris", "translated", "3/2", link=True)
    await stored(station, "cli:root", "acknowledged", "ROUTINE 4 (as ROUTINE 7)", link=True)
    await stored(station, "api", "sent", "FLASH 3, principal", link=True)
    await stored(station, "anna", "acknowledged", "moscow IMMEDIATE 5", link=False)
    await stored(station, "anna", "some act of tomorrow", "x:y:1", link=False)
    await stored(station, "boris", "withdrawn", "3/5", link=True)
    await stored(station, "station", "node_active", "node 'a' is active at epoch 2", link=False)
    page = (await auditor.get("/console/audit")).json()

    silenced = row_of(page, "silenced", "flash:moscow:1")
    assert silenced["link"] == "moscow", "the Link column is filled from the detail"
    assert silenced["words"]["en"] == {
        "actor": "anna", "action": "Alarm silenced", "detail": "FLASH 1 from moscow"
    }  # fmt: skip
    assert silenced["words"]["ru"]["action"] == "Тревога заглушена"
    assert silenced["words"]["ru"]["detail"] == "FLASH 1 от moscow"
    translated = row_of(page, "translated", "3/2")
    assert translated["link"] == "moscow"
    assert translated["words"]["en"]["detail"] == "of ROUTINE 2 from moscow"
    assert translated["words"]["ru"]["action"] == "Перевод составлен"
    node = row_of(page, "node_active", "node 'a' is active at epoch 2")
    assert node["words"]["ru"]["action"] == "Узел стал активным"
    assert node["words"]["ru"]["actor"] == "станция"
    withdrawn = row_of(page, "withdrawn", "3/5")
    assert withdrawn["words"]["en"]["action"] == "Translation withdrawn", "not a draft's"
    assert withdrawn["words"]["ru"]["detail"] == "к ROUTINE 5 от moscow"
    by_cli = row_of(page, "acknowledged", "ROUTINE 4 (as ROUTINE 7)")
    assert by_cli["words"]["en"]["actor"] == "root, at the station host"
    assert by_cli["words"]["ru"]["actor"] == "root, на хосте станции"
    assert (
        by_cli["words"]["en"]["detail"] == "ROUTINE 4 from moscow (our acknowledgement: ROUTINE 7)"
    )
    sent = row_of(page, "sent", "FLASH 3, principal")
    assert sent["words"]["en"]["actor"] == "the API (the station's token)"
    assert sent["words"]["en"]["detail"] == "FLASH 3 to moscow (principal)"
    assert sent["words"]["ru"]["detail"] == "FLASH 3 для moscow (основное)"
    console_ack = row_of(page, "acknowledged", "moscow IMMEDIATE 5")
    assert console_ack["link"] == "moscow"
    assert console_ack["words"]["ru"]["detail"] == "IMMEDIATE 5 от moscow"
    unknown = row_of(page, "some act of tomorrow", "x:y:1")
    as_stored = {"actor": "anna", "action": "some act of tomorrow", "detail": "x:y:1"}
    assert unknown["words"]["ru"] == as_stored, "an unknown form shows as stored"
    assert page["actions"]["silenced"] == {"en": "Alarm silenced", "ru": "Тревога заглушена"}
    assert station.store is not None
    raw = await station.store.call(lambda s: s.audit_log())
    assert ("silenced", "flash:moscow:1", None) in [(a, d, lk) for *_, a, d, lk in raw], (
        "the stored row is as it was written"
    )


@pytest.mark.anyio
async def test_an_act_at_the_console_is_stored_with_its_link(app: Any, station: Station) -> None:
    officer, csrf, name = await tc.signed_in(app, station, "operator")
    auditor, _, _ = await tc.signed_in(app, station, "auditor")
    seq = await tc.arrived(station, "подтвердите получение")
    answer = await officer.post(
        f"/console/inbox/moscow/ROUTINE/{seq}/ack", json={}, headers={"X-CSRF-Token": csrf}
    )
    assert answer.status_code == 201, answer.text
    page = (await auditor.get("/console/audit", params={"actor": name})).json()
    [acked] = [r for r in page["rows"] if r["action"] == "acknowledged"]
    assert acked["link"] == "moscow"
    assert acked["words"]["en"]["detail"] == f"ROUTINE {seq} from moscow"


@pytest.mark.anyio
async def test_audit_filters_and_search(app: Any, station: Station) -> None:
    auditor, _, _ = await tc.signed_in(app, station, "auditor")
    before = time.time_ns()
    await stored(station, "vera", "translated", "3/9", link=True)
    await stored(station, "vera", "shift note", "", link=False)
    await stored(station, "gleb", "silenced", "overdue:moscow:in:FLASH:4", link=False)
    after = time.time_ns()
    await stored(station, "vera", "silenced", "link_down:moscow", link=False)

    async def ids(**params: Any) -> list[tuple[str, str]]:
        answer = await auditor.get("/console/audit", params=params)
        assert answer.status_code == 200, answer.text
        return [(r["actor"], r["action"]) for r in answer.json()["rows"]]

    assert await ids(actor="vera", since_ns=before) == [
        ("vera", "silenced"), ("vera", "shift note"), ("vera", "translated")
    ]  # fmt: skip
    assert await ids(action="silenced", since_ns=before) == [
        ("vera", "silenced"), ("gleb", "silenced")
    ]  # fmt: skip
    assert await ids(since_ns=before, until_ns=after) == [
        ("gleb", "silenced"), ("vera", "shift note"), ("vera", "translated")
    ]  # fmt: skip
    assert await ids(link="MOSCOW", since_ns=before) == [
        ("vera", "silenced"), ("gleb", "silenced"), ("vera", "translated")
    ], "a link named in any case; the shift note names none"  # fmt: skip
    assert await ids(q="просрочено", since_ns=before) == [("gleb", "silenced")], (
        "the Russian words are searched"
    )
    assert await ids(q="FLASH 9 from", since_ns=before) == []
    assert await ids(q="routine 9 FROM moscow", since_ns=before) == [("vera", "translated")]


@pytest.mark.anyio
async def test_audit_pages_older_and_newer_are_bounded(app: Any, station: Station) -> None:
    auditor, _, _ = await tc.signed_in(app, station, "auditor")
    since = time.time_ns()
    for n in range(23):
        await stored(station, "pager", "shift note", f"note {n}", link=False)
    params: dict[str, Any] = {"actor": "pager", "since_ns": since, "limit": 10}
    first = (await auditor.get("/console/audit", params=params)).json()
    assert [r["detail"] for r in first["rows"]] == [f"note {n}" for n in range(22, 12, -1)]
    assert first["newer"] is None, "the newest page has none newer"
    second = (
        await auditor.get("/console/audit", params={**params, "before": first["older"]})
    ).json()
    third = (
        await auditor.get("/console/audit", params={**params, "before": second["older"]})
    ).json()
    assert [r["detail"] for r in second["rows"]] == [f"note {n}" for n in range(12, 2, -1)]
    assert [r["detail"] for r in third["rows"]] == ["note 2", "note 1", "note 0"]
    assert third["older"] is None, "the oldest page has none older"
    back = (await auditor.get("/console/audit", params={**params, "after": third["newer"]})).json()
    assert back["rows"] == second["rows"], "newer than the third page is the second"
    assert back["newer"] is not None
    top = (await auditor.get("/console/audit", params={**params, "after": back["newer"]})).json()
    assert top["rows"] == first["rows"]
    assert top["newer"] is None
    for bad in ({"limit": 0}, {"limit": 201}, {"before": 5, "after": 3}, {"before": -1}):
        answer = await auditor.get("/console/audit", params=bad)
        assert answer.status_code == 422, (bad, answer.text)


@pytest.mark.anyio
async def test_the_audit_exported_as_csv_for_auditors_is_audited(
    app: Any, station: Station
) -> None:
    auditor, _, name = await tc.signed_in(app, station, "auditor")
    officer, _, _ = await tc.signed_in(app, station, "operator")
    since = time.time_ns()
    await stored(station, "zoya", "silenced", "flash:moscow:7", link=False)
    await stored(station, "zoya", "shift note", "", link=False)
    answer = await auditor.get(
        "/console/audit.csv", params={"actor": "zoya", "since_ns": since, "lang": "ru"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="hotline-audit-')
    assert disposition.endswith('.csv"')
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0] == ["id", "time_utc", "at_ns", "actor", "action", "link", "detail_as_stored",
                       "who", "what", "detail"]  # fmt: skip
    assert [r[3:] for r in rows[1:]] == [
        ["zoya", "silenced", "moscow", "flash:moscow:7", "zoya", "Тревога заглушена",
         "FLASH 7 от moscow"],
        ["zoya", "shift note", "", "", "zoya", "Запись в журнале смены", ""],
    ], "oldest first, as stored and in words"  # fmt: skip
    page = (await auditor.get("/console/audit", params={"actor": name})).json()
    [exported] = [r for r in page["rows"] if r["action"] == "audit exported"]
    assert exported["detail"].startswith("2 rows (actor=zoya, since_ns=")
    assert exported["words"]["en"]["action"] == "Audit log exported"
    assert (await officer.get("/console/audit.csv")).status_code == 403, "auditors only"


@pytest.mark.anyio
async def test_traffic_pages_and_search(app: Any, station: Station) -> None:
    officer, _, _ = await tc.signed_in(app, station, "operator")
    seqs = []
    for n in range(30):
        text = "где архив?" if n == 2 else f"сообщение {n}"
        lane = Lane.FLASH if n == 5 else Lane.ROUTINE
        seqs.append((lane.name, await tc.arrived(station, text, lane=lane)))

    async def page(**params: Any) -> dict[str, Any]:
        answer = await officer.get("/console/traffic/moscow", params=params)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    first = await page(limit=12)
    assert [(m["lane"], m["seq"]) for m in first["inbox"]] == seqs[::-1][:12]
    assert first["paging"]["in"]["newer"] is None
    seen = [(m["lane"], m["seq"]) for m in first["inbox"]]
    cursor = first["paging"]["in"]["older"]
    for _ in range(10):  # bounded: three pages hold the thirty
        if cursor is None:
            break
        older = await page(limit=12, in_before=cursor)
        seen += [(m["lane"], m["seq"]) for m in older["inbox"]]
        cursor = older["paging"]["in"]["older"]
    assert seen[:30] == seqs[::-1], "the pages, one after another, hold every message once"
    found = await page(limit=5, q="АРХИВ")
    assert [m["text"] for m in found["inbox"]] == ["где архив?"], "found however far back"
    assert found["paging"]["in"]["older"] is None
    flash = await page(hide_lane=["IMMEDIATE", "PRIORITY", "ROUTINE"])
    assert [(m["lane"], m["seq"]) for m in flash["inbox"]] == [seqs[5]]
    runtime = station.links["moscow"]
    ours = [(await runtime.send(Lane.ROUTINE, MessageType.SERVICE, "en", f"ours {n}")).seq
            for n in range(5)]  # fmt: skip
    listed: list[int] = []
    out = await page(limit=2)
    for _ in range(10):  # bounded: three pages hold the five
        listed += [m["seq"] for m in out["outbox"] if m["text"].startswith("ours")]
        if out["paging"]["out"]["older"] is None:
            break
        out = await page(limit=2, out_before=out["paging"]["out"]["older"])
    assert listed == ours[::-1], "our messages, page after page, newest first, each once"
    for bad in ({"limit": 0}, {"limit": 201}, {"out_before": "abc"}, {"hide_lane": "URGENT"}):
        answer = await officer.get("/console/traffic/moscow", params=bad)
        assert answer.status_code == 422, (bad, answer.text)
