"""The console in process: a real station's state (its store, its link cores) under the console's
ASGI app, driven by an HTTP client. Every route against every role, sign-in with its second
factor and lockout, sessions that expire, CSRF and origin checks, the two-person rule, alarms
and the link test. (tests/test_console_browser.py drives the same console in a real browser.)"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import ssl
import string
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pyotp
import pytest

from hotline.console.app import CSP, make_console_app
from hotline.console.auth import PERMISSIONS, Role, new_totp_secret
from hotline.console.drafts import draft_key, reconcile_drafts
from hotline.console.operators import add_operator, complete_enrolment, set_disabled
from hotline.crypto.identity import StationIdentity
from hotline.errors import ConfigError
from hotline.protocol.envelope import (
    ENVELOPE_VERSION,
    Envelope,
    EnvelopeBody,
    Lane,
    MessageType,
    decode_envelope,
)
from hotline.protocol.state import Batch, MessageReceived
from hotline.protocol.statements import Head
from hotline.station.api import make_app
from hotline.station.datadir import DataDir
from hotline.station.discipline import DOWN_HOLD_NS, Discipline, S
from hotline.station.events import describe
from hotline.station.launch import StationProcess, make_pair
from hotline.station.runtime import Station
from hotline.station.tls import WARN_DAYS, expires_ns, make_self_signed
from hotline.store.people import Draft
from tests.consoledriver import staff
from tests.inprocess import london_and_identity, running

PASSWORD = "a long enough password"
RUSSIAN = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
_names = itertools.count()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[StationProcess, StationIdentity]:
    return london_and_identity(tmp_path_factory.mktemp("console"))


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


def base(app: Any) -> str:
    """The console's own address: it answers no other Host."""
    return f"http://{app.state.console.settings.listen}"


