"""The files of the data directory that a side of several nodes keeps in its store (docs/
operations.md, "Files on a side of several nodes"): attachment files and call recordings, each by
its place in the data directory ("attachments/<sha256 hex>", "recordings/<call>-sent.opus"). A
mixin of SqlStore; hotline.station.sidefiles decides what goes in and what comes back.

A single station keeps these files in its data directory only. The nodes of a side share one
replicated store but not a disk: a file only on the node that made or took it would be lost with
that node's machine, while the store says it is held (and the peer was told so).

A file is in the store once its `file_blobs` row is: the chunks are written first, in transactions
of a few at a time (a gigabyte in one transaction would hold the store up), and the row last, so a
copy cut short is never taken for a whole one; the next copy starts again from its first chunk.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hotline.store.backend import SqlBackend

__all__ = ["CHUNK", "FileBlobRecords"]

CHUNK = 1 << 20  # bytes in a chunk row
_CHUNKS_PER_TRANSACTION = 8


class FileBlobRecords(SqlBackend):
    def file_blobs(self) -> dict[str, tuple[bytes, int]]:
        """Every file held whole in the store: its name, SHA-256 and size."""
        rows = self._rows("SELECT name, sha256, size FROM file_blobs")
        return {str(name): (bytes(sha), int(size)) for name, sha, size in rows}

    def file_blob(self, name: str) -> tuple[bytes, int] | None:
        """A file's SHA-256 and size, if the store holds it whole."""
        rows = self._rows("SELECT sha256, size FROM file_blobs WHERE name = ?", (name,))
        return (bytes(rows[0][0]), int(rows[0][1])) if rows else None

    def put_file_blob(self, name: str, sha256: bytes, path: Path) -> bool:
        """Copy the file at `path`, whose SHA-256 the caller checked, into the store as `name`.
        False if the store held it already."""
        if self.file_blob(name) is not None:
            return False
        size = idx = 0
        stale = True  # what an earlier copy, cut short, left: gone in the first transaction
        with path.open("rb") as source:
            while True:
                rows: list[Sequence[Any]] = []
                for _ in range(_CHUNKS_PER_TRANSACTION):
                    data = source.read(CHUNK)
                    if not data:
                        break
                    rows.append((name, idx, data))
                    idx, size = idx + 1, size + len(data)
                if stale or rows:
                    with self.transaction():
                        if stale:
                            self._execute("DELETE FROM file_chunks WHERE name = ?", (name,))
                            stale = False
                        self._executemany(
                            "INSERT INTO file_chunks (name, idx, data) VALUES (?, ?, ?)", rows
                        )
                if len(rows) < _CHUNKS_PER_TRANSACTION:
                    break
        with self.transaction():
            self._execute(
                "INSERT INTO file_blobs (name, sha256, size, stored_ns) VALUES (?, ?, ?, ?)",
                (name, sha256, size, time.time_ns()),
            )
        return True

    def file_blob_chunks(self, name: str) -> Iterator[bytes]:
        """A file's bytes from the store, chunk by chunk in order."""
        for (data,) in self._stream(
            "SELECT data FROM file_chunks WHERE name = ? ORDER BY idx", (name,)
        ):
            yield bytes(data)
