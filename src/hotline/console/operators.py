"""Operator accounts, as both `hotline operator ...` and the console's admin page manage them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hotline.console.auth import LANGUAGES, Role, hash_password, new_password, new_totp_secret
from hotline.errors import ConfigError
from hotline.store.base import SqlStore
from hotline.store.people import Operator

__all__ = ["Credentials", "add_operator", "reset_operator", "set_disabled", "validate_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_PASSWORD = 12


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a new or reset operator is told once: the password (if the station chose it) and
    the TOTP secret for their authenticator."""

    name: str
    password: str | None
    totp_secret: str


def validate_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"operator name {name!r}: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _check(role: str, language: str, password: str | None) -> None:
    if role not in {r.value for r in Role}:
        raise ConfigError(f"role {role!r}: one of {', '.join(r.value for r in Role)}")
    if language not in LANGUAGES:
        raise ConfigError(f"language {language!r}: one of {', '.join(LANGUAGES)}")
    if password is not None and len(password) < MIN_PASSWORD:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD} characters")


def add_operator(
    store: SqlStore,
    name: str,
    role: str,
    now_ns: int,
    language: str = "en",
    password: str | None = None,
) -> Credentials:
    """Create an account; with no password given, the station makes one.

    Raises:
        ConfigError: a name, role, language or password that is not acceptable.
        StoreError: the name is taken.
    """
    validate_name(name)
    _check(role, language, password)
    chosen = password if password is not None else new_password()
    secret = new_totp_secret()
    store.add_operator(
        Operator(name, role, hash_password(chosen), secret, language, False, 0, 0, 0, now_ns)
    )
    return Credentials(name, None if password is not None else chosen, secret)


def reset_operator(store: SqlStore, name: str, password: str | None = None) -> Credentials:
    """A new password and a new TOTP secret; the lockout ends. The old factor stops working."""
    _require(store, name)
    _check(Role.OPERATOR, "en", password)
    chosen = password if password is not None else new_password()
    secret = new_totp_secret()
    store.update_operator(
        name,
        password_hash=hash_password(chosen),
        totp_secret=secret,
        failures=0,
        locked_until_ns=0,
        last_totp_step=0,
    )
    return Credentials(name, None if password is not None else chosen, secret)


def set_disabled(store: SqlStore, name: str, disabled: bool) -> None:
    _require(store, name)
    store.update_operator(name, disabled=disabled, failures=0, locked_until_ns=0)


def _require(store: SqlStore, name: str) -> Operator:
    operator = store.operator(name)
    if operator is None:
        raise ConfigError(f"no operator named {name!r}")
    return operator