def client(app: Any, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """A browser of its own (its own cookies: a new device until it signs in), at `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 123))
    made = httpx.AsyncClient(transport=transport, base_url=base(app))
    _open_clients.append(made)
    return made


_open_clients: list[httpx.AsyncClient] = []


@pytest.fixture
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _open_clients:
        await _open_clients.pop().aclose()


SETTLED_NS = 1_000_000_000 * 10**9  # enrolled in 2001: long past any hold on new accounts


async def settle(station: Station, name: str) -> None:
    """Staff of long standing: enrolled before any hold on new accounts (the tests of the hold
    make people enrolled just now)."""
    assert station.store is not None
    await station.store.call(lambda s: s.update_operator(name, enrolled_ns=SETTLED_NS))


async def new_operator(
    station: Station, role: str, password: str = PASSWORD, settled: bool = True
) -> tuple[str, str]:
    """A person who has enrolled (as the enrolment page does it, with a secret of their own, at
    the station host), not yet signed in: (name, TOTP secret)."""
    name, secret, now = f"{role}-{next(_names)}", new_totp_secret(), time.time_ns()
    assert station.store is not None
    made = await station.store.call(lambda s: add_operator(s, name, role, now, "test"))
    used = await station.store.call(
        lambda s: complete_enrolment(s, name, made.code, password, secret, now)
    )
    assert used is not None
    if settled:
        await settle(station, name)
    return name, secret


async def enrolled(
    app: Any, station: Station, role: str, settled: bool = True
) -> tuple[httpx.AsyncClient, str, str, str]:
    """A fresh account of `role` taken up through the enrolment page, which signs its person in:
    (client, its CSRF token, its name, its TOTP secret)."""
    name, now = f"{role}-{next(_names)}", time.time_ns()
    assert station.store is not None
    made = await station.store.call(lambda s: add_operator(s, name, role, now, "test"))
    browser = client(app)
    start = await browser.post("/console/login/enrol", json={"name": name, "code": made.code})
    assert start.status_code == 200, start.text
    secret = start.json()["totp_secret"]
    done = await browser.post(
        "/console/login/enrol/finish",
        json={
            "name": name,
            "code": made.code,
            "password": PASSWORD,
            "totp_code": pyotp.TOTP(secret).now(),
        },
    )
    assert done.status_code == 200, done.text
    if settled:
        await settle(station, name)
    return browser, done.json()["csrf"], name, secret


async def signed_in(app: Any, station: Station, role: str) -> tuple[httpx.AsyncClient, str, str]:
    """A client signed in as a fresh operator of `role`, enrolled long ago: (client, its CSRF
    token, its name)."""
    browser, csrf, name, _ = await enrolled(app, station, role)
    return browser, csrf, name


async def arrived(
    station: Station, text: str, language: str = "ru", lane: Lane = Lane.ROUTINE
) -> int:
    """A principal message from Moscow, stored at London as if it had come over the link."""
    runtime = station.links["moscow"]
    assert runtime.core is not None
    assert station.store is not None
    config, head = runtime.link.config, runtime.core.inbound[lane]
    moscow = station.data.path.parent / "moscow"
    passphrase = (moscow.parent / "moscow.passphrase").read_bytes().rstrip(b"\n")
    peer = DataDir(moscow).open_keystore(passphrase)
    body = EnvelopeBody(
        ENVELOPE_VERSION, config.link_id, config.peer_direction, int(lane), head.seq + 1,
        time.time_ns(), int(MessageType.PRINCIPAL), language, text, head.hash, bytes(32), None,
    )  # fmt: skip
    envelope = Envelope.create(body, peer)
    link_id = config.link_id
    await station.store.call(lambda s: s.commit(link_id, Batch(inbound=[envelope]), time.time_ns()))
    runtime.core.inbound[lane] = Head(envelope.seq, envelope.hash)
    return envelope.seq


async def audit_actions(station: Station, actor: str) -> list[str]:
    assert station.store is not None
    rows = await station.store.call(lambda s: s.audit_log())
    return [action for _id, _at, who, action, _detail, _link in rows if who == actor]


# -- the page --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_page_and_every_answer_carry_the_strict_headers(app: Any) -> None:
    browser = client(app)
    page = await browser.get("/")
    script = await browser.get("/static/console.js")
    refused = await browser.get("/console/board")
    assert page.status_code == 200
    assert "<script" in page.text
    assert 'src="/static/console.js"' in page.text
    assert "<script>" not in page.text, "no inline script: the CSP would refuse it"
    assert script.status_code == 200
    assert refused.status_code == 401
    for answer in (page, script, refused):
        assert answer.headers["content-security-policy"] == CSP
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in CSP
    assert "unsafe" not in CSP


@pytest.mark.anyio
async def test_signed_out_one_learns_only_whether_a_flash_waits(app: Any, station: Station) -> None:
    browser = client(app)
    answer = await browser.get("/console/alarm")
    assert answer.status_code == 200
    assert set(answer.json()) == {"flash", "alarms"}
    assert all(isinstance(v, int) for v in answer.json().values())


# -- signing in ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_sign_in_needs_the_password_and_a_fresh_code(app: Any, station: Station) -> None:
    name, secret = await new_operator(station, "operator")
    totp = pyotp.TOTP(secret)
    browser = client(app)
    wrong_password = await browser.post(
        "/console/login", json={"name": name, "password": "not it at all", "code": totp.now()}
    )
    wrong_code = await browser.post(
        "/console/login", json={"name": name, "password": PASSWORD, "code": "000000"}
    )
    nobody = await browser.post(
        "/console/login", json={"name": "nobody", "password": PASSWORD, "code": totp.now()}
    )
    assert (await browser.get("/console/me")).status_code == 401
    good = await browser.post(
        "/console/login", json={"name": name, "password": PASSWORD, "code": totp.now()}
    )
    me = await browser.get("/console/me")
    other = client(app)
    replayed = await other.post(
        "/console/login", json={"name": name, "password": PASSWORD, "code": totp.now()}
    )
    assert [wrong_password.status_code, wrong_code.status_code, nobody.status_code] == [401] * 3
    assert wrong_password.json() == wrong_code.json() == nobody.json(), "the same answer for all"
    assert good.status_code == 200
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie
    assert me.json()["operator"] == name
    assert me.json()["role"] == "operator"
    assert replayed.status_code == 401, "a code is good for one sign-in"
    actions = await audit_actions(station, name)
    assert actions.count("login refused") == 3
    assert actions.count("login") == 1


def login(name: str, password: str, code: str) -> dict[str, str]:
    return {"name": name, "password": password, "code": code}


def later_code(secret: str, steps: int = 1) -> str:
    """A code of a coming time step (accepted one step ahead, for clock drift): a code is good
    for one sign-in, so a second sign-in within the same 30 s needs the next one."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


@pytest.mark.anyio
async def test_wrong_codes_with_the_right_password_hold_new_devices_for_longer_each_time(
    app: Any, station: Station
) -> None:
    """Issue 13, item 11: only someone who has the password can cause a hold, and it keeps out
    new devices only: the officer's own browser, where they signed in before, still signs in."""
    name, secret = await new_operator(station, "operator")
    own = client(app)
    code = pyotp.TOTP(secret).now()
    assert (await own.post("/console/login", json=login(name, PASSWORD, code))).status_code == 200
    thief = client(app, "192.0.2.7")
    for _ in range(5):
        answer = await thief.post("/console/login", json=login(name, PASSWORD, "123456"))
        assert answer.status_code == 401
    held = await thief.post("/console/login", json=login(name, PASSWORD, later_code(secret)))
    assert held.status_code == 423, "from a new device, even the right code waits out the hold"
    assert station.store is not None
    first = await station.store.call(lambda s: s.operator(name))
    assert first is not None
    assert 25 * S < first.locked_until_ns - time.time_ns() <= 30 * S
    again = await own.post("/console/login", json=login(name, PASSWORD, later_code(secret)))
    assert again.status_code == 200, "a device used before is not held"
    # The hold runs out; one more wrong code holds for twice as long.
    await station.store.call(lambda s: s.update_operator(name, locked_until_ns=0))
    await thief.post("/console/login", json=login(name, PASSWORD, "123456"))
    second = await station.store.call(lambda s: s.operator(name))
    assert second is not None
    assert 55 * S < second.locked_until_ns - time.time_ns() <= 60 * S
    rows = await station.store.call(lambda s: s.audit_log())
    details = [detail for _i, _at, who, _a, detail, _l in rows if who == name]
    assert details.count("wrong code from a new device") == 6, "the attack is in the audit log"


@pytest.mark.anyio
async def test_a_disabled_operator_cannot_sign_in(app: Any, station: Station) -> None:
    name, secret = await new_operator(station, "operator")
    assert station.store is not None
    await station.store.call(lambda s: s.update_operator(name, disabled=True))
    browser = client(app)
    answer = await browser.post(
        "/console/login",
        json={"name": name, "password": PASSWORD, "code": pyotp.TOTP(secret).now()},
    )
    assert answer.status_code == 401


@pytest.mark.anyio
async def test_sessions_end_when_idle_and_at_logout(app: Any, station: Station) -> None:
    browser, csrf, _ = await signed_in(app, station, "operator")
    assert (await browser.get("/console/me")).status_code == 200
    for session in app.state.console.sessions._sessions.values():
        session.last_seen -= station.config.console.idle_timeout_s + 1
    assert (await browser.get("/console/me")).status_code == 401
    browser, csrf, name = await signed_in(app, station, "operator")
    out = await browser.post("/console/logout", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 204
    assert (await browser.get("/console/me")).status_code == 401
    assert "logout" in await audit_actions(station, name)


@pytest.mark.anyio
async def test_parallel_guesses_each_count_and_a_code_signs_in_once(
    app: Any, station: Station
) -> None:
    name, _secret = await new_operator(station, "operator")
    wrong = {"name": name, "password": PASSWORD, "code": "123456"}
    answers = await asyncio.gather(
        *(client(app).post("/console/login", json=wrong) for _ in range(8))
    )
    assert [a.status_code for a in answers] == [401] * 8, "held or not, a wrong code is wrong"
    assert station.store is not None
    guessed = await station.store.call(lambda s: s.operator(name))
    assert guessed is not None
    assert guessed.failures == 5
    assert guessed.locked_until_ns > 0
    other, other_secret = await new_operator(station, "operator")
    right = {"name": other, "password": PASSWORD, "code": pyotp.TOTP(other_secret).now()}
    logins = await asyncio.gather(
        *(client(app).post("/console/login", json=right) for _ in range(4))
    )
    assert sorted(a.status_code for a in logins) == [200, 401, 401, 401]


@pytest.mark.anyio
async def test_a_duty_officer_signs_in_while_junk_sign_ins_run_from_the_same_address(
    app: Any, station: Station
) -> None:
    """Issue 13, item 11: on a loopback console everyone shares one address. Junk sign-ins
    there, for the officer's name and for names that do not exist, get the same answers for
    both, and do not keep out the officer, with the right password and code, at the browser
    they signed in at before."""
    name, secret = await new_operator(station, "operator")
    officer = client(app)
    code = pyotp.TOTP(secret).now()
    first = await officer.post("/console/login", json=login(name, PASSWORD, code))
    assert first.status_code == 200
    await officer.post("/console/logout", headers={"X-CSRF-Token": first.json()["csrf"]})
    attacker = client(app)
    mine: list[tuple[int, Any]] = []
    unknown: list[tuple[int, Any]] = []
    for n in range(30):
        for target, answers in ((name, mine), (f"nobody-{n}", unknown)):
            junk = await attacker.post("/console/login", json=login(target, f"guess {n}", "000000"))
            answers.append((junk.status_code, junk.json()))
    assert mine == unknown, "the same answers whether the name exists or not"
    assert {status for status, _ in mine} == {401, 429}, "the attack is throttled"
    back = await officer.post("/console/login", json=login(name, PASSWORD, later_code(secret)))
    assert back.status_code == 200, back.text
    assert (await officer.get("/console/me")).json()["operator"] == name
    refused = (await audit_actions(station, name)).count("login refused")
    assert refused == [status for status, _ in mine].count(401), "each one checked, audited"


@pytest.mark.anyio
async def test_strangers_cannot_hold_an_officer_out_nor_learn_which_names_exist(
    app: Any, station: Station
) -> None:
    """Wrong passwords, from anywhere and however many, hold no account: the officer signs in
    from a browser never used before. A real name and a made-up one are answered alike."""
    name, secret = await new_operator(station, "operator")
    mine: list[tuple[int, Any]] = []
    unknown: list[tuple[int, Any]] = []
    for n in range(12):
        stranger = client(app, f"198.51.100.{n}")
        for _ in range(3):
            for target, answers in ((name, mine), ("no-such-officer", unknown)):
                junk = await stranger.post("/console/login", json=login(target, "guess", "000000"))
                answers.append((junk.status_code, junk.json()))
    assert mine == unknown
    assert {status for status, _ in mine} == {401}, "no 423 that says the name is real"
    fresh = client(app, "203.0.113.9")
    code = pyotp.TOTP(secret).now()
    answer = await fresh.post("/console/login", json=login(name, PASSWORD, code))
    assert answer.status_code == 200, answer.text
    assert station.store is not None
    officer = await station.store.call(lambda s: s.operator(name))
    assert officer is not None
    assert officer.locked_until_ns == 0


@pytest.mark.anyio
async def test_a_request_for_another_host_name_is_refused(app: Any) -> None:
    """DNS rebinding: a page elsewhere whose name is pointed at the console's address."""
    browser = client(app)
    answer = await browser.get("/", headers={"Host": "evil.example:8480"})
    assert answer.status_code == 421
    assert answer.headers["content-security-policy"] == CSP


# -- CSRF and origin -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_change_without_the_csrf_token_or_from_elsewhere_is_refused(
    app: Any, station: Station
) -> None:
    browser, csrf, name = await signed_in(app, station, "operator")
    draft = {"link": "moscow", "lane": "ROUTINE", "type": "service", "text": "hello"}
    missing = await browser.post("/console/drafts", json=draft)
    wrong = await browser.post("/console/drafts", json=draft, headers={"X-CSRF-Token": "x"})
    elsewhere = await browser.post(
        "/console/drafts",
        json=draft,
        headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
    )
    login_elsewhere = await browser.post(
        "/console/login",
        json={"name": name, "password": PASSWORD, "code": "000000"},
        headers={"Origin": "http://evil.example"},
    )
    good = await browser.post(
        "/console/drafts", json=draft, headers={"X-CSRF-Token": csrf, "Origin": base(app)}
    )
    assert [missing.status_code, wrong.status_code, elsewhere.status_code] == [403] * 3
    assert login_elsewhere.status_code == 403
    assert good.status_code == 201
    assert (await audit_actions(station, name)).count("sent") == 1, "only the good one was sent"


# -- every route against every role ----------------------------------------------------------------

ROUTES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("GET", "/console/board", "view", None),
    ("GET", "/console/traffic/moscow", "view", None),
    ("GET", "/console/drafts", "view", None),
    ("GET", "/console/shift-log", "view", None),
    ("POST", "/console/drafts", "draft", {"link": "moscow", "type": "service", "text": "x"}),
    ("POST", "/console/drafts/999999/release", "release", None),
    ("POST", "/console/drafts/999999/reject", "release", {"reason": "not ours"}),
    ("POST", "/console/inbox/moscow/FLASH/999999/ack", "acknowledge", {}),
    ("POST", "/console/alarms/none/silence", "silence", None),
    ("POST", "/console/shift-log", "shift_log", {"text": "quiet night"}),
    ("POST", "/console/exercise", "release", {"on": False}),
    ("GET", "/console/audit", "audit", None),
    ("GET", "/console/operators", "admin", None),
    ("POST", "/console/operators", "admin", {"name": "x", "role": "nope"}),
    ("PUT", "/console/operators/nobody", "admin", {"disabled": True}),
    ("PUT", "/console/operators/nobody", "admin", {"role": "auditor"}),
    ("GET", "/console/calls", "view", None),
    ("POST", "/console/calls", "call", {"link": "moscow", "precedence": "FLASH"}),
    ("POST", f"/console/calls/{'0' * 32}/answer", "call", None),
    ("POST", f"/console/calls/{'0' * 32}/decline", "call", {}),
    ("POST", f"/console/calls/{'0' * 32}/end", "call", None),
    (
        "POST",
        f"/console/calls/{'0' * 32}/join",
        "call",
        {"sdp": "v=0 an offer", "role": "principal"},
    ),
    (
        "POST",
        f"/console/calls/{'0' * 32}/join",
        "interpret",
        {"sdp": "v=0 an offer", "role": "interpreter"},
    ),
    (
        "POST",
        f"/console/calls/{'0' * 32}/join",
        "listen",
        {"sdp": "v=0 an offer", "role": "listener"},
    ),
    # The calls page and the record of conversation (tests/test_memcon.py has the rules).
    ("GET", "/console/call-log", "view", None),
    ("POST", f"/console/calls/{'0' * 32}/missed/acknowledge", "acknowledge", {}),
    ("GET", "/console/call-records/moscow/999999", "view", None),
    (
        "POST",
        "/console/call-records/moscow/999999/memcon",
        "memcon",
        {"language": "en", "text": "x"},
    ),
    ("POST", f"/console/call-records/moscow/999999/memcon/{'ab' * 32}/review", "review", {}),
    ("POST", f"/console/call-records/moscow/999999/memcon/{'ab' * 32}/certify", "certify", {}),
    ("GET", "/console/call-records/moscow/999999/recordings/x.opus", "hear", None),
]


