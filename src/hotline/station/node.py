"""One node of a side that runs on several machines, sharing one PostgreSQL store (issue 14;
docs/operations.md, "One side on two machines").

Exactly one node of a side is active, the one holding the side's lease (store/lease.py). A node
starts as a standby: it serves only answers that name the active node (standby.py) and looks at
the lease every `poll_ms`. When the lease has ended (its holder stopped cleanly, or died, or was
cut off) it takes it at the next epoch, fences its store with that epoch, and runs the station as
a start does: it loads and checks every chain (`Station.open`), then opens its paths, API and
console. While active it renews the lease every `renew_ms`; if it cannot (another node took it,
or the store has not answered before the lease would end) or a commit finds the epoch changed,
it steps down: the station stops, and the node is a standby again.

Why the node cannot do harm once it has lost the lease: its store checks the epoch inside every
transaction (store/postgres.py), so whatever it still tries to commit (a chain's next envelope, a
receipt, a draft's release) is rolled back; and what it sends is only ever what it committed
before. It also stops on its own before the lease could end by the server's clock: it counts the
lease from the moment it asked for the renewal, by its own monotonic clock, which keeps counting
while the process is paused (SIGSTOP).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client.core import GaugeMetricFamily

from hotline.errors import ConfigError, LeaseLost, StoreError
from hotline.station.datadir import DataDir, NodeSection, StationConfig
from hotline.store.lease import Lease, LeaseTable
from hotline.store.postgres import PostgresStore

if TYPE_CHECKING:
    from hotline.crypto.identity import StationIdentity
    from hotline.store.base import SqlStore

__all__ = ["Leadership", "Node", "console_url", "node_metrics"]

log = logging.getLogger("hotline.node")
_T = TypeVar("_T")


def console_url(config: StationConfig) -> str:
    """Where people reach this node's console: `[node] console_url`, else its listen address."""
    if config.node.console_url or not config.console.listen:
        return config.node.console_url
    return f"{'https' if config.console.tls_cert else 'http'}://{config.console.listen}"


