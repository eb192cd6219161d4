"""Who is asking, and may they: the console's sessions, permissions, CSRF and origin checks, as
FastAPI dependencies. A route names what it needs in its signature (`Releaser`, `Viewer`...),
so the permission a route checks can be read where the route is written."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request

from hotline.console.auth import LoginResult, Session, SessionBook, check_login, password_matches
from hotline.console.guard import AddressFailures, DeviceBook, device_key
from hotline.station.datadir import ConsoleSection

if TYPE_CHECKING:
    from hotline.station.link_runtime import LinkRuntime
    from hotline.station.runtime import Station
    from hotline.store.people import Operator

__all__ = [
    "COOKIE",
    "Acknowledger",
    "Admin",
    "Auditor",
    "Certifier",
    "Console",
    "ConsoleDep",
    "Drafter",
    "Notetaker",
    "Releaser",
    "Reviewer",
    "SignedIn",
    "Silencer",
    "Translator",
    "Viewer",
    "account_holds",
    "allowed_hosts",
    "check_origin",
]

COOKIE = "hotline_session"
MAX_LOGIN_LOCKS = 1000
RECHECK_S = 10.0  # a session sees its account disabled or reset (say from the CLI) this soon


@dataclass
class Console:
    """What every route works with: the station, the console's settings, the signed-in people."""

    station: Station
    settings: ConsoleSection
    sessions: SessionBook
    tls: bool
    _login_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    failures: AddressFailures = field(default_factory=AddressFailures)
    devices: DeviceBook = field(init=False)

    def __post_init__(self) -> None:
        self.devices = DeviceBook(device_key(self.station.identity))

    async def sign_in(
        self, address: str, cookie: str | None, name: str, password: str, code: str
    ) -> tuple[LoginResult, Operator | None, bool]:
        """Decide one sign-in (guard.py, auth.py): the result, the operator as read, and
        whether the browser is known for the name. From a new device at an address past its
        failures, 429 before any check or audit row; a known one is never refused so."""
        device = self.devices.known(cookie, name)
        if device is None and self.failures.over(address):
            raise HTTPException(429, "too many failed sign-ins from here; wait a minute")
        before = await self.store(lambda s: s.operator(name))
        password_ok = await asyncio.to_thread(password_matches, before, password)
        # One decision per name at a time: the count of failed codes and the last code used
        # are read, checked and written as one step, so parallel guesses each count, and a
        # code signs in once. The slow Argon2 is done before: no one waits behind a flood.
        async with self.login_lock(name):
            operator = await self.store(lambda s: s.operator(name))
            same = (  # the password checked is still the account's: not reset meanwhile
                before is not None
                and operator is not None
                and before.password_hash == operator.password_hash
            )
            result = check_login(operator, password_ok and same, code, time.time_ns(), bool(device))
            if result.changes:
                changes = result.changes
                await self.store(lambda s: s.update_operator(name, **changes))
        if device is not None and not result.ok:
            self.devices.failed(device, name)
        elif device is None and not result.ok:
            self.failures.failed(address)
        return result, operator, device is not None

    def login_lock(self, name: str) -> asyncio.Lock:
        if len(self._login_locks) > MAX_LOGIN_LOCKS:  # names tried and gone: forget the idle
            for idle in [n for n, lock in self._login_locks.items() if not lock.locked()]:
                del self._login_locks[idle]
        return self._login_locks.setdefault(name, asyncio.Lock())

    async def store(self, work: Callable[[Any], Any]) -> Any:
        assert self.station.store is not None  # the console starts after the store
        return await self.station.store.call(work)

    async def audit(self, actor: str, action: str, detail: str, link: str | None = None) -> None:
        """A person's act in the audit log; `link`: the link it concerns, by name, kept by its
        id (the audit's Link column), when the station has it."""
        now, runtime = time.time_ns(), self.station.links.get(link) if link else None
        link_id = runtime.link.config.link_id if runtime is not None else None
        await self.store(lambda s: s.audit_person(actor, action, detail, now, link_id))

    def link(self, name: str) -> LinkRuntime:
        runtime = self.station.links.get(name)
        if runtime is None:
            raise HTTPException(404, f"no link named {name!r}")
        return runtime


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


ConsoleDep = Annotated[Console, Depends(_console)]


def allowed_hosts(listen: str) -> frozenset[str] | None:
    """The Host headers a browser sends for the console's address (None: any, for a console on
    a wildcard address, whose name only its certificate knows). Checking them stops DNS
    rebinding: a page elsewhere whose name is made to point at the console's address."""
    host, _, port = listen.rpartition(":")
    if host.strip("[]") in ("0.0.0.0", "::"):  # noqa: S104 - recognising it, not binding it
        return None
    names = {listen}
    if host in ("127.0.0.1", "[::1]"):
        names.add(f"localhost:{port}")
    return frozenset(names)


def check_origin(request: Request) -> None:
    """A browser says where a request comes from; a change from another page is refused. The
    Host itself was checked against the console's own address (app.py)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host')}":
        raise HTTPException(403, "a change from another origin is refused")


async def account_holds(
    console: Console, token: str | None, session: Session, every_s: float = RECHECK_S
) -> bool:
    """Whether the session's account is still as it signed in: read again from the store once
    `every_s` has passed, since it may be disabled or reset elsewhere (the CLI writes the store).
    A session whose account changed is closed."""
    if time.monotonic() - session.checked <= every_s:
        return True
    operator = await console.store(lambda s: s.operator(session.operator))
    if operator is None or not session.still(operator):
        console.sessions.close(token)
        return False
    session.checked = time.monotonic()
    return True


async def _signed_in(request: Request, console: ConsoleDep) -> Session:
    token = request.cookies.get(COOKIE)
    # A page's own refresh after an event is not a person's activity: it must not keep an
    # unattended console signed in.
    background = request.method == "GET" and "x-hotline-background" in request.headers
    session = console.sessions.peek_session(token) if background else console.sessions.get(token)
    if session is None:
        raise HTTPException(401, "not signed in, or signed out after being idle")
    if not await account_holds(console, token, session):  # disabled or reset from the CLI?
        raise HTTPException(401, "this account was disabled, reset or changed")
    if request.method != "GET":
        check_origin(request)
        token = request.headers.get("x-csrf-token", "")
        if not hmac.compare_digest(token.encode(), session.csrf.encode()):
            raise HTTPException(403, "missing or wrong CSRF token")
    return session


SignedIn = Annotated[Session, Depends(_signed_in)]


def _allowed(permission: str) -> Callable[[Session], Session]:
    def check(session: SignedIn) -> Session:
        if permission not in session.permissions:
            raise HTTPException(403, f"the {session.role.value} role may not {permission}")
        return session

    return check


Viewer = Annotated[Session, Depends(_allowed("view"))]
Drafter = Annotated[Session, Depends(_allowed("draft"))]
Releaser = Annotated[Session, Depends(_allowed("release"))]
Acknowledger = Annotated[Session, Depends(_allowed("acknowledge"))]
Silencer = Annotated[Session, Depends(_allowed("silence"))]
Notetaker = Annotated[Session, Depends(_allowed("shift_log"))]
Auditor = Annotated[Session, Depends(_allowed("audit"))]
Admin = Annotated[Session, Depends(_allowed("admin"))]
Translator = Annotated[Session, Depends(_allowed("translate"))]
Reviewer = Annotated[Session, Depends(_allowed("review"))]
Certifier = Annotated[Session, Depends(_allowed("certify"))]


allowed = _allowed  # for routes elsewhere that name a permission of their own