@pytest.mark.anyio
@pytest.mark.parametrize("role", [r.value for r in Role])
async def test_each_role_may_do_what_its_permissions_say_and_nothing_else(
    app: Any, station: Station, role: str
) -> None:
    browser, csrf, _name = await signed_in(app, station, role)
    assert station.store is not None
    before = await station.store.call(lambda s: (len(s.drafts(("released",))), s.shift_notes()))
    for method, path, permission, body in ROUTES:
        answer = await browser.request(method, path, json=body, headers={"X-CSRF-Token": csrf})
        if permission in PERMISSIONS[Role(role)]:
            assert answer.status_code != 403, (role, path, answer.text)
            assert answer.status_code < 500, (role, path, answer.text)
        else:
            assert answer.status_code == 403, (role, path, answer.status_code)
    after = await station.store.call(lambda s: (len(s.drafts(("released",))), s.shift_notes()))
    if "draft" not in PERMISSIONS[Role(role)]:
        assert after[0] == before[0], "a refused draft sent nothing"
    if "shift_log" not in PERMISSIONS[Role(role)]:
        assert after[1] == before[1], "a refused note wrote nothing"


# -- drafting and the two-person rule --------------------------------------------------------------


@pytest.mark.anyio
async def test_a_principal_message_waits_for_another_supervisor(app: Any, station: Station) -> None:
    operator, op_csrf, op_name = await signed_in(app, station, "operator")
    boss, boss_csrf, boss_name = await signed_in(app, station, "supervisor")
    other, other_csrf, _ = await signed_in(app, station, "supervisor")
    text = "Request a call at 14:00 UTC. / Просим связаться в 14:00 UTC."
    drafted = await operator.post(
        "/console/drafts",
        json={"link": "moscow", "lane": "FLASH", "type": "principal", "text": text},
        headers={"X-CSRF-Token": op_csrf},
    )
    assert drafted.status_code == 201
    assert drafted.json()["state"] == "draft"
    draft_id = drafted.json()["id"]
    assert draft_id in [d["id"] for d in (await boss.get("/console/drafts")).json()]
    # A supervisor's own draft needs another supervisor too.
    own = await boss.post(
        "/console/drafts",
        json={"link": "moscow", "lane": "IMMEDIATE", "text": "own words"},
        headers={"X-CSRF-Token": boss_csrf},
    )
    own_release = await boss.post(
        f"/console/drafts/{own.json()['id']}/release", headers={"X-CSRF-Token": boss_csrf}
    )
    assert own_release.status_code == 403
    released = await boss.post(
        f"/console/drafts/{draft_id}/release", headers={"X-CSRF-Token": boss_csrf}
    )
    again = await other.post(
        f"/console/drafts/{draft_id}/release", headers={"X-CSRF-Token": other_csrf}
    )
    traffic = (await boss.get("/console/traffic/moscow")).json()
    assert released.status_code == 200
    assert released.json()["state"] == "released"
    assert released.json()["decided_by"] == boss_name
    assert again.status_code == 404, "released once, not twice"
    sent = [
        m for m in traffic["outbox"] if m["lane"] == "FLASH" and m["seq"] == released.json()["seq"]
    ]
    assert len(sent) == 1
    assert sent[0]["text"] == text
    assert sent[0]["state"] == "accepted"
    assert sent[0]["deadline_ns"] is not None
    assert sent[0]["overdue"] is False
    assert "drafted" in await audit_actions(station, op_name)
    assert "released" in await audit_actions(station, boss_name)


