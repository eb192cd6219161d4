"""The throwaway PostgreSQL server: starts, serves, isolates, stays off TCP, cleans up."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hotline.sim import pgserver
from hotline.sim.pgserver import ThrowawayPostgres


@pytest.fixture(scope="module")
def pg() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as server:
        yield server


def _setting(dsn: str, name: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT setting FROM pg_settings WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return str(row[0])


def test_server_answers(pg: ThrowawayPostgres) -> None:
    with psycopg.connect(pg.dsn()) as conn:
        row = conn.execute("SELECT current_user, current_database()").fetchone()
    assert row == ("hotline", "postgres")
    assert pg.running


def test_dsn_names_the_socket_dir(pg: ThrowawayPostgres) -> None:
    assert pg.dsn("x") == f"host={pg.socket_dir} port=5432 user=hotline dbname=x"


def test_non_durable_server_skips_fsync(pg: ThrowawayPostgres) -> None:
    assert _setting(pg.dsn(), "fsync") == "off"
    assert _setting(pg.dsn(), "full_page_writes") == "off"
    assert _setting(pg.dsn(), "max_connections") == "50"


def test_table_round_trip(pg: ThrowawayPostgres) -> None:
    dsn = pg.create_database("round_trip")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE note (id int PRIMARY KEY, body text NOT NULL)")
        conn.execute("INSERT INTO note VALUES (1, 'hello'), (2, 'wörld')")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT id, body FROM note ORDER BY id").fetchall()
    assert rows == [(1, "hello"), (2, "wörld")]


def test_databases_are_independent(pg: ThrowawayPostgres) -> None:
    for name in ("alice", "bob"):
        with psycopg.connect(pg.create_database(name)) as conn:
            conn.execute("CREATE TABLE who (name text)")
            conn.execute("INSERT INTO who VALUES (%s)", (name,))
    for name in ("alice", "bob"):
        with psycopg.connect(pg.dsn(name)) as conn:
            assert conn.execute("SELECT name FROM who").fetchall() == [(name,)]


def test_database_names_are_quoted(pg: ThrowawayPostgres) -> None:
    dsn = pg.create_database('odd "name"; DROP')
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ('odd "name"; DROP',)


def test_no_tcp(pg: ThrowawayPostgres) -> None:
    assert _setting(pg.dsn(), "listen_addresses") == ""
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect("host=127.0.0.1 port=5432 user=hotline connect_timeout=2")
    postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    assert not _socket_inodes(postmaster) & _tcp_listening_inodes()


def _socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process ``pid`` holds open (Linux /proc)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    links = (os.readlink(fd) for fd in fd_dir.iterdir())
    return {link[8:-1] for link in links if link.startswith("socket:[")}


def _tcp_listening_inodes() -> set[str]:
    """Inodes of every listening TCP socket on the machine (state 0A in /proc/net/tcp*)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def test_stop_removes_everything() -> None:
    server = ThrowawayPostgres(durable=True).start()
    root, dsn = server.root, server.dsn()
    assert _setting(dsn, "fsync") == "on"
    server.stop()
    assert not root.exists()
    assert not server.running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2)
    server.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not started"):
        server.dsn()


class _BadOption(ThrowawayPostgres):
    """A server whose start fails: postgres rejects one of its options."""

    seen_root: Path | None = None

    def _server_options(self) -> list[str]:
        self.seen_root = self.root
        return [*super()._server_options(), "-c", "shared_buffers=plenty"]


def test_failed_start_reports_log_and_cleans_up() -> None:
    server = _BadOption()
    with pytest.raises(RuntimeError, match="pg_ctl start failed") as caught:
        server.start()
    assert "shared_buffers" in str(caught.value)
    assert "server log" in str(caught.value)
    assert server.seen_root is not None
    assert not server.seen_root.exists()


def test_missing_server_user_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(RuntimeError, match="useradd --system no-such-pg-user"):
        ThrowawayPostgres(user="no-such-pg-user").start()


def test_not_root_runs_as_self(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert pgserver.server_user() is None


def test_binaries_picked_from_highest_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    for version in ("9.6", "15", "10"):
        bindir = tmp_path / version / "bin"
        bindir.mkdir(parents=True)
        for program in ("initdb", "pg_ctl"):
            (bindir / program).touch(mode=0o755)
    found = pgserver.find_binaries(str(tmp_path / "*" / "bin"))
    assert found.initdb == tmp_path / "15" / "bin" / "initdb"


def test_missing_binaries_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(RuntimeError, match="initdb and pg_ctl"):
        pgserver.find_binaries(str(tmp_path / "*" / "bin"))
