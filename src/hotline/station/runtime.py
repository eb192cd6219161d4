"""The station process: `hotline serve`. It opens the keystore and the store, holds the data
directory's lock, runs every paired link (paths, sessions, heartbeats, checkpoints), serves the
local service API, and shuts down cleanly on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import faulthandler
import fcntl
import functools
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import uvicorn
import uvloop

from hotline.crypto.atrest import totp_key
from hotline.crypto.identity import StationIdentity
from hotline.errors import ConfigError, LeaseLost, StoreError
from hotline.protocol.link import Timing
from hotline.protocol.state import LinkConfig
from hotline.station.calls import CallDesk
from hotline.station.connections import PathManager
from hotline.station.datadir import DataDir, StationConfig, card_problem
from hotline.station.discipline import Discipline
from hotline.station.events import EventHub
from hotline.station.files import FileStore
from hotline.station.limits import HeadWaits, guarded_http, raise_open_files_limit
from hotline.station.link_runtime import STATION_TIMING, LinkRuntime
from hotline.station.links import load_links
from hotline.station.sidefiles import SideFiles
from hotline.station.storethread import StoreThread
from hotline.station.transfers import Transfers
from hotline.station.translation import TranslationDesk
from hotline.station.udp import MediaSockets
from hotline.store.base import SqlStore
from hotline.store.postgres import PostgresStore
from hotline.store.sqlite import SqliteStore
from hotline.translate import EngineSettings

if TYPE_CHECKING:
    from hotline.station.node import Leadership

__all__ = ["DataDirLock", "Station", "open_store"]

log = logging.getLogger("hotline.station")
TICK_S = 0.25
SHUTDOWN_GRACE_S = 20.0  # a clean stop takes well under a second; past this, something hangs


def open_store(data: DataDir, config: StationConfig) -> SqlStore:
    """The station's store, sealing the TOTP secrets it writes to the data directory's key (any
    tool that opens it this way; only the station itself can open them again)."""
    url = config.store.url
    store: SqlStore
    if not url:
        store = SqliteStore(data.store_file)
    elif url.startswith(("postgresql://", "postgres://")):
        store = PostgresStore(url)
    else:
        raise ConfigError(f"store url {url!r}: use an empty value (SQLite) or a postgresql:// URL")
    store.use_totp_key(data.totp_public_key())
    return store


def _keep_secrets(data: DataDir, identity: StationIdentity, store: SqlStore) -> None:
    """What a stolen copy of the data directory or of the store must not give away: the
    directory made private, the TOTP secrets sealed to a key derived from the keystore (those
    still plain, from before, sealed now), and the ones that do not open named."""
    for line in data.secure():
        log.warning("made private (it was readable by others): %s", line)
    private, public = totp_key(identity)
    data.publish_totp_key(public)
    store.use_totp_key(public, private)
    sealed = store.seal_plain_totp_secrets()
    if sealed:
        log.warning("sealed the TOTP secrets of %d operator(s) kept plain before", len(sealed))
    for name in store.unopened_totp_secrets():
        log.error("the TOTP secret of %r does not open with this keystore: reset it", name)


class DataDirLock:
    """One station process per data directory: a second one is refused, not allowed to write."""

    def __init__(self, data: DataDir) -> None:
        self.path = data.path / "station.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise ConfigError(
                    f"{self.path.parent} is in use by station process {holder}"
                ) from None
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _QuietServer(uvicorn.Server):
    """uvicorn inside the station's loop: the station, not uvicorn, handles SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Station:
    def __init__(
        self, data: DataDir, identity: StationIdentity, node: Leadership | None = None
    ) -> None:
        self.data = data
        self.identity = identity
        self.config = data.config()
        self.card = data.card()
        self.hub = EventHub()
        self.lock = DataDirLock(data)
        # A node of a side on several machines (node.py): the lease it holds, which fences its
        # store and is renewed while it runs. None: the side's only node.
        self.node = node
        self.store: StoreThread | None = None
        self.discipline = Discipline(self, self.config.console)
        self.links: dict[str, LinkRuntime] = {}
        self.files = FileStore(data.path / "attachments", self.config.attachments.max_size)
        self.side_files: SideFiles | None = None  # on a side of several nodes (sidefiles.py)
        self.translation = TranslationDesk(
            EngineSettings.from_toml(self.config.translate, data.path), data.path
        )
        self.media = MediaSockets(list(self.config.station.listen) if self.config.calls.udp else [])
        self.started_ns = time.time_ns()
        self._stop = asyncio.Event()
        self._servers: list[asyncio.AbstractServer] = []
        self._http_servers: list[uvicorn.Server] = []
        self._paths: PathManager | None = None
        self.failure: BaseException | None = None

    async def run(self) -> None:
        if self.node is None:  # a node holds the lock itself, standby or active
            self.lock.acquire()
        log.info("open files limit: %d", raise_open_files_limit())  # idle clients cost fds
        try:
            await self._run()
        finally:
            self.lock.release()

    async def open(self) -> None:
        """Open the store and bring each link's core up from it: the station's state, without
        its network, API or console (tests of the console start here)."""
        store = open_store(self.data, self.config)
        try:
            if self.node is not None:  # before the first write: each one checks our epoch
                self.node.fence(store)
            _keep_secrets(self.data, self.identity, store)
        except BaseException:
            store.close()
            raise
        self.store = StoreThread(store, on_lost=self._fail if self.node is not None else None)
        if self.node is not None:  # the files too go to the side's store, on a connection of
            blobs = open_store(self.data, self.config)  # their own: a large one waits for no one
            try:
                self.node.fence(blobs)
            except BaseException:
                blobs.close()
                raise
            self.side_files = SideFiles(StoreThread(blobs, on_lost=self._fail), self.data.path)
            self.files.side = self.side_files
        await self.translation.start()
        for link in load_links(self.data, self.identity):
            await self.store.call(functools.partial(_add_link, config=link.config))
            paths = link.dial_all if link.dials else list(self.config.station.listen)
            nodes = link.peer_nodes if link.dials else None  # a peer side of several nodes
            runtime = LinkRuntime(link, self.store, self.hub, paths, self._timing(), nodes)
            runtime.on_fatal = self._fail
            await runtime.start()
            runtime.transfers = Transfers(runtime, self.files)
            await runtime.transfers.start()
            runtime.calls = CallDesk(
                runtime, self.media, self.config.calls, self.data.path, self.card.body.name
            )
            runtime.calls.side_files = self.side_files
            self.links[link.name] = runtime

    def _timing(self) -> Timing:
        """The link core's timing, with the bound on the peer's clock from `[console]`."""
        bound_ns = self.config.console.clock_fault_s * 1_000_000_000
        return dataclasses.replace(STATION_TIMING, clock_fault_ns=bound_ns)

    def close(self) -> None:
        for runtime in self.links.values():
            if runtime.transfers is not None:
                runtime.transfers.stop()
        if self.store is not None:
            self.store.close()
        if self.side_files is not None:
            self.side_files.replica.close()
            self.files.side = self.side_files = None

    async def _run(self) -> None:
        tasks: list[asyncio.Task[None]] = []
        if self.node is not None:  # renewed from the start: loading a large store takes time
            tasks.append(asyncio.create_task(self.node.keep()))
            tasks[0].add_done_callback(self._task_done)
        try:
            await self.open()
            if self._stop.is_set() and self.failure is not None:
                raise self.failure  # the lease was lost while the store was loading
            if self.node is not None:  # the console's stream: a node took over, how and why
                self.hub.publish({"type": "node", **self.node.status()})
            manager = self._paths = PathManager(list(self.links.values()))
            await self._listen(manager)
            await self.media.open()
            tasks += self._start_tasks(manager)
            if self.config.console.listen:
                tasks.append(await self._serve_console())
            tasks.append(await self._serve_api())  # the HTTP servers last: shutdown waits for them
            self._install_signals()
            # What start-up built (the web apps, their routes and models, the links) lives as
            # long as the process. Frozen, the collector's full passes no longer walk it: each
            # was 10-40 ms in which a call's audio stood still (docs/calls.md, "Audio").
            gc.collect()
            gc.freeze()
            log.info(
                "station %s up%s: %d link(s), API on %s, console on %s",
                self.card.body.name,
                f" (node {self.node.name})" if self.node is not None else "",
                len(self.links),
                self.config.api.listen,
                self.config.console.listen or "(none)",
            )
            print(self._addresses(), flush=True)  # whatever the log level: where to go next
            for task in tasks[1 if self.node is not None else 0 :]:
                task.add_done_callback(self._task_done)
            await self._stop.wait()
            await self._shutdown(tasks)
            if self.failure is not None:
                raise self.failure
        finally:
            for task in tasks:
                task.cancel()
            self.close()

    def _addresses(self) -> str:
        """What `hotline serve` prints once it listens: the console's and the API's addresses."""
        console = self.config.console
        scheme = "https" if console.tls_cert else "http"
        lines = [f"station {self.card.body.name} ready"]
        if console.listen:
            lines.append(f"  console  {scheme}://{console.listen}")
        lines.append(f"  API      http://{self.config.api.listen}  (routes at /docs)")
        return "\n".join(lines)

    async def _listen(self, manager: PathManager) -> None:
        for address in self.config.station.listen:
            host, _, port = address.rpartition(":")
            try:
                server = await asyncio.start_server(
                    functools.partial(manager.accept, local=address),
                    host.strip("[]"),
                    int(port),
                    backlog=1024,  # under a flood of connections, the link's own still gets in
                )
            except OSError as exc:
                raise ConfigError(f"cannot listen on {address}: {exc.strerror or exc}") from None
            self._servers.append(server)

    def _start_tasks(self, manager: PathManager) -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(self._tick()), asyncio.create_task(self.discipline.run())]
        if self.side_files is not None:
            tasks.append(asyncio.create_task(self._restore_files(self.side_files)))
        for runtime in self.links.values():
            tasks.append(asyncio.create_task(runtime.run_sender()))
            if runtime.calls is not None:  # the records of calls that a stop cut short
                tasks.append(asyncio.create_task(runtime.calls.start()))
            if runtime.transfers is not None:
                tasks.append(asyncio.create_task(runtime.transfers.run()))
            if runtime.link.dials:
                tasks += [
                    asyncio.create_task(manager.dial_forever(runtime, a))
                    for a in runtime.link.dial_all
                ]
        return tasks

    async def _restore_files(self, side_files: SideFiles) -> None:
        """A node that took over: the attachment files and recordings its disk lacks, from the
        side's store (while they come, a peer asking for a file is answered when it asks again)."""
        try:
            await side_files.restore_missing()
        except LeaseLost:
            raise
        except StoreError as exc:
            log.error("files not copied from the side's store: %s", exc)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            for runtime in self.links.values():
                await runtime.act(lambda core: core.tick(time.time_ns()))
                if runtime.calls is not None:
                    runtime.calls.tick(time.time_ns())

    async def _serve_api(self) -> asyncio.Task[None]:
        from hotline.station.api import make_app  # noqa: PLC0415 - FastAPI loads only to serve

        return await self._serve(make_app(self), self.config.api.listen, "the API")

    async def _serve_console(self) -> asyncio.Task[None]:
        from hotline.console.app import make_console_app  # noqa: PLC0415 - a layer above
        from hotline.console.drafts import reconcile_drafts  # noqa: PLC0415

        await reconcile_drafts(self)
        settings = self.config.console
        tls = bool(settings.tls_cert)
        app = make_console_app(self, settings, tls)
        return await self._serve(
            app, settings.listen, "the console", settings.tls_cert, settings.tls_key
        )

    async def _serve(
        self, app: Any, listen: str, what: str, cert: str = "", key: str = ""
    ) -> asyncio.Task[None]:
        host, _, port = listen.rpartition(":")
        config = uvicorn.Config(
            app,
            host=host.strip("[]"),
            port=int(port),
            log_level="warning",
            lifespan="off",
            access_log=False,  # each request is not a log line; operators' acts go to the audit log
            proxy_headers=False,  # no proxy stands before these: trust no forwarded header
            ssl_certfile=cert or None,
            ssl_keyfile=key or None,
            timeout_graceful_shutdown=1,  # an open event stream must not hold up a stop
            # Slow and idle clients (docs/operations.md, "Floods"): a deadline and a size
            # limit on request heads (limits), idle keep-alive closed after 5 s, and a
            # generous cap on connections and tasks (past it uvicorn answers 503).
            http=guarded_http(HeadWaits()),
            timeout_keep_alive=5,
            limit_concurrency=1000,
            # The only WebSocket carries a call's raw PCM, which compresses poorly: deflating
            # it cost more CPU per frame than sealing and sending it on two paths.
            ws_per_message_deflate=False,
        )
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
                raise ConfigError(f"cannot serve {what} on {listen}: port in use?")
            await asyncio.sleep(0.01)
        self._http_servers.append(server)
        return task

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._asked_to_stop)

    def _asked_to_stop(self) -> None:
        """Stop cleanly; and if that has not finished within SHUTDOWN_GRACE_S, say where it
        hangs (every thread's stack, in the log) and exit anyway. A station asked to stop must
        stop: every commit is a transaction, so an exit at any instant loses nothing accepted."""
        if not self._stop.is_set():
            watchdog = threading.Timer(SHUTDOWN_GRACE_S, _shutdown_hung)
            watchdog.daemon = True
            watchdog.start()
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
            if isinstance(exc, LeaseLost):
                log.critical("station stopping: %s", exc)
        self._stop.set()

    def node_status(self) -> dict[str, Any] | None:
        """This node's role and the side's lease (None: the side's only node)."""
        return self.node.status() if self.node is not None else None

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A station task must never end on its own: if one fails (the store cannot commit, say),
        the station stops rather than go on half-working; what was accepted is in the store."""
        if not task.cancelled() and task.exception() is not None and not self._stop.is_set():
            self.failure = task.exception()
            log.critical("station stopping: %s", self.failure)
            self._stop.set()

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        """Stop taking work, let the transaction in flight finish, close sessions with a reason."""
        log.info("station %s shutting down", self.card.body.name)
        if self._paths is not None:
            self._paths.stopping = True
        for http_server in self._http_servers:
            http_server.should_exit = True
        for server in self._servers:
            server.close()
        for runtime in self.links.values():  # while the senders still run: records are messages
            if runtime.calls is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(runtime.calls.shutdown("station shutting down"), 3)
        self.media.close()
        http_tasks = tasks[len(tasks) - len(self._http_servers) :]
        for task in tasks:
            if task not in http_tasks:
                task.cancel()
        for runtime in self.links.values():
            with contextlib.suppress(Exception):
                await runtime.act(lambda core: core.shutdown("station shutting down"))
            for connection in list(runtime.connections.values()):
                connection.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*http_tasks), 5)
        with contextlib.suppress(Exception):
            await self.translation.close()


def _shutdown_hung() -> None:
    log.critical("shutdown did not finish in %.0f s; the threads' stacks follow", SHUTDOWN_GRACE_S)
    faulthandler.dump_traceback(all_threads=True)
    os._exit(70)  # EX_SOFTWARE


def _add_link(store: SqlStore, config: LinkConfig) -> None:
    store.add_link(config, time.time_ns())


def serve(data_dir: Path, identity: StationIdentity) -> None:
    data = DataDir(data_dir)
    if problem := card_problem(data.config(), data.card()):  # said at every start, not silent
        log.warning("%s", problem)
    if data.config().node.name:  # one node of a side on several machines
        from hotline.station.node import Node  # noqa: PLC0415 - only for such a side

        uvloop.run(Node(data, identity).run())
        return
    uvloop.run(Station(data, identity).run())  # libuv's loop: less CPU per packet
