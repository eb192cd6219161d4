"""Operator accounts, as both `hotline operator ...` and the console's admin page manage them.

A new or reset account's credentials go only to its person (issue 13, item 10). Whoever makes
or resets it (an admin at the console, or `hotline operator` at the station host) is given no
password and no TOTP secret, only a one-time enrolment code: 120 random bits, shown once, kept
in the store as a hash, good for ENROLMENT_VALID_NS and for one use. The person takes it to the
console's enrolment page, chooses a password there and is shown a new TOTP secret there. Until
then nobody knows the account's credentials: it is made with a random password nobody is told
and a TOTP secret nobody sees, and a reset replaces both at once. Every step is audited: the
code made (by whom), used (with whose code, from where), expired unused.

Whoever was shown the code could use it themselves; that is the one way left to an admin to hold
an account's credentials, and it is audited as such (the enrolment names the code's maker) and
tells the real person, whose code no longer works. An account enrolled less than
`[console] new_account_hold_h` ago cannot be the second person of a release (`release_hold`):
made-up people cannot release at once what their maker drafted, and there is a day for the real
ones to notice the audit log's "operator added" and "enrolled".
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from hotline.console.auth import LANGUAGES, Role, hash_password, new_totp_secret
from hotline.errors import ConfigError
from hotline.store.base import SqlStore
from hotline.store.people import Enrolment, Operator

__all__ = [
    "ENROLMENT_VALID_NS",
    "EnrolmentCode",
    "LastAdmin",
    "add_operator",
    "code_hash",
    "complete_enrolment",
    "expire_enrolments",
    "pending_enrolment",
    "release_hold",
    "reset_operator",
    "set_disabled",
    "set_role",
    "validate_name",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_PASSWORD = 12
ENROLMENT_VALID_NS = 24 * 3600 * 10**9
_CODE_BYTES = 15  # 120 bits: 24 base32 letters, read out in six groups of four
_HOUR_NS = 3600 * 10**9


@dataclass(frozen=True, slots=True)
class EnrolmentCode:
    """What the maker of a new or reset account is shown, once, to hand to its person out of
    band: the code, and until when it holds. No password, no TOTP secret."""

    name: str
    code: str
    expires_ns: int


def validate_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"operator name {name!r}: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _check(role: str, language: str) -> None:
    if role not in {r.value for r in Role}:
        raise ConfigError(f"role {role!r}: one of {', '.join(r.value for r in Role)}")
    if language not in LANGUAGES:
        raise ConfigError(f"language {language!r}: one of {', '.join(LANGUAGES)}")


def _new_code() -> str:
    letters = base64.b32encode(secrets.token_bytes(_CODE_BYTES)).decode("ascii")
    return "-".join(letters[i : i + 4] for i in range(0, len(letters), 4))


def code_hash(name: str, code: str) -> str:
    """What the store keeps of a code: SHA-256, bound to the account's name. The code is 120
    random bits, so a fast hash is enough: there is nothing to guess from it. Case, spaces and
    dashes as a person types them do not matter."""
    typed = re.sub(r"[\s-]", "", code).upper()
    data = b"hotline enrolment v1\x00" + name.encode() + b"\x00" + typed.encode("ascii", "replace")
    return hashlib.sha256(data).hexdigest()


def _unknown_credentials() -> dict[str, object]:
    """A password and a TOTP secret that nobody is told: until its person enrols, no one can
    sign in to the account, and a reset's old credentials stop working at once."""
    return {
        "password_hash": hash_password(secrets.token_urlsafe(32)),
        "totp_secret": new_totp_secret(),
        "failures": 0,
        "locked_until_ns": 0,
        "last_totp_step": 0,
    }


def _enrolment(name: str, by: str, now_ns: int) -> tuple[EnrolmentCode, Enrolment]:
    code = _new_code()
    expires = now_ns + ENROLMENT_VALID_NS
    return EnrolmentCode(name, code, expires), Enrolment(
        name, code_hash(name, code), by, now_ns, expires
    )


def add_operator(
    store: SqlStore, name: str, role: str, now_ns: int, by: str, language: str = "en"
) -> EnrolmentCode:
    """Create an account waiting for its person, and audit it as `by`'s act.

    Raises:
        ConfigError: a name, role or language that is not acceptable.
        StoreError: the name is taken.
    """
    validate_name(name)
    _check(role, language)
    unknown = _unknown_credentials()
    made, enrolment = _enrolment(name, by, now_ns)
    operator = Operator(
        name, role, str(unknown["password_hash"]), str(unknown["totp_secret"]), language, False,
        0, 0, 0, now_ns, 0,
    )  # fmt: skip
    store.add_operator(operator, enrolment)
    store.audit_person(by, "operator added", f"{name} as {role}; {_until(made)}", now_ns)
    return made


