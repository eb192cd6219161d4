"""The store, once for both SQL backends: what a link core restores from, and what it commits.

A backend (sqlite.py, postgres.py) supplies the primitives of backend.py (a connection, its
placeholder, its transaction and its error types); everything else is here and in people.py, so
both backends pass the same tests by construction.
Loading a link walks every stored chain (sequence, hash, link to the previous envelope): a store
that finds a gap, a changed row or a broken link raises StoreCorruptError and the station refuses
to send on, rather than extending a history it cannot vouch for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from hotline.crypto.identity import PublicIdentity
from hotline.errors import ProtocolError, StoreCorruptError, StoreError
from hotline.protocol.envelope import LANES, Envelope, MessageType, decode_envelope, sha256
from hotline.protocol.state import Batch, LinkConfig, LinkState, empty_heads
from hotline.protocol.statements import Checkpoint, Head, Heads, Receipt, Signed
from hotline.store.attachments import AttachmentRecords
from hotline.store.backend import Row
from hotline.store.fileblobs import FileBlobRecords
from hotline.store.handshakes import HandshakeRecords
from hotline.store.people import PeopleRecords
from hotline.store.schema import MIGRATIONS
from hotline.store.sendkeys import KeyedSend, SendKeyRecords
from hotline.store.translations import TranslationRecords

__all__ = ["SqlStore"]


class SqlStore(
    PeopleRecords,
    AttachmentRecords,
    FileBlobRecords,
    TranslationRecords,
    HandshakeRecords,
    SendKeyRecords,
):
    """The link's records (here) and the people's (PeopleRecords), over a backend's primitives."""

    # -- schema ----------------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        try:
            rows = self._rows("SELECT value FROM meta WHERE key = 'schema_version'")
        except StoreError:
            return 0  # no meta table yet: a new store
        return int(rows[0][0]) if rows else 0

    def _migrate_or_close(self) -> None:
        """Bring a just-opened store up to date; a store we refuse leaves no connection open."""
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    def _schema_version_locked(self) -> int:
        """The schema version, read inside a migration's transaction once no other process can
        migrate (SQLite: BEGIN IMMEDIATE holds the write lock; PostgreSQL overrides this)."""
        return self.schema_version

    def migrate(self) -> None:
        steps = MIGRATIONS[self.dialect]
        current = self.schema_version
        if current > len(steps):
            raise StoreError(
                f"the store's schema version {current} is newer than this build knows "
                f"({len(steps)}): upgrade Hotline"
            )
        for version in range(current, len(steps)):
            with self.transaction():
                if self._schema_version_locked() != version:
                    continue  # another node of this side took this step meanwhile
                for statement in steps[version]:
                    self._execute(statement)
                self._execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(version + 1),),
                )

    # -- links -----------------------------------------------------------------------------------

    def add_link(self, config: LinkConfig, now_ns: int) -> None:
        with self.transaction():
            self._execute(
                "INSERT INTO links (link_id, direction, peer_fingerprint, created_ns) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (link_id) DO NOTHING",
                (config.link_id, config.direction, config.peer.fingerprint, now_ns),
            )

    # -- restoring a link core -------------------------------------------------------------------

    def load(self, config: LinkConfig) -> LinkState:
        """Everything a link core needs to resume, after checking every chain.

        Raises:
            StoreCorruptError: a chain has a gap, a changed row or a broken link, the stored
                receipt does not match our envelopes, or the chains end before what our own
                signed checkpoint says we held (rows were lost, or an old backup restored).
        """
        link_id = config.link_id
        receipted = self._stored_receipt(config)
        outbound, keep = self._walk(config, "outbox", config.direction, receipted)
        inbound, _ = self._walk(config, "inbox", config.peer_direction, None)
        last = self._rows(
            "SELECT hash FROM inbox WHERE link_id = ? ORDER BY id DESC LIMIT 1", (link_id,)
        )
        checkpoint = self._own_checkpoint(config)
        try:
            peer = self.peer_checkpoint(config)
        except ProtocolError as exc:
            raise StoreCorruptError(
                f"the peer's stored checkpoint does not verify: {exc}"
            ) from None
        _check_receipt_within(receipted, outbound)
        if checkpoint is not None:
            _check_not_behind("outbox", checkpoint.outbound, outbound)
            _check_not_behind("inbox", checkpoint.inbound, inbound)
        return LinkState(
            outbound,
            receipted,
            tuple(keep),
            inbound,
            bytes(last[0][0]) if last else bytes(32),
            checkpoint,
            (peer.outbound, peer.inbound) if peer else None,
        )

    def verify(self, config: LinkConfig) -> None:
        """Check everything stored for a link: every envelope's signature and chain, the stored
        receipt, every checkpoint. Slower than `load`, which trusts signatures it made itself.

        Raises:
            StoreCorruptError: the first problem found, naming where it is.
        """
        receipted = self._stored_receipt(config)
        outbound, _ = self._walk(config, "outbox", config.direction, receipted, verify_all=True)
        self._walk(config, "inbox", config.peer_direction, None, verify_all=True)
        _check_receipt_within(receipted, outbound)
        for origin, statement in self._rows(
            "SELECT origin, statement FROM checkpoints WHERE link_id = ? ORDER BY id",
            (config.link_id,),
        ):
            signer = config.identity.public if origin == "local" else config.peer
            try:
                Checkpoint.verify(Signed.from_bytes(bytes(statement)), signer)
            except ProtocolError as exc:
                raise StoreCorruptError(f"a stored {origin} checkpoint: {exc}") from None

    def peer_checkpoint(self, config: LinkConfig) -> Checkpoint | None:
        """The newest checkpoint the peer sent us."""
        rows = self._rows(
            "SELECT statement FROM checkpoints WHERE link_id = ? AND origin = 'peer' "
            "ORDER BY id DESC LIMIT 1",
            (config.link_id,),
        )
        if not rows:
            return None
        return Checkpoint.verify(Signed.from_bytes(bytes(rows[0][0])), config.peer)

    def _walk(
        self,
        config: LinkConfig,
        table: str,
        direction: int,
        receipted: Heads | None,
        *,
        verify_all: bool = False,
    ) -> tuple[Heads, list[Envelope]]:
        """Walk each lane's chain; return the heads, and our envelopes the receipt does not cover
        (signature-checked, since they are about to be sent again)."""
        heads = list(empty_heads(config.link_id, direction))
        keep: list[Envelope] = []
        rows = self._stream(
            f"SELECT lane, seq, hash, envelope FROM {table} WHERE link_id = ? ORDER BY lane, seq",  # noqa: S608 - table is ours
            (config.link_id,),
        )
        for lane, seq, stored_hash, data in rows:
            head = heads[lane]
            where = f"{table} {LANES[lane].name} {seq}"
            if seq != head.seq + 1:
                raise StoreCorruptError(f"{where}: missing row, expected {head.seq + 1}")
            covered = receipted is None or seq <= receipted[lane].seq
            signer: PublicIdentity | None
            if verify_all:
                signer = config.identity.public if table == "outbox" else config.peer
            else:
                signer = None if covered else config.identity.public
            envelope = self._decode(bytes(data), signer, where)
            if envelope.hash != bytes(stored_hash) or envelope.body.prev_hash != head.hash:
                raise StoreCorruptError(f"{where}: the chain does not verify")
            if (envelope.body.lane, envelope.seq, envelope.body.direction) != (
                lane,
                seq,
                direction,
            ) or envelope.body.link_id != config.link_id:
                raise StoreCorruptError(f"{where}: the row does not match its envelope")
            receipt_head = receipted[lane] if receipted is not None else None
            if receipt_head and seq == receipt_head.seq and envelope.hash != receipt_head.hash:
                raise StoreCorruptError(f"{where}: the stored receipt names another envelope")
            heads[lane] = Head(seq, envelope.hash)
            if not covered:
                keep.append(envelope)
        return tuple(heads), keep

    @staticmethod
    def _decode(data: bytes, signer: PublicIdentity | None, where: str) -> Envelope:
        try:
            return decode_envelope(data, signer)
        except ProtocolError as exc:
            raise StoreCorruptError(f"{where}: {exc}") from None

    def _stored_receipt(self, config: LinkConfig) -> Heads:
        rows = self._rows("SELECT statement FROM receipts WHERE link_id = ?", (config.link_id,))
        if not rows:
            return empty_heads(config.link_id, config.direction)
        try:
            return Receipt.verify(Signed.from_bytes(bytes(rows[0][0])), config.peer).heads
        except ProtocolError as exc:
            raise StoreCorruptError(f"the stored receipt does not verify: {exc}") from None

    def _own_checkpoint(self, config: LinkConfig) -> Checkpoint | None:
        rows = self._rows(
            "SELECT statement FROM checkpoints WHERE link_id = ? AND origin = 'local' "
            "ORDER BY id DESC LIMIT 1",
            (config.link_id,),
        )
        if not rows:
            return None
        try:
            return Checkpoint.verify(Signed.from_bytes(bytes(rows[0][0])), config.identity.public)
        except ProtocolError as exc:
            raise StoreCorruptError(f"our stored checkpoint does not verify: {exc}") from None

    # -- what people look at ---------------------------------------------------------------------

    def outbox(self, link_id: bytes, limit: int = 100) -> list[Row]:
        """Newest first: lane, seq, type, accepted_ns, receipted_ns, acknowledged_by, envelope."""
        return self._rows(
            "SELECT lane, seq, type, accepted_ns, receipted_ns, acknowledged_by, envelope "
            "FROM outbox WHERE link_id = ? ORDER BY accepted_ns DESC, lane, seq DESC LIMIT ?",
            (link_id, limit),
        )

    def inbox(self, link_id: bytes, limit: int = 100) -> list[Row]:
        """Newest first: lane, seq, type, received_ns, acknowledged (by us), envelope."""
        return self._rows(
            "SELECT i.lane, i.seq, i.type, i.received_ns, "
            "EXISTS (SELECT 1 FROM outbox o WHERE o.link_id = i.link_id AND o.type = 3 "
            "AND o.ref_lane = i.lane AND o.ref_seq = i.seq), i.envelope "
            "FROM inbox i WHERE i.link_id = ? ORDER BY i.id DESC LIMIT ?",
            (link_id, limit),
        )

    def outbox_page(
        self,
        link_id: bytes,
        limit: int,
        before: tuple[int, int, int] | None = None,
        after: tuple[int, int, int] | None = None,
        hide_lanes: Sequence[int] = (),
        hide_types: Sequence[int] = (),
    ) -> list[Row]:
        """One page of the outbox by its key (accepted_ns, lane, seq): the `limit` rows older
        than `before`, newest first, or newer than `after`, oldest first (the caller turns them
        round); none of the lanes and types hidden. Rows as outbox() gives them."""
        where, args = self._page_where(
            "accepted_ns, lane, seq", before, after, hide_lanes, hide_types
        )
        order = "ASC" if after is not None else "DESC"
        return self._rows(
            "SELECT lane, seq, type, accepted_ns, receipted_ns, acknowledged_by, envelope "  # noqa: S608 - built of constants
            f"FROM outbox WHERE link_id = ?{where} "
            f"ORDER BY accepted_ns {order}, lane {order}, seq {order} LIMIT ?",
            (link_id, *args, limit),
        )

    def inbox_page(
        self,
        link_id: bytes,
        limit: int,
        before: int | None = None,
        after: int | None = None,
        hide_lanes: Sequence[int] = (),
        hide_types: Sequence[int] = (),
    ) -> list[Row]:
        """One page of the inbox by its id (the order of arrival): as inbox() gives its rows,
        each with its id last; older than `before` newest first, or newer than `after` oldest
        first; none of the lanes and types hidden."""
        where, args = self._page_where(
            "i.id",
            None if before is None else (before,),
            None if after is None else (after,),
            hide_lanes,
            hide_types,
            "i.",
        )
        order = "ASC" if after is not None else "DESC"
        return self._rows(
            "SELECT i.lane, i.seq, i.type, i.received_ns, "  # noqa: S608 - built of constants
            "EXISTS (SELECT 1 FROM outbox o WHERE o.link_id = i.link_id AND o.type = 3 "
            "AND o.ref_lane = i.lane AND o.ref_seq = i.seq), i.envelope, i.id "
            f"FROM inbox i WHERE i.link_id = ?{where} ORDER BY i.id {order} LIMIT ?",
            (link_id, *args, limit),
        )

    @staticmethod
    def _page_where(
        key: str,
        before: tuple[int, ...] | None,
        after: tuple[int, ...] | None,
        hide_lanes: Sequence[int],
        hide_types: Sequence[int],
        prefix: str = "",
    ) -> tuple[str, list[Any]]:
        """The WHERE clauses of a page: the key (a row value) beyond the cursor, and the lanes
        and types (integers) it leaves out."""
        clauses: list[str] = []
        args: list[Any] = []
        for cursor, op in ((before, "<"), (after, ">")):
            if cursor is not None:
                marks = ", ".join("?" for _ in cursor)
                clauses.append(f"({key}) {op} ({marks})" if len(cursor) > 1 else f"{key} {op} ?")
                args.extend(cursor)
        for column, values in (("lane", hide_lanes), ("type", hide_types)):
            if values:
                clauses.append(f"{prefix}{column} NOT IN ({', '.join('?' for _ in values)})")
                args.extend(int(v) for v in values)
        return "".join(f" AND {c}" for c in clauses), args

    def audit_page(
        self,
        limit: int,
        before: int | None = None,
        after: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> list[Row]:
        """Audit rows by id: older than `before` newest first, or newer than `after` oldest
        first; of one actor, one action, and in [since_ns, until_ns) if asked. Each row: id,
        at_ns, actor, action, detail, link_id (the evidence is not read)."""
        clauses: list[str] = []
        args: list[Any] = []
        for clause, value in (
            ("id < ?", before),
            ("id > ?", after),
            ("actor = ?", actor),
            ("action = ?", action),
            ("at_ns >= ?", since_ns),
            ("at_ns < ?", until_ns),
        ):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        order = "ASC" if after is not None else "DESC"
        return self._rows(
            f"SELECT id, at_ns, actor, action, detail, link_id FROM audit{where} "  # noqa: S608 - built of constants
            f"ORDER BY id {order} LIMIT ?",
            (*args, limit),
        )

    def audit_actors(self) -> list[str]:
        """Every actor the audit log names, for a filter's choices."""
        return [str(r[0]) for r in self._rows("SELECT DISTINCT actor FROM audit ORDER BY actor")]

    def draft_links(self, ids: Sequence[int]) -> dict[int, str]:
        """The link each of these drafts was written for (the audit names drafts by number)."""
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self._rows(
            f"SELECT id, link FROM drafts WHERE id IN ({marks})",  # noqa: S608 - placeholders
            tuple(ids),
        )
        return {int(i): str(link) for i, link in rows}

    def acknowledgement(self, link_id: bytes, direction: str, lane: int, seq: int) -> Row | None:
        """The acknowledgement of a message, if it has one: of the peer's ("in"), ours from the
        outbox (lane, seq, accepted_ns, envelope); of ours ("out"), the peer's from the inbox
        (lane, seq, received_ns, envelope)."""
        if direction == "in":
            rows = self._rows(
                "SELECT lane, seq, accepted_ns, envelope FROM outbox "
                "WHERE link_id = ? AND ref_lane = ? AND ref_seq = ? LIMIT 1",
                (link_id, lane, seq),
            )
        else:
            rows = self._rows(
                "SELECT i.lane, i.seq, i.received_ns, i.envelope FROM outbox o JOIN inbox i "
                "ON i.link_id = o.link_id AND i.type = 3 AND i.hash = o.acknowledged_by "
                "WHERE o.link_id = ? AND o.lane = ? AND o.seq = ? LIMIT 1",
                (link_id, lane, seq),
            )
        return rows[0] if rows else None

    def peer_acknowledgements(self, link_id: bytes, hashes: Sequence[bytes]) -> list[Row]:
        """The peer's acknowledgements with these hashes (those our messages' `acknowledged_by`
        name), in one pass over its acknowledgements: lane, seq, received_ns, envelope, hash."""
        if not hashes:
            return []
        marks = ", ".join("?" for _ in hashes)
        return self._rows(
            "SELECT lane, seq, received_ns, envelope, hash FROM inbox "  # noqa: S608 - placeholders
            f"WHERE link_id = ? AND type = 3 AND hash IN ({marks})",
            (link_id, *hashes),
        )

    def overdue(self, link_id: bytes, accepted_before: list[int]) -> list[Row]:
        """Our principal (and exercise) messages that no person there has acknowledged and that
        were accepted before their lane's cutoff: lane, seq, accepted_ns, type (oldest first,
        every one). Asked every second, so it reads only what is late, and ids, never the
        envelopes: an alarm names its message, the console fetches the text (issue 13, item 8)."""
        rows: list[Row] = []
        for lane, cutoff in enumerate(accepted_before):  # each a range of the partial index
            rows += self._rows(
                "SELECT lane, seq, accepted_ns, type FROM outbox WHERE link_id = ? "
                "AND lane = ? AND acknowledged_by IS NULL AND type IN (0, 4) AND accepted_ns < ? "
                "ORDER BY accepted_ns",
                (link_id, lane, cutoff),
            )
        return sorted(rows, key=lambda row: row[2])

    def unacknowledged_inbound(self, link_id: bytes, lane: int) -> list[Row]:
        """The peer's messages in `lane` that no person here has acknowledged (acknowledgements
        themselves aside): seq, received_ns, type (oldest first). Every one, so that a flood is
        counted exactly, and ids only: 120 FLASH of 32 KB must not be read every second
        (issue 13, item 8)."""
        return self._rows(
            "SELECT i.seq, i.received_ns, i.type FROM inbox i "
            "WHERE i.link_id = ? AND i.lane = ? AND i.type != 3 AND NOT EXISTS ("
            "SELECT 1 FROM outbox o WHERE o.link_id = i.link_id AND o.ref_lane = i.lane "
            "AND o.ref_seq = i.seq) ORDER BY i.seq",
            (link_id, lane),
        )

    def overdue_inbound(self, link_id: bytes, received_before: list[int]) -> list[Row]:
        """The peer's principal (and exercise) messages that no person here has acknowledged,
        received before their lane's cutoff: lane, seq, received_ns, type (oldest first, every
        one; ids only, as `overdue` reads them for our own)."""
        rows: list[Row] = []
        for lane, cutoff in enumerate(received_before):
            rows += self._rows(
                "SELECT i.lane, i.seq, i.received_ns, i.type FROM inbox i "
                "WHERE i.link_id = ? AND i.type IN (0, 4) AND i.received_ns < ? AND i.lane = ? "
                "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.link_id = i.link_id "
                "AND o.ref_lane = i.lane AND o.ref_seq = i.seq) ORDER BY i.received_ns",
                (link_id, cutoff, lane),
            )
        return sorted(rows, key=lambda row: row[2])

    def sent_count(self, link_id: bytes, type: int) -> int:
        """How many envelopes of a type we have sent on the link."""
        rows = self._rows(
            "SELECT COUNT(*) FROM outbox WHERE link_id = ? AND type = ?", (link_id, type)
        )
        return int(rows[0][0])

    def last_sent(self, link_id: bytes, type: int) -> Row | None:
        """Our newest envelope of a type: lane, seq, accepted_ns, receipted_ns."""
        rows = self._rows(
            "SELECT lane, seq, accepted_ns, receipted_ns FROM outbox "
            "WHERE link_id = ? AND type = ? ORDER BY accepted_ns DESC LIMIT 1",
            (link_id, type),
        )
        return rows[0] if rows else None

    def last_received(self, link_id: bytes, type: int) -> Row | None:
        """The peer's newest envelope of a type: lane, seq, received_ns."""
        rows = self._rows(
            "SELECT lane, seq, received_ns FROM inbox "
            "WHERE link_id = ? AND type = ? ORDER BY received_ns DESC LIMIT 1",
            (link_id, type),
        )
        return rows[0] if rows else None

    def lane_extents(self, link_id: bytes) -> dict[str, dict[int, tuple[int, int, list[int]]]]:
        """Per direction and lane: first seq, last seq, and the numbers missing in between (at
        most 100). `load` refuses a store with a gap, so the list is empty; the console checks
        it and says so in plain words rather than take it on trust."""
        extents: dict[str, dict[int, tuple[int, int, list[int]]]] = {}
        for direction, table in (("out", "outbox"), ("in", "inbox")):
            rows = self._rows(
                f"SELECT lane, min(seq), max(seq), count(*) FROM {table} "  # noqa: S608 - ours
                "WHERE link_id = ? GROUP BY lane",
                (link_id,),
            )
            extents[direction] = {}
            for lane, first, last, count in rows:
                missing: list[int] = []
                if count != last - first + 1 or first != 1:
                    held = {
                        seq
                        for (seq,) in self._rows(
                            f"SELECT seq FROM {table} WHERE link_id = ? AND lane = ?",  # noqa: S608
                            (link_id, lane),
                        )
                    }
                    missing = [n for n in range(1, last + 1) if n not in held][:100]
                extents[direction][lane] = (first, last, missing)
        return extents

    # -- the whole record, for the archive -------------------------------------------------------

    def all_envelopes(self, link_id: bytes, table: str) -> Iterator[Row]:
        """Every envelope of one direction (`outbox` ours, `inbox` the peer's), in order: lane,
        seq, at_ns, envelope, where at_ns is when this station accepted it (ours) or received
        it (the peer's), by its own clock. Streamed: a record of millions does not sit in
        memory."""
        if table not in _STATION_TIME:
            raise ValueError(f"no table {table!r}")
        at = _STATION_TIME[table]
        return self._stream(
            f"SELECT lane, seq, {at}, envelope FROM {table} WHERE link_id = ? "  # noqa: S608 - ours
            "ORDER BY lane, seq",
            (link_id,),
        )

    def lane_pieces(
        self, link_id: bytes, table: str, since_ns: int | None, until_ns: int | None
    ) -> dict[int, tuple[int, int]]:
        """Per lane of one direction, the first and last seq this station accepted (`outbox`)
        or received (`inbox`) from `since_ns` to `until_ns` (both included; None: open) by its
        own clock, never by the sender's `sent_ns` (hotline.protocol.clock). A lane kept from the
        one to the other holds everything in the range, even where our clock stepped back."""
        at = _STATION_TIME[table]
        rows = self._rows(
            f"SELECT lane, min(seq), max(seq) FROM {table} WHERE link_id = ? "  # noqa: S608 - ours
            f"AND {at} >= ? AND {at} <= ? GROUP BY lane",
            (
                link_id,
                min(since_ns or 0, _MAX_NS),
                min(_MAX_NS if until_ns is None else until_ns, _MAX_NS),
            ),
        )
        return {int(lane): (int(first), int(last)) for lane, first, last in rows}

    def stored_receipt(self, link_id: bytes) -> bytes | None:
        rows = self._rows("SELECT statement FROM receipts WHERE link_id = ?", (link_id,))
        return bytes(rows[0][0]) if rows else None

    def stored_checkpoints(self, link_id: bytes) -> list[tuple[str, bytes]]:
        """Every checkpoint held, in the order stored: origin ("local" or "peer"), statement."""
        rows = self._rows(
            "SELECT origin, statement FROM checkpoints WHERE link_id = ? ORDER BY id", (link_id,)
        )
        return [(str(origin), bytes(statement)) for origin, statement in rows]

    def acknowledged_here(self, link_id: bytes, lane: int, seq: int) -> bool:
        """Whether a person here has acknowledged the peer's envelope (lane, seq)."""
        return bool(
            self._rows(
                "SELECT 1 FROM outbox WHERE link_id = ? AND ref_lane = ? AND ref_seq = ? LIMIT 1",
                (link_id, lane, seq),
            )
        )

    def outbound(self, link_id: bytes, lane: int, seq: int) -> bytes | None:
        rows = self._rows(
            "SELECT envelope FROM outbox WHERE link_id = ? AND lane = ? AND seq = ?",
            (link_id, lane, seq),
        )
        return bytes(rows[0][0]) if rows else None

    def inbound(self, link_id: bytes, lane: int, seq: int) -> bytes | None:
        rows = self._rows(
            "SELECT envelope FROM inbox WHERE link_id = ? AND lane = ? AND seq = ?",
            (link_id, lane, seq),
        )
        return bytes(rows[0][0]) if rows else None

    def audit(
        self, link_id: bytes | None, action: str, detail: str, evidence: bytes, now_ns: int
    ) -> None:
        """Record what people must find later, outside any link batch (a refused handshake)."""
        with self.transaction():
            self._execute(
                "INSERT INTO audit (link_id, at_ns, actor, action, detail, evidence) "
                "VALUES (?, ?, 'station', ?, ?, ?)",
                (link_id, now_ns, action, detail, evidence),
            )

    # -- committing what a core produced ---------------------------------------------------------

    def commit(
        self, link_id: bytes, batch: Batch, now_ns: int, keyed: Sequence[KeyedSend] = ()
    ) -> None:
        """Make a core's batch durable, all of it or none (group commit), with the keys that
        clients named its new messages by (sendkeys.py)."""
        if not batch:
            return
        with self.transaction():
            self._commit_envelopes(link_id, batch, now_ns)
            if keyed:
                self._commit_send_keys(link_id, keyed, now_ns)
            if batch.receipt is not None:
                self._commit_receipt(link_id, batch.receipt, now_ns)
            if batch.checkpoints:
                self._executemany(
                    "INSERT INTO checkpoints (link_id, origin, hash, statement, stored_ns) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (link_id, hash) DO NOTHING",
                    [
                        (
                            link_id,
                            origin,
                            sha256(cp.signed.to_bytes()),
                            cp.signed.to_bytes(),
                            now_ns,
                        )
                        for origin, cp in batch.checkpoints
                    ],
                )
            if batch.audit:
                self._executemany(
                    "INSERT INTO audit (link_id, at_ns, actor, action, detail, evidence) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (link_id, now_ns, a.actor, a.action, a.detail, a.evidence)
                        for a in batch.audit
                    ],
                )

    def _commit_envelopes(self, link_id: bytes, batch: Batch, now_ns: int) -> None:
        if batch.outbound:
            self._executemany(
                "INSERT INTO outbox (link_id, lane, seq, hash, envelope, type, accepted_ns, "
                "ref_lane, ref_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*_envelope_row(link_id, e, now_ns), *_ref(e)) for e in batch.outbound],
            )
            self._commit_attachments(link_id, "out", batch.outbound)
        if batch.inbound:
            self._executemany(
                "INSERT INTO inbox (link_id, lane, seq, hash, envelope, type, received_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [_envelope_row(link_id, e, now_ns) for e in batch.inbound],
            )
            self._commit_attachments(link_id, "in", batch.inbound)
            acks = [e for e in batch.inbound if e.body.type == MessageType.ACKNOWLEDGEMENT]
            self._executemany(
                "UPDATE outbox SET acknowledged_by = ? "
                "WHERE link_id = ? AND lane = ? AND seq = ? AND hash = ?",
                [
                    (e.hash, link_id, e.body.ref.lane, e.body.ref.seq, e.body.ref.hash)
                    for e in acks
                    if e.body.ref
                ],
            )

    def _commit_receipt(self, link_id: bytes, receipt: Receipt, now_ns: int) -> None:
        self._execute(
            "INSERT INTO receipts (link_id, statement, received_ns) VALUES (?, ?, ?) "
            "ON CONFLICT (link_id) DO UPDATE SET statement = excluded.statement, "
            "received_ns = excluded.received_ns",
            (link_id, receipt.signed.to_bytes(), now_ns),
        )
        self._executemany(
            "UPDATE outbox SET receipted_ns = ? "
            "WHERE link_id = ? AND lane = ? AND seq <= ? AND receipted_ns IS NULL",
            [(now_ns, link_id, int(lane), receipt.heads[lane].seq) for lane in LANES],
        )


