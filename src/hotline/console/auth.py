"""Who may sign in to the console, and what each person may do there.

Passwords are kept as Argon2id hashes in PHC form (`cryptography` derives and verifies them);
the second factor is a TOTP code (RFC 6238, by `pyotp`), each accepted once. Five failures in a
row lock an account, for 30 s and then twice as long after each further failure, up to a
quarter of an hour: enough to stop guessing (a few hundred tries a day against a million codes),
short enough that a duty officer is back within minutes. Someone who can reach the console can
keep an account locked by failing on purpose; the console listens on loopback, or on TLS, for
that reason, and an admin can always `reset` an account.
Sessions live in the station's memory: a restart signs everyone out, which is the safe way round.
"""

from __future__ import annotations

import enum
import hmac
import secrets
import time
from dataclasses import dataclass, field

import pyotp
from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from hotline.store.people import Operator

__all__ = [
    "PERMISSIONS",
    "Role",
    "SessionBook",
    "check_login",
    "hash_password",
    "new_password",
    "new_totp_secret",
    "totp_uri",
]


class Role(enum.StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    TRANSLATOR = "translator"
    AUDITOR = "auditor"
    ADMIN = "admin"


PERMISSIONS: dict[Role, frozenset[str]] = {
    # Calls: "call" places and answers principal calls, "interpret" joins one as interpreter,
    # "listen" as a muted note-taker (docs/console.md).
    Role.OPERATOR: frozenset(
        {"view", "draft", "acknowledge", "silence", "shift_log", "call", "listen"}
    ),
    Role.SUPERVISOR: frozenset(
        {
            "view",
            "draft",
            "release",
            "acknowledge",
            "silence",
            "shift_log",
            "translate",
            "review",
            "certify",
            "call",
            "interpret",
            "listen",
        }
    ),
    Role.TRANSLATOR: frozenset({"view", "shift_log", "translate", "review", "interpret", "listen"}),
    Role.AUDITOR: frozenset({"view", "audit"}),
    Role.ADMIN: frozenset({"view", "admin"}),
}

LANGUAGES = ("en", "ru")
LOCK_AFTER = 5
FIRST_LOCK_S = 30
LONGEST_LOCK_S = 900
TOTP_STEP_S = 30


# OWASP's second Argon2id setting (19 MiB, 2 passes): a login costs tens of milliseconds, a
# stolen hash costs a guesser as much per try. The keystore uses more: it is unsealed once.
def hash_password(password: str) -> str:
    kdf = Argon2id(
        salt=secrets.token_bytes(16), length=32, iterations=2, lanes=1, memory_cost=19 * 1024
    )
    return kdf.derive_phc_encoded(password.encode())


def _password_matches(password: str, phc: str) -> bool:
    try:
        Argon2id.verify_phc_encoded(password.encode(), phc)
    except (InvalidKey, ValueError):
        return False
    return True


def new_password() -> str:
    """A first password for a new or reset account: 16 random characters, read out once."""
    return secrets.token_urlsafe(12)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(station: str, name: str, secret: str) -> str:
    """The otpauth:// address an authenticator app reads (usually from a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=f"Hotline {station}")


@dataclass(frozen=True, slots=True)
class LoginResult:
    ok: bool
    locked: bool
    changes: dict[str, object]  # what to write back to the operator's row
    reason: str  # for the audit log, never for the person at the login page


def check_login(operator: Operator | None, password: str, code: str, now_ns: int) -> LoginResult:
    """Decide a login. The caller stores `changes` and audits `reason`, and must not let two
    logins of one name interleave (routes.py holds a lock per name): the failure count and the
    last code used are read here and written there. A wrong name or a disabled account costs as
    much as a wrong password, so the answer's timing does not say which names exist."""
    if operator is None:
        _password_matches(password, _DUMMY_HASH)
        return LoginResult(False, False, {}, "no such operator")
    password_ok = _password_matches(password, operator.password_hash)  # first: same timing
    if operator.disabled:
        return LoginResult(False, False, {}, "account disabled")
    if operator.locked_until_ns > now_ns:
        return LoginResult(False, True, {}, "account locked")
    step = now_ns // 1_000_000_000 // TOTP_STEP_S
    code_step = _totp_step(operator.totp_secret, code, step)
    if password_ok and code_step is not None and code_step > operator.last_totp_step:
        return LoginResult(True, False, {"failures": 0, "last_totp_step": code_step}, "signed in")
    failures = operator.failures + 1
    changes: dict[str, object] = {"failures": failures}
    if failures >= LOCK_AFTER:
        lock_s = min(FIRST_LOCK_S * 2 ** (failures - LOCK_AFTER), LONGEST_LOCK_S)
        changes["locked_until_ns"] = now_ns + lock_s * 1_000_000_000
    if not password_ok:
        reason = "wrong password"
    elif code_step is None:
        reason = "wrong code"
    else:
        reason = "code used before"
    return LoginResult(False, False, changes, reason)


def _totp_step(secret: str, code: str, step: int) -> int | None:
    """The time step (now, or one either side for clock drift) whose code `code` is."""
    code = code.strip()
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    for candidate in (step, step - 1, step + 1):
        if hmac.compare_digest(totp.at(candidate * TOTP_STEP_S), code):
            return candidate
    return None


_DUMMY_HASH = hash_password(secrets.token_urlsafe(12))


# -- sessions ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Session:
    operator: str
    role: Role
    language: str
    credentials: str  # the password hash it signed in with: a reset changes it
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_seen: float = field(default_factory=time.monotonic)
    checked: float = field(default_factory=time.monotonic)  # when the account was last read

    def still(self, operator: Operator) -> bool:
        """Whether the account is as it was: not disabled, not reset, the same role."""
        return (
            not operator.disabled
            and operator.password_hash == self.credentials
            and operator.role == self.role.value
        )

    @property
    def permissions(self) -> frozenset[str]:
        return PERMISSIONS[self.role]


class SessionBook:
    """The signed-in people, by the random token in their cookie."""

    def __init__(self, idle_timeout_s: float) -> None:
        self.idle_timeout_s = idle_timeout_s
        self._sessions: dict[str, Session] = {}

    def open(self, operator: Operator) -> tuple[str, Session]:
        now = time.monotonic()
        for stale in [
            t for t, s in self._sessions.items() if now - s.last_seen > self.idle_timeout_s
        ]:
            del self._sessions[stale]  # swept here, so sessions nobody ends do not pile up
        token = secrets.token_urlsafe(32)
        session = Session(
            operator.name, Role(operator.role), operator.language, operator.password_hash
        )
        self._sessions[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The session, if it exists and has not been idle too long; touching it keeps it."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.idle_timeout_s:
            del self._sessions[token]
            return None
        session.last_seen = now
        return session

    def peek_session(self, token: str | None) -> Session | None:
        """The session, if still open, without counting this as the person's activity (an open
        event stream or the page's own refresh must not keep an unattended console signed in)."""
        session = self._sessions.get(token) if token else None
        if session is None or time.monotonic() - session.last_seen > self.idle_timeout_s:
            return None
        return session

    def peek(self, token: str | None) -> bool:
        return self.peek_session(token) is not None

    def close(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)

    def close_operator(self, name: str) -> None:
        """End every session of a person (disabled, reset, or role changed)."""
        for token in [t for t, s in self._sessions.items() if s.operator == name]:
            del self._sessions[token]
