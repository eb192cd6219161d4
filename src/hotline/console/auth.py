"""Who may sign in to the console, and what each person may do there.

Passwords are kept as Argon2id hashes in PHC form (`cryptography` derives and verifies them);
the second factor is a TOTP code (RFC 6238, by `pyotp`), each accepted once. A correct password
and code sign in; nothing a stranger does can stop that (issue 13, item 11). Five failed second
factors in a row from new devices (the right password, a wrong code: only someone who has the
password can fail so) hold the account for new devices, for 30 s and then twice as long after
each further one, up to a quarter of an hour: a few hundred tries a day against a million codes.
A browser the person signed in at before is not held (guard.py says which are), and an admin can
always `reset` an account. A wrong password holds nothing: it proves nothing about a code, and
it is answered as a name that does not exist is, with the same work and the same words.
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
    "password_matches",
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
    # "listen" as a muted note-taker (docs/console.md). After a call, "memcon" writes its record
    # of conversation (the note-takers: translators, and supervisors), which "review" and
    # "certify" check as they do translations; "hear" plays its recordings.
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
            "memcon",
            "hear",
        }
    ),
    Role.TRANSLATOR: frozenset(
        {"view", "shift_log", "translate", "review", "interpret", "listen", "memcon"}
    ),
    Role.AUDITOR: frozenset({"view", "audit", "hear"}),
    Role.ADMIN: frozenset({"view", "admin"}),
}

LANGUAGES = ("en", "ru")
HOLD_AFTER = 5  # failed second factors from new devices
FIRST_HOLD_S = 30
LONGEST_HOLD_S = 900
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
    held: bool  # the right password and code, from a new device while the account is held
    changes: dict[str, object]  # what to write back to the operator's row
    reason: str  # for the audit log, never for the person at the login page


def password_matches(operator: Operator | None, password: str) -> bool:
    """One Argon2id verification, against a stand-in hash when the name does not exist: the
    time an answer takes must not say which names do. Slow: run it outside any lock."""
    return _password_matches(password, operator.password_hash if operator else _DUMMY_HASH)


def check_login(
    operator: Operator | None, password_ok: bool, code: str, now_ns: int, known_device: bool
) -> LoginResult:
    """Decide a login, `password_ok` being `password_matches` for this operator's present hash.
    The caller stores `changes` and audits `reason`, and must not let two logins of one name
    interleave (security.py holds a lock per name): the count of failed second factors and the
    last code used are read here and written there."""
    if operator is None or operator.disabled:
        reason = "no such operator" if operator is None else "account disabled"
        return LoginResult(False, False, {}, reason)
    step = now_ns // 1_000_000_000 // TOTP_STEP_S
    code_step = _totp_step(operator.totp_secret, code, step)
    held = not known_device and operator.locked_until_ns > now_ns
    if password_ok and code_step is not None and code_step > operator.last_totp_step:
        if held:  # told only to one who has both: it says nothing they do not know
            return LoginResult(False, True, {}, "held for new devices")
        changes: dict[str, object] = {"last_totp_step": code_step}
        if not known_device:  # a known device's success leaves the count of others' failures
            changes["failures"] = 0
        return LoginResult(True, False, changes, "signed in")
    if not password_ok:  # a stranger's guess: it holds no one
        return LoginResult(False, False, {}, "wrong password")
    reason = "wrong code" if code_step is None else "code used before"
    if known_device or held:  # a known device's own count is the guard's; a hold runs its time
        return LoginResult(False, False, {}, reason)
    failures = operator.failures + 1
    changes = {"failures": failures}
    if failures >= HOLD_AFTER:
        hold_s = min(FIRST_HOLD_S * 2 ** (failures - HOLD_AFTER), LONGEST_HOLD_S)
        changes["locked_until_ns"] = now_ns + hold_s * 1_000_000_000
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
