"""Sends that can be retried (docs/operations.md, "Sending exactly once"). A mixin of SqlStore.

A client that did not hear the answer to a send (the station died between committing the message
and answering, or the network dropped the answer) cannot tell whether the message was accepted.
So it names each send with a key of its own choosing and repeats the request with the same key
until it hears an answer. The key is stored with the message it made, in the transaction that
accepts the message (`SqlStore.commit`), beside a digest of what was asked: a repeat finds the
key and is answered with the message, and a key used for something else is refused. Keys are
kept as long as the record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hotline.store.backend import SqlBackend

__all__ = ["KeyedSend", "SendKeyRecords", "request_digest"]


@dataclass(frozen=True, slots=True)
class KeyedSend:
    """A key, the digest of the request it named, and the message it made (lane, seq); with
    that message's envelope when read back from the store."""

    key: str
    request: bytes
    lane: int
    seq: int
    envelope: bytes = b""


def request_digest(
    lane: int, type: int, language: str, text: str, files: Iterable[tuple[str, bytes]] = ()
) -> bytes:
    """What a send asked for, so that a key reused for a different message is noticed: its lane,
    type, language, text and files (name, SHA-256)."""
    asked = [lane, type, language, text, [[name, sha256.hex()] for name, sha256 in files]]
    return hashlib.sha256(json.dumps(asked, ensure_ascii=False).encode()).digest()


class SendKeyRecords(SqlBackend):
    def keyed_sends(self, link_id: bytes, keys: Iterable[str]) -> dict[str, KeyedSend]:
        """The sends made before under any of these keys, with their messages."""
        wanted = sorted(set(keys))  # a batch's keys (at most SEND_BATCH): one query
        if not wanted:
            return {}
        marks = ", ".join("?" * len(wanted))
        rows = self._rows(
            "SELECT k.key, k.request, k.lane, k.seq, o.envelope FROM send_keys k JOIN outbox o "  # noqa: S608 - placeholders only
            "ON o.link_id = k.link_id AND o.lane = k.lane AND o.seq = k.seq "
            f"WHERE k.link_id = ? AND k.key IN ({marks})",
            (link_id, *wanted),
        )
        return {
            str(key): KeyedSend(str(key), bytes(request), lane, seq, bytes(envelope))
            for key, request, lane, seq, envelope in rows
        }

    def _commit_send_keys(self, link_id: bytes, sends: Sequence[KeyedSend], now_ns: int) -> None:
        """Inside the transaction that commits their messages (a repeat of a key already here
        was answered from the store and never reaches this)."""
        self._executemany(
            "INSERT INTO send_keys (link_id, key, request, lane, seq, made_ns) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(link_id, s.key, s.request, s.lane, s.seq, now_ns) for s in sends],
        )
