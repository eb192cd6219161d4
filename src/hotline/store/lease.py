"""The side's lease, when one side runs on several nodes sharing one PostgreSQL (issue 14).

One row of `node_lease` says which node is active, its fencing epoch and until when. A node takes
the lease only once it has ended (`take`: the epoch goes up by one), renews it while it is active
(`renew`, only at its own epoch), and gives it up on a clean stop (`release`: the others take it
at once). Every time is the database server's clock (`clock_timestamp()`), never a node's: the
nodes' clocks may disagree, the server's is the one every decision reads. The epoch is what
fences: the active node's store checks it in each transaction (store/postgres.py), so a node that
was paused past its lease can commit nothing once another node has taken over.

This connection is the lease's alone, apart from the store's: a renewal does not wait behind a
long commit. Its statements give up after `lock_timeout_ms` (a takeover that meets a commit in
flight tries again at the next poll) and `statement_timeout`.

A node paused in the middle of a commit holds the lease row's lock, and the server does not always
end such a transaction by itself: `idle_in_transaction_session_timeout` counts only once a
pipeline of statements has been sent whole (up to its Sync), and a process stopped while sending
a group commit never gets there. So the active node's store names its session by node and epoch
(`session_name`), and a node taking over a lease that expired first ends that epoch's sessions
(pg_terminate_backend: the nodes connect as one role, or as roles in pg_signal_backend): the old
node's transaction is rolled back, and the row is free.

SQLite has no lease: a SQLite store belongs to one node, and the data directory's lock (one
station process per directory) is its one-writer rule. The table exists there too, empty.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from hotline.errors import StoreError

__all__ = ["Lease", "LeaseTable", "session_name"]

log = logging.getLogger("hotline.node")

_NOW = "(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint"
_COLUMNS = "node, epoch, expires_ns, taken_ns, renewed_ns, api, console, previous_node, reason"

# Take the lease if nobody holds it, or if its holder's time is over (expires_ns 0: given up).
_TAKE = f"""
WITH clock AS (SELECT {_NOW} AS ns)
INSERT INTO node_lease AS l (id, {_COLUMNS})
SELECT 1, %(node)s, 1, ns + %(ttl)s, ns, ns, %(api)s, %(console)s, '', 'first' FROM clock
ON CONFLICT (id) DO UPDATE SET
    node = excluded.node, epoch = l.epoch + 1, expires_ns = excluded.expires_ns,
    taken_ns = excluded.taken_ns, renewed_ns = excluded.renewed_ns, api = excluded.api,
    console = excluded.console, previous_node = l.node,
    reason = CASE WHEN l.expires_ns = 0 THEN 'released' ELSE 'expired' END
WHERE l.expires_ns < excluded.taken_ns
RETURNING {_COLUMNS}, taken_ns
"""  # noqa: S608 - constants only
_RENEW = f"""
WITH clock AS (SELECT {_NOW} AS ns)
UPDATE node_lease SET expires_ns = clock.ns + %(ttl)s, renewed_ns = clock.ns FROM clock
WHERE id = 1 AND node = %(node)s AND epoch = %(epoch)s
RETURNING {_COLUMNS}, renewed_ns
"""  # noqa: S608 - constants only
_READ = f"SELECT {_COLUMNS}, {_NOW} FROM node_lease WHERE id = 1"  # noqa: S608
_EXPIRED = (
    "SELECT node, epoch FROM node_lease "  # noqa: S608 - constants only
    f"WHERE id = 1 AND 0 < expires_ns AND expires_ns < {_NOW}"
)
_END_SESSIONS = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE application_name = %s AND pid <> pg_backend_pid()"
)
_RELEASE = "UPDATE node_lease SET expires_ns = 0 WHERE id = 1 AND node = %s AND epoch = %s"
_AUDIT = (
    "INSERT INTO audit (link_id, at_ns, actor, action, detail, evidence) "
    "VALUES (NULL, %s, 'station', 'node_active', %s, NULL)"
)
_HISTORY = "SELECT at_ns, detail FROM audit WHERE action = 'node_active' ORDER BY id DESC LIMIT %s"


def session_name(node: str, epoch: int) -> str:
    """The application_name of the store's session of a node at an epoch."""
    return f"hotline node {node} epoch {epoch}"


