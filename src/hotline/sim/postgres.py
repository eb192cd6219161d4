"""The simulator on the PostgreSQL backend: one throwaway server per process, fresh databases for
every seed, so each seed starts clean exactly as with SQLite files."""

from __future__ import annotations

from collections.abc import Callable

from hotline.sim.pgserver import ThrowawayPostgres
from hotline.sim.scenario import RunResult, run_seed
from hotline.store.base import SqlStore
from hotline.store.postgres import PostgresStore

__all__ = ["run_seed_on_postgres"]

_server: ThrowawayPostgres | None = None


def _shared_server() -> ThrowawayPostgres:
    global _server  # noqa: PLW0603 - one server for the whole process, stopped at exit
    if _server is None:
        _server = ThrowawayPostgres().start()
    return _server


def run_seed_on_postgres(seed: int) -> RunResult:
    server = _shared_server()

    def stores(name: str) -> Callable[[], SqlStore]:
        dsn = server.create_database(f"sim_{seed}_{name}")
        return lambda: PostgresStore(dsn)

    return run_seed(seed, stores)