@pytest.mark.anyio
async def test_a_rejected_draft_is_never_sent(app: Any, station: Station) -> None:
    operator, op_csrf, _ = await signed_in(app, station, "operator")
    boss, boss_csrf, _ = await signed_in(app, station, "supervisor")
    drafted = await operator.post(
        "/console/drafts",
        json={"link": "moscow", "text": "never to go"},
        headers={"X-CSRF-Token": op_csrf},
    )
    rejected = await boss.post(
        f"/console/drafts/{drafted.json()['id']}/reject",
        json={"reason": "wrong recipient"},
        headers={"X-CSRF-Token": boss_csrf},
    )
    release = await boss.post(
        f"/console/drafts/{drafted.json()['id']}/release", headers={"X-CSRF-Token": boss_csrf}
    )
    texts = [m["text"] for m in (await boss.get("/console/traffic/moscow")).json()["outbox"]]
    assert rejected.json()["state"] == "rejected"
    assert release.status_code == 404
    assert "never to go" not in texts


@pytest.mark.anyio
async def test_a_rejection_says_why_and_the_author_is_shown_it(app: Any, station: Station) -> None:
    """Issue 15, item 16: no rejection without a reason; the author's list shows who rejected
    their draft and why (nobody else's does), and the audit log keeps it."""
    author, author_csrf, author_name = await signed_in(app, station, "operator")
    boss, boss_csrf, boss_name = await signed_in(app, station, "supervisor")
    drafted = await author.post(
        "/console/drafts",
        json={"link": "moscow", "text": "a draft to turn down"},
        headers={"X-CSRF-Token": author_csrf},
    )
    draft_id = drafted.json()["id"]
    for said in ({}, {"reason": "   "}):
        bare = await boss.post(
            f"/console/drafts/{draft_id}/reject", json=said, headers={"X-CSRF-Token": boss_csrf}
        )
        assert bare.status_code == 422, bare.text
    waiting = [d["id"] for d in (await boss.get("/console/drafts")).json()]
    assert draft_id in waiting, "a rejection without a reason changes nothing"
    rejected = await boss.post(
        f"/console/drafts/{draft_id}/reject",
        json={"reason": "the time is wrong: say 14:00 UTC"},
        headers={"X-CSRF-Token": boss_csrf},
    )
    assert rejected.status_code == 200, rejected.text
    mine = {d["id"]: d for d in (await author.get("/console/drafts")).json()}
    assert mine[draft_id]["state"] == "rejected"
    assert mine[draft_id]["decided_by"] == boss_name
    assert mine[draft_id]["reason"] == "the time is wrong: say 14:00 UTC"
    assert draft_id not in [d["id"] for d in (await boss.get("/console/drafts")).json()]
    assert station.store is not None
    rows = await station.store.call(lambda s: s.audit_log())
    details = [d for _i, _a, who, act, d, _l in rows if who == boss_name and act == "rejected"]
    assert details == [f"draft {draft_id} by {author_name}: the time is wrong: say 14:00 UTC"]


