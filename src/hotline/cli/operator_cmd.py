"""`hotline operator add|list|disable|enable|reset`: the console's accounts, managed on the
station's own store (the station may be running: the store takes both), and `hotline totp`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pyotp
import typer
from rich.table import Table

from hotline.cli.common import DATA_DIR_OPTION, JSON_OPTION, console, data_dir
from hotline.console.auth import Role, totp_uri
from hotline.console.operators import Credentials, add_operator, reset_operator, set_disabled
from hotline.errors import ConfigError
from hotline.station.runtime import open_store
from hotline.store.base import SqlStore

app = typer.Typer(
    help="Manage the console's operators (their roles, passwords and second factors).",
    no_args_is_help=True,
)
_T = TypeVar("_T")
ROLES = ", ".join(r.value for r in Role)


@contextmanager
def _store(data: Path | None) -> Iterator[tuple[SqlStore, str]]:
    directory = data_dir(data)
    config = directory.config()
    store = open_store(directory, config)
    try:
        yield store, config.station.name
    finally:
        store.close()


def _with_store(data: Path | None, work: Callable[[SqlStore, str], _T]) -> _T:
    with _store(data) as (store, station):
        return work(store, station)


def _read_password(password_file: Path | None) -> str | None:
    if password_file is None:
        return None
    try:
        return password_file.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read {password_file}: {exc.strerror}") from None


def _tell(station: str, made: Credentials) -> None:
    """What the new or reset operator must be told, once: it is not shown again."""
    if made.password is not None:
        console.print(f"  password     {made.password}")
    console.print(f"  TOTP secret  {made.totp_secret}")
    console.print(f"  TOTP address {totp_uri(station, made.name, made.totp_secret)}")
    console.print("Give these to the operator in person; they are not shown again.")


@app.command("add")
def add(
    name: str = typer.Argument(..., help="The operator's sign-in name."),
    role: str = typer.Option(..., "--role", "-r", help=f"One of: {ROLES}."),
    language: str = typer.Option("en", "--language", help="The console's language: en or ru."),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="Read the password from this file (else one is made)."
    ),
    data: Path | None = DATA_DIR_OPTION,
) -> None:
    """Create an operator account with a password and a TOTP second factor."""
    password = _read_password(password_file)
    now = time.time_ns()
    made, station = _with_store(
        data, lambda s, st: (add_operator(s, name, role, now, language, password), st)
    )
    console.print(f"Operator {name!r} added as {role}.")
    _tell(station, made)


@app.command("list")
def list_(data: Path | None = DATA_DIR_OPTION, as_json: bool = JSON_OPTION) -> None:
    """List the operators, their roles and whether they can sign in."""
    people = _with_store(data, lambda s, _: s.operators())
    now = time.time_ns()
    rows = [
        {
            "name": p.name,
            "role": p.role,
            "language": p.language,
            "disabled": p.disabled,
            "locked": p.locked_until_ns > now,
        }
        for p in people
    ]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("name", "role", "language", "state")
    for row in rows:
        state = "disabled" if row["disabled"] else "locked" if row["locked"] else "active"
        table.add_row(str(row["name"]), str(row["role"]), str(row["language"]), state)
    console.print(table)


@app.command("disable")
def disable(name: str, data: Path | None = DATA_DIR_OPTION) -> None:
    """Stop an operator from signing in (their open sessions end at the next station start)."""
    _with_store(data, lambda s, _: set_disabled(s, name, True))
    console.print(f"Operator {name!r} disabled.")


@app.command("enable")
def enable(name: str, data: Path | None = DATA_DIR_OPTION) -> None:
    """Let a disabled operator sign in again; also ends a lockout."""
    _with_store(data, lambda s, _: set_disabled(s, name, False))
    console.print(f"Operator {name!r} enabled.")


@app.command("reset")
def reset(
    name: str,
    password_file: Path | None = typer.Option(
        None, "--password-file", help="Read the new password from this file (else one is made)."
    ),
    data: Path | None = DATA_DIR_OPTION,
) -> None:
    """Give an operator a new password and a new TOTP secret (the old ones stop working)."""
    password = _read_password(password_file)
    made, station = _with_store(data, lambda s, st: (reset_operator(s, name, password), st))
    console.print(f"Operator {name!r} reset.")
    _tell(station, made)


def totp(
    secret_file: Path = typer.Argument(..., help="A file holding a base32 TOTP secret."),
) -> None:
    """Print the current TOTP code of a secret, as an authenticator app would (for the demo and
    for tests; an operator uses an app on a separate device)."""
    try:
        secret = secret_file.read_text(encoding="ascii").strip()
        print(pyotp.TOTP(secret).now())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read a TOTP secret from {secret_file}: {exc}") from None
