"""A replicated PostgreSQL for the tests and the bench of issue 14: two servers under Patroni, with
a one-member etcd as Patroni's store, all on loopback, in a temporary directory.

    with PatroniCluster() as cluster:
        url = cluster.create_database("london")  # the station's multi-host connection string
        cluster.kill_primary()                   # SIGKILL the leader's postmaster
        cluster.wait_healthy()                   # a leader and a synchronous standby again

The configuration is the one docs/operations.md ("One side on two machines") explains, with
loopback addresses and free ports in place of two machines: `synchronous_mode` and
`synchronous_mode_strict` (a commit returns only once it is on both servers), and
`primary_start_timeout: 0` (Patroni fails a crashed primary over to the synchronous standby at
once rather than restarting it in place; safe because that standby has every commit), and
`loop_wait: 1`, so that a crash is noticed within a second. Only the addresses, the paths, the
passwords, and PostgreSQL's log (in the member's directory) differ from the documented one.

Programs: Debian's `etcd` (package etcd-server) and `patroni` (package patroni, 3.0), and the
PostgreSQL server programs beside `initdb` (sim/pgserver.py finds it; Patroni also needs
pg_basebackup, pg_rewind and pg_controldata there). PostgreSQL refuses to run as root, so when we
are root Patroni runs as the user "postgres"; etcd runs as ourselves. Each program writes its log
in the cluster's directory; when the cluster does not come up, the error carries their tails.

Everything is stopped by `stop` (also at exit): Patroni by SIGTERM (it stops its PostgreSQL),
then any PostgreSQL left (its postmaster started in a session of its own) by SIGQUIT and SIGKILL,
then etcd; every wait is bounded.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import psycopg
from psycopg import sql

from hotline.sim.pgserver import find_binaries, server_user
from hotline.station.launch import free_ports

__all__ = ["Member", "PatroniCluster", "can_run"]

START_TIMEOUT_S = 120.0  # a fresh cluster: initdb, a base backup, both servers streaming
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 25
HOTLINE_ROLE = "hotline"  # the stations' role: owns its databases, no superuser


def can_run() -> str | None:
    """None when this machine has what the cluster needs; else what is missing."""
    missing = [name for name in ("etcd", "patroni") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install etcd-server patroni)"
    try:
        _pg_bin_dir()
        server_user()
    except RuntimeError as exc:
        return str(exc)
    return None


def _pg_bin_dir() -> Path:
    """The directory of the server's programs: where `initdb` really is (/usr/local/bin holds
    links into it), since Patroni wants them all in one directory."""
    bin_dir = find_binaries().initdb.resolve().parent
    for program in ("postgres", "pg_ctl", "pg_basebackup", "pg_rewind", "pg_controldata"):
        if not os.access(bin_dir / program, os.X_OK):
            raise RuntimeError(f"PostgreSQL's {program} is not in {bin_dir}, beside initdb")
    return bin_dir


@dataclass
class Member:
    """One PostgreSQL server and the Patroni that runs it."""

    name: str
    root: Path
    port: int  # PostgreSQL's, on 127.0.0.1
    api_port: int  # Patroni's REST API
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path:
        return self.root / "patroni.yml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "patroni.log"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid, from its pid file (None: none running)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid


class PatroniCluster:
    """etcd and `members` PostgreSQL servers under Patroni, on loopback; `stop` removes it all."""

    def __init__(self, members: int = 2, *, loop_wait: int = 1) -> None:
        self.count = members
        self.loop_wait = loop_wait
        self.scope = f"hotline-{secrets.token_hex(4)}"
        self.password = secrets.token_hex(16)  # of every role: superuser, replication, hotline
        self.root: Path | None = None
        self.members: list[Member] = []
        self.etcd: subprocess.Popen[bytes] | None = None
        self.etcd_port = 0
        self._owner = server_user()
        self._pid = os.getpid()

    # -- life cycle ----------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> Self:
        """Start etcd and every member; return once there is a leader and a synchronous
        standby, and the stations' role exists. On failure stop everything and raise."""
        if self.root is not None:
            raise RuntimeError("this PatroniCluster was already started")
        reason = can_run()
        if reason is not None:
            raise RuntimeError(f"cannot run a Patroni cluster: {reason}")
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.root = Path(tempfile.mkdtemp(prefix="hotline-patroni-", dir=base))
        self.root.chmod(0o755)  # the members' directories, below, are the server user's alone
        atexit.register(self._stop_at_exit)
        try:
            self._start_etcd()
            bin_dir = _pg_bin_dir()
            ports = free_ports(2 * self.count)
            for index in range(self.count):
                member = Member(
                    f"pg{index}", self.root / f"pg{index}", ports[2 * index], ports[2 * index + 1]
                )
                self._write_member(member, bin_dir)
                self.members.append(member)
            for member in self.members:
                self._start_member(member)
            self.wait_healthy(timeout)
            self._make_role()
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _stop_at_exit(self) -> None:
        if os.getpid() == self._pid:  # not in a forked child
            self.stop()

    def stop(self) -> None:
        """Stop every Patroni (and its PostgreSQL), then etcd; remove the directory."""
        if self.root is None:
            return
        atexit.unregister(self._stop_at_exit)
        try:
            for member in self.members:  # all asked first: each stops its server at once
                if member.process is not None and member.process.poll() is None:
                    member.process.send_signal(signal.SIGTERM)
            for member in self.members:
                self.stop_member(member)
            if self.etcd is not None:
                _end(self.etcd)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    # -- the members ---------------------------------------------------------------------

    def cluster(self) -> dict[str, Any]:
        """Patroni's view of the cluster (GET /cluster), from the first member that answers."""
        for member in self.members:
            if member.process is None or member.process.poll() is not None:
                continue
            with contextlib.suppress(httpx.HTTPError, ValueError):
                answer: dict[str, Any] = httpx.get(f"{member.api}/cluster", timeout=2).json()
                return answer
        return {"members": []}

    def member(self, name: str) -> Member:
        return next(member for member in self.members if member.name == name)

    def role_of(self, role: str) -> Member | None:
        """The running member with `role` ("leader", "sync_standby"), by Patroni's word."""
        for entry in self.cluster().get("members", []):
            if entry.get("role") == role and entry.get("state") == "running":
                return self.member(entry["name"])
        return None

    def leader(self) -> Member:
        leader = self.role_of("leader")
        if leader is None:
            raise RuntimeError(f"the cluster has no leader now{self.logs()}")
        return leader

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> Member:
        """Wait for a leader that accepts writes and a synchronous standby; the leader."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for member in self.members:
                if member.process is not None and member.process.poll() is not None:
                    raise RuntimeError(f"Patroni of {member.name} exited{self.logs()}")
            leader = self.role_of("leader")
            if leader is not None and self.role_of("sync_standby") is not None:
                return leader
            time.sleep(0.2)
        raise RuntimeError(
            f"no leader with a synchronous standby within {timeout:.0f} s: "
            f"{self.cluster()}{self.logs()}"
        )

    def wait_failover(self, old: Member, timeout: float = START_TIMEOUT_S) -> Member:
        """Wait until a member other than `old` leads, with a synchronous standby; the leader."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.role_of("leader")
            if leader is not None and leader is not old:
                return self.wait_healthy(max(deadline - time.monotonic(), 0.1))
            time.sleep(0.1)
        raise RuntimeError(
            f"no member took over from {old.name} within {timeout:.0f} s: "
            f"{self.cluster()}{self.logs()}"
        )

    def kill_primary(self) -> Member:
        """SIGKILL the leader's postmaster (its Patroni lives on); the member it was."""
        leader = self.leader()
        pid = leader.postmaster_pid()
        if pid is None:
            raise RuntimeError(f"the leader {leader.name} has no postmaster running{self.logs()}")
        os.kill(pid, signal.SIGKILL)
        return leader

    def stop_member(self, member: Member) -> None:
        """Stop a member's Patroni and whatever PostgreSQL it leaves, within bounded waits."""
        if member.process is not None:
            _end(member.process)
        pid = member.postmaster_pid()
        if pid is not None:  # a server Patroni did not stop: an immediate shutdown, then kill
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
            if not _gone(pid, 5):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _gone(pid, 5)

    # -- for the stations ----------------------------------------------------------------

    @property
    def hosts(self) -> str:
        return ",".join(f"127.0.0.1:{member.port}" for member in self.members)

    @property
    def passfile(self) -> Path:
        if self.root is None:
            raise RuntimeError("the cluster is not started")
        return self.root / "hotline.pgpass"

    def url(self, dbname: str) -> str:
        """The stations' connection string: every server, the one that takes writes chosen by
        libpq (target_session_attrs=read-write); the password from a file, not the string."""
        return (
            f"postgresql://{HOTLINE_ROLE}@{self.hosts}/{dbname}?target_session_attrs=read-write"
            f"&connect_timeout=3&passfile={self.passfile}"
        )

    def create_database(self, name: str) -> str:
        """A new database owned by the stations' role; its connection string."""
        with self._superuser() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(HOTLINE_ROLE)
                )
            )
        return self.url(name)

    def _superuser(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            f"postgresql://postgres@{self.hosts}/postgres?target_session_attrs=read-write",
            password=self.password,
            autocommit=True,
            connect_timeout=5,
        )

    def _make_role(self) -> None:
        with self._superuser() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(HOTLINE_ROLE), sql.Literal(self.password)
                )
            )
        self.passfile.write_text(f"*:*:*:{HOTLINE_ROLE}:{self.password}\n")
        self.passfile.chmod(0o600)  # libpq ignores a password file others can read

    def logs(self) -> str:
        """The tails of every program's log, for an error message."""
        parts = []
        files = [(m.name, m.log_file) for m in self.members]
        files += [(f"{m.name} postgres", m.root / "log" / "postgresql.log") for m in self.members]
        if self.root is not None:
            files.append(("etcd", self.root / "etcd.log"))
        for name, path in files:
            with contextlib.suppress(OSError):
                lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
                parts.append(f"\n--- {name} ({path}) ---\n" + "\n".join(lines))
        return "".join(parts)

    # -- starting ------------------------------------------------------------------------

    def _start_etcd(self) -> None:
        assert self.root is not None
        self.etcd_port, peer = free_ports(2)
        client, peer_url = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{peer}"
        log = (self.root / "etcd.log").open("ab")
        self.etcd = subprocess.Popen(
            [
                shutil.which("etcd") or "etcd",
                "--name", "e0",
                "--data-dir", str(self.root / "etcd"),
                "--listen-client-urls", client,
                "--advertise-client-urls", client,
                "--listen-peer-urls", peer_url,
                "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", f"e0={peer_url}",
                "--initial-cluster-state", "new",
                "--initial-cluster-token", self.scope,
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.root, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.etcd.poll() is not None:
                raise RuntimeError(f"etcd exited with code {self.etcd.returncode}{self.logs()}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if httpx.get(f"{client}/health", timeout=1).json().get("health") == "true":
                    return
            time.sleep(0.1)
        raise RuntimeError(f"etcd did not become healthy within 30 s{self.logs()}")

    def _write_member(self, member: Member, bin_dir: Path) -> None:
        member.root.mkdir(mode=0o700)
        (member.root / "log").mkdir(mode=0o700)
        (member.root / "socket").mkdir(mode=0o700)
        member.config_file.write_text(self._config(member, bin_dir))
        if self._owner is not None:
            for path in (member.root, member.root / "log", member.root / "socket"):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
            os.chown(member.config_file, self._owner.pw_uid, self._owner.pw_gid)
        member.config_file.chmod(0o600)  # it holds the passwords

    def _config(self, member: Member, bin_dir: Path) -> str:
        """Patroni's configuration of one member: docs/operations.md explains each part."""
        password = self.password
        return f"""\
scope: {self.scope}
namespace: /hotline/
name: {member.name}

restapi:
  listen: 127.0.0.1:{member.api_port}
  connect_address: 127.0.0.1:{member.api_port}

etcd3:
  hosts: 127.0.0.1:{self.etcd_port}

bootstrap:
  dcs:
    ttl: 20
    loop_wait: {self.loop_wait}
    retry_timeout: 5
    maximum_lag_on_failover: 1048576
    primary_start_timeout: 0
    synchronous_mode: true
    synchronous_mode_strict: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 256MB
        wal_retrieve_retry_interval: 1s
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - data-checksums

postgresql:
  listen: 127.0.0.1:{member.port}
  connect_address: 127.0.0.1:{member.port}
  data_dir: {member.data_dir}
  bin_dir: {bin_dir}
  pgpass: {member.root / "pgpass"}
  use_unix_socket: true
  authentication:
    superuser:
      username: postgres
      password: {password}
    replication:
      username: replicator
      password: {password}
    rewind:
      username: rewinder
      password: {password}
  pg_hba:
    - local all postgres peer
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
  parameters:
    unix_socket_directories: {member.root / "socket"}
    password_encryption: scram-sha-256
    logging_collector: "on"
    log_directory: {member.root / "log"}
    log_filename: postgresql.log

tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
"""

    def _start_member(self, member: Member) -> None:
        log = member.log_file.open("ab")
        owner: pwd.struct_passwd | None = self._owner
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "PYTHON"))}
        env.pop("VIRTUAL_ENV", None)
        if owner is not None:
            env.update(HOME=str(member.root), USER=owner.pw_name, LOGNAME=owner.pw_name)
        member.process = subprocess.Popen(
            [shutil.which("patroni") or "patroni", str(member.config_file)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=member.root, env=env, start_new_session=True,
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            extra_groups=[] if owner else None,
        )  # fmt: skip
        log.close()


def _end(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (if not sent yet), a bounded wait, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _gone(pid: int, timeout: float) -> bool:
    """Wait until `pid` no longer exists (it is not our child: poll)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
