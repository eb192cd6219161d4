"""What the store keeps for translation: the signed annotations on received messages, and each
link's glossary. A mixin of SqlStore; the rules live in hotline.station.translation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hotline.store.backend import SqlBackend

__all__ = ["GlossaryRow", "TranslationRecords"]


@dataclass(frozen=True, slots=True)
class GlossaryRow:
    id: int
    source_language: str
    source: str
    target_language: str
    target: str
    note: str
    author: str
    updated_ns: int


class TranslationRecords(SqlBackend):
    def add_annotation(
        self, link_id: bytes, lane: int, seq: int, kind: int, hash: bytes, statement: bytes,
        made_ns: int,
    ) -> None:  # fmt: skip
        with self.transaction():
            self._execute(
                "INSERT INTO annotations (link_id, lane, seq, kind, hash, statement, made_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (link_id, lane, seq, kind, hash, statement, made_ns),
            )

    def annotations_of(self, link_id: bytes, lane: int, seq: int) -> list[bytes]:
        """A message's annotations, as signed, in the order they were made."""
        rows = self._rows(
            "SELECT statement FROM annotations WHERE link_id = ? AND lane = ? AND seq = ? "
            "ORDER BY id",
            (link_id, lane, seq),
        )
        return [bytes(r[0]) for r in rows]

    def all_annotations(self, link_id: bytes) -> Iterator[bytes]:
        for (statement,) in self._stream(
            "SELECT statement FROM annotations WHERE link_id = ? ORDER BY id", (link_id,)
        ):
            yield bytes(statement)

    def annotation_refs(self, link_id: bytes) -> Iterator[tuple[int, int, int, bytes, bytes]]:
        """Every annotation of the link as (lane, seq, kind, hash, signed statement), in the
        order made: what the translators' queue and the traffic's markers are counted from."""
        for lane, seq, kind, hash_, statement in self._stream(
            "SELECT lane, seq, kind, hash, statement FROM annotations WHERE link_id = ? "
            "ORDER BY id",
            (link_id,),
        ):
            yield lane, seq, kind, bytes(hash_), bytes(statement)

    def inbound_of_types(
        self, link_id: bytes, types: tuple[int, ...]
    ) -> Iterator[tuple[int, int, int, int, bytes]]:
        """The peer's envelopes of these types, as (lane, seq, type, received_ns, envelope), in
        the order of arrival."""
        marks = ", ".join("?" for _ in types)
        for lane, seq, kind, received, envelope in self._stream(
            "SELECT lane, seq, type, received_ns, envelope FROM inbox "  # noqa: S608 - marks
            f"WHERE link_id = ? AND type IN ({marks}) ORDER BY id",
            (link_id, *types),
        ):
            yield lane, seq, kind, received, bytes(envelope)

    def glossary(self, link: str) -> list[GlossaryRow]:
        rows = self._rows(
            "SELECT id, source_language, source, target_language, target, note, author, "
            "updated_ns FROM glossary WHERE link = ? ORDER BY lower(source), id",
            (link,),
        )
        return [GlossaryRow(*r) for r in rows]

    def put_glossary(
        self, link: str, source_language: str, source: str, target_language: str, target: str,
        note: str, author: str, now_ns: int,
    ) -> None:  # fmt: skip
        """Add a term, or change how an existing one is rendered."""
        with self.transaction():
            self._execute(
                "INSERT INTO glossary (link, source_language, source, target_language, target, "
                "note, author, updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (link, source_language, source, target_language) DO UPDATE SET "
                "target = excluded.target, note = excluded.note, author = excluded.author, "
                "updated_ns = excluded.updated_ns",
                (link, source_language, source, target_language, target, note, author, now_ns),
            )

    def delete_glossary(self, link: str, entry_id: int) -> bool:
        with self.transaction():
            found = self._rows(
                "SELECT id FROM glossary WHERE link = ? AND id = ?", (link, entry_id)
            )
            self._execute("DELETE FROM glossary WHERE link = ? AND id = ?", (link, entry_id))
        return bool(found)
