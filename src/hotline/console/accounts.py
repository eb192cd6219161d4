"""The console's accounts: the admin's page (list, add, disable, enable, reset) and the enrolment
page where a new or reset account's person takes it up (issue 13, item 10; operators.py says
why it is so).

Enrolment is two requests under /console/login/ (where the browser sends its `hotline_device`
cookie, so the audit can say whose browser it was):

1. `POST /console/login/enrol {name, code}`: the code is checked (not spent) and a new TOTP
   secret is made and shown to this page only; the station keeps it in memory for
   PENDING_S, against the code.
2. `POST /console/login/enrol/finish {name, code, password, totp_code}`: a current code from the
   authenticator proves the secret was stored; the enrolment code is spent, the password and the
   secret written, in one transaction, and the person is signed in (that code is spent too).

A station restart between the two forgets the secret: the person starts again, the code still
good. Wrong codes count as failed sign-ins from the address (guard.py); one for an account that
waits for enrolment is audited.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

import pyotp
import segno
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hotline.console.auth import TOTP_STEP_S, Session, new_totp_secret, totp_uri
from hotline.console.guard import DEVICE_COOKIE, DEVICE_COOKIE_S
from hotline.console.operators import (
    MIN_PASSWORD,
    EnrolmentCode,
    LastAdmin,
    add_operator,
    code_hash,
    complete_enrolment,
    expire_enrolments,
    pending_enrolment,
    reset_operator,
    set_disabled,
    set_role,
)
from hotline.console.security import COOKIE, Admin, Console, ConsoleDep, check_origin
from hotline.errors import ConfigError, StoreError
from hotline.store.people import Operator

__all__ = ["me_json", "router", "signed_in_answer"]

router = APIRouter()
PENDING_S = 900.0  # a TOTP secret shown on the enrolment page waits this long for its proof
_REFUSED = "wrong name or enrolment code, or the code has expired or been used"


class EnrolStart(BaseModel):
    name: str = Field(max_length=64)
    code: str = Field(max_length=64)


class EnrolFinish(EnrolStart):
    password: str = Field(min_length=MIN_PASSWORD, max_length=1024)
    totp_code: str = Field(max_length=16)


class NewOperator(BaseModel):
    name: str
    role: str
    language: str = "en"


class OperatorChange(BaseModel):
    disabled: bool | None = None
    reset: bool = False
    role: str | None = None


def me_json(session: Session) -> dict[str, Any]:
    return {
        "operator": session.operator,
        "role": session.role.value,
        "language": session.language,
        "csrf": session.csrf,
        "permissions": sorted(session.permissions),
    }


def signed_in_answer(console: Console, operator: Operator, device: str | None) -> JSONResponse:
    """A new session for `operator`, its cookie, and this browser known for the name."""
    token, session = console.sessions.open(operator)
    answer = JSONResponse(me_json(session))
    answer.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=console.tls, path="/")
    answer.set_cookie(
        DEVICE_COOKIE, console.devices.signed_in(device, operator.name), max_age=DEVICE_COOKIE_S,
        httponly=True, samesite="strict", secure=console.tls, path="/console/login",
    )  # fmt: skip
    return answer


# -- enrolment -------------------------------------------------------------------------------


def _pending(request: Request) -> dict[str, tuple[str, str, float]]:
    """name -> (TOTP secret shown, the code's hash, when): this console's, in memory only."""
    state = request.app.state
    if not hasattr(state, "enrolling"):
        state.enrolling = {}
    pending: dict[str, tuple[str, str, float]] = state.enrolling
    now = time.monotonic()
    for stale in [n for n, (_, _, at) in pending.items() if now - at > PENDING_S]:
        del pending[stale]
    return pending


async def _refuse(console: Console, address: str, name: str, why: str) -> HTTPException:
    """Count the failure; audit it if the account waits for enrolment (someone has its name and
    tries codes). Every refusal reads the same."""
    console.failures.failed(address)
    if await console.store(lambda s: s.enrolment(name)) is not None:
        await console.audit(name, "enrolment refused", f"{why} from {address}")
    return HTTPException(401, _REFUSED)


async def _checked(request: Request, console: Console) -> tuple[str, int]:
    """The caller's address and now, once the address is not past its failures and the codes
    whose time is up are gone (and audited)."""
    check_origin(request)
    address = request.client.host if request.client else "?"
    if console.failures.over(address):
        raise HTTPException(429, "too many failed attempts from here; wait a minute")
    now = time.time_ns()
    await console.store(lambda s: expire_enrolments(s, now))
    return address, now


@router.post("/login/enrol")
async def enrol(request: Request, start: EnrolStart, console: ConsoleDep) -> dict[str, Any]:
    name, code = start.name, start.code
    address, now = await _checked(request, console)
    waiting = await console.store(lambda s: pending_enrolment(s, name, code, now))
    if waiting is None:
        raise await _refuse(console, address, name, "wrong, spent or expired code")
    secret = new_totp_secret()
    _pending(request)[name] = (secret, waiting.code_hash, time.monotonic())
    await console.audit(name, "enrolment begun", f"with the code {waiting.made_by} made")
    station = console.station.card.body.name
    uri = totp_uri(station, name, secret)
    return {
        "name": name,
        "totp_secret": secret,
        "totp_uri": uri,
        "totp_qr": qr_image(uri),
        "expires_ns": waiting.expires_ns,
    }


def qr_image(text: str) -> str:
    """`text` as a QR code, an SVG image drawn here (by segno, with no network and no script in
    the page) as a data: address for an <img> (the console's CSP allows `img-src data:`), for the
    person's authenticator app to scan. Black on white with a quiet zone, as scanners want."""
    code = segno.make(text, error="m")
    return str(code.svg_data_uri(scale=4, border=4, dark="#000", light="#fff"))


def _confirmed_step(secret: str, code: str, now_ns: int) -> int | None:
    """The time step (now, or one either side) whose TOTP code `code` is (as auth.py checks)."""
    code = code.strip()
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp, step = pyotp.TOTP(secret), now_ns // 1_000_000_000 // TOTP_STEP_S
    for candidate in (step, step - 1, step + 1):
        if hmac.compare_digest(totp.at(candidate * TOTP_STEP_S), code):
            return candidate
    return None


@router.post("/login/enrol/finish")
async def finish(request: Request, done: EnrolFinish, console: ConsoleDep) -> JSONResponse:
    name, code = done.name, done.code
    address, now = await _checked(request, console)
    shown = _pending(request).get(name)
    if shown is None or not hmac.compare_digest(shown[1], code_hash(name, code)):
        raise await _refuse(console, address, name, "no secret shown for this code")
    step = _confirmed_step(shown[0], done.totp_code, now)
    if step is None:
        raise HTTPException(422, "that is not the authenticator's code for the secret shown")
    used = await console.store(
        lambda s: complete_enrolment(s, name, code, done.password, shown[0], now, step)
    )
    if used is None:
        raise await _refuse(console, address, name, "wrong, spent or expired code")
    _pending(request).pop(name, None)
    console.sessions.close_operator(name)
    device = request.cookies.get(DEVICE_COOKIE)
    maker = used.made_by
    whose = f"{maker}'s browser" if console.devices.known(device, maker) else "a browser"
    where = f"{whose} at {address}"
    await console.audit(name, "enrolled", f"with the code {maker} made; from {where}")
    operator: Operator | None = await console.store(lambda s: s.operator(name))
    if operator is None:  # gone meanwhile: nobody deletes accounts, but never sign in a ghost
        raise HTTPException(404, f"no operator named {name!r}")
    if operator.disabled:  # enrolled, but signed in only once an admin enables it
        raise HTTPException(403, "enrolled; this account is disabled: ask an admin to enable it")
    return signed_in_answer(console, operator, device)


# -- the admin's page --------------------------------------------------------------------------


def _made(made: EnrolmentCode) -> dict[str, Any]:
    return {"name": made.name, "enrolment_code": made.code, "expires_ns": made.expires_ns}


@router.get("/operators")
async def operators(_: Admin, console: ConsoleDep) -> list[dict[str, Any]]:
    now, hold_ns = time.time_ns(), console.settings.new_account_hold_h * 3600 * 10**9
    await console.store(lambda s: expire_enrolments(s, now))
    people = await console.store(lambda s: s.operators())
    waiting = {e.name: e for e in await console.store(lambda s: s.enrolments())}
    return [
        {
            "name": p.name,
            "role": p.role,
            "language": p.language,
            "disabled": p.disabled,
            "locked_until_ns": p.locked_until_ns,
            "enrolled_ns": p.enrolled_ns or None,
            "hold_until_ns": p.enrolled_ns + hold_ns if p.enrolled_ns else None,
            "enrolment": (
                {"made_by": e.made_by, "made_ns": e.made_ns, "expires_ns": e.expires_ns}
                if (e := waiting.get(p.name))
                else None
            ),
        }
        for p in people
    ]


@router.post("/operators", status_code=201)
async def new_operator(new: NewOperator, session: Admin, console: ConsoleDep) -> dict[str, Any]:
    """The account waits for its person; the admin is shown only its enrolment code."""
    now, by = time.time_ns(), session.operator
    try:
        made = await console.store(
            lambda s: add_operator(s, new.name, new.role, now, by, new.language)
        )
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    except StoreError as exc:
        raise HTTPException(409, str(exc)) from None
    return _made(made)


@router.put("/operators/{name}")
async def change_operator(
    name: str, change: OperatorChange, session: Admin, console: ConsoleDep
) -> dict[str, Any]:
    """A reset, or a change of role and/or of disabled, each audited. The last active admin
    cannot be disabled or given another role (409), whoever asks, themself included."""
    now, by = time.time_ns(), session.operator
    if await console.store(lambda s: s.operator(name)) is None:
        raise HTTPException(404, f"no operator named {name!r}")
    try:
        if change.reset:
            made = await console.store(lambda s: reset_operator(s, name, now, by))
            console.sessions.close_operator(name)
            return _made(made)
        if change.role is None and change.disabled is None:
            raise HTTPException(422, "say what to change: role, disabled, or reset")
        answer: dict[str, Any] = {"name": name}
        if change.role is not None:
            role = change.role
            before = await console.store(lambda s: set_role(s, name, role, now, by))
            if before != role:  # their permissions change: they sign in again under the new role
                console.sessions.close_operator(name)
            answer["role"] = role
        if change.disabled is not None:
            disabled = change.disabled
            await console.store(lambda s: set_disabled(s, name, disabled))
            if disabled:
                console.sessions.close_operator(name)
            action = "operator disabled" if disabled else "operator enabled"
            await console.audit(by, action, name)
            answer["disabled"] = disabled
    except LastAdmin as exc:
        await console.audit(by, "operator change refused", str(exc))
        raise HTTPException(409, str(exc)) from None
    except (ConfigError, StoreError) as exc:
        raise HTTPException(422, str(exc)) from None
    return answer
