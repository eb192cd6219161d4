"""London of a fresh pair, run inside the test's own event loop, for tests that drive the
console's or the API's routes through ASGI rather than over a socket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from hotline.crypto.identity import StationIdentity
from hotline.station.datadir import DataDir
from hotline.station.launch import StationProcess, make_pair
from hotline.station.runtime import Station

__all__ = ["london_and_identity", "running"]


def london_and_identity(root: Path) -> tuple[StationProcess, StationIdentity]:
    """London of a pair made in `root` (not started as a process), and its opened keystore."""
    london, _moscow = make_pair(root)
    identity = london.data.open_keystore(london.passphrase_file.read_bytes().rstrip(b"\n"))
    return london, identity


@contextlib.asynccontextmanager
async def running(london: StationProcess, identity: StationIdentity) -> AsyncIterator[Station]:
    """London's station opened in this event loop, its links' senders running; closed after."""
    station = Station(DataDir(london.data.path), identity)
    await station.open()
    senders = [asyncio.create_task(r.run_sender()) for r in station.links.values()]
    try:
        yield station
    finally:
        for task in senders:
            task.cancel()
        station.close()
