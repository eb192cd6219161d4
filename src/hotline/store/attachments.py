"""What the store keeps about attachments: one row per file named in an envelope, sent ("out")
or received ("in"), how much of it the receiver holds, and the receiver's signed Held statement.
A mixin of SqlStore. The files themselves live beside the store (hotline.station.files): a
database is no place for a gigabyte, and a file named by its hash needs no other index."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hotline.protocol.envelope import Envelope
from hotline.store.backend import Row, SqlBackend

__all__ = ["AttachmentRecords", "AttachmentRow"]

_COLUMNS = "side, lane, seq, idx, sha256, size, name, media_type, held, held_ns, statement"


@dataclass(frozen=True, slots=True)
class AttachmentRow:
    side: str  # "out": we sent it; "in": we receive it
    lane: int
    seq: int
    idx: int
    sha256: bytes
    size: int
    name: str
    media_type: str
    held: int  # bytes the receiver holds (in: durably here; out: as far as the peer asked)
    held_ns: int | None
    statement: bytes | None  # the receiver's signed Held statement, once it holds it whole

    @property
    def delivered(self) -> bool:
        return self.statement is not None


class AttachmentRecords(SqlBackend):
    def _commit_attachments(self, link_id: bytes, side: str, envelopes: list[Envelope]) -> None:
        """In the transaction that stores the envelopes: a row for each file they name."""
        rows: list[Sequence[Any]] = [
            (link_id, side, e.body.lane, e.seq, i, a.sha256, a.size, a.name, a.media_type, 0)
            for e in envelopes
            for i, a in enumerate(e.body.attachments)
        ]
        if rows:
            self._executemany(
                "INSERT INTO attachments (link_id, side, lane, seq, idx, sha256, size, name, "
                "media_type, held) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def attachments_of(self, link_id: bytes, side: str, lane: int, seq: int) -> list[AttachmentRow]:
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM attachments "  # noqa: S608 - the columns are ours
            "WHERE link_id = ? AND side = ? AND lane = ? AND seq = ? ORDER BY idx",
            (link_id, side, lane, seq),
        )
        return [_row(r) for r in rows]

    def pending_attachments(
        self, link_id: bytes, side: str, limit: int = 1000
    ) -> list[AttachmentRow]:
        """Files not yet held whole by their receiver, oldest message first."""
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM attachments "  # noqa: S608 - the columns are ours
            "WHERE link_id = ? AND side = ? AND statement IS NULL ORDER BY lane, seq, idx LIMIT ?",
            (link_id, side, limit),
        )
        return [_row(r) for r in rows]

    def all_attachments(self, link_id: bytes) -> Iterator[AttachmentRow]:
        for r in self._stream(
            f"SELECT {_COLUMNS} FROM attachments "  # noqa: S608 - the columns are ours
            "WHERE link_id = ? ORDER BY side, lane, seq, idx",
            (link_id,),
        ):
            yield _row(r)

    def sent_file(self, link_id: bytes, sha256: bytes) -> int | None:
        """The size of a file we sent on this link, or None: a peer may fetch only those."""
        rows = self._rows(
            "SELECT size FROM attachments WHERE sha256 = ? AND link_id = ? AND side = 'out' "
            "LIMIT 1",
            (sha256, link_id),
        )
        return int(rows[0][0]) if rows else None

    def received_file(self, link_id: bytes, sha256: bytes) -> int | None:
        """The size of a file whose bytes came whole on this link (we signed for it), or None: a
        file held here from anywhere else is fetched again before a Held names it (issue 13,
        item 6)."""
        rows = self._rows(
            "SELECT size FROM attachments WHERE sha256 = ? AND link_id = ? AND side = 'in' "
            "AND statement IS NOT NULL LIMIT 1",
            (sha256, link_id),
        )
        return int(rows[0][0]) if rows else None

    def record_progress(self, link_id: bytes, side: str, sha256: bytes, held: int) -> None:
        """How many bytes of a file the receiver holds, on every pending row naming it."""
        with self.transaction():
            self._execute(
                "UPDATE attachments SET held = ? WHERE link_id = ? AND side = ? AND sha256 = ? "
                "AND statement IS NULL",
                (held, link_id, side, sha256),
            )

    def record_held(
        self,
        link_id: bytes,
        side: str,
        held: list[tuple[int, int, int, bytes]],
        held_ns: int,
    ) -> None:
        """Files held whole: (lane, seq, idx, the signed Held statement) each."""
        with self.transaction():
            self._executemany(
                "UPDATE attachments SET held = size, held_ns = ?, statement = ? "
                "WHERE link_id = ? AND side = ? AND lane = ? AND seq = ? AND idx = ? "
                "AND statement IS NULL",
                [(held_ns, s, link_id, side, lane, seq, idx) for lane, seq, idx, s in held],
            )


def _row(r: Row) -> AttachmentRow:
    side, lane, seq, idx, sha, size, name, media_type, held, held_ns, statement = r
    return AttachmentRow(
        str(side),
        int(lane),
        int(seq),
        int(idx),
        bytes(sha),
        int(size),
        str(name),
        str(media_type),
        int(held),
        None if held_ns is None else int(held_ns),
        None if statement is None else bytes(statement),
    )
