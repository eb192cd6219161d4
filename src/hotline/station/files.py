"""The station's attachment files, in the data directory, each named by its SHA-256:

    attachments/<sha256 hex>           a file held whole (sent from here, or received and checked)
    attachments/partial/<link id hex>.<sha256 hex>
                                       a file being received on one link, written in order
    attachments/upload/<random>        a file being uploaded by an operator, until it is hashed

A file is only ever renamed into place after its bytes are on disk (fsync) and hash to its name,
so a name in `attachments/` is a promise about the content. A file being received is kept apart
per link: two links bringing the same file never write into one another's (a peer's wrong bytes
would land in a file another link's checked hash then vouches for), and what is signed for on a
link is bytes that came on it (issue 13, item 6; docs/link.md §6). Uploads over the size limit
are refused as they arrive, not after: the disk never holds more than the limit for one.

On a side of several nodes the files are in the shared store as well (`side`, set by the station;
station/sidefiles.py): `keep` copies a file there before anyone is told it is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from hotline.durable import sync_dir
from hotline.errors import HotlineError

if TYPE_CHECKING:
    from hotline.station.sidefiles import SideFiles

__all__ = ["DEFAULT_MAX_SIZE", "FileStore", "FileTooLarge", "PartialFile"]

DEFAULT_MAX_SIZE = 100 * 1024 * 1024
_READ = 1024 * 1024


class FileTooLarge(HotlineError):
    """An upload or an incoming attachment over this station's size limit."""


class FileStore:
    def __init__(self, root: Path, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.root = root
        self.max_size = max_size
        self.partial_dir = root / "partial"
        self.upload_dir = root / "upload"
        self.side: SideFiles | None = None  # the side's store, on a side of several nodes
        for path in (root, self.partial_dir, self.upload_dir):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for leftover in self.upload_dir.iterdir():  # an upload cut off by a crash: never named
            leftover.unlink(missing_ok=True)
        for shared in self.partial_dir.glob("[0-9a-f]" * 64):  # from before partials were per
            shared.unlink(missing_ok=True)  # link: its bytes may have come on any; fetched anew

    def path(self, sha256: bytes) -> Path:
        return self.root / sha256.hex()

    def size_of(self, sha256: bytes) -> int | None:
        """The size of a file held whole, or None."""
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            return None

    async def upload(self, chunks: AsyncIterator[bytes]) -> tuple[bytes, int]:
        """Take a file from an operator as it streams in: (its SHA-256, its size).

        Raises:
            FileTooLarge: it grew past the limit (what had come is removed).
            OSError: the disk refused it (full, read-only); nothing is left behind.
        """
        tmp = self.upload_dir / secrets.token_hex(16)
        digest, size = hashlib.sha256(), 0
        try:
            with tmp.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_size:
                        raise FileTooLarge(
                            f"the file is larger than this station's limit of {self.max_size} bytes"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                # The sync waits for the disk (up to a second for 100 MiB): off the event loop.
                await asyncio.to_thread(os.fsync, out.fileno())
            sha256 = digest.digest()
            await asyncio.to_thread(self._name, tmp, sha256)
        finally:
            tmp.unlink(missing_ok=True)
        await self.keep(sha256)
        return sha256, size

    async def keep(self, sha256: bytes) -> None:
        """On a side of several nodes, copy a file held whole here into the side's store (if it
        is not there already): then the loss of this node's disk does not lose it. Raises
        StoreError (or LeaseLost) if the store did not take it."""
        if self.side is not None:
            await self.side.keep(f"attachments/{sha256.hex()}", sha256)  # the data dir's

    def _name(self, tmp: Path, sha256: bytes) -> None:
        if self.size_of(sha256) is None:
            os.replace(tmp, self.path(sha256))
            sync_dir(self.root)

    async def partial(self, link_id: bytes, sha256: bytes, durable: int) -> PartialFile:
        """Open a file being received on a link, in a thread: reopening rehashes what is held."""
        return await asyncio.to_thread(PartialFile, self, link_id, sha256, durable)


class PartialFile:
    """A file being received, written strictly in order. On opening, what lies beyond the bytes
    known durable is cut off, and the durable prefix is hashed again (a hash's state cannot be
    saved, and rereading at disk speed costs less than a resend)."""

    def __init__(self, files: FileStore, link_id: bytes, sha256: bytes, durable: int) -> None:
        self.files = files
        self.sha256 = sha256
        self.path = files.partial_dir / f"{link_id.hex()}.{sha256.hex()}"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            size = os.fstat(self.fd).st_size
            self.written = min(durable, size)
            os.ftruncate(self.fd, self.written)
            self.digest = hashlib.sha256()
            offset = 0
            while offset < self.written:
                block = os.pread(self.fd, min(_READ, self.written - offset), offset)
                if not block:
                    break
                self.digest.update(block)
                offset += len(block)
        except OSError:
            os.close(self.fd)
            raise

    def write(self, data: bytes) -> None:
        os.pwrite(self.fd, data, self.written)
        self.digest.update(data)
        self.written += len(data)

    def sync(self) -> None:
        """Make what is written durable, then let the kernel drop it from its cache: the bytes
        are not read again until the file is whole, and a gigabyte of dirty and cached pages
        made the kernel spend more time reclaiming memory than the transfer spent on anything
        else (bench/attachments.py: system time 3.4 s of 4.8 s for 1 GiB)."""
        written = self.written
        os.fsync(self.fd)
        os.posix_fadvise(self.fd, 0, written, os.POSIX_FADV_DONTNEED)

    def finish(self) -> bool:
        """Durable and checked: move it into place. False (and the bytes dropped, to fetch
        again) when they do not hash to its name."""
        self.sync()
        self.close()
        if self.digest.digest() != self.sha256:
            self.path.unlink(missing_ok=True)
            return False
        final = self.files.path(self.sha256)
        if final.exists():
            self.path.unlink()
        else:
            os.replace(self.path, final)
        sync_dir(self.files.root)
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def discard(self) -> None:
        """Not needed after all (the file is held whole already): close it and remove it."""
        self.close()
        self.path.unlink(missing_ok=True)
