"""Attachments in motion on one link: the station's side of hotline.protocol.transfer.

As receiver, it fetches every file named by an envelope it holds, in order, a window at a time,
writing to `attachments/partial/` and recording durable progress every PERSIST_EVERY bytes (an
fsync, then a row), so a crash or a lost path costs at most that much again. A file that hashes
right is moved into place and a signed Held statement goes back for each message naming it.
A Held statement is signed only for bytes that came on this link: a file held here already is
fetched again unless it came whole on this same link before, so a peer that names the hash of an
upload never sent, or of a file from another link, learns nothing and gets no statement for
bytes it never had (issue 13, item 6; docs/link.md §6).

As sender, it answers the peer's Wants from the files it sent on this link (and no others),
one chunk at a time, yielding to the event loop so a FLASH envelope never waits behind a map;
it keeps the peer's Held statements as proof, and asks for any that went missing.

Chunks are not committed one by one: a file's progress is the bytes on disk, synced in steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hotline.errors import ProtocolError, StoreError
from hotline.protocol.envelope import Envelope, Lane, decode_envelope
from hotline.protocol.frames import MAX_CHUNK, Ask, Chunk, Frame, HeldFrame, Want
from hotline.protocol.statements import Signed
from hotline.protocol.transfer import Fetch, Held
from hotline.station.files import FileStore, PartialFile
from hotline.store.attachments import AttachmentRow
from hotline.store.base import SqlStore

if TYPE_CHECKING:
    from hotline.station.link_runtime import LinkRuntime

__all__ = ["Transfers"]

log = logging.getLogger("hotline.transfer")
PERSIST_EVERY = 16 * 1024 * 1024  # bytes between durable progress records
REVIEW_EVERY_S = 2.0  # restart stalled fetches, ask for missing Held statements
PROGRESS_EVERY_NS = 250_000_000  # progress events per file at most this often
YIELD_EVERY = 8  # chunks written before the sender lets other work (a FLASH) in
RETRY_AFTER_NS = 30 * 1_000_000_000  # after a disk error, try a file again this much later


@dataclass(slots=True)
class _Incoming:
    fetch: Fetch
    waiting: list[tuple[Envelope, int]]  # (envelope, index) of each message naming the file
    file: PartialFile | None = None
    durable: int = 0
    persisting: asyncio.Task[None] | None = None
    failed_until_ns: int = 0
    shown_ns: int = 0
    finishing: bool = False
    opening: bool = False
    checking: bool = False  # asking the store whether it came whole on this link before
    arrived: bool = False  # it did: signed for again without a fetch


@dataclass(slots=True)
class _Serve:
    sid: int
    sha256: bytes
    position: int
    end: int
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Outgoing:
    size: int
    asked: int = 0  # how far the peer has asked: its progress
    shown_ns: int = 0
    serves: dict[int, _Serve] = field(default_factory=dict)  # by session


class Transfers:
    def __init__(self, runtime: LinkRuntime, files: FileStore) -> None:
        self.runtime = runtime
        self.files = files
        self.link_id = runtime.link.config.link_id
        self.incoming: dict[bytes, _Incoming] = {}
        self.outgoing: dict[bytes, _Outgoing] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every file not yet held whole, from what the store says is durable."""
        link_id, peer = self.link_id, self.runtime.link.config.peer

        def pending(store: SqlStore) -> list[tuple[AttachmentRow, bytes | None]]:
            rows = store.pending_attachments(link_id, "in", 100_000)
            return [(r, store.inbound(link_id, r.lane, r.seq)) for r in rows]

        for row, data in await self._store(pending):  # one round trip to the store thread
            if data is not None:
                self._expect(decode_envelope(data, peer), row.idx, row.held)

    async def run(self) -> None:
        """Every few seconds: restart fetches that have no session, and ask the peer for the
        Held statements of files it has fetched whole (one may have been lost on the way)."""
        while True:
            await asyncio.sleep(REVIEW_EVERY_S)
            self._restart_fetches()
            await self._ask_for_statements()

    def stop(self) -> None:
        for incoming in self.incoming.values():
            if incoming.file is not None:
                incoming.file.close()
        for task in list(self._tasks):
            task.cancel()

    def progress(self, side: str, sha256: bytes) -> int | None:
        """Bytes of a file in motion that the receiver holds, as far as we know now: written
        here (in), or asked for by the peer (out). None when it is not moving."""
        if side == "in":
            incoming = self.incoming.get(sha256)
            return incoming.fetch.held if incoming is not None else None
        outgoing = self.outgoing.get(sha256)
        return outgoing.asked if outgoing is not None else None

    # -- events from the link --------------------------------------------------------------------

    def message_received(self, envelope: Envelope) -> None:
        for index in range(len(envelope.body.attachments)):
            self._expect(envelope, index, 0, new=True)
        self._restart_fetches()

    def session_ready(self, sid: int) -> None:
        self._restart_fetches()
        self._spawn(self._ask_for_statements())

    def session_lost(self, sid: int) -> None:
        for incoming in self.incoming.values():
            incoming.fetch.lost(sid)
        for outgoing in self.outgoing.values():
            serve = outgoing.serves.pop(sid, None)
            if serve is not None and serve.task is not None:
                serve.task.cancel()
        self._restart_fetches()

    def on_frame(self, sid: int, frame: Frame) -> None:
        match frame:
            case Chunk():
                self._on_chunk(sid, frame)
            case Want():
                self._spawn(self._on_want(sid, frame))
            case HeldFrame():
                self._spawn(self._on_held(frame))
            case Ask():
                self._spawn(self._on_ask(sid, frame))

    # -- receiving -------------------------------------------------------------------------------

    def _expect(self, envelope: Envelope, index: int, durable: int, new: bool = False) -> None:
        attachment = envelope.body.attachments[index]
        if attachment.size > self.files.max_size:
            detail = (
                f"{envelope.lane.name} {envelope.seq} file {index} ({attachment.name!r}) is "
                f"{attachment.size} bytes, over this station's limit of {self.files.max_size}: "
                "not fetched; raise [attachments] max_size_mib and restart to fetch it"
            )
            log.error("link %s: %s", self.runtime.link.name, detail)
            if new:  # on the record once, where the supervisors look (not at every start)
                self._spawn(self._store(lambda s: s.audit(
                    self.link_id, "attachment refused", detail, b"", time.time_ns()
                )))  # fmt: skip
            return
        incoming = self.incoming.get(attachment.sha256)
        if incoming is None:
            fetch = Fetch(attachment.sha256, attachment.size, durable)
            incoming = self.incoming[attachment.sha256] = _Incoming(fetch, [], durable=durable)
            if self.files.size_of(attachment.sha256) == attachment.size:
                incoming.checking = True  # held here: did it come on this link? Ask first
                self._spawn(self._check_arrived(attachment.sha256, incoming))
        incoming.waiting.append((envelope, index))

    async def _check_arrived(self, sha256: bytes, incoming: _Incoming) -> None:
        """A file held here whole is signed for at once only if its bytes came whole on this
        link before; one uploaded here, sent from here or brought by another link is fetched
        like any other, so the peer cannot learn that it is here nor be signed for it without
        sending it (issue 13, item 6)."""
        try:
            size = await self._store(lambda s: s.received_file(self.link_id, sha256))
        finally:
            incoming.checking = False
        if size == incoming.fetch.size and self.files.size_of(sha256) == size:
            incoming.arrived = True
            self._finish_soon(sha256)
        else:
            self._restart_fetches()

    def _restart_fetches(self) -> None:
        core = self.runtime.core
        sid = core.carrier() if core is not None else None
        if sid is None:
            return
        now = time.time_ns()
        for sha256, incoming in list(self.incoming.items()):
            if incoming.fetch.sid is not None or incoming.finishing or incoming.checking:
                continue
            if incoming.persisting is not None or now < incoming.failed_until_ns:
                continue
            if incoming.file is None:  # opened first (off the loop), then asked for
                if not incoming.opening:
                    incoming.opening = True
                    self._spawn(self._open(sha256, incoming))
                continue
            want = incoming.fetch.start(sid, incoming.file.written)
            if want is not None:
                self.runtime.write_frames(sid, [want])
            else:  # nothing left to fetch (an empty file, or all of it was durable)
                self._finish_soon(sha256)

    async def _open(self, sha256: bytes, incoming: _Incoming) -> None:
        try:
            incoming.file = await self.files.partial(self.link_id, sha256, incoming.durable)
        except OSError as exc:
            self._disk_failed(incoming, exc)
        finally:
            incoming.opening = False
        if incoming.finishing and incoming.file is not None:  # not needed after all
            file, incoming.file = incoming.file, None
            await asyncio.to_thread(file.discard)
        elif incoming.file is not None:
            self._restart_fetches()

    def _on_chunk(self, sid: int, chunk: Chunk) -> None:
        incoming = self.incoming.get(chunk.sha256)
        if incoming is None or incoming.file is None or not incoming.fetch.accepts(sid, chunk):
            return  # late, repeated, or for a file held already: nothing to write
        try:
            incoming.file.write(chunk.data)
        except OSError as exc:
            self._disk_failed(incoming, exc)
            return
        want = incoming.fetch.advance(len(chunk.data))
        if want is not None:
            self.runtime.write_frames(sid, [want])
        if incoming.fetch.complete:
            self._finish_soon(chunk.sha256)
        elif incoming.fetch.held - incoming.durable >= PERSIST_EVERY and not incoming.persisting:
            incoming.persisting = self._spawn(self._persist(chunk.sha256, incoming))
        self._show(chunk.sha256, "in", incoming.fetch.held, incoming.fetch.size, incoming)

    def _disk_failed(self, incoming: _Incoming, exc: OSError) -> None:
        log.error(
            "link %s: cannot write attachment %s: %s; retrying in %d s",
            self.runtime.link.name,
            incoming.fetch.sha256.hex()[:16],
            exc,
            RETRY_AFTER_NS // 1_000_000_000,
        )
        if incoming.file is not None:
            incoming.file.close()
            incoming.file = None
        incoming.fetch.sid = None
        incoming.failed_until_ns = time.time_ns() + RETRY_AFTER_NS

    async def _persist(self, sha256: bytes, incoming: _Incoming) -> None:
        """Sync what is written, then record it: a fetch resumes from there."""
        try:
            file = incoming.file
            if file is None:
                return
            held = file.written
            await asyncio.to_thread(file.sync)
            await self._store(lambda s: s.record_progress(self.link_id, "in", sha256, held))
            incoming.durable = held
        except OSError as exc:
            self._disk_failed(incoming, exc)
        finally:
            incoming.persisting = None

    def _finish_soon(self, sha256: bytes) -> None:
        """Finish a file once: marked at once, so nothing opens or finishes it meanwhile."""
        incoming = self.incoming.get(sha256)
        if incoming is not None and not incoming.finishing:
            incoming.finishing = True
            self._spawn(self._finish(sha256, incoming))

    async def _finish(self, sha256: bytes, incoming: _Incoming) -> None:
        if incoming.persisting is not None:
            await asyncio.gather(incoming.persisting, return_exceptions=True)
        file, incoming.file = incoming.file, None
        try:
            if incoming.arrived:  # came whole on this link before: nothing was fetched
                if file is not None:
                    await asyncio.to_thread(file.discard)
                good = self.files.size_of(sha256) == incoming.fetch.size
            else:  # the bytes that came on this link, checked (another link's copy is no proof)
                good = file is not None and await asyncio.to_thread(file.finish)
        except OSError as exc:
            incoming.finishing = False
            self._disk_failed(incoming, exc)
            return
        if not good:  # the bytes came intact (AEAD) but are not the file: the sender's fault
            log.error(
                "link %s: attachment %s does not hash to its name; fetching it again",
                self.runtime.link.name,
                sha256.hex()[:16],
            )
            await self._store(lambda s: s.record_progress(self.link_id, "in", sha256, 0))
            incoming.durable, incoming.fetch.held, incoming.fetch.sid = 0, 0, None
            incoming.failed_until_ns = time.time_ns() + RETRY_AFTER_NS
            incoming.finishing = incoming.arrived = False
            return
        try:  # on a side of several nodes, in its store before anyone is told it is held
            await self.files.keep(sha256)
        except StoreError as exc:  # whole on disk: try again in a while, from the disk
            log.error("link %s: attachment %s: %s", self.runtime.link.name, sha256.hex()[:16], exc)
            incoming.finishing, incoming.arrived = False, True
            self._spawn(self._finish_later(sha256))
            return
        # Taken and forgotten at once: a message naming the file from now on finds it on disk.
        del self.incoming[sha256]
        identity, now = self.runtime.link.config.identity, time.time_ns()
        statements = [(e, i, Held.create(identity, e, i, now)) for e, i in incoming.waiting]
        rows = [(e.body.lane, e.seq, i, h.signed.to_bytes()) for e, i, h in statements]
        await self._store(lambda s: s.record_held(self.link_id, "in", rows, now))
        frames: list[Frame] = [
            HeldFrame(h.signed.body_bytes, h.signed.signature) for *_, h in statements
        ]
        core = self.runtime.core
        sid = core.carrier() if core is not None else None
        if sid is not None:
            self.runtime.write_frames(sid, frames)
        for envelope, index, _ in statements:
            self._publish(
                "in", envelope.lane, envelope.seq, index, sha256, incoming.fetch.size, True
            )

    async def _finish_later(self, sha256: bytes) -> None:
        await asyncio.sleep(RETRY_AFTER_NS / 1e9)
        self._finish_soon(sha256)

    async def _on_ask(self, sid: int, ask: Ask) -> None:
        rows = await self._store(lambda s: s.attachments_of(self.link_id, "in", ask.lane, ask.seq))
        frames: list[Frame] = []
        for row in rows:
            if row.statement is not None:
                signed = Signed.from_bytes(row.statement)
                frames.append(HeldFrame(signed.body_bytes, signed.signature))
        if frames:
            self.runtime.write_frames(sid, frames)

    # -- sending ---------------------------------------------------------------------------------

    async def _on_want(self, sid: int, want: Want) -> None:
        outgoing = self.outgoing.get(want.sha256)
        if outgoing is None:
            size = await self._store(lambda s: s.sent_file(self.link_id, want.sha256))
            if size is None or self.files.size_of(want.sha256) != size:
                log.warning(
                    "link %s: the peer asked for file %s, which was not sent on this link",
                    self.runtime.link.name,
                    want.sha256.hex()[:16],
                )
                return
            outgoing = self.outgoing.setdefault(want.sha256, _Outgoing(size))
        end = min(want.end, outgoing.size)
        if want.offset >= end:
            return
        outgoing.asked = max(outgoing.asked, want.offset)
        self._show(want.sha256, "out", outgoing.asked, outgoing.size, outgoing)
        serve = outgoing.serves.get(sid)
        if serve is not None and serve.task is not None and want.offset == serve.end:
            serve.end = end  # more of the same stream: the running task goes on
            return
        if serve is not None and serve.task is not None:
            serve.task.cancel()  # the receiver starts over from elsewhere (it restarted)
        if serve is None or want.offset != serve.end:  # a new stream, not the next window
            log.info(
                "link %s: the peer wants %s from byte %d",
                self.runtime.link.name,
                want.sha256.hex()[:16],
                want.offset,
            )
        serve = outgoing.serves[sid] = _Serve(sid, want.sha256, want.offset, end)
        serve.task = self._spawn(self._serve(serve))

    async def _serve(self, serve: _Serve) -> None:
        connection = self.runtime.connections.get(serve.sid)
        if connection is None:
            return
        writer = connection.writer
        try:
            with self.files.path(serve.sha256).open("rb") as f:
                fd, sent = f.fileno(), 0
                while serve.position < serve.end and not writer.transport.is_closing():
                    data = os.pread(fd, min(MAX_CHUNK, serve.end - serve.position), serve.position)
                    if not data:
                        log.error("attachment %s is shorter than recorded", serve.sha256.hex())
                        return
                    if not self.runtime.write_frames(
                        serve.sid, [Chunk(serve.sha256, serve.position, data)]
                    ):
                        return
                    serve.position += len(data)
                    sent += 1
                    if writer.transport.get_write_buffer_size() > 256 * 1024:
                        await writer.drain()
                    elif sent % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
        except (OSError, ConnectionError) as exc:
            log.info(
                "link %s: serving %s stopped: %s",
                self.runtime.link.name,
                serve.sha256.hex()[:16],
                exc,
            )
        finally:
            serve.task = None

    async def _on_held(self, frame: HeldFrame) -> None:
        config = self.runtime.link.config
        try:
            held = Held.verify(Signed(frame.body, frame.signature), config.peer)
            body = held.body
            data = await self._store(lambda s: s.outbound(self.link_id, body.lane, body.seq))
            envelope = decode_envelope(data, None) if data is not None else None
            if envelope is None or not held.covers(envelope, body.index):
                raise ProtocolError(
                    f"held statement for {Lane(body.lane).name} {body.seq} names no file we sent"
                )
        except (ProtocolError, ValueError) as exc:
            reason, evidence = str(exc), frame.body + frame.signature
            log.warning("link %s: refused a held statement: %s", self.runtime.link.name, reason)
            await self._store(
                lambda s: s.audit(
                    self.link_id, "held statement refused", reason, evidence, time.time_ns()
                )
            )
            return
        row = (body.lane, body.seq, body.index, held.signed.to_bytes())
        await self._store(lambda s: s.record_held(self.link_id, "out", [row], time.time_ns()))
        self.outgoing.pop(body.sha256, None)
        self._publish("out", Lane(body.lane), body.seq, body.index, body.sha256, body.size, True)

    async def _ask_for_statements(self) -> None:
        core = self.runtime.core
        sid = core.carrier() if core is not None else None
        if sid is None:
            return
        # Every message whose files are not yet signed for: the receiver answers for those it
        # holds whole and is silent about the rest (it is fetching them), so a Held statement
        # lost with its session, or before a restart, is asked for again within seconds.
        rows = await self._store(lambda s: s.pending_attachments(self.link_id, "out", 200))
        asks = sorted({(r.lane, r.seq) for r in rows})
        if asks:
            self.runtime.write_frames(sid, [Ask(lane, seq) for lane, seq in asks[:50]])

    # -- helpers ---------------------------------------------------------------------------------

    def _show(
        self, sha256: bytes, side: str, held: int, size: int, state: _Incoming | _Outgoing
    ) -> None:
        now = time.time_ns()
        if now - state.shown_ns < PROGRESS_EVERY_NS:
            return
        state.shown_ns = now
        self.runtime.hub.publish(
            {
                "type": "attachment",
                "link": self.runtime.link.name,
                "side": side,
                "sha256": sha256.hex(),
                "held": held,
                "size": size,
                "whole": False,
            }
        )

    def _publish(
        self, side: str, lane: Lane, seq: int, index: int, sha256: bytes, size: int, whole: bool
    ) -> None:
        self.runtime.hub.publish(
            {
                "type": "attachment",
                "link": self.runtime.link.name,
                "side": side,
                "lane": lane.name,
                "seq": seq,
                "index": index,
                "sha256": sha256.hex(),
                "held": size,
                "size": size,
                "whole": whole,
            }
        )

    async def _store(self, call: Any) -> Any:
        try:
            return await self.runtime.store.call(call)
        except StoreError as exc:
            log.error("link %s: the store failed: %s", self.runtime.link.name, exc)
            raise

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            with contextlib.suppress(Exception):
                log.error(
                    "link %s: attachment task failed: %r", self.runtime.link.name, task.exception()
                )
