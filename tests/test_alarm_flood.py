"""A flood of FLASH (issue 13, item 8): a peer may send more FLASH than anyone can read, each
with 32 KB of text. Every one still counts, exactly; the board that goes to every console after
each change names the messages by id and carries none of their texts, so it stays small; one
button silences them all. The console fetches a text by id when it shows one. A station and
console of their own: the unacknowledged FLASH of this module would stand in any other's way."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hotline.console import views
from hotline.console.app import make_console_app
from hotline.crypto.identity import StationIdentity
from hotline.protocol.envelope import (
    ENVELOPE_VERSION,
    MAX_TEXT_BYTES,
    Envelope,
    EnvelopeBody,
    Lane,
    MessageType,
)
from hotline.protocol.state import Batch
from hotline.protocol.statements import Head
from hotline.station.datadir import DataDir
from hotline.station.launch import StationProcess
from hotline.station.runtime import Station
from tests import test_console as tc
from tests.inprocess import london_and_identity, running

FLOOD = 120
MARK = "FLOODTEXT"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[StationProcess, StationIdentity]:
    return london_and_identity(tmp_path_factory.mktemp("flood"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def station(pair: tuple[StationProcess, StationIdentity]) -> AsyncIterator[Station]:
    async with running(*pair) as station:
        yield station


@pytest.fixture
async def app(station: Station) -> AsyncIterator[Any]:
    yield make_console_app(station, station.config.console, tls=False)
    while tc._open_clients:
        await tc._open_clients.pop().aclose()


async def _flood(station: Station, texts: list[str]) -> list[int]:
    """FLASH principal messages from Moscow, stored at London as if they had come over the link
    (tests/test_console.py's `arrived`, with Moscow's keystore opened once)."""
    runtime = station.links["moscow"]
    assert runtime.core is not None
    assert station.store is not None
    moscow = station.data.path.parent / "moscow"
    passphrase = (moscow.parent / "moscow.passphrase").read_bytes().rstrip(b"\n")
    peer = DataDir(moscow).open_keystore(passphrase)
    config, link_id = runtime.link.config, runtime.link.config.link_id
    envelopes = []
    for text in texts:
        head = runtime.core.inbound[Lane.FLASH]
        body = EnvelopeBody(
            ENVELOPE_VERSION, link_id, config.peer_direction, int(Lane.FLASH), head.seq + 1,
            time.time_ns(), int(MessageType.PRINCIPAL), "ru", text, head.hash, bytes(32), None,
        )  # fmt: skip
        envelope = Envelope.create(body, peer)
        runtime.core.inbound[Lane.FLASH] = Head(envelope.seq, envelope.hash)
        envelopes.append(envelope)
    batch = Batch(inbound=envelopes)
    await station.store.call(lambda s: s.commit(link_id, batch, time.time_ns()))
    return [e.seq for e in envelopes]


def _text(n: int) -> str:
    """A FLASH text of 32 KB, its number first, marked so that a copy anywhere is seen."""
    head = f"{MARK} {n} "
    return head + "я" * ((MAX_TEXT_BYTES - len(head)) // 2)


@pytest.mark.anyio
async def test_a_flood_of_flash_is_counted_exactly_and_the_board_names_it_by_id(
    app: Any, station: Station
) -> None:
    seqs = await _flood(station, [_text(n) for n in range(FLOOD)])
    await station.discipline.review(time.time_ns())
    officer, csrf, name = await tc.signed_in(app, station, "operator")

    signed_out = (await tc.client(app).get("/console/alarm")).json()
    assert signed_out["flash"] == FLOOD, "every FLASH counts, not the first hundred"

    answer = await officer.get("/console/board")
    board = answer.json()
    assert MARK not in answer.text, "no message text on the board"
    assert len(answer.content) < MAX_TEXT_BYTES, "the whole board is smaller than one FLASH"
    streamed = json.dumps(views.board(station), ensure_ascii=False).encode()
    assert len(streamed) < MAX_TEXT_BYTES, "and so is each board event of the stream"
    counts = board["alarm_counts"]
    assert counts["flash"] == FLOOD
    assert counts["flash_loud"] == FLOOD
    flashes = [a for a in board["alarms"] if a["kind"] == "flash"]
    assert 0 < len(flashes) < FLOOD, "a bounded number shown, the count says how many"
    oldest = flashes[0]["message"]
    assert (oldest["link"], oldest["lane"], oldest["seq"]) == ("moscow", "FLASH", seqs[0])
    assert "text" not in oldest

    # What the overlay shows, it fetches by the id the alarm names.
    shown = await officer.get(f"/console/messages/moscow/in/FLASH/{oldest['seq']}")
    assert shown.json()["text"] == _text(0)

    # One button silences every FLASH standing, the hundred and twentieth too.
    silenced = await officer.post(
        "/console/alarms/silence", json={"kind": "flash"}, headers={"X-CSRF-Token": csrf}
    )
    assert silenced.status_code == 200
    assert silenced.json() == {"silenced": FLOOD}
    after = (await officer.get("/console/board")).json()["alarm_counts"]
    assert after == {**counts, "flash_loud": 0}
    assert "silenced" in await tc.audit_actions(station, name)

    # Acknowledged one by one, the count follows exactly.
    last = seqs[-1]
    acked = await officer.post(
        f"/console/inbox/moscow/FLASH/{last}/ack", json={}, headers={"X-CSRF-Token": csrf}
    )
    assert acked.status_code == 201
    assert (await tc.client(app).get("/console/alarm")).json()["flash"] == FLOOD - 1
    standing = station.discipline.alarms
    assert f"flash:moscow:{last}" not in standing
    assert f"flash:moscow:{seqs[-2]}" in standing