@pytest.mark.anyio
async def test_only_its_author_withdraws_a_draft_and_then_it_cannot_be_released(
    app: Any, station: Station
) -> None:
    author, author_csrf, author_name = await signed_in(app, station, "operator")
    boss, boss_csrf, _ = await signed_in(app, station, "supervisor")
    drafted = await author.post(
        "/console/drafts",
        json={"link": "moscow", "text": "sent by mistake"},
        headers={"X-CSRF-Token": author_csrf},
    )
    draft_id = drafted.json()["id"]
    not_theirs = await boss.post(
        f"/console/drafts/{draft_id}/withdraw", headers={"X-CSRF-Token": boss_csrf}
    )
    assert not_theirs.status_code == 403
    withdrawn = await author.post(
        f"/console/drafts/{draft_id}/withdraw", headers={"X-CSRF-Token": author_csrf}
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["state"] == "withdrawn"
    release = await boss.post(
        f"/console/drafts/{draft_id}/release", headers={"X-CSRF-Token": boss_csrf}
    )
    assert release.status_code == 404
    again = await author.post(
        f"/console/drafts/{draft_id}/withdraw", headers={"X-CSRF-Token": author_csrf}
    )
    assert again.status_code == 404
    assert draft_id not in [d["id"] for d in (await boss.get("/console/drafts")).json()]
    texts = [m["text"] for m in (await boss.get("/console/traffic/moscow")).json()["outbox"]]
    assert "sent by mistake" not in texts
    assert "withdrawn" in await audit_actions(station, author_name)


@pytest.mark.anyio
async def test_an_admin_changes_a_role_but_never_leaves_the_station_without_an_admin(
    app: Any, station: Station
) -> None:
    """Issue 15, item 17: a change of role is audited and ends the person's sessions; the last
    active admin can be neither disabled nor demoted, by anyone, themself included."""
    admin, csrf, admin_name = await signed_in(app, station, "admin")
    person, _, person_name = await signed_in(app, station, "operator")
    made = await admin.put(
        f"/console/operators/{person_name}",
        json={"role": "auditor"},
        headers={"X-CSRF-Token": csrf},
    )
    assert made.status_code == 200, made.text
    assert (await person.get("/console/me")).status_code == 401, "signed in again, as auditor"
    assert station.store is not None
    changed = await station.store.call(lambda s: s.operator(person_name))
    assert changed is not None
    assert changed.role == "auditor"
    rows = await station.store.call(lambda s: s.audit_log())
    assert (admin_name, "role changed", f"{person_name}: operator to auditor") in [
        (who, act, detail) for _i, _a, who, act, detail, _l in rows
    ]
    bad = await admin.put(
        f"/console/operators/{person_name}", json={"role": "king"}, headers={"X-CSRF-Token": csrf}
    )
    assert bad.status_code == 422
    others = [
        p["name"]
        for p in (await admin.get("/console/operators")).json()
        if p["role"] == "admin" and not p["disabled"] and p["name"] != admin_name
    ]
    for name in others:  # while another admin is active, an admin may be disabled
        put = await admin.put(
            f"/console/operators/{name}", json={"disabled": True}, headers={"X-CSRF-Token": csrf}
        )
        assert put.status_code == 200, put.text
    try:
        for change in ({"disabled": True}, {"role": "supervisor"}):
            refused = await admin.put(
                f"/console/operators/{admin_name}", json=change, headers={"X-CSRF-Token": csrf}
            )
            assert refused.status_code == 409, refused.text
            assert "last active admin" in refused.json()["detail"]
        still = await station.store.call(lambda s: s.operator(admin_name))
        assert still is not None
        assert (still.role, still.disabled) == ("admin", False)
        assert (await admin.get("/console/me")).status_code == 200
        with pytest.raises(ConfigError, match="last active admin"):  # nor at the station host
            await station.store.call(lambda s: set_disabled(s, admin_name, True))
    finally:
        for name in others:
            await station.store.call(functools.partial(set_disabled, name=name, disabled=False))


@pytest.mark.anyio
async def test_a_release_cut_short_by_a_stop_is_settled_by_its_send_key(station: Station) -> None:
    """A draft left `releasing`: released as the message sent under its key if that went,
    waiting again if not (a message of the same text sent otherwise is not taken for it)."""
    assert station.store is not None
    runtime = station.links["moscow"]
    now = time.time_ns()

    def releasing(text: str) -> Draft:
        return Draft(0, "moscow", Lane.PRIORITY, MessageType.PRINCIPAL, "en", text, "a", now,
                     "releasing", "b", now, None)  # fmt: skip

    went, stayed = releasing("it went"), releasing("it did not")
    went.id = await station.store.call(lambda s: s.add_draft(went))
    stayed.id = await station.store.call(lambda s: s.add_draft(stayed))
    await runtime.send(Lane.PRIORITY, MessageType.PRINCIPAL, "en", "it did not")
    sent = await runtime.send_once(
        Lane.PRIORITY, MessageType.PRINCIPAL, "en", "it went", draft_key(went.id)
    )
    await reconcile_drafts(station)
    after_went = await station.store.call(lambda s: s.draft(went.id))
    after_stayed = await station.store.call(lambda s: s.draft(stayed.id))
    assert after_went is not None
    assert after_stayed is not None
    assert (after_went.state, after_went.seq) == ("released", sent.envelope.seq)
    assert (after_stayed.state, after_stayed.seq) == ("draft", None)


# -- acknowledging, notes, audit, operators --------------------------------------------------------


@pytest.mark.anyio
async def test_acknowledging_a_message_that_is_not_there_is_a_clear_404(
    app: Any, station: Station
) -> None:
    browser, csrf, _ = await signed_in(app, station, "operator")
    answer = await browser.post(
        "/console/inbox/moscow/ROUTINE/4242/ack", json={}, headers={"X-CSRF-Token": csrf}
    )
    unknown_link = await browser.post(
        "/console/inbox/paris/ROUTINE/1/ack", json={}, headers={"X-CSRF-Token": csrf}
    )
    assert answer.status_code == 404
    assert "ROUTINE 4242" in answer.json()["detail"]
    assert unknown_link.status_code == 404


@pytest.mark.anyio
async def test_a_message_is_acknowledged_once_however_many_ask_at_the_same_time(
    app: Any, station: Station
) -> None:
    """Three officers at their consoles and three scripts on the API press at the same instant:
    one acknowledgement is signed and sent, the five others are told 409 (issue 13, item 9)."""
    seq = await arrived(station, "Подтвердите получение", lane=Lane.FLASH)
    path = f"moscow/FLASH/{seq}/ack"
    officers = [await signed_in(app, station, "operator") for _ in range(3)]
    api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_app(station)), base_url="http://127.0.0.1"
    )
    _open_clients.append(api)
    bearer = {"Authorization": f"Bearer {station.data.api_token()}"}
    by_console = [
        b.post(f"/console/inbox/{path}", headers={"X-CSRF-Token": c}) for b, c, _ in officers
    ]
    by_api = [
        api.post(f"/api/v1/links/moscow/inbox/FLASH/{seq}/ack", json={}, headers=bearer)
        for _ in range(3)
    ]
    answers = await asyncio.gather(*by_console, *by_api)
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409, 409, 409]
    refused = [a.json()["detail"] for a in answers if a.status_code == 409]
    assert all("acknowledged already" in detail for detail in refused)
    link_id = station.links["moscow"].link.config.link_id
    assert station.store is not None
    sent = await station.store.call(lambda s: s.outbox(link_id, 100))
    kind = MessageType.ACKNOWLEDGEMENT
    acks = [decode_envelope(bytes(row[6]), None).body for row in sent if row[2] == kind]
    assert [(a.lane, a.ref.seq) for a in acks if a.ref].count((Lane.FLASH, seq)) == 1
    browser, csrf, _ = officers[0]
    later = await browser.post(f"/console/inbox/{path}", headers={"X-CSRF-Token": csrf})
    assert later.status_code == 409
    acted = [await audit_actions(station, name) for _, _, name in officers]
    assert sum(actions.count("acknowledged") for actions in acted) <= 1


