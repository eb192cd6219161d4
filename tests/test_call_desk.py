"""The call desk's order of work at the station: the store knows of a call before the peer is
told of it. A call that starts ringing here, is answered here, or is refused as busy is noted
first; so a station killed just after the frame left still writes that call's record at its next
start, as the peer writes its own (docs/calls.md §8). A stand-in runtime records, in order, what
reached the store and what went on the wire; the store is a real SQLite one."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hotline.protocol.callframes import CallInvite
from hotline.protocol.callframes import CallMedia as CallMediaFrame
from hotline.station.calls import CallDesk
from hotline.station.datadir import CallsSection
from hotline.station.udp import MediaSockets
from hotline.store.sqlite import SqliteStore

LINK_ID = b"L" * 16


class Runtime:
    """What a CallDesk uses of a LinkRuntime, writing a log of notes and frames."""

    def __init__(self, store: SqliteStore, log: list[str]) -> None:
        card = SimpleNamespace(body=SimpleNamespace(name="Moscow"))
        self.link = SimpleNamespace(
            name="moscow", config=SimpleNamespace(link_id=LINK_ID), record_calls=None,
            peer_card=card,
        )  # fmt: skip
        self.media_addresses = ["127.0.0.1:9"]
        self.core = SimpleNamespace(carrier=lambda: 1)
        self.hub = SimpleNamespace(publish=lambda event: None)
        self.store = SimpleNamespace(call=self._call)
        self._db, self.log = store, log

    async def _call(self, work: Any) -> Any:
        await asyncio.sleep(0.01)  # the store thread takes its time, as a disk does
        before = dict(self._db.open_calls(LINK_ID))
        result = work(self._db)
        for call_id, note in self._db.open_calls(LINK_ID):
            if before.get(call_id) != note:
                state = "answered" if json.loads(note)["answered_ns"] else "ringing"
                self.log.append(f"noted {state}")
        return result

    def write_frames(self, sid: int, frames: list[Any]) -> bool:
        # Media rides the session from the answer on (the TCP fallback until the peer's UDP is
        # heard), interleaved with signalling at the whim of timing: only signalling is logged.
        self.log += [type(f).__name__ for f in frames if not isinstance(f, CallMediaFrame)]
        return True


def _invite(call_id: bytes) -> CallInvite:
    return CallInvite(call_id, 0, "A. Smith", "principal", False, os.urandom(32), 7, 20)


async def _scenario(path: Path) -> list[str]:
    log: list[str] = []
    store = SqliteStore(path)
    sockets = MediaSockets(["127.0.0.1:0"])
    await sockets.open()
    desk = CallDesk(Runtime(store, log), sockets, CallsSection(), path.parent, "London")  # type: ignore[arg-type]
    try:
        first, second = os.urandom(16), os.urandom(16)
        desk.on_frame(_invite(first))
        await asyncio.sleep(0.1)
        desk.answer(first, "I. Petrov", "principal")
        await asyncio.sleep(0.1)
        log.append("--")
        desk.on_frame(_invite(second))  # while the first is live: busy
        await asyncio.sleep(0.1)
        await desk.shutdown("test over")
        return log
    finally:
        sockets.close()
        store.close()


def test_the_store_knows_of_a_call_before_the_peer_is_told(tmp_path: Path) -> None:
    log = asyncio.run(_scenario(tmp_path / "store.db"))
    assert log[:4] == ["noted ringing", "CallRinging", "noted answered", "CallAnswer"], log
    busy = log[log.index("--") + 1 :]
    assert busy[0].startswith("noted"), log
    assert "CallBusy" in busy[1:], log
