"""A station's transfers against scripted peers, in one process, on both store backends: a Held
statement is signed only for bytes that came on that link (issue 13, item 6). A peer naming the
SHA-256 of a file this station holds from an upload never sent, or from another link, gets no
Held until it has sent the bytes; an upload never sent is never served; a file two links bring at
once is written apart for each; a file that came whole on the same link is not fetched again."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import pytest

from hotline.crypto.identity import StationIdentity
from hotline.crypto.session import link_id_for
from hotline.protocol.envelope import Attachment, Envelope, Lane, MessageType
from hotline.protocol.frames import MAX_CHUNK, Chunk, Frame, HeldFrame, Want
from hotline.protocol.link import LinkCore
from hotline.protocol.state import Batch, LinkConfig, LinkState
from hotline.protocol.statements import Signed
from hotline.protocol.transfer import Held
from hotline.sim.pgserver import ThrowawayPostgres
from hotline.station.files import FileStore
from hotline.station.storethread import StoreThread
from hotline.station.transfers import Transfers
from hotline.store.base import SqlStore
from hotline.store.postgres import PostgresStore
from hotline.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from hotline.station.link_runtime import LinkRuntime

NOW = 1_800_000_000 * 10**9
SID = 1
HERE = StationIdentity.from_random(os.urandom(96))


# -- the station under test: one store, one file store, a Transfers per link ---------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SqlStore:
    """A fresh store, closed by the StoreThread the test runs it on."""
    if request.param == "sqlite":
        return SqliteStore(tmp_path / "station.db")
    server: ThrowawayPostgres = request.getfixturevalue("pg")
    return PostgresStore(server.create_database(f"held_{uuid.uuid4().hex}"))


class _Open:
    """A connection whose socket never fills: the sender's serving loop writes to it freely."""

    def __init__(self) -> None:
        self.transport = SimpleNamespace(is_closing=lambda: False, get_write_buffer_size=lambda: 0)

    async def drain(self) -> None:
        return None


@dataclass
class Wire:
    """One link of the station under test, and the scripted peer at its other end."""

    name: str
    here: LinkConfig  # the station's side
    peer: LinkCore  # the peer's core: it signs the envelopes that name files
    mine: LinkCore  # the station's core: it signs what the station sends
    transfers: Transfers = field(init=False)
    written: list[Frame] = field(default_factory=list)  # every frame the station wrote to it
    served: dict[bytes, int] = field(default_factory=dict)  # by file: bytes the peer has sent

    @property
    def link_id(self) -> bytes:
        return self.here.link_id

    def write_frames(self, sid: int, frames: list[Frame]) -> bool:
        assert sid == SID
        self.written.extend(frames)
        return True

    def held(self) -> list[Held]:
        """The Held statements the station sent on this link, checked with its key."""
        return [
            Held.verify(Signed(f.body, f.signature), HERE.public)
            for f in self.written
            if isinstance(f, HeldFrame)
        ]

    def wants(self) -> list[Want]:
        return [f for f in self.written if isinstance(f, Want)]

    def chunks(self) -> list[Chunk]:
        return [f for f in self.written if isinstance(f, Chunk)]