@pytest.mark.anyio
async def test_the_shift_log_and_the_audit_log(app: Any, station: Station) -> None:
    officer, csrf, name = await signed_in(app, station, "operator")
    auditor, _, _ = await signed_in(app, station, "auditor")
    written = await officer.post(
        "/console/shift-log",
        json={"text": "Hand-over: link quiet, test at 03:00 passed.", "handover": True},
        headers={"X-CSRF-Token": csrf},
    )
    notes = (await auditor.get("/console/shift-log")).json()
    audit = (await auditor.get("/console/audit")).json()["rows"]
    assert written.status_code == 201
    assert notes[0]["author"] == name
    assert notes[0]["handover"] is True
    assert any(a["actor"] == name and a["action"] == "hand-over" for a in audit)


@pytest.mark.anyio
async def test_an_admin_adds_resets_and_disables_operators(app: Any, station: Station) -> None:
    admin, csrf, admin_name = await signed_in(app, station, "admin")
    made = await admin.post(
        "/console/operators",
        json={"name": "night.shift", "role": "operator", "language": "ru"},
        headers={"X-CSRF-Token": csrf},
    )
    twice = await admin.post(
        "/console/operators",
        json={"name": "night.shift", "role": "operator"},
        headers={"X-CSRF-Token": csrf},
    )
    bad_role = await admin.post(
        "/console/operators",
        json={"name": "someone", "role": "president"},
        headers={"X-CSRF-Token": csrf},
    )
    assert made.status_code == 201
    assert twice.status_code == 409
    assert bad_role.status_code == 422
    assert "role" in bad_role.json()["detail"]
    code = made.json()["enrolment_code"]
    async with client(app) as night:  # the person, with the code the admin handed over
        secret = (
            await night.post("/console/login/enrol", json={"name": "night.shift", "code": code})
        ).json()["totp_secret"]
        enrolment = {"name": "night.shift", "code": code, "password": PASSWORD}
        login = await night.post(
            "/console/login/enrol/finish",
            json={**enrolment, "totp_code": pyotp.TOTP(secret).now()},
        )
        assert login.status_code == 200
        assert login.json()["language"] == "ru"
        disabled = await admin.put(
            "/console/operators/night.shift",
            json={"disabled": True},
            headers={"X-CSRF-Token": csrf},
        )
        assert disabled.status_code == 200
        assert (await night.get("/console/me")).status_code == 401, "sessions end at once"
    reset = await admin.put(
        "/console/operators/night.shift", json={"reset": True}, headers={"X-CSRF-Token": csrf}
    )
    assert set(reset.json()) == {"name", "enrolment_code", "expires_ns"}
    assert reset.json()["enrolment_code"] != code
    listed = {o["name"]: o for o in (await admin.get("/console/operators")).json()}
    assert listed["night.shift"]["disabled"] is True
    assert listed["night.shift"]["role"] == "operator"
    assert listed["night.shift"]["enrolment"]["made_by"] == admin_name
    actions = await audit_actions(station, admin_name)
    assert {"operator added", "operator disabled", "operator reset"} <= set(actions)


# -- the discipline: tests, deadlines, alarms ------------------------------------------------------


@pytest.mark.anyio
async def test_the_link_test_goes_every_interval_with_both_alphabets(station: Station) -> None:
    """No peer is running: the test is accepted, never receipted, and fails loudly."""
    assert station.store is not None
    discipline = station.discipline
    settings = station.config.console
    start = time.time_ns()
    link_id = station.links["moscow"].link.config.link_id
    before = await station.store.call(lambda s: s.last_sent(link_id, MessageType.TEST))
    await discipline.review(start if before is None else before[2] + settings.test_interval_s * S)
    first = await station.store.call(lambda s: s.last_sent(link_id, MessageType.TEST))
    assert first is not None
    assert first != before
    await discipline.review(first[2] + S)
    assert await station.store.call(lambda s: s.last_sent(link_id, MessageType.TEST)) == first
    late = first[2] + (settings.test_deadline_s + 1) * S
    await discipline.review(late)
    last_sent = discipline.tests["moscow"].last_sent
    assert last_sent is not None
    assert last_sent["state"] == "failed"
    assert "test_failed:moscow" in discipline.alarms
    await discipline.review(first[2] + settings.test_interval_s * S)
    second = await station.store.call(lambda s: s.last_sent(link_id, MessageType.TEST))
    assert second is not None
    assert second[1] == first[1] + 1
    assert "test_failed:moscow" in discipline.alarms, "failing until a test passes"
    traffic = await station.store.call(lambda s: s.outbox(link_id, 10))
    texts = [decode_envelope(bytes(row[6]), None).body.text for row in traffic if row[2] == 2]
    assert len(texts) >= 2
    alphabets = (string.ascii_uppercase, string.ascii_lowercase, RUSSIAN, RUSSIAN.upper())
    for letters in alphabets:
        assert set(letters) <= set(texts[0]), letters
    assert texts[0] != texts[1], "each test's text differs"


@pytest.mark.anyio
async def test_alarms_for_a_dead_link_and_an_overdue_message_and_their_silencing(
    app: Any, station: Station
) -> None:
    discipline = station.discipline
    runtime = station.links["moscow"]
    now = time.time_ns()
    await discipline.review(runtime.since_ns + 1)
    assert "link_down:moscow" not in discipline.alarms, "a short outage is not yet an alarm"
    envelope = await runtime.send(Lane.IMMEDIATE, MessageType.PRINCIPAL, "en", "answer, please")
    deadline = station.config.console.deadlines.immediate * S
    await discipline.review(now + deadline + DOWN_HOLD_NS + S)
    assert "link_down:moscow" in discipline.alarms
    overdue = discipline.alarms[f"overdue:moscow:IMMEDIATE:{envelope.seq}"]
    assert overdue.message is not None
    named = {k: overdue.message[k] for k in ("direction", "link", "lane", "seq", "type")}
    assert named == {"direction": "out", "link": "moscow", "lane": "IMMEDIATE",
                     "seq": envelope.seq, "type": "principal"}  # fmt: skip
    assert "text" not in overdue.message, "an alarm names its message, the text is fetched"
    translator, t_csrf, _ = await signed_in(app, station, "translator")
    officer, csrf, name = await signed_in(app, station, "operator")
    board = (await officer.get("/console/board")).json()
    assert {"link_down", "overdue"} <= {a["kind"] for a in board["alarms"]}
    refused = await translator.post(
        f"/console/alarms/{overdue.id}/silence", headers={"X-CSRF-Token": t_csrf}
    )
    silenced = await officer.post(
        f"/console/alarms/{overdue.id}/silence", headers={"X-CSRF-Token": csrf}
    )
    board = (await officer.get("/console/board")).json()
    assert refused.status_code == 403
    assert silenced.status_code == 204
    shown = {a["id"]: a for a in board["alarms"]}
    assert shown[overdue.id]["silenced"] is True, "silenced, still there until acknowledged"
    assert "silenced" in await audit_actions(station, name)


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012 - one test's mailbox

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alarms"
    server.shutdown()
    server.server_close()


