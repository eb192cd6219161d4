"""The PostgreSQL store, for a station that must survive losing a machine (a replicated server).

Same schema and same SQL as SQLite (store/base.py); only the connection, the placeholder and the
transaction differ. A station holds one connection and writes through it alone, as with SQLite;
psycopg's autocommit mode is on outside `transaction()`, so every read sees committed data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from hotline.errors import StoreError
from hotline.store.backend import Row
from hotline.store.base import SqlStore

__all__ = ["PostgresStore"]


class PostgresStore(SqlStore):
    dialect = "postgres"
    placeholder = "%s"

    def __init__(self, dsn: str) -> None:
        try:
            self._db = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL store: {exc}") from exc
        self._in_transaction = False
        self._migrate_or_close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            with self._db.cursor() as cursor:
                cursor.execute(self._sql(sql), params)
                return cursor.fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"store query failed: {exc}") from exc

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        yield from self._rows(sql, params)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._db.execute(self._sql(sql), params)

    def _executemany(self, sql: str, params: list[Sequence[Any]]) -> None:
        if params:
            with self._db.cursor() as cursor:
                cursor.executemany(self._sql(sql), params)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction:
            raise StoreError("nested transaction")
        self._in_transaction = True
        try:
            with self._db.transaction():
                yield
        except psycopg.Error as exc:
            raise StoreError(f"store write failed and was rolled back: {exc}") from exc
        finally:
            self._in_transaction = False

    def close(self) -> None:
        self._db.close()
