"""What the store keeps about the people at the console: operators, drafts, the shift log, and
their acts in the audit log. A mixin of SqlStore, so both backends have it; the rules (who may
do what, how a password is checked) live in hotline.console, not here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hotline.errors import StoreError
from hotline.store.backend import SqlBackend

__all__ = ["Draft", "Operator", "PeopleRecords", "ShiftNote"]

_OPERATOR_COLUMNS = (
    "name, role, password_hash, totp_secret, language, disabled, failures, locked_until_ns, "
    "last_totp_step, created_ns"
)
_DRAFT_COLUMNS = (
    "id, link, lane, type, language, text, drafted_by, drafted_ns, state, decided_by, "
    "decided_ns, seq, attachments"
)


@dataclass(slots=True)
class Operator:
    name: str
    role: str
    password_hash: str
    totp_secret: str
    language: str
    disabled: bool
    failures: int
    locked_until_ns: int
    last_totp_step: int
    created_ns: int

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Operator:
        name, role, password_hash, secret, language, disabled, failures, locked, step, created = row
        return cls(
            name, role, password_hash, secret, language, bool(disabled), failures, locked, step,
            created,
        )  # fmt: skip


@dataclass(slots=True)
class Draft:
    id: int
    link: str
    lane: int
    type: int
    language: str
    text: str
    drafted_by: str
    drafted_ns: int
    state: str  # draft, releasing, released, rejected
    decided_by: str | None
    decided_ns: int | None
    seq: int | None
    attachments: str = "[]"  # JSON: the files to send with it, [{sha256, name, media_type}]


@dataclass(slots=True)
class ShiftNote:
    id: int
    at_ns: int
    author: str
    text: str
    handover: bool


class PeopleRecords(SqlBackend):
    # -- operators -------------------------------------------------------------------------------

    def add_operator(self, operator: Operator) -> None:
        with self.transaction():
            if self._rows("SELECT 1 FROM operators WHERE name = ?", (operator.name,)):
                raise StoreError(f"an operator named {operator.name!r} exists already")
            self._execute(
                f"INSERT INTO operators ({_OPERATOR_COLUMNS}) "  # noqa: S608 - constant columns
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    operator.name, operator.role, operator.password_hash, operator.totp_secret,
                    operator.language, int(operator.disabled), operator.failures,
                    operator.locked_until_ns, operator.last_totp_step, operator.created_ns,
                ),
            )  # fmt: skip

    def operator(self, name: str) -> Operator | None:
        rows = self._rows(f"SELECT {_OPERATOR_COLUMNS} FROM operators WHERE name = ?", (name,))  # noqa: S608 - constant columns
        return Operator.from_row(rows[0]) if rows else None

    def operators(self) -> list[Operator]:
        rows = self._rows(f"SELECT {_OPERATOR_COLUMNS} FROM operators ORDER BY name")  # noqa: S608 - constant columns
        return [Operator.from_row(row) for row in rows]

    def update_operator(self, name: str, **changes: Any) -> None:
        """Change some of an operator's columns (names from Operator's fields)."""
        allowed = set(Operator.__dataclass_fields__) - {"name", "created_ns"}
        if not changes or not set(changes) <= allowed:
            raise ValueError(f"cannot change {sorted(set(changes) - allowed)}")
        assignments = ", ".join(f"{column} = ?" for column in changes)
        values = [int(v) if isinstance(v, bool) else v for v in changes.values()]
        with self.transaction():
            self._execute(
                f"UPDATE operators SET {assignments} WHERE name = ?",  # noqa: S608 - checked names
                (*values, name),
            )

    # -- drafts ----------------------------------------------------------------------------------

    def add_draft(self, draft: Draft) -> int:
        with self.transaction():
            self._execute(
                "INSERT INTO drafts (link, lane, type, language, text, drafted_by, drafted_ns, "
                "state, decided_by, decided_ns, attachments) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    draft.link, draft.lane, draft.type, draft.language, draft.text,
                    draft.drafted_by, draft.drafted_ns, draft.state, draft.decided_by,
                    draft.decided_ns, draft.attachments,
                ),
            )  # fmt: skip
            rows = self._rows(
                "SELECT max(id) FROM drafts WHERE drafted_by = ? AND drafted_ns = ?",
                (draft.drafted_by, draft.drafted_ns),
            )
        return int(rows[0][0])

    def draft(self, draft_id: int) -> Draft | None:
        rows = self._rows(f"SELECT {_DRAFT_COLUMNS} FROM drafts WHERE id = ?", (draft_id,))  # noqa: S608 - constant columns
        return Draft(*rows[0]) if rows else None

    def drafts(self, states: tuple[str, ...], limit: int = 200) -> list[Draft]:
        """Oldest first: the draft waiting longest is the one a supervisor must see."""
        marks = ", ".join("?" for _ in states)
        rows = self._rows(
            f"SELECT {_DRAFT_COLUMNS} FROM drafts "  # noqa: S608 - constant columns, placeholders
            f"WHERE state IN ({marks}) ORDER BY id "
            "LIMIT ?",
            (*states, limit),
        )
        return [Draft(*row) for row in rows]

    def decide_draft(
        self, draft_id: int, expected: str, state: str, by: str | None, now_ns: int | None
    ) -> bool:
        """Move a draft from `expected` to `state`; False if another person moved it first."""
        with self.transaction():
            rows = self._rows("SELECT state FROM drafts WHERE id = ?", (draft_id,))
            if not rows or rows[0][0] != expected:
                return False
            self._execute(
                "UPDATE drafts SET state = ?, decided_by = ?, decided_ns = ? WHERE id = ?",
                (state, by, now_ns, draft_id),
            )
        return True

    def claimed_seqs(self, link: str, lane: int) -> set[int]:
        """The sequence numbers drafts of a link and lane were sent as."""
        rows = self._rows(
            "SELECT seq FROM drafts WHERE link = ? AND lane = ? AND seq IS NOT NULL", (link, lane)
        )
        return {int(seq) for (seq,) in rows}

    def draft_sent(self, draft_id: int, seq: int) -> None:
        with self.transaction():
            self._execute(
                "UPDATE drafts SET state = 'released', seq = ? WHERE id = ?", (seq, draft_id)
            )

    # -- station settings people change ---------------------------------------------------------

    def setting(self, key: str, default: str) -> str:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (f"console.{key}",))
        return str(rows[0][0]) if rows else default

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction():
            self._execute("DELETE FROM meta WHERE key = ?", (f"console.{key}",))
            self._execute("INSERT INTO meta (key, value) VALUES (?, ?)", (f"console.{key}", value))

    # -- calls in progress: what a restart needs to write their records ---------------------------

    def open_calls(self, link_id: bytes) -> list[tuple[str, str]]:
        """The calls of a link that had not ended when last noted: (call id hex, note JSON)."""
        prefix = f"call.{link_id.hex()}."
        rows = self._rows("SELECT key, value FROM meta WHERE key LIKE ?", (prefix + "%",))
        return [(str(key)[len(prefix) :], str(value)) for key, value in rows]

    def set_open_call(self, link_id: bytes, call_id: str, note: str | None) -> None:
        """Note a call in progress (or, with None, that its record is written)."""
        key = f"call.{link_id.hex()}.{call_id}"
        with self.transaction():
            self._execute("DELETE FROM meta WHERE key = ?", (key,))
            if note is not None:
                self._execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, note))

    # -- shift log and audit ---------------------------------------------------------------------

    def add_shift_note(self, note: ShiftNote) -> None:
        with self.transaction():
            self._execute(
                "INSERT INTO shift_log (at_ns, author, text, handover) VALUES (?, ?, ?, ?)",
                (note.at_ns, note.author, note.text, int(note.handover)),
            )

    def shift_notes(self, limit: int = 200) -> list[ShiftNote]:
        rows = self._rows(
            "SELECT id, at_ns, author, text, handover FROM shift_log ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            ShiftNote(i, at, author, text, bool(handover)) for i, at, author, text, handover in rows
        ]

    def audit_person(
        self,
        actor: str,
        action: str,
        detail: str,
        now_ns: int,
        link_id: bytes | None = None,
    ) -> None:
        """A person's act, as the audit log keeps it: who, what, when."""
        with self.transaction():
            self._execute(
                "INSERT INTO audit (link_id, at_ns, actor, action, detail, evidence) "
                "VALUES (?, ?, ?, ?, ?, NULL)",
                (link_id, now_ns, actor, action, detail),
            )

    def audit_log(self, limit: int = 500) -> list[tuple[Any, ...]]:
        """Newest first: id, at_ns, actor, action, detail, link_id."""
        return self._rows(
            "SELECT id, at_ns, actor, action, detail, link_id FROM audit ORDER BY id DESC LIMIT ?",
            (limit,),
        )
