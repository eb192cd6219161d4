"""The bytes of attachment files, kept in the store on a side of several nodes (docs/operations.md,
"Attachments on a side of several nodes"). A mixin of SqlStore.

A single station keeps its files in its data directory only (hotline.station.files). The nodes of
a side share one replicated store but not a disk: a file only on the node that took it would be
lost with that node's machine, while the store says it is held and the peer was told so. So each
node copies every file it takes whole into the store, in chunks, before it tells anyone: before an
upload is answered, before a received file's Held statement is signed. A node taking over copies
back the files its own disk lacks.

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
    def file_blob_sizes(self) -> dict[bytes, int]:
        """Every file held whole in the store: its SHA-256 and size."""
        return {
            bytes(sha): int(size) for sha, size in self._rows("SELECT sha256, size FROM file_blobs")
        }

    def file_blob_size(self, sha256: bytes) -> int | None:
        rows = self._rows("SELECT size FROM file_blobs WHERE sha256 = ?", (sha256,))
        return int(rows[0][0]) if rows else None

    def put_file_blob(self, sha256: bytes, path: Path) -> bool:
        """Copy the file at `path` (named by its hash, so whole and checked) into the store.
        False if the store held it already."""
        if self.file_blob_size(sha256) is not None:
            return False
        with self.transaction():  # what an earlier copy, cut short, left
            self._execute("DELETE FROM file_chunks WHERE sha256 = ?", (sha256,))
        size = idx = 0
        with path.open("rb") as source:
            while True:
                rows: list[Sequence[Any]] = []
                for _ in range(_CHUNKS_PER_TRANSACTION):
                    data = source.read(CHUNK)
                    if not data:
                        break
                    rows.append((sha256, idx, data))
                    idx, size = idx + 1, size + len(data)
                if rows:
                    with self.transaction():
                        self._executemany(
                            "INSERT INTO file_chunks (sha256, idx, data) VALUES (?, ?, ?)", rows
                        )
                if len(rows) < _CHUNKS_PER_TRANSACTION:
                    break
        with self.transaction():
            self._execute(
                "INSERT INTO file_blobs (sha256, size, stored_ns) VALUES (?, ?, ?)",
                (sha256, size, time.time_ns()),
            )
        return True

    def file_blob_chunks(self, sha256: bytes) -> Iterator[bytes]:
        """A file's bytes from the store, chunk by chunk in order."""
        for (data,) in self._stream(
            "SELECT data FROM file_chunks WHERE sha256 = ? ORDER BY idx", (sha256,)
        ):
            yield bytes(data)
