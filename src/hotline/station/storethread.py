"""The store's single writer: one thread runs every store call, in order, so the event loop never
waits on a disk and two transactions never interleave.

On a node of a side on several machines, a call that finds the lease lost (LeaseLost: another
node took over) is also told to `on_lost`, whoever made it (a link's commit, a person's act at
the console): the station steps down at once, not at its next renewal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from hotline.errors import LeaseLost
from hotline.store.base import SqlStore

__all__ = ["StoreThread"]

_T = TypeVar("_T")


class StoreThread:
    def __init__(self, store: SqlStore, on_lost: Callable[[LeaseLost], None] | None = None) -> None:
        self.store = store
        self.on_lost = on_lost
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hotline-store")

    async def call(self, work: Callable[[SqlStore], _T]) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, work, self.store)
        except LeaseLost as exc:
            if self.on_lost is not None:
                self.on_lost(exc)
            raise

    def close(self) -> None:
        self._thread.submit(self.store.close).result()
        self._thread.shutdown(wait=True)