@dataclass
class Station:
    store: StoreThread
    files: FileStore
    wires: list[Wire] = field(default_factory=list)

    async def link(self, name: str) -> Wire:
        peer = StationIdentity.from_random(os.urandom(96))
        link_id = link_id_for(HERE.public, peer.public)
        here, there = LinkConfig(link_id, HERE, peer.public), LinkConfig(link_id, peer, HERE.public)
        wire = Wire(
            name,
            here,
            LinkCore(there, LinkState.new(there), NOW),
            LinkCore(here, LinkState.new(here), NOW),
        )
        await self.store.call(lambda s: s.add_link(here, NOW))
        runtime = SimpleNamespace(
            link=SimpleNamespace(name=name, config=here),
            store=self.store,
            hub=SimpleNamespace(publish=lambda event: None),
            core=SimpleNamespace(carrier=lambda: SID),
            connections={SID: SimpleNamespace(writer=_Open())},
            write_frames=wire.write_frames,
        )
        wire.transfers = Transfers(cast("LinkRuntime", runtime), self.files)
        self.wires.append(wire)
        return wire

    async def settle(self) -> None:
        """Let every task the transfers started run to its end (and those they start)."""
        while tasks := [t for w in self.wires for t in w.transfers._tasks]:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def receive(self, wire: Wire, files: list[tuple[str, bytes]]) -> Envelope:
        """The peer sends a message naming files, each (name, bytes); the station commits it."""
        attachments = tuple(
            Attachment(name, "application/octet-stream", len(data), hashlib.sha256(data).digest())
            for name, data in files
        )
        out = wire.peer.send(Lane.ROUTINE, MessageType.PRINCIPAL, "en", "files", NOW, None,
                             attachments)  # fmt: skip
        envelope = out.batch.outbound[0]
        await self.store.call(lambda s: s.commit(wire.link_id, Batch(inbound=[envelope]), NOW))
        wire.transfers.message_received(envelope)
        await self.settle()
        return envelope

    async def send(self, wire: Wire, data: bytes) -> None:
        """The station sends a message naming a file it holds."""
        attachment = Attachment("sent.bin", "application/octet-stream", len(data),
                                hashlib.sha256(data).digest())  # fmt: skip
        out = wire.mine.send(Lane.ROUTINE, MessageType.PRINCIPAL, "en", "a file", NOW, None,
                             (attachment,))  # fmt: skip
        await self.store.call(lambda s: s.commit(wire.link_id, out.batch, NOW))

    async def serve(
        self, wire: Wire, data: bytes, limit: int | None = None, sha256: bytes | None = None
    ) -> None:
        """The peer answers the station's Wants for file `sha256` (by default the hash of `data`)
        with `data`, in order, from where it stopped: to the end of each Want, or to `limit`."""
        sha256 = sha256 or hashlib.sha256(data).digest()
        while True:
            start = wire.served.get(sha256, 0)
            ends = [w.end for w in wire.wants() if w.sha256 == sha256 and w.end > start]
            end = min(max(ends, default=start), len(data) if limit is None else limit)
            if end <= start:
                return
            for offset in range(start, end, MAX_CHUNK):
                chunk = data[offset : min(end, offset + MAX_CHUNK)]
                wire.transfers.on_frame(SID, Chunk(sha256, offset, chunk))
            wire.served[sha256] = end
            await self.settle()

    async def statements(self, wire: Wire, envelope: Envelope) -> list[bytes | None]:
        rows = await self.store.call(
            lambda s: s.attachments_of(wire.link_id, "in", envelope.body.lane, envelope.seq)
        )
        return [r.statement for r in rows]


def _run(store: SqlStore, tmp_path: Path, test: Callable[[Station], Awaitable[None]]) -> None:
    async def main() -> None:
        station = Station(StoreThread(store), FileStore(tmp_path / "attachments"))
        try:
            await test(station)
        finally:
            for wire in station.wires:
                wire.transfers.stop()
            await station.settle()
            station.store.close()

    asyncio.run(main())


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


# -- the rule ------------------------------------------------------------------------------------


def test_an_upload_never_sent_gets_no_held_and_is_never_served(
    store: SqlStore, tmp_path: Path
) -> None:
    draft = os.urandom(3 * MAX_CHUNK + 17)  # an operator's upload, in a draft not yet released
    sent = os.urandom(MAX_CHUNK + 5)
    sha = hashlib.sha256(draft).digest()

    async def test(station: Station) -> None:
        wire = await station.link("peer")
        assert await station.files.upload(_chunks(draft)) == (sha, len(draft))
        await station.files.upload(_chunks(sent))
        envelope = await station.receive(wire, [("guess.bin", draft)])
        assert wire.held() == [], "no Held for a file whose bytes never came on this link"
        assert await station.statements(wire, envelope) == [None]
        assert wire.wants() == [Want(sha, 0, len(draft))], "it is fetched, as any file is"

        await station.send(wire, sent)  # a file the station did send on this link is served
        for asked in (sent, draft):
            wire.transfers.on_frame(SID, Want(hashlib.sha256(asked).digest(), 0, len(asked)))
        await station.settle()
        served = {c.sha256 for c in wire.chunks()}
        assert served == {hashlib.sha256(sent).digest()}, "the upload never sent is not served"

        await station.serve(wire, draft)  # a peer that does hold the bytes sends them
        [held] = wire.held()
        assert held.covers(envelope, 0)
        assert await station.statements(wire, envelope) == [held.signed.to_bytes()]
        assert station.files.path(sha).read_bytes() == draft

    _run(store, tmp_path, test)


