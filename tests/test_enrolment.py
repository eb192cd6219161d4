"""Issue 13, item 10: the two-person rule does not reduce to one admin. A new or reset account's
credentials go only to its person, through a one-time enrolment code (used once, expiring,
audited); an account enrolled within `[console] new_account_hold_h` cannot be the second person
of a release; and what the API token may send alone is a setting, `[api] sends`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pyotp
import pytest

from hotline.console.app import make_console_app
from hotline.console.operators import (
    ENROLMENT_VALID_NS,
    add_operator,
    code_hash,
    expire_enrolments,
    pending_enrolment,
    reset_operator,
)
from hotline.crypto.identity import StationIdentity
from hotline.sim.pgserver import ThrowawayPostgres
from hotline.station.api import make_app
from hotline.station.launch import StationProcess, make_pair
from hotline.station.runtime import Station
from hotline.store.base import SqlStore
from hotline.store.postgres import PostgresStore
from hotline.store.schema import MIGRATIONS
from hotline.store.sqlite import SqliteStore
from tests import test_console as tc
from tests.inprocess import london_and_identity, running

HOUR_NS = 3600 * 10**9
NOW = 1_800_000_000 * 10**9


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[StationProcess, StationIdentity]:
    return london_and_identity(tmp_path_factory.mktemp("enrolment"))


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


@pytest.fixture
async def _close_clients() -> AsyncIterator[None]:
    yield
    while tc._open_clients:
        await tc._open_clients.pop().aclose()


def csrf(token: str) -> dict[str, str]:
    return {"X-CSRF-Token": token}


async def begin(browser: httpx.AsyncClient, name: str, code: str) -> httpx.Response:
    return await browser.post("/console/login/enrol", json={"name": name, "code": code})


async def finish(
    browser: httpx.AsyncClient, name: str, code: str, secret: str, password: str = tc.PASSWORD
) -> httpx.Response:
    body = {"name": name, "code": code, "password": password}
    return await browser.post(
        "/console/login/enrol/finish", json={**body, "totp_code": pyotp.TOTP(secret).now()}
    )


async def audit_rows(station: Station) -> list[tuple[str, str, str]]:
    """(actor, action, detail), oldest first."""
    assert station.store is not None
    rows = await station.store.call(lambda s: s.audit_log(2000))
    return [(actor, action, detail) for _id, _at, actor, action, detail, _link in reversed(rows)]


# -- credentials go only to their person -----------------------------------------------------------


@pytest.mark.anyio
async def test_an_admin_who_makes_or_resets_an_account_is_never_given_its_credentials(
    app: Any, station: Station
) -> None:
    """Today's admin was handed a password and a TOTP secret, enough to sign in as anyone."""
    admin, admin_csrf, _ = await tc.signed_in(app, station, "admin")
    made = await admin.post(
        "/console/operators",
        json={"name": "new.sup", "role": "supervisor"},
        headers=csrf(admin_csrf),
    )
    assert made.status_code == 201
    assert set(made.json()) == {"name", "enrolment_code", "expires_ns"}, "no password, no secret"
    code = made.json()["enrolment_code"]
    assert len(code.replace("-", "")) == 24, "120 random bits"
    outsider = tc.client(app)
    for password in (code, "", tc.PASSWORD):  # the code is no password, and there is none yet
        guess = {"name": "new.sup", "password": password, "code": "123456"}
        assert (await outsider.post("/console/login", json=guess)).status_code in (401, 422)

    # A real supervisor, signed in; reset by the admin: the old credentials end at once, and the
    # admin is again given only a code.
    boss, _, boss_name, boss_secret = await tc.enrolled(app, station, "supervisor")
    reset = await admin.put(
        f"/console/operators/{boss_name}", json={"reset": True}, headers=csrf(admin_csrf)
    )
    assert set(reset.json()) == {"name", "enrolment_code", "expires_ns"}
    assert (await boss.get("/console/me")).status_code == 401, "the session ended with the reset"
    next_code = pyotp.TOTP(boss_secret).at(time.time() + 30)  # not yet spent
    again = {"name": boss_name, "password": tc.PASSWORD, "code": next_code}
    assert (await tc.client(app).post("/console/login", json=again)).status_code == 401
    assert station.store is not None
    stored = await station.store.call(lambda s: s.operator(boss_name))
    assert stored is not None
    assert stored.totp_secret != boss_secret


