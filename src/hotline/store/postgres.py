"""The PostgreSQL store, for a station that must survive losing a machine (a replicated server).

Same schema and same SQL as SQLite (store/base.py); only the connection, the placeholder and the
transaction differ. A station holds one connection and writes through it alone, as with SQLite;
psycopg's autocommit mode is on outside `transaction()`, so every read sees committed data.

A side on several nodes (docs/operations.md, "One side on two machines") fences this connection
with the node's lease (`fence`): every transaction then begins by reading the lease row FOR SHARE
and checking that its epoch is still this node's. A node that took over has raised the epoch, so
the old node's next transaction fails (LeaseLost) and nothing of it is committed, however long it
was paused; and the row lock orders that check before any takeover, so a commit either finished
before the new node's epoch began (and that node loads it) or does not happen at all. A node
paused in the middle of a transaction would hold that lock: the server ends such a transaction
after `idle_ms`, which `fence` sets below the lease's length; and since the server does not when
the process stopped in the middle of sending a pipeline of statements, the session is named by
node and epoch, for the node that takes over to end it (store/lease.py).

On a replicated server (PostgreSQL under Patroni with synchronous replication; docs/operations.md,
"The store on two database servers") the connection string names every server and lets libpq
pick the one that takes writes (`target_session_attrs=read-write`). A connection that breaks is
not opened again here: a commit whose connection broke may or may not have happened, so the link
core can no longer be trusted to match the store. The failure goes up (StoreError), the station
stops, and its node starts it again from the store (station/node.py), on whichever server is the
primary by then. A commit is accepted only once the server says it is done, which with
synchronous replication means on the standby too; the one way the server says "done" without it,
a wait for the standby that was cancelled (pg_cancel_backend, or a cancel request on our
connection), is turned into a StoreError as well.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from hotline.errors import LeaseLost, StoreError
from hotline.store.backend import Row
from hotline.store.base import SqlStore
from hotline.store.lease import session_name

__all__ = ["PostgresStore"]

# pg_advisory_xact_lock's key for migrations: nodes of one side that start together on a new
# database take each step one after the other, not both at once ("hotl" in ASCII).
_MIGRATION_LOCK = 0x686F746C


class PostgresStore(SqlStore):
    dialect = "postgres"
    placeholder = "%s"

    def __init__(self, dsn: str) -> None:
        try:
            self._db = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL store: {exc}") from exc
        self._db.add_notice_handler(self._on_notice)
        self._unreplicated = ""  # the server's word that a commit's wait for replication ended
        self._in_transaction = False
        self._fence: tuple[str, int] | None = None
        self._migrate_or_close()

    def _on_notice(self, notice: psycopg.errors.Diagnostic) -> None:
        if (notice.message_primary or "").startswith("canceling wait for synchronous replication"):
            self._unreplicated = notice.message_primary or ""

    def fence(self, node: str, epoch: int, idle_ms: int) -> None:
        """Write from now on only as `node` holding the side's lease at `epoch` (store/lease.py):
        every transaction checks it first, and fails with LeaseLost once another node took over.
        A transaction left idle for `idle_ms` (a paused process) is ended by the server."""
        self._fence = (node, epoch)
        self._rows(
            "SELECT set_config('idle_in_transaction_session_timeout', ?, false), "
            "set_config('application_name', ?, false)",
            (str(idle_ms), session_name(node, epoch)),
        )

    def _check_fence(self) -> None:
        if self._fence is None:
            return
        node, epoch = self._fence
        rows = self._rows("SELECT node, epoch FROM node_lease WHERE id = 1 FOR SHARE")
        if not rows or (rows[0][0], rows[0][1]) != (node, epoch):
            holder = f"node {rows[0][0]!r} at epoch {rows[0][1]}" if rows else "nobody"
            raise LeaseLost(
                f"node {node!r} lost the lease (its epoch {epoch}; the lease is {holder}): "
                "this transaction was rolled back"
            )

    def _schema_version_locked(self) -> int:
        self._rows("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        if not self._rows("SELECT to_regclass('meta') IS NOT NULL")[0][0]:
            return 0  # a new database: asking `meta` would abort this transaction
        rows = self._rows("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(rows[0][0]) if rows else 0

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
        self._outside_a_transaction()
        self._db.execute(self._sql(sql), params)

    def _executemany(self, sql: str, params: list[Sequence[Any]]) -> None:
        self._outside_a_transaction()
        if params:
            with self._db.cursor() as cursor:
                cursor.executemany(self._sql(sql), params)

    def _outside_a_transaction(self) -> None:
        """A fenced store writes only in transactions, where the fence is checked."""
        if self._fence is not None and not self._in_transaction:
            raise StoreError("a write outside a transaction on a fenced store")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction:
            raise StoreError("nested transaction")
        self._in_transaction = True
        self._unreplicated = ""
        try:
            with self._db.transaction():
                self._check_fence()
                yield
        except psycopg.Error as exc:
            raise StoreError(f"store write failed and was rolled back: {exc}") from exc
        finally:
            self._in_transaction = False
        if self._unreplicated:
            # Committed on this server, but its synchronous standby never confirmed it (the wait
            # was cancelled): not accepted. The station stops and rebuilds from the store.
            raise StoreError(
                "a commit was not confirmed by the synchronous standby (the server said: "
                f"{self._unreplicated}): it may be on one server only"
            )

    def close(self) -> None:
        self._db.close()
