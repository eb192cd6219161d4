"""`hotline operator add|list|disable|enable|reset`: the console's accounts, managed on the
station's own store (the station may be running: the store takes both), and `hotline totp`.

`add` and `reset` print a one-time enrolment code, never a password or a TOTP secret (issue 13,
item 10): the person takes it to the console's enrolment page. Whoever runs these commands at the
station host is trusted as an admin is, and audited as `cli:<their user name>`."""

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

from hotline.cli.common import DATA_DIR_OPTION, JSON_OPTION, cli_actor, console, data_dir
from hotline.console.auth import Role
from hotline.console.operators import (
    EnrolmentCode,
    add_operator,
    expire_enrolments,
    reset_operator,
    set_disabled,
)
from hotline.errors import ConfigError
from hotline.station.runtime import open_store
from hotline.store.base import SqlStore
from hotline.store.people import Operator

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


def _tell(made: EnrolmentCode) -> None:
    """The code the person needs, once: it is not shown again, and it is all anyone is told."""
    until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(made.expires_ns / 1e9))
    console.print(f"  enrolment code  {made.code}   (one use, until {until})")
    console.print(
        "Give it to the person out of band (in person, by phone). They open the console, choose"
        ' "Enrol", and there choose their password and receive their TOTP secret.'
    )


@app.command("add")
def add(
    name: str = typer.Argument(..., help="The operator's sign-in name."),
    role: str = typer.Option(..., "--role", "-r", help=f"One of: {ROLES}."),
    language: str = typer.Option("en", "--language", help="The console's language: en or ru."),
    data: Path | None = DATA_DIR_OPTION,
) -> None:
    """Create an operator account, waiting for its person: prints a one-time enrolment code."""
    now, me = time.time_ns(), cli_actor()
    made = _with_store(data, lambda s, _: add_operator(s, name, role, now, me, language))
    console.print(f"Operator {name!r} added as {role}.")
    _tell(made)


@app.command("list")
def list_(data: Path | None = DATA_DIR_OPTION, as_json: bool = JSON_OPTION) -> None:
    """List the operators, their roles and whether they can sign in."""
    now = time.time_ns()

    def read(store: SqlStore, _: str) -> tuple[list[Operator], set[str]]:
        expire_enrolments(store, now)
        return store.operators(), {e.name for e in store.enrolments()}

    people, waiting = _with_store(data, read)
    rows = [
        {
            "name": p.name,
            "role": p.role,
            "language": p.language,
            "disabled": p.disabled,
            "locked": p.locked_until_ns > now,
            "waiting_for_enrolment": p.name in waiting,
            "enrolled_ns": p.enrolled_ns or None,
        }
        for p in people
    ]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("name", "role", "language", "state")
    for row in rows:
        state = (
            "disabled" if row["disabled"] else "locked" if row["locked"]
            else "waiting for enrolment" if row["waiting_for_enrolment"]
            else "active" if row["enrolled_ns"] else "not enrolled (reset it)"
        )  # fmt: skip
        table.add_row(str(row["name"]), str(row["role"]), str(row["language"]), state)
    console.print(table)


def _disable(store: SqlStore, name: str, disabled: bool) -> None:
    set_disabled(store, name, disabled)
    action = "operator disabled" if disabled else "operator enabled"
    store.audit_person(cli_actor(), action, name, time.time_ns())


@app.command("disable")
def disable(name: str, data: Path | None = DATA_DIR_OPTION) -> None:
    """Stop an operator from signing in (their open sessions end at the next station start)."""
    _with_store(data, lambda s, _: _disable(s, name, True))
    console.print(f"Operator {name!r} disabled.")


@app.command("enable")
def enable(name: str, data: Path | None = DATA_DIR_OPTION) -> None:
    """Let a disabled operator sign in again; also ends a lockout."""
    _with_store(data, lambda s, _: _disable(s, name, False))
    console.print(f"Operator {name!r} enabled.")


@app.command("reset")
def reset(name: str, data: Path | None = DATA_DIR_OPTION) -> None:
    """End an operator's password and TOTP secret at once; prints a one-time enrolment code
    with which the person chooses new ones."""
    now, me = time.time_ns(), cli_actor()
    made = _with_store(data, lambda s, _: reset_operator(s, name, now, me))
    console.print(f"Operator {name!r} reset: the old password and TOTP secret no longer work.")
    _tell(made)


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