def test_a_file_from_another_link_is_fetched_again_before_it_is_signed_for(
    store: SqlStore, tmp_path: Path
) -> None:
    data = os.urandom(2 * MAX_CHUNK + 99)
    sha = hashlib.sha256(data).digest()

    async def test(station: Station) -> None:
        other, peer = await station.link("other"), await station.link("peer")
        first = await station.receive(other, [("map.bin", data)])
        await station.serve(other, data)
        assert [h.covers(first, 0) for h in other.held()] == [True]

        envelope = await station.receive(peer, [("map.bin", data)])
        assert peer.held() == [], "the peer named a hash; the bytes came on another link"
        assert await station.statements(peer, envelope) == [None]
        assert peer.wants() == [Want(sha, 0, len(data))], "fetched from its start"
        await station.serve(peer, data)
        [held] = peer.held()
        assert held.covers(envelope, 0)
        assert await station.statements(peer, envelope) == [held.signed.to_bytes()]
        assert station.files.path(sha).read_bytes() == data

    _run(store, tmp_path, test)


def test_a_peers_wrong_bytes_never_reach_a_file_another_link_is_bringing(
    store: SqlStore, tmp_path: Path
) -> None:
    data = os.urandom(4 * MAX_CHUNK + 1)
    garbage = os.urandom(len(data))
    sha = hashlib.sha256(data).digest()

    async def test(station: Station) -> None:
        other, peer = await station.link("other"), await station.link("peer")
        first = await station.receive(other, [("map.bin", data)])
        await station.serve(other, data, limit=MAX_CHUNK)  # the other link is part way
        await station.receive(peer, [("map.bin", data)])  # the peer names the same file
        await station.serve(peer, garbage, 3 * MAX_CHUNK, sha)  # and sends wrong bytes
        await station.serve(other, data)  # the other link goes on to the end
        assert [h.covers(first, 0) for h in other.held()] == [True]
        assert station.files.path(sha).read_bytes() == data, "a name is a promise"
        assert peer.held() == []

    _run(store, tmp_path, test)


def test_a_file_that_came_whole_on_this_link_is_signed_for_again_without_a_fetch(
    store: SqlStore, tmp_path: Path
) -> None:
    data = os.urandom(MAX_CHUNK + 1)

    async def test(station: Station) -> None:
        wire = await station.link("peer")
        first = await station.receive(wire, [("map.bin", data)])
        await station.serve(wire, data)
        wants = len(wire.wants())
        second = await station.receive(wire, [("map again.bin", data)])
        assert len(wire.wants()) == wants, "not fetched again"
        assert [h.covers(e, 0) for h, e in zip(wire.held(), (first, second), strict=True)] == [
            True,
            True,
        ]

    _run(store, tmp_path, test)


def test_a_partial_file_shared_by_every_link_from_before_is_removed_at_start(
    tmp_path: Path,
) -> None:
    """Its bytes may have come on any link: the file is fetched again, each link on its own."""
    partial = tmp_path / "attachments" / "partial"
    partial.mkdir(parents=True)
    shared, own = partial / bytes(32).hex(), partial / f"{bytes(32).hex()}.{bytes(32).hex()}"
    shared.write_bytes(b"from some link")
    own.write_bytes(b"from this link")
    FileStore(tmp_path / "attachments")
    assert not shared.exists()
    assert own.read_bytes() == b"from this link", "a link's own partial file resumes"
