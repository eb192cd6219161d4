"""A real, throwaway PostgreSQL server for tests, the simulator and benchmarks.

Why a real server: the store's behaviour under concurrency, constraints and crashes is
PostgreSQL's behaviour; a mock or SQLite would test something else. Why throwaway: every run
gets a fresh cluster in a temporary directory (tmpfs when durability does not matter), so runs
never share state and leave nothing behind. It is started from the machine's own binaries
(``initdb``, ``pg_ctl``, ``postgres``): no Docker, no network.

The server listens on a Unix socket in its own directory only (``listen_addresses=''``): no TCP
port is opened, so parallel runs cannot collide and nothing is reachable from outside. Clients
connect as the superuser ``hotline`` with trust authentication, which is safe only because the
socket directory is private (mode 0700).

PostgreSQL refuses to run as root. When we are root the server runs as the ``postgres`` user
(created on a fresh machine with ``useradd --system postgres``); otherwise as the current user.

With ``durable=False`` (the default) the server skips fsync and full-page writes: fast, and a
power cut loses the data, which for a throwaway cluster does not matter. ``durable=True`` keeps
PostgreSQL's defaults, for benchmarks whose numbers must include the cost of a commit.

    with ThrowawayPostgres() as pg:
        dsn = pg.create_database("alice")
        with psycopg.connect(dsn) as conn: ...
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

PORT = 5432  # no TCP is used; the number only names the socket file ".s.PGSQL.5432"
SUPERUSER = "hotline"
SERVER_USER = "postgres"  # who runs the server when we are root
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"  # Debian/Ubuntu layout, searched when PATH has none
SHM_DIR = Path("/dev/shm")  # noqa: S108 - tmpfs on purpose, for non-durable clusters
SHM_MIN_FREE = 1 << 30  # use /dev/shm only with this much room (Docker gives it 64 MiB)
SOCKET_PATH_MAX = 107  # sizeof(sun_path) - 1 on Linux

START_TIMEOUT = 30  # seconds pg_ctl waits for the server to accept connections
COMMAND_TIMEOUT = 120  # seconds any one subprocess may take (initdb, pg_ctl)
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class PgBinaries:
    """Where the PostgreSQL programs are."""

    initdb: Path
    pg_ctl: Path


def find_binaries(search_glob: str = PG_BIN_GLOB) -> PgBinaries:
    """Find ``initdb`` and ``pg_ctl`` on PATH, else in the highest versioned install dir."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return PgBinaries(Path(initdb), Path(pg_ctl))
    for bindir in sorted(glob.glob(search_glob), key=_version_key, reverse=True):
        found = PgBinaries(Path(bindir, "initdb"), Path(bindir, "pg_ctl"))
        if os.access(found.initdb, os.X_OK) and os.access(found.pg_ctl, os.X_OK):
            return found
    missing = " and ".join(n for n, p in (("initdb", initdb), ("pg_ctl", pg_ctl)) if not p)
    raise RuntimeError(
        f"PostgreSQL server programs not found: {missing} is not on PATH and no "
        f"{search_glob} holds both initdb and pg_ctl; install the server "
        "(e.g. apt-get install postgresql) or put its bin directory on PATH"
    )


def _version_key(bindir: str) -> tuple[int, ...]:
    """Sort key for ``/usr/lib/postgresql/<version>/bin``: 15 > 9.6, numerically."""
    version = Path(bindir).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version))