@pytest.mark.anyio
async def test_alarms_go_to_the_webhook_when_raised_and_escalated(
    station: Station, webhook: str
) -> None:
    discipline = station.discipline
    discipline.settings = msgspec.structs.replace(discipline.settings, webhook=webhook)
    discipline.alarms.clear()
    _Hook.received.clear()
    runtime = station.links["moscow"]
    await discipline.review(runtime.since_ns + DOWN_HOLD_NS + S)
    await discipline.review(time.time_ns() + (discipline.settings.escalate_after_s + 10) * S)
    wanted = {("raised", "link_down"), ("escalated", "link_down")}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = [(r["event"], r["alarm"]["kind"]) for r in _Hook.received]
        if wanted <= set(events):
            break
        await asyncio.sleep(0.05)
    assert ("raised", "link_down") in events
    assert ("escalated", "link_down") in events
    assert all(r["station"] == "London" for r in _Hook.received)


# -- configuration ---------------------------------------------------------------------------------


def test_a_console_off_loopback_needs_tls_and_a_bad_setting_is_named(tmp_path: Path) -> None:
    london, _ = make_pair(tmp_path)
    config = london.data.config_file
    text = config.read_text()
    config.write_text(
        text.replace('[console]\nlisten = "127.0.0.1:', '[console]\nlisten = "0.0.0.0:')
    )
    with pytest.raises(ConfigError, match="tls_cert and tls_key are required"):
        london.data.config()
    config.write_text(text.replace('webhook = ""', 'webhook = "ftp://x"'))
    with pytest.raises(ConfigError, match="webhook"):
        london.data.config()
    config.write_text(text.replace("flash = 300", "flash = 0"))
    with pytest.raises(ConfigError, match="at least 1 s"):
        london.data.config()
    config.write_text(text + "\n[console.extra]\nx = 1\n")
    with pytest.raises(ConfigError):
        london.data.config()


def test_an_arriving_message_is_an_event_of_its_own_type(make_identity: Any) -> None:
    """The event's type says "message" (what the console and the alarms wait for); the
    envelope's own type travels beside it."""
    identity = make_identity()
    zero = b"\0" * 32
    body = EnvelopeBody(
        1, zero, 0, Lane.FLASH, 1, 1, MessageType.PRINCIPAL, "en", "x", zero, zero, None
    )
    event = describe("moscow", MessageReceived(Envelope.create(body, identity)))
    assert event["type"] == "message"
    assert event["message_type"] == "principal"
    assert event["lane"] == "FLASH"
    assert event["link"] == "moscow"


def test_a_console_with_a_certificate_speaks_only_tls_and_marks_its_cookie_secure(
    tmp_path: Path,
) -> None:
    london, _ = make_pair(tmp_path)
    data = london.data
    make_self_signed("London", "127.0.0.1", data.console_cert_file, data.console_key_file)
    config = data.config_file.read_text()
    config = config.replace('tls_cert = ""', f'tls_cert = "{data.console_cert_file}"')
    config = config.replace('tls_key = ""', f'tls_key = "{data.console_key_file}"')
    data.config_file.write_text(config)
    people = staff(london, [("olga", "operator")])
    london.start()
    try:
        address = data.config().console.listen
        context = ssl.create_default_context(cafile=str(data.console_cert_file))
        with httpx.Client(base_url=f"https://{address}", verify=context) as browser:
            page = browser.get("/")
            login = browser.post(
                "/console/login",
                json={"name": "olga", "password": PASSWORD, "code": people["olga"].code()},
            )
        assert page.status_code == 200
        assert page.headers["strict-transport-security"].startswith("max-age=")
        assert login.status_code == 200
        assert "Secure" in login.headers["set-cookie"]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{address}/", timeout=5)  # no plain HTTP beside it
    finally:
        london.close()


def test_a_station_made_with_its_console_off_loopback_gets_a_certificate(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "paris")
    with pytest.raises(ConfigError, match="not a wildcard"):
        data.init("Paris", b"a long passphrase", [], console="0.0.0.0:8999")
    data.init("Paris", b"a long passphrase", [], console="192.0.2.10:8999")
    console = data.config().console
    assert console.tls_cert == str(data.console_cert_file)
    assert data.console_key_file.stat().st_mode & 0o777 == 0o600
    assert b"BEGIN CERTIFICATE" in data.console_cert_file.read_bytes()