def reset_operator(store: SqlStore, name: str, now_ns: int, by: str) -> EnrolmentCode:
    """New credentials nobody knows, and a new enrolment code for the person: the old password
    and TOTP secret stop working at once (their sessions end), and so does any earlier code."""
    _require(store, name)
    made, enrolment = _enrolment(name, by, now_ns)
    store.reenrol_operator(enrolment, **_unknown_credentials())
    store.audit_person(by, "operator reset", f"{name}; {_until(made)}", now_ns)
    return made


def _until(made: EnrolmentCode) -> str:
    return f"an enrolment code valid until {_utc(made.expires_ns)}"


def _utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def pending_enrolment(store: SqlStore, name: str, code: str, now_ns: int) -> Enrolment | None:
    """The account's enrolment, if `code` is its code and it holds now (it is not spent)."""
    waiting = store.enrolment(name)
    if waiting is None or waiting.expires_ns <= now_ns:
        return None
    return waiting if secrets.compare_digest(waiting.code_hash, code_hash(name, code)) else None


def complete_enrolment(
    store: SqlStore,
    name: str,
    code: str,
    password: str,
    secret: str,
    now_ns: int,
    totp_step: int = 0,
) -> Enrolment | None:
    """Spend the code and give the account the person's own password and TOTP secret, enrolled
    now; None (and nothing written) if the code is not good. The caller has shown `secret` to
    the person only, and audits the enrolment (it knows from where). `totp_step`: the step of a
    code the person confirmed with, which then cannot sign in.

    Raises:
        ConfigError: a password shorter than MIN_PASSWORD characters.
    """
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD} characters")
    return store.use_enrolment(
        name, code_hash(name, code), now_ns,
        password_hash=hash_password(password), totp_secret=secret, failures=0,
        locked_until_ns=0, last_totp_step=totp_step, enrolled_ns=now_ns,
    )  # fmt: skip


def expire_enrolments(store: SqlStore, now_ns: int) -> list[str]:
    """Forget the codes whose time is up, each audited once; the names of their accounts."""
    gone = store.drop_expired_enrolments(now_ns)
    for enrolment in gone:
        detail = f"{enrolment.name}: the code {enrolment.made_by} made was not used"
        store.audit_person("station", "enrolment expired", detail, now_ns)
    return [e.name for e in gone]


def release_hold(operator: Operator, hold_h: int, now_ns: int) -> str | None:
    """Why this person may not yet be the second person of a release, or None."""
    until = operator.enrolled_ns + hold_h * _HOUR_NS
    if until <= now_ns:
        return None
    return (
        f"two-person rule: {operator.name} enrolled at {_utc(operator.enrolled_ns)}; an account "
        f"enrolled less than {hold_h} h ago cannot release another's draft (until "
        f"{_utc(until)}): ask another supervisor"
    )


class LastAdmin(ConfigError):
    """The change would leave the station with no active admin: nobody could then manage the
    accounts from the console."""


def _last_admin(name: str, what: str) -> LastAdmin:
    return LastAdmin(
        f"{name} is the last active admin: {what} would leave nobody to manage the accounts; "
        "make another admin first"
    )


def set_disabled(store: SqlStore, name: str, disabled: bool) -> None:
    """Disable or enable an account (enabling also ends a lockout).

    Raises:
        ConfigError: no such account.
        LastAdmin: it is the last active admin, and it would be disabled.
    """
    _require(store, name)
    if not store.update_operator_keeping_an_admin(
        name, disabled=disabled, failures=0, locked_until_ns=0
    ):
        raise _last_admin(name, "disabling the account")


def set_role(store: SqlStore, name: str, role: str, now_ns: int, by: str) -> str:
    """Give an account another role, audited as `by`'s act; returns the role it had.

    Raises:
        ConfigError: no such account, or no such role.
        LastAdmin: it is the last active admin, and it would be an admin no longer.
    """
    before = _require(store, name)
    _check(role, "en")
    if role == before.role:
        return before.role
    if not store.update_operator_keeping_an_admin(name, role=role):
        raise _last_admin(name, f"making it {role}")
    store.audit_person(by, "role changed", f"{name}: {before.role} to {role}", now_ns)
    return before.role


def _require(store: SqlStore, name: str) -> Operator:
    operator = store.operator(name)
    if operator is None:
        raise ConfigError(f"no operator named {name!r}")
    return operator