def server_user(name: str = SERVER_USER) -> pwd.struct_passwd | None:
    """The account to run the server as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(
            f"PostgreSQL refuses to run as root and there is no {name!r} user to run it as; "
            f"create one first: useradd --system {name}"
        ) from None


def _temp_base(durable: bool) -> str | None:
    """Parent of the cluster directory: tmpfs when allowed and roomy, else the usual tmp."""
    if durable or not SHM_DIR.is_dir() or not os.access(SHM_DIR, os.W_OK):
        return None
    if shutil.disk_usage(SHM_DIR).free < SHM_MIN_FREE:
        return None
    return str(SHM_DIR)


def _clean_env() -> dict[str, str]:
    """Our environment without PG* variables, which would redirect initdb or pg_ctl."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class ThrowawayPostgres:
    """A private PostgreSQL cluster on a Unix socket, removed again by :meth:`stop`."""

    def __init__(self, *, durable: bool = False, user: str = SERVER_USER) -> None:
        self.durable = durable
        self._user_name = user
        self._root: Path | None = None
        self._binaries: PgBinaries | None = None
        self._owner: pwd.struct_passwd | None = None
        self._running = False
        self._owner_pid = os.getpid()

    # -- paths ---------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The temporary directory holding everything: data, socket and log."""
        if self._root is None:
            raise RuntimeError("the PostgreSQL server is not started (or already stopped)")
        return self._root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def running(self) -> bool:
        return self._running

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> Self:
        """Create the cluster and start the server; on failure clean up and raise."""
        if self._root is not None:
            raise RuntimeError("this ThrowawayPostgres was already started")
        self._binaries = binaries = find_binaries()
        self._owner = server_user(self._user_name)
        self._root = Path(tempfile.mkdtemp(prefix="hotline-pg-", dir=_temp_base(self.durable)))
        atexit.register(self._stop_at_exit)
        try:
            self._make_dirs()
            self._initdb(binaries.initdb)
            self._pg_ctl_start(binaries.pg_ctl)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory. Safe to call twice."""
        if self._root is None:
            return
        atexit.unregister(self._stop_at_exit)
        try:
            if self._running:
                self._pg_ctl_stop()
        finally:
            self._running = False
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def _stop_at_exit(self) -> None:
        # A forked child inherits the atexit hook; only the process that started us stops us.
        if os.getpid() == self._owner_pid:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- connecting ----------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq conninfo string for ``dbname`` on this server."""
        return make_conninfo(
            "", host=str(self.socket_dir), port=str(PORT), user=SUPERUSER, dbname=dbname
        )

    def create_database(self, name: str) -> str:
        """Create an empty database and return its conninfo string."""
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    # -- steps ---------------------------------------------------------------------------

    def _make_dirs(self) -> None:
        socket_file = self.socket_dir / f".s.PGSQL.{PORT}"
        if len(str(socket_file)) > SOCKET_PATH_MAX:
            raise RuntimeError(
                f"socket path {socket_file} is longer than {SOCKET_PATH_MAX} bytes; "
                "set TMPDIR to a shorter directory"
            )
        for path in (self.data_dir, self.socket_dir):
            path.mkdir(mode=0o700)
        if self._owner is not None:
            for path in (self.root, self.data_dir, self.socket_dir):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)

    def _initdb(self, initdb: Path) -> None:
        # --no-sync: a throwaway cluster need not survive a power cut during initdb.
        self._run(
            [str(initdb), "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            what="initdb",
        )  # fmt: skip

    def _server_options(self) -> list[str]:
        options = ["-k", str(self.socket_dir), "-p", str(PORT), "-c", "listen_addresses="]
        options += ["-c", "max_connections=50", "-c", "shared_buffers=64MB"]
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            options += ["-c", "full_page_writes=off"]
        return options

    def _pg_ctl_start(self, pg_ctl: Path) -> None:
        # pg_ctl hands -o to /bin/sh, hence shlex.join; an empty listen_addresses means no TCP.
        self._run(
            [str(pg_ctl), "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
             "-t", str(START_TIMEOUT), "-o", shlex.join(self._server_options()), "start"],
            what="pg_ctl start",
        )  # fmt: skip
        self._running = True

    def _pg_ctl_stop(self) -> None:
        pg_ctl = (self._binaries or find_binaries()).pg_ctl
        base = [str(pg_ctl), "-D", str(self.data_dir), "-w", "-t", str(START_TIMEOUT), "stop"]
        try:
            self._run([*base, "-m", "fast"], what="pg_ctl stop")
        except RuntimeError:
            self._run([*base, "-m", "immediate"], what="pg_ctl stop -m immediate")

    # -- plumbing ------------------------------------------------------------------------

    def _as_server_user(self, cmd: list[str]) -> list[str]:
        owner = self._owner
        if owner is None:
            return cmd
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", owner.pw_name, "--", *cmd]
        su = shutil.which("su")
        if su:
            return [su, "-s", "/bin/sh", owner.pw_name, "-c", shlex.join(cmd)]
        raise RuntimeError("running as root, but neither runuser nor su is available")

    def _run(self, cmd: list[str], *, what: str) -> None:
        """Run a PostgreSQL program as the server user; raise with its output and the log."""
        try:
            done = subprocess.run(  # noqa: S603 - fixed programs, arguments we built
                self._as_server_user(cmd),
                cwd=self.root,  # the server user may not be able to enter our cwd
                env=_clean_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"{what} did not finish within {COMMAND_TIMEOUT}s{self._log_tail()}"
            ) from None
        if done.returncode != 0:
            output = (done.stderr.strip() + "\n" + done.stdout.strip()).strip()
            raise RuntimeError(
                f"{what} failed with exit code {done.returncode}: {shlex.join(cmd)}\n"
                f"{output}{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except (OSError, RuntimeError):
            return ""
        return "\n--- server log (tail) ---\n" + "\n".join(lines[-LOG_TAIL_LINES:])