@dataclass(frozen=True, slots=True)
class Lease:
    """The lease row as read, with the server's clock at that moment (`now_ns`)."""

    node: str
    epoch: int
    expires_ns: int  # by the server's clock; 0: given up on a clean stop
    taken_ns: int
    renewed_ns: int
    api: str  # where the node serves its API and its console, for a standby to name them
    console: str
    previous_node: str
    reason: str  # how this node came to hold it: first, released, expired
    now_ns: int

    @property
    def live(self) -> bool:
        return self.expires_ns > self.now_ns

    def why(self) -> str:
        """How this node became active, in words for the log, the audit and the alarm."""
        if self.reason == "first":
            return "the first node of this side to hold the lease"
        if self.reason == "released":
            return f"node {self.previous_node!r} handed the lease over on a clean stop"
        return f"the lease of node {self.previous_node!r} (epoch {self.epoch - 1}) expired"

    @property
    def failover(self) -> bool:
        """Whether this node took over from one that did not hand over: a failure."""
        return self.reason == "expired"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "live": self.live, "why": self.why()}


class LeaseTable:
    """The lease, on a connection of its own. Every method raises StoreError when the server
    cannot be reached or a statement times out; None means the lease said no."""

    def __init__(
        self, dsn: str, lock_timeout_ms: int = 500, statement_timeout_ms: int = 2000
    ) -> None:
        try:
            self._db = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
            self._db.execute(
                "SELECT set_config('lock_timeout', %s, false), "
                "set_config('statement_timeout', %s, false)",
                (str(lock_timeout_ms), str(statement_timeout_ms)),
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot reach the store for the lease: {exc}") from exc

    def read(self) -> Lease | None:
        rows = self._query(_READ, {})
        return Lease(*rows[0]) if rows else None

    def take(self, node: str, lease_ms: int, api: str, console: str) -> Lease | None:
        """Take the lease if it has ended (a new epoch), writing to the audit log how this node
        came to hold it; None if another node's lease is still running (or a commit of the
        holder's is in flight: ask again)."""
        params = {"node": node, "ttl": lease_ms * 1_000_000, "api": api, "console": console}
        try:
            with self._db.transaction():
                self._end_expired_sessions()
                rows = self._db.execute(_TAKE, params).fetchall()
                if not rows:
                    return None
                lease = Lease(*rows[0])
                detail = f"node {node!r} is active at epoch {lease.epoch}: {lease.why()}"
                self._db.execute(_AUDIT, (lease.taken_ns, detail))
        except psycopg.errors.LockNotAvailable:
            return None
        except psycopg.Error as exc:
            raise StoreError(f"the lease: {exc}") from exc
        return lease

    def _end_expired_sessions(self) -> None:
        """End the store sessions of a holder whose lease expired (one paused mid-commit)."""
        expired = self._db.execute(_EXPIRED).fetchall()
        if not expired:
            return
        node, epoch = expired[0]
        ended = self._db.execute(_END_SESSIONS, (session_name(node, epoch),)).fetchall()[0][0]
        if ended:
            log.warning(
                "ended %d store session(s) of node %r at epoch %d, whose lease expired",
                ended, node, epoch,
            )  # fmt: skip

    def renew(self, lease: Lease, lease_ms: int) -> Lease | None:
        """Extend our lease from now; None if it is no longer ours (another epoch)."""
        params = {"node": lease.node, "epoch": lease.epoch, "ttl": lease_ms * 1_000_000}
        rows = self._query(_RENEW, params)
        return Lease(*rows[0]) if rows else None

    def release(self, lease: Lease) -> None:
        """Give our lease up (a clean stop): another node may take it at once."""
        self._query(_RELEASE, (lease.node, lease.epoch), fetch=False)

    def history(self, limit: int = 10) -> list[tuple[int, str]]:
        """The newest changes of active node, from the audit log: (when, what), newest first."""
        return [(int(at), str(detail)) for at, detail in self._query(_HISTORY, (limit,))]

    def _query(self, sql: str, params: Any, *, fetch: bool = True) -> list[tuple[Any, ...]]:
        try:
            cursor = self._db.execute(sql, params)
            return cursor.fetchall() if fetch else []
        except psycopg.Error as exc:
            raise StoreError(f"the lease: {exc}") from exc

    def close(self) -> None:
        self._db.close()