class Leadership:
    """This node's dealings with the lease, on a thread and a connection of their own."""

    def __init__(self, url: str, settings: NodeSection, api: str, console: str) -> None:
        self.url = url
        self.settings = settings
        self.api, self.console = api, console
        self.lease: Lease | None = None  # ours, while this node is active
        self.seen: Lease | None = None  # the lease as last read: who is active
        self._table: LeaseTable | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hotline-lease")
        self._valid_until = 0.0  # by our monotonic clock: past it, the lease may be another's
        self._busy: asyncio.Future[Any] | None = None  # the last call on the lease's thread

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def _lease_s(self) -> float:
        return self.settings.lease_ms / 1000

    async def _run(self, work: Callable[[LeaseTable], _T], timeout_s: float) -> _T:
        def call() -> _T:
            if self._table is None:
                self._table = LeaseTable(self.url, statement_timeout_ms=self.settings.lease_ms)
            try:
                return work(self._table)
            except StoreError:
                with contextlib.suppress(Exception):
                    self._table.close()
                self._table = None  # a fresh connection next time (the server may have moved)
                raise

        deadline = time.monotonic() + max(timeout_s, 0.01)
        busy = self._busy
        if busy is not None and not busy.done():
            # A call we stopped waiting for still runs (a commit the server holds back until its
            # synchronous standby answers): wait for it rather than queue behind it, so that no
            # backlog of stale calls builds up while the database cannot commit.
            await asyncio.wait({busy}, timeout=deadline - time.monotonic())
            if not busy.done():
                raise TimeoutError("the lease's previous call has not finished")
        future = asyncio.get_running_loop().run_in_executor(self._thread, call)
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._busy = future
        return await asyncio.wait_for(
            asyncio.shield(future), max(deadline - time.monotonic(), 0.01)
        )

    async def look(self) -> Lease | None:
        """Read the lease (who is active), for a standby's answers."""
        self.seen = await self._run(lambda t: t.read(), self._lease_s)
        return self.seen

    async def take(self) -> Lease | None:
        """Take the lease if it has ended; else None, and `seen` says who holds it.

        A live lease in this node's name, which it does not hold, is given back, to be taken
        at the next poll: one that a take committed after the node had stopped waiting for it
        (the database held the commit until its synchronous standby answered, after a failover
        of the database), or a term's that the node could not give up when its store failed.
        No station of this node runs on it: giving it back fences nothing of ours."""
        started = time.monotonic()
        settings = self.settings
        lease = await self._run(
            lambda t: t.take(settings.name, settings.lease_ms, self.api, self.console),
            self._lease_s,
        )
        if lease is None:
            seen = await self.look()
            if seen is not None and seen.node == self.name and seen.live:
                log.warning(
                    "node %s gives back the lease at epoch %d, which it holds but does not use",
                    self.name, seen.epoch,
                )  # fmt: skip
                await self._run(lambda t: t.release(seen), self._lease_s)
            return None
        self.lease = self.seen = lease
        self._valid_until = started + self._lease_s
        return lease

    def fence(self, store: SqlStore) -> None:
        """Make the store check our epoch in each of its transactions."""
        if self.lease is None:
            raise LeaseLost(f"node {self.name!r} holds no lease")
        if not isinstance(store, PostgresStore):
            raise ConfigError("the nodes of a side share a PostgreSQL store")
        store.fence(self.name, self.lease.epoch, idle_ms=self.settings.lease_ms // 2)

    async def keep(self) -> None:
        """Renew the lease until it is lost: then raise LeaseLost (the station steps down)."""
        while True:
            await asyncio.sleep(self.settings.renew_ms / 1000)
            lease, now = self.lease, time.monotonic()
            if lease is None:
                raise LeaseLost(f"node {self.name!r} holds no lease")
            if now >= self._valid_until:
                raise LeaseLost(
                    f"node {self.name!r} could not renew its lease (epoch {lease.epoch}) within "
                    f"{self.settings.lease_ms} ms: another node may hold it now"
                )
            try:
                renewed = await self._run(
                    functools.partial(_renew, lease=lease, lease_ms=self.settings.lease_ms),
                    self._valid_until - now,
                )
            except (StoreError, TimeoutError) as exc:
                log.warning("node %s: the lease was not renewed: %s", self.name, exc or "timeout")
                continue
            if renewed is None:
                self.lease = None
                raise LeaseLost(
                    f"node {self.name!r} lost the lease (epoch {lease.epoch}): another node "
                    "took it over"
                )
            self.lease = self.seen = renewed
            self._valid_until = now + self._lease_s

    async def release(self) -> None:
        """Give the lease up, so that another node takes it at once (a clean stop)."""
        lease, self.lease = self.lease, None
        if lease is not None:
            try:
                await self._run(lambda t: t.release(lease), self._lease_s)
            except (StoreError, TimeoutError) as exc:
                log.warning("node %s: the lease was not given up: %s", self.name, exc)

    def status(self) -> dict[str, Any]:
        """What `hotline node status`, the API and the metrics say of this node."""
        active = self.lease is not None
        seen = self.lease or self.seen
        return {
            "node": self.name,
            "role": "active" if active else "standby",
            "lease": seen.to_json() if seen is not None else None,
            "lease_ms": self.settings.lease_ms,
        }

    def close(self) -> None:
        if self._table is not None:
            table, self._table = self._table, None
            self._thread.submit(table.close)
        self._thread.shutdown(wait=False)


def node_metrics(leadership: Leadership) -> list[GaugeMetricFamily]:
    """The node's gauges, the same on an active node (metrics.py) and on a standby."""
    status = leadership.status()
    lease = status["lease"] or {}
    active = GaugeMetricFamily(
        "hotline_node_active", "1 on the side's active node", labels=["node"]
    )
    active.add_metric([status["node"]], int(status["role"] == "active"))
    epoch = GaugeMetricFamily("hotline_node_epoch", "the lease's fencing epoch, as last read")
    epoch.add_metric([], lease.get("epoch", 0))
    remaining = GaugeMetricFamily(
        "hotline_node_lease_remaining_seconds", "how long the lease runs, as last read"
    )
    remaining.add_metric([], max(0, lease.get("expires_ns", 0) - lease.get("now_ns", 0)) / 1e9)
    taken = GaugeMetricFamily(
        "hotline_node_active_since_seconds",
        "when the active node took the lease (Unix time), and how: first, released (a clean "
        "hand-over), expired (a failover)",
        labels=["node", "reason"],
    )
    if lease:
        taken.add_metric([lease["node"], lease["reason"]], lease["taken_ns"] / 1e9)
    return [active, epoch, remaining, taken]


class Node:
    """A node's life: standby, active (a Station fenced by its lease), standby again."""

    def __init__(self, data: DataDir, identity: StationIdentity) -> None:
        from hotline.station.runtime import DataDirLock  # noqa: PLC0415 - runtime imports us

        self.data = data
        self.identity = identity
        self.config = data.config()
        config = self.config
        self.leadership = Leadership(
            config.store.url, config.node, config.api.listen, console_url(config)
        )
        self.lock = DataDirLock(data)
        self.failure: BaseException | None = None  # why the last term ended, if it failed
        self.terms = 0
        self._stop = asyncio.Event()

    @property
    def name(self) -> str:
        return self.config.node.name

    async def run(self) -> None:
        self.lock.acquire()
        if self.config.console.listen:  # imported now, not in the loop of an active term
            importlib.import_module("hotline.console.app")
        try:
            if not await self._migrate():
                return
            pause = 0.0
            while True:
                lease = await self._standby(pause)
                if lease is None:
                    return
                log.warning("node %s active, epoch %d: %s", self.name, lease.epoch, lease.why())
                if await self._term():
                    return
                pause = self.config.node.lease_ms / 1000  # let another node have a go first
        finally:
            self.leadership.close()
            self.lock.release()

    async def _migrate(self) -> bool:
        """Bring the store's schema up to date, waiting for the store as long as it cannot be
        reached (a node started while the database fails over, or before it is up): a standby
        waits for the store, it does not exit. False: asked to stop meanwhile."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(_migrate, self.config.store.url)
                return True
            except StoreError as exc:
                log.warning("node %s: waiting for the store: %s", self.name, exc)
            await self._wait(self.config.node.poll_ms / 1000)
        return False

    async def _term(self) -> bool:
        """Run the station while we hold the lease: True if it stopped as asked."""
        from hotline.station.runtime import Station  # noqa: PLC0415 - runtime imports us

        self.terms += 1
        station = Station(self.data, self.identity, node=self.leadership)
        # Until the station serves, SIGTERM and SIGINT still set our stop (the station installs
        # its own handlers last): a stop asked for while it loads stops it as soon as it is up.
        asked = asyncio.create_task(self._stop.wait())
        asked.add_done_callback(lambda task: None if task.cancelled() else station.stop())
        try:
            await station.run()
        except LeaseLost as exc:
            log.error("node %s steps down to standby: %s", self.name, exc)
            self.failure = exc
            self.leadership.lease = None
            return False
        except StoreError as exc:
            log.error("node %s steps down to standby: the store failed: %s", self.name, exc)
            self.failure = exc
            await self.leadership.release()
            return False
        except BaseException:
            await self.leadership.release()
            raise
        finally:
            asked.cancel()
        await self.leadership.release()
        return True

    async def _standby(self, pause: float) -> Lease | None:
        """Wait, answering as a standby, until we hold the lease (None: asked to stop)."""
        from hotline.station.standby import StandbyServers  # noqa: PLC0415 - small, ours

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        with contextlib.suppress(StoreError, TimeoutError):  # not our own lease, shown as live
            await self.leadership.look()
        servers = StandbyServers(self.config, self.data, self.leadership)
        await servers.start()
        log.info("node %s is a standby", self.name)
        compete_at = time.monotonic() + pause  # after a failed term, let another node go first
        try:
            while not self._stop.is_set():
                try:
                    if time.monotonic() < compete_at:
                        await self.leadership.look()
                    elif (lease := await self.leadership.take()) is not None:
                        return lease
                except (StoreError, TimeoutError) as exc:
                    log.warning("node %s: the lease cannot be read: %s", self.name, exc)
                await self._wait(self.config.node.poll_ms / 1000)
            return None
        finally:
            await servers.stop()

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)


def _renew(table: LeaseTable, lease: Lease, lease_ms: int) -> Lease | None:
    return table.renew(lease, lease_ms)


def _migrate(url: str) -> None:
    """Bring the shared store's schema up to date before competing for its lease."""
    PostgresStore(url).close()
