"""The embedded default store: one SQLite file, WAL, synchronous=FULL, one writer.

synchronous=FULL makes every commit wait for the disk, so "accepted" means on the platter; group
commit (many envelopes per transaction) keeps that affordable. Write transactions start with
BEGIN IMMEDIATE, so a second writer waits instead of failing half-way through a batch.

A new store file is made readable by its owner only (0600) before SQLite opens it: it holds
every message and the operators' password hashes, and SQLite gives its `-wal` and `-shm` files
the same mode as the database's. `secure_delete` zeroes what a change frees, so a secret replaced
(a TOTP secret sealed in place, say) does not linger in the file's free space.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hotline.errors import StoreError
from hotline.store.backend import Row
from hotline.store.base import SqlStore

__all__ = ["SqliteStore"]


class SqliteStore(SqlStore):
    dialect = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:  # made here first, so that it is private from its first byte (an empty file is new)
            if str(path) != ":memory:":
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc.strerror or exc}") from exc
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in (
                "journal_mode = WAL",
                "synchronous = FULL",
                "foreign_keys = ON",
                "busy_timeout = 10000",
                "secure_delete = ON",
            ):
                self._db.execute(f"PRAGMA {pragma}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        self._in_transaction = False
        self._migrate_or_close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"store query failed: {exc}") from exc

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        try:
            yield from self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"store query failed: {exc}") from exc

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._db.execute(sql, params)

    def _executemany(self, sql: str, params: list[Sequence[Any]]) -> None:
        if params:
            self._db.executemany(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction:
            raise StoreError("nested transaction")
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot start a transaction on {self.path}: {exc}") from exc
        self._in_transaction = True
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException as exc:
            # A COMMIT that fails on a full disk may already have rolled back by itself.
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"store write failed and was rolled back: {exc}") from exc
            raise
        finally:
            self._in_transaction = False

    def forget_overwritten(self) -> None:
        """The write-ahead log still holds the pages as they were: fold it in and empty it."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot checkpoint the store {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()
