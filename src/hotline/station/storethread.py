"""The store's single writer: one thread runs every store call, in order, so the event loop never
waits on a disk and two transactions never interleave."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from hotline.store.base import SqlStore

__all__ = ["StoreThread"]

_T = TypeVar("_T")


class StoreThread:
    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hotline-store")

    async def call(self, work: Callable[[SqlStore], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, work, self.store)

    def close(self) -> None:
        self._thread.submit(self.store.close).result()
        self._thread.shutdown(wait=True)