def test_the_cli_prints_an_enrolment_code_and_no_credentials_and_is_audited(
    tmp_path: Path,
) -> None:
    london, _ = make_pair(tmp_path)
    hotline = partial(
        subprocess.run,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    base = [sys.executable, "-m", "hotline", "operator"]
    added = hotline([*base, "add", "olga", "--role", "supervisor", "-d", str(london.data.path)])
    reset = hotline([*base, "reset", "olga", "-d", str(london.data.path)])
    listed = hotline([*base, "list", "--json", "-d", str(london.data.path)])
    for done in (added, reset):
        assert done.returncode == 0, done.stderr
        assert "enrolment code" in done.stdout
        assert not re.search(r"^\s*password\s", done.stdout, re.MULTILINE), "no password"
        assert "otpauth" not in done.stdout
        assert not re.search(r"[A-Z2-7]{16}", done.stdout), "no TOTP secret (base32) printed"
    assert json.loads(listed.stdout)[0]["waiting_for_enrolment"] is True
    store = SqliteStore(london.data.store_file)
    try:
        actions = [(actor, action) for _i, _a, actor, action, _d, _l in store.audit_log()]
    finally:
        store.close()
    assert {action for actor, action in actions if actor.startswith("cli:")} == {
        "operator added",
        "operator reset",
    }


# -- the code: once, in time, audited --------------------------------------------------------------


@pytest.mark.anyio
async def test_an_enrolment_code_works_once_and_every_use_is_audited(
    app: Any, station: Station
) -> None:
    admin, admin_csrf, admin_name = await tc.signed_in(app, station, "admin")
    made = await admin.post(
        "/console/operators", json={"name": "lena", "role": "operator"}, headers=csrf(admin_csrf)
    )
    code = made.json()["enrolment_code"]
    person = tc.client(app, "10.0.0.7")
    assert (await begin(person, "lena", code.replace("-", "").lower() + "A")).status_code == 401
    start = await begin(person, "lena", code.lower().replace("-", " "))  # as a person types it
    assert start.status_code == 200
    secret = start.json()["totp_secret"]
    assert start.json()["totp_uri"].startswith("otpauth://totp/")
    wrong_totp = await person.post(
        "/console/login/enrol/finish",
        json={"name": "lena", "code": code, "password": tc.PASSWORD, "totp_code": "000000"},
    )
    assert wrong_totp.status_code in (401, 422)
    short = await finish(person, "lena", code, secret, password="short")
    assert short.status_code == 422, "a password of at least 12 characters"
    done = await finish(person, "lena", code, secret)
    assert done.status_code == 200
    assert (await person.get("/console/me")).json()["operator"] == "lena", "signed in at once"
    assert (await begin(tc.client(app), "lena", code)).status_code == 401, "once"
    assert (await finish(tc.client(app), "lena", code, secret)).status_code == 401, "once"

    # The admin who keeps the code and uses it: it works, once, and the audit log says whose
    # code it was and that it was used in the admin's own browser.
    kept = await admin.post(
        "/console/operators", json={"name": "ghost", "role": "supervisor"}, headers=csrf(admin_csrf)
    )
    ghost_code = kept.json()["enrolment_code"]
    ghost_secret = (await begin(admin, "ghost", ghost_code)).json()["totp_secret"]
    assert (await finish(admin, "ghost", ghost_code, ghost_secret)).status_code == 200
    rows = await audit_rows(station)
    assert ("lena", "enrolment refused", "wrong, spent or expired code from 10.0.0.7") in rows
    enrolled = {actor: detail for actor, action, detail in rows if action == "enrolled"}
    assert enrolled["lena"] == f"with the code {admin_name} made; from a browser at 10.0.0.7"
    assert enrolled["ghost"] == (
        f"with the code {admin_name} made; from {admin_name}'s browser at 127.0.0.1"
    )
    added = [d for actor, action, d in rows if actor == admin_name and action == "operator added"]
    assert [d.split(";")[0] for d in added] == ["lena as operator", "ghost as supervisor"]


@pytest.mark.anyio
async def test_an_enrolment_code_expires_and_its_expiry_is_audited_once(
    app: Any, station: Station
) -> None:
    assert station.store is not None
    now = time.time_ns()
    made = await station.store.call(lambda s: add_operator(s, "late", "operator", now, "ada"))
    later = now + ENROLMENT_VALID_NS
    assert await station.store.call(lambda s: pending_enrolment(s, "late", made.code, now))
    assert not await station.store.call(lambda s: pending_enrolment(s, "late", made.code, later))
    assert "late" in await station.store.call(lambda s: expire_enrolments(s, later))
    assert "late" not in await station.store.call(lambda s: expire_enrolments(s, later)), "once"
    assert (await begin(tc.client(app), "late", made.code)).status_code == 401
    rows = await audit_rows(station)
    assert ("station", "enrolment expired", "late: the code ada made was not used") in rows
    assert [r for r in rows if r[1] == "enrolment expired" and r[2].startswith("late:")] == [
        ("station", "enrolment expired", "late: the code ada made was not used")
    ]


# -- the hold on new accounts -------------------------------------------------------------------


async def draft_flash(station: Station, app: Any, text: str) -> int:
    drafter, drafter_csrf, _ = await tc.signed_in(app, station, "operator")
    drafted = await drafter.post(
        "/console/drafts",
        json={"link": "moscow", "lane": "FLASH", "type": "principal", "text": text},
        headers=csrf(drafter_csrf),
    )
    assert drafted.status_code == 201
    return int(drafted.json()["id"])


@pytest.mark.anyio
async def test_an_account_enrolled_within_the_hold_cannot_be_the_second_person(
    app: Any, station: Station
) -> None:
    draft_id = await draft_flash(station, app, "strike at 0300")
    new, new_csrf, new_name, _ = await tc.enrolled(app, station, "supervisor", settled=False)
    refused = await new.post(f"/console/drafts/{draft_id}/release", headers=csrf(new_csrf))
    assert refused.status_code == 403
    assert "enrolled less than 24 h ago cannot release" in refused.json()["detail"]
    assert station.store is not None
    waiting = await station.store.call(lambda s: s.draft(draft_id))
    assert waiting is not None
    assert waiting.state == "draft", "nothing was sent"

    # A day later (its enrolment dated back, as the clock would move) it may.
    day_ago = time.time_ns() - 24 * HOUR_NS - 1
    await station.store.call(lambda s: s.update_operator(new_name, enrolled_ns=day_ago))
    released = await new.post(f"/console/drafts/{draft_id}/release", headers=csrf(new_csrf))
    assert released.status_code == 200
    assert released.json()["state"] == "released"


@pytest.mark.anyio
async def test_a_reset_account_is_held_again_and_the_hold_is_a_setting(
    app: Any, station: Station
) -> None:
    admin, admin_csrf, _ = await tc.signed_in(app, station, "admin")
    _, _, boss_name, _ = await tc.enrolled(app, station, "supervisor")  # long standing
    reset = await admin.put(
        f"/console/operators/{boss_name}", json={"reset": True}, headers=csrf(admin_csrf)
    )
    code = reset.json()["enrolment_code"]
    boss = tc.client(app)
    secret = (await begin(boss, boss_name, code)).json()["totp_secret"]
    boss_csrf = (await finish(boss, boss_name, code, secret)).json()["csrf"]
    draft_id = await draft_flash(station, app, "after the reset")
    refused = await boss.post(f"/console/drafts/{draft_id}/release", headers=csrf(boss_csrf))
    assert refused.status_code == 403, "a reset account is new again"
    listed = {o["name"]: o for o in (await admin.get("/console/operators")).json()}
    assert listed[boss_name]["hold_until_ns"] > time.time_ns()

    # With no hold configured, the same account releases at once.
    no_hold = msgspec.structs.replace(station.config.console, new_account_hold_h=0)
    relaxed = make_console_app(station, no_hold, tls=False)
    browser, token, _, _ = await tc.enrolled(relaxed, station, "supervisor", settled=False)
    released = await browser.post(f"/console/drafts/{draft_id}/release", headers=csrf(token))
    assert released.status_code == 200


# -- what the API token may send -------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_api_token_sends_alone_only_what_its_setting_allows(station: Station) -> None:
    api = make_app(station)
    token = station.data.api_token()
    transport = httpx.ASGITransport(app=api)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:

        async def send(lane: str, kind: str) -> int:
            body = {"text": f"{kind} in {lane}", "lane": lane, "type": kind}
            answer = await client.post("/api/v1/links/moscow/messages", json=body, headers=headers)
            return answer.status_code

        assert await send("FLASH", "principal") == 201, "sends = 'any': today's default"
        narrow = msgspec.structs.replace(station.config.api, sends="service")
        station.config = msgspec.structs.replace(station.config, api=narrow)
        assert await send("FLASH", "principal") == 403
        assert await send("ROUTINE", "principal") == 403
        assert await send("FLASH", "service") == 403
        assert await send("ROUTINE", "service") == 201
        assert await send("PRIORITY", "test") == 201


# -- the store: both backends ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def opener(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, Callable[[], SqlStore]]]:
    """The dialect, and a callable that opens (again) one fresh store of it."""
    connect: Callable[[], SqlStore]
    if request.param == "sqlite":
        connect = partial(SqliteStore, tmp_path / "station.db")
    else:
        server: ThrowawayPostgres = request.getfixturevalue("pg")
        connect = partial(PostgresStore, server.create_database(f"store_{uuid.uuid4().hex}"))
    opened: list[SqlStore] = []

    def open_store() -> SqlStore:
        opened.append(connect())
        return opened[-1]

    yield request.param, open_store
    for store in opened:
        store.close()


def test_accounts_from_before_count_as_enrolled_when_made_and_a_code_is_spent_once(
    opener: tuple[str, Callable[[], SqlStore]], monkeypatch: pytest.MonkeyPatch
) -> None:
    dialect, open_store = opener
    steps = MIGRATIONS[dialect]
    with monkeypatch.context() as before:  # a store of the version before enrolment
        before.setitem(MIGRATIONS, dialect, steps[:8])
        old = open_store()
        assert old.schema_version == 8
        with old.transaction():
            old._execute(
                "INSERT INTO operators (name, role, password_hash, totp_secret, language, "
                "disabled, failures, locked_until_ns, last_totp_step, created_ns) "
                "VALUES ('olga', 'supervisor', 'h', 's', 'en', 0, 0, 0, 0, ?)",
                (NOW,),
            )
        old.close()
    store = open_store()
    assert store.schema_version == len(steps)
    olga = store.operator("olga")
    assert olga is not None
    assert olga.enrolled_ns == NOW, "held, if at all, from when it was made"

    made = add_operator(store, "ivan", "operator", NOW, "ada")
    spend = partial(store.use_enrolment, "ivan")
    assert spend(code_hash("ivan", "not-the-code"), NOW, enrolled_ns=NOW) is None
    first = spend(code_hash("ivan", made.code), NOW + 1, enrolled_ns=NOW + 1)
    assert first is not None
    assert first.made_by == "ada"
    assert spend(code_hash("ivan", made.code), NOW + 2, enrolled_ns=NOW + 2) is None, "once"
    ivan = store.operator("ivan")
    assert ivan is not None
    assert ivan.enrolled_ns == NOW + 1

    again = reset_operator(store, "ivan", NOW, "ada")
    late = NOW + ENROLMENT_VALID_NS
    assert spend(code_hash("ivan", again.code), late, enrolled_ns=late) is None, "expired"
    assert [e.name for e in store.drop_expired_enrolments(late)] == ["ivan"]
    assert store.enrolments() == []
