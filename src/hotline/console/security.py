"""Who is asking, and may they: the console's sessions, permissions, CSRF and origin checks, as
FastAPI dependencies. A route names what it needs in its signature (`Releaser`, `Viewer`...),
so the permission a route checks can be read where the route is written."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request

from hotline.console.auth import Session, SessionBook
from hotline.station.datadir import ConsoleSection

if TYPE_CHECKING:
    from hotline.station.link_runtime import LinkRuntime
    from hotline.station.runtime import Station

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
ATTEMPTS_PER_MINUTE = 20  # sign-ins from one address
RECHECK_S = 10.0  # a session sees its account disabled or reset (say from the CLI) this soon


@dataclass
class Console:
    """What every route works with: the station, the console's settings, the signed-in people."""

    station: Station
    settings: ConsoleSection
    sessions: SessionBook
    tls: bool
    _login_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _attempts: dict[str, deque[float]] = field(default_factory=dict)

    def too_many_attempts(self, address: str) -> bool:
        """More than ATTEMPTS_PER_MINUTE sign-ins from one address in the last minute: refused
        before any password is checked or any audit row written, so one client can neither
        guess fast nor flood the audit log."""
        now = time.monotonic()
        if len(self._attempts) > MAX_LOGIN_LOCKS:
            for idle in [a for a, times in self._attempts.items() if now - times[-1] > 60]:
                del self._attempts[idle]
        times = self._attempts.setdefault(address, deque())
        while times and now - times[0] > 60:
            times.popleft()
        if len(times) >= ATTEMPTS_PER_MINUTE:
            return True
        times.append(now)
        return False

    def login_lock(self, name: str) -> asyncio.Lock:
        if len(self._login_locks) > MAX_LOGIN_LOCKS:  # names tried and gone: forget the idle
            for idle in [n for n, lock in self._login_locks.items() if not lock.locked()]:
                del self._login_locks[idle]
        return self._login_locks.setdefault(name, asyncio.Lock())

    async def store(self, work: Callable[[Any], Any]) -> Any:
        assert self.station.store is not None  # the console starts after the store
        return await self.station.store.call(work)

    async def audit(self, actor: str, action: str, detail: str) -> None:
        now = time.time_ns()
        await self.store(lambda s: s.audit_person(actor, action, detail, now))

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