@pytest.mark.anyio
async def test_the_console_certificate_is_an_alarm_from_thirty_days_before_it_ends(
    station: Station, tmp_path: Path
) -> None:
    """Browsers refuse an expired certificate, and every operator with it (issue 13, item 17)."""
    ours, theirs = station.data.console_cert_file, tmp_path / "theirs.pem"
    make_self_signed("London", "192.0.2.10", ours, station.data.console_key_file)
    make_self_signed("London", "192.0.2.10", theirs, tmp_path / "theirs.key", days=400)
    ends = {cert: expires_ns(cert) for cert in (ours, theirs)}
    try:
        for cert, advice in ((ours, "hotline tls renew"), (theirs, "where it was issued")):
            settings = msgspec.structs.replace(
                station.config.console, tls_cert=str(cert), tls_key=str(cert)
            )
            discipline = Discipline(station, settings)
            warn_from = ends[cert] - WARN_DAYS * 86_400 * S
            await discipline.review(warn_from - S)
            assert "certificate" not in discipline.alarms
            await discipline.review(warn_from + S)
            alarm = discipline.alarms["certificate"]
            assert (alarm.kind, alarm.link, alarm.raised_ns) == ("certificate", "", warn_from)
            assert advice in alarm.text
            assert time.strftime("%Y-%m-%d", time.gmtime(ends[cert] // S)) in alarm.text
    finally:
        ours.unlink()
        station.data.console_key_file.unlink()


@pytest.mark.anyio
async def test_an_exercise_is_marked_and_its_messages_follow_the_same_rules(
    app: Any, station: Station
) -> None:
    boss, boss_csrf, boss_name = await signed_in(app, station, "supervisor")
    operator, op_csrf, _ = await signed_in(app, station, "operator")
    other, other_csrf, _ = await signed_in(app, station, "supervisor")
    started = await boss.post(
        "/console/exercise", json={"on": True}, headers={"X-CSRF-Token": boss_csrf}
    )
    assert started.json() == {"exercise": True}
    assert (await operator.get("/console/board")).json()["exercise"] is True
    drafted = await operator.post(
        "/console/drafts",
        json={"link": "moscow", "lane": "IMMEDIATE", "type": "exercise", "text": "drill: respond"},
        headers={"X-CSRF-Token": op_csrf},
    )
    assert drafted.json()["state"] == "draft", "an exercise message waits for release too"
    released = await other.post(
        f"/console/drafts/{drafted.json()['id']}/release", headers={"X-CSRF-Token": other_csrf}
    )
    seq = released.json()["seq"]
    deadline = station.config.console.deadlines.immediate * S
    await station.discipline.review(time.time_ns() + deadline + S)
    alarm = station.discipline.alarms[f"overdue:moscow:IMMEDIATE:{seq}"]
    assert alarm.text.startswith("EXERCISE ")
    assert alarm.message is not None
    assert alarm.message["type"] == "exercise"
    ended = await boss.post(
        "/console/exercise", json={"on": False}, headers={"X-CSRF-Token": boss_csrf}
    )
    assert ended.json() == {"exercise": False}
    assert station.store is not None
    assert await station.store.call(lambda s: s.setting("exercise", "?")) == "0"
    assert {"exercise started", "exercise ended"} <= set(await audit_actions(station, boss_name))


@pytest.mark.anyio
async def test_an_account_disabled_elsewhere_ends_its_sessions_and_refreshes_do_not_count(
    app: Any, station: Station
) -> None:
    browser, _, name = await signed_in(app, station, "operator")
    (session,) = [s for s in app.state.console.sessions._sessions.values() if s.operator == name]
    session.last_seen -= 100
    seen = session.last_seen
    refresh = await browser.get("/console/drafts", headers={"X-Hotline-Background": "1"})
    assert refresh.status_code == 200
    assert session.last_seen == seen, "a page's own refresh is not a person's activity"
    assert station.store is not None
    await station.store.call(lambda s: s.update_operator(name, disabled=True))  # as the CLI does
    session.checked -= 60
    assert (await browser.get("/console/me")).status_code == 401


@pytest.mark.anyio
async def test_the_event_stream_of_an_account_disabled_elsewhere_ends_within_ten_seconds(
    app: Any, station: Station
) -> None:
    """The stream carries what the board shows, FLASH texts among it: it must not outlive the
    account by more than the 10 s promised (issue 13, item 13)."""
    browser, _, name = await signed_in(app, station, "operator")
    (session,) = [s for s in app.state.console.sessions._sessions.values() if s.operator == name]
    stream = asyncio.create_task(browser.get("/console/events"))
    await asyncio.sleep(0.5)
    assert not stream.done(), "the stream stays open while the account is as it was"
    assert station.store is not None
    await station.store.call(lambda s: set_disabled(s, name, True))  # as the CLI does
    session.checked -= 10  # the account was last read 10 s ago, just before it was disabled
    try:
        ended = await asyncio.wait_for(asyncio.shield(stream), 5)
    finally:
        stream.cancel()
    assert ended.status_code == 200
    assert ended.text.startswith("event: board")
    assert session not in app.state.console.sessions._sessions.values(), "the session is over"
    assert (await browser.get("/console/me")).status_code == 401


@pytest.mark.anyio
async def test_what_the_console_refuses_to_send_and_out_of_range_numbers(
    app: Any, station: Station
) -> None:
    operator, csrf, _ = await signed_in(app, station, "operator")
    boss, boss_csrf, _ = await signed_in(app, station, "supervisor")
    headers = {"X-CSRF-Token": csrf}
    flash = await operator.post(
        "/console/drafts",
        json={"link": "moscow", "lane": "FLASH", "type": "service", "text": "all hands"},
        headers=headers,
    )
    assert flash.json()["state"] == "draft", "anything in the FLASH lane waits for release"
    test = await operator.post(
        "/console/drafts", json={"link": "moscow", "type": "test", "text": "x"}, headers=headers
    )
    surrogate = await operator.post(
        "/console/drafts",
        content=b'{"link": "moscow", "text": "bad \\ud800 text"}',
        headers={**headers, "Content-Type": "application/json"},
    )
    huge = await boss.post(f"/console/drafts/{10**30}/release", headers={"X-CSRF-Token": boss_csrf})
    assert test.status_code == 422, "the link test is the station's own"
    assert surrogate.status_code == 422
    assert huge.status_code == 422


@pytest.mark.anyio
async def test_one_address_may_try_to_sign_in_only_so_often(app: Any, station: Station) -> None:
    browser = client(app)
    attempt = {"name": "someone", "password": "guess", "code": "000000"}
    answers = [(await browser.post("/console/login", json=attempt)).status_code for _ in range(21)]
    assert answers == [401] * 20 + [429]
    assert (await audit_actions(station, "someone")).count("login refused") == 20


@pytest.mark.anyio
async def test_a_bad_language_tag_or_a_control_is_refused_when_drafted_or_translated(
    app: Any, station: Station
) -> None:
    """Issue 13, item 4: the envelope's and the annotation's rules, said at once (422) rather
    than when the draft is released or the annotation signed."""
    operator, csrf, _ = await signed_in(app, station, "operator")
    translator, t_csrf, _ = await signed_in(app, station, "translator")
    seq = await arrived(station, "Проверка связи.")
    for change in ({"language": "en_GB"}, {"language": "en-GB-GB"}, {"text": "ring\x07"}):
        body = {"link": "moscow", "text": "x", "language": "en", **change}
        drafted = await operator.post("/console/drafts", json=body, headers={"X-CSRF-Token": csrf})
        assert drafted.status_code == 422, change
        translation = {"language": "en", "text": "Link check.", **change}
        translated = await translator.post(
            f"/console/messages/moscow/in/ROUTINE/{seq}/translations",
            json=translation,
            headers={"X-CSRF-Token": t_csrf},
        )
        assert translated.status_code == 422, change
    fine = await translator.post(
        f"/console/messages/moscow/in/ROUTINE/{seq}/translations",
        json={"language": "en-GB", "text": "Link\tcheck.\n"},
        headers={"X-CSRF-Token": t_csrf},
    )
    assert fine.status_code == 201, fine.text
