"""The files a side of several nodes keeps in its shared store as well as on the disk of the node
that made or took them (store/fileblobs.py): attachment files and call recordings. A node copies
each such file into the store before anyone is told of it (an upload answered, a Held statement
signed, a call record written), and a node that takes over copies back what its disk lacks.

Every file is checked against its SHA-256 on the way back: a store is no more trusted than a disk.
A name read from the store must be one of the two kinds of file, so a row cannot write elsewhere.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import secrets
from pathlib import Path

from hotline.durable import sync_dir
from hotline.station.storethread import StoreThread
from hotline.store.base import SqlStore

__all__ = ["SideFiles"]

log = logging.getLogger("hotline.files")
_NAME = re.compile(r"(attachments/[0-9a-f]{64}|recordings/[0-9a-f]{8,64}-(sent|received)\.opus)")


class SideFiles:
    def __init__(self, replica: StoreThread, data_dir: Path) -> None:
        self.replica = replica  # a fenced connection of its own: a large file waits for no one
        self.data_dir = data_dir

    async def keep(self, name: str, sha256: bytes) -> None:
        """Copy the data directory's file `name` (checked against `sha256` by whoever made or
        took it) into the store, if it is not there already. Raises StoreError (or LeaseLost)
        if the store did not take it."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a file a side keeps in its store: {name!r}")
        path = self.data_dir / name
        await self.replica.call(lambda store: store.put_file_blob(name, sha256, path))

    async def restore_missing(self) -> int:
        """Copy back from the store every file this node's disk lacks (a node that takes over
        from another); each is checked against its hash. How many were copied."""
        held = await self.replica.call(lambda store: store.file_blobs())
        restored = 0
        for name, (sha256, size) in sorted(held.items()):
            if not _NAME.fullmatch(name):
                log.error("the side's store names a file %r: not restored", name)
                continue
            try:
                if (self.data_dir / name).stat().st_size == size:
                    continue
            except FileNotFoundError:
                pass
            work = functools.partial(self._restore, name=name, sha256=sha256)
            if await self.replica.call(work):
                restored += 1
        if restored:
            log.info("%d file(s) copied from the side's store to this node", restored)
        return restored

    def _restore(self, store: SqlStore, *, name: str, sha256: bytes) -> bool:
        """In the replica's thread: the chunks into a file beside the target, hashed, then
        named (over a file of the same name only if that one is short: the same bytes, cut)."""
        target = self.data_dir / name
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.part")
        try:
            digest = hashlib.sha256()
            with tmp.open("xb") as out:
                for chunk in store.file_blob_chunks(name):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.digest() != sha256:
                log.error(
                    "%s in the side's store does not hash to what it says: not restored", name
                )
                return False
            os.replace(tmp, target)
            sync_dir(target.parent)
            return True
        finally:
            tmp.unlink(missing_ok=True)