# When this station took each envelope in, by its own clock: what lists and ranges go by.
_STATION_TIME = {"outbox": "accepted_ns", "inbox": "received_ns"}
_MAX_NS = 2**63 - 1  # the largest BIGINT: later than any time a station's clock gives


def _check_receipt_within(receipted: Heads, outbound: Heads) -> None:
    for lane in LANES:
        if receipted[lane].seq > outbound[lane].seq:
            raise StoreCorruptError(
                f"the stored receipt covers {lane.name} {receipted[lane].seq}, "
                f"but the outbox ends at {outbound[lane].seq}"
            )


def _check_not_behind(table: str, signed: Heads, stored: Heads) -> None:
    """Our own checkpoint is our signed word of what we held: the store may not hold less."""
    for lane in LANES:
        if stored[lane].seq < signed[lane].seq:
            raise StoreCorruptError(
                f"{table} {lane.name} ends at {stored[lane].seq}, but our own checkpoint "
                f"says we held {signed[lane].seq}: rows were lost or an old copy restored"
            )


def _ref(envelope: Envelope) -> tuple[int | None, int | None]:
    ref = envelope.body.ref
    return (ref.lane, ref.seq) if ref is not None else (None, None)


def _envelope_row(link_id: bytes, envelope: Envelope, now_ns: int) -> tuple[Any, ...]:
    return (
        link_id,
        envelope.body.lane,
        envelope.seq,
        envelope.hash,
        envelope.to_bytes(),
        envelope.body.type,
        now_ns,
    )
