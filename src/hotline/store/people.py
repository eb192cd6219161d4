"""What the store keeps about the people at the console: operators and their enrolment codes,
drafts, the shift log, and their acts in the audit log. A mixin of SqlStore, so both backends
have it; the rules (who may do what, how a password is checked) live in hotline.console, not
here.

An operator's TOTP secret is sealed before it is written (hotline.crypto.atrest) whenever the
store knows the station's public TOTP key, and opened when read if it holds the private key too
(only the station, with its keystore open, does). So an `Operator` read by the station carries
the plain secret, one read by a tool without the keystore carries it sealed, and the rows never
hold it plain once the station has started (it seals any older plain ones at start).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hotline.crypto.atrest import is_sealed, open_sealed, seal
from hotline.errors import StoreError
from hotline.store.backend import SqlBackend

__all__ = ["Draft", "Enrolment", "Operator", "PeopleRecords", "ShiftNote"]

log = logging.getLogger("hotline.store")

_OPERATOR_COLUMNS = (
    "name, role, password_hash, totp_secret, language, disabled, failures, locked_until_ns, "
    "last_totp_step, created_ns, enrolled_ns"
)
_ENROLMENT_COLUMNS = "name, code_hash, made_by, made_ns, expires_ns"
_DRAFT_COLUMNS = (
    "id, link, lane, type, language, text, drafted_by, drafted_ns, state, decided_by, "
    "decided_ns, seq, attachments, reason"
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
    enrolled_ns: int = 0  # when its person last chose a password and took a TOTP secret

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Operator:
        name, role, password_hash, secret, language, disabled, failures, locked, step, *times = row
        return cls(
            name, role, password_hash, secret, language, bool(disabled), failures, locked, step,
            *times,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Enrolment:
    """An account's one-time enrolment code, waiting for its person: the code's hash only."""

    name: str
    code_hash: str
    made_by: str  # who was shown the code: an admin's name, or "cli:<user>" at the station host
    made_ns: int
    expires_ns: int


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
    state: str  # draft, releasing, released, rejected, withdrawn (by its author)
    decided_by: str | None
    decided_ns: int | None
    seq: int | None
    attachments: str = "[]"  # JSON: the files to send with it, [{sha256, name, media_type}]
    reason: str | None = None  # why it was rejected: the releaser's words, or the station's


@dataclass(slots=True)
class ShiftNote:
    id: int
    at_ns: int
    author: str
    text: str
    handover: bool


def _totp_context(name: str) -> bytes:
    """What a sealed TOTP secret is bound to: its account, so rows cannot be swapped."""
    return b"hotline totp secret\x00" + name.encode("utf-8")


class PeopleRecords(SqlBackend):
    _totp_public: bytes | None = None  # seal TOTP secrets to this key when writing them
    _totp_private: bytes | None = None  # and open them with this one when reading them

    # -- operators -------------------------------------------------------------------------------

    def use_totp_key(self, public: bytes | None, private: bytes | None = None) -> None:
        """Seal TOTP secrets to `public` from now on (None: keep writing them as given), and
        open them with `private` when operators are read."""
        self._totp_public, self._totp_private = public, private

    def seal_plain_totp_secrets(self) -> list[str]:
        """Seal every TOTP secret still kept plain (written before sealing existed, or by a tool
        that did not know the key); returns the names of their operators."""
        public = self._totp_public
        if public is None:
            raise StoreError("no TOTP key to seal with")
        rows = self._rows("SELECT name, totp_secret FROM operators ORDER BY name")
        plain = [(str(name), str(secret)) for name, secret in rows if not is_sealed(secret)]
        if not plain:
            return []
        with self.transaction():
            self._executemany(
                "UPDATE operators SET totp_secret = ? WHERE name = ? AND totp_secret = ?",
                [(self._sealed(name, secret), name, secret) for name, secret in plain],
            )
        self.forget_overwritten()
        return [name for name, _ in plain]

    def unopened_totp_secrets(self) -> list[str]:
        """The operators whose sealed TOTP secret does not open with the private key held."""
        return [o.name for o in self.operators() if is_sealed(o.totp_secret)]

    def _sealed(self, name: str, secret: str) -> str:
        if self._totp_public is None or is_sealed(secret):
            return secret
        return seal(self._totp_public, secret, _totp_context(name), secrets.token_bytes(32))

    def _opened(self, operator: Operator) -> Operator:
        if self._totp_private is not None and is_sealed(operator.totp_secret):
            try:
                operator.totp_secret = open_sealed(
                    self._totp_private, operator.totp_secret, _totp_context(operator.name)
                )
            except ValueError as exc:  # stays sealed: no code can match it, so no sign-in
                log.error("the TOTP secret of operator %r: %s", operator.name, exc)
        return operator

    def add_operator(self, operator: Operator, enrolment: Enrolment | None = None) -> None:
        """A new account, and with it (in the same transaction) its enrolment code's hash."""
        secret = self._sealed(operator.name, operator.totp_secret)
        with self.transaction():
            if self._rows("SELECT 1 FROM operators WHERE name = ?", (operator.name,)):
                raise StoreError(f"an operator named {operator.name!r} exists already")
            self._execute(
                f"INSERT INTO operators ({_OPERATOR_COLUMNS}) "  # noqa: S608 - constant columns
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    operator.name, operator.role, operator.password_hash, secret,
                    operator.language, int(operator.disabled), operator.failures,
                    operator.locked_until_ns, operator.last_totp_step, operator.created_ns,
                    operator.enrolled_ns,
                ),
            )  # fmt: skip
            if enrolment is not None:
                self._put_enrolment(enrolment)

    def operator(self, name: str) -> Operator | None:
        rows = self._rows(f"SELECT {_OPERATOR_COLUMNS} FROM operators WHERE name = ?", (name,))  # noqa: S608 - constant columns
        return self._opened(Operator.from_row(rows[0])) if rows else None

    def operators(self) -> list[Operator]:
        rows = self._rows(f"SELECT {_OPERATOR_COLUMNS} FROM operators ORDER BY name")  # noqa: S608 - constant columns
        return [self._opened(Operator.from_row(row)) for row in rows]

    def update_operator(self, name: str, **changes: Any) -> None:
        """Change some of an operator's columns (names from Operator's fields)."""
        with self.transaction():
            self._set_operator(name, changes)

    def update_operator_keeping_an_admin(self, name: str, **changes: Any) -> bool:
        """Change some of an operator's columns, unless that would leave no active admin (an
        account with the role admin, not disabled): then change nothing and return False. The
        count and the change are one transaction."""
        with self.transaction():
            rows = self._rows("SELECT role, disabled FROM operators WHERE name = ?", (name,))
            if not rows:
                raise StoreError(f"no operator named {name!r}")
            role, disabled = rows[0]
            after_role = changes.get("role", role)
            after_disabled = bool(changes.get("disabled", disabled))
            if role == "admin" and not disabled and (after_role != "admin" or after_disabled):
                others = self._rows(
                    "SELECT count(*) FROM operators "
                    "WHERE role = 'admin' AND disabled = 0 AND name <> ?",
                    (name,),
                )
                if not others[0][0]:
                    return False
            self._set_operator(name, changes)
        return True

    def _set_operator(self, name: str, changes: dict[str, Any]) -> None:
        allowed = set(Operator.__dataclass_fields__) - {"name", "created_ns"}
        if not changes or not set(changes) <= allowed:
            raise ValueError(f"cannot change {sorted(set(changes) - allowed)}")
        if "totp_secret" in changes:
            changes["totp_secret"] = self._sealed(name, changes["totp_secret"])
        assignments = ", ".join(f"{column} = ?" for column in changes)
        values = [int(v) if isinstance(v, bool) else v for v in changes.values()]
        self._execute(
            f"UPDATE operators SET {assignments} WHERE name = ?",  # noqa: S608 - checked names
            (*values, name),
        )

    # -- enrolment: one code per account, used once, by its person (issue 13, item 10) ----------

    def _put_enrolment(self, enrolment: Enrolment) -> None:
        self._execute("DELETE FROM enrolments WHERE name = ?", (enrolment.name,))
        self._execute(
            f"INSERT INTO enrolments ({_ENROLMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?)",  # noqa: S608 - constant columns
            (enrolment.name, enrolment.code_hash, enrolment.made_by, enrolment.made_ns,
             enrolment.expires_ns),
        )  # fmt: skip

    def reenrol_operator(self, enrolment: Enrolment, **changes: Any) -> None:
        """Change an operator's columns (their credentials made unknown to anyone) and give the
        account a new enrolment code, replacing any it had, in one transaction."""
        with self.transaction():
            if not self._rows("SELECT 1 FROM operators WHERE name = ?", (enrolment.name,)):
                raise StoreError(f"no operator named {enrolment.name!r}")
            self._set_operator(enrolment.name, changes)
            self._put_enrolment(enrolment)

    def enrolment(self, name: str) -> Enrolment | None:
        rows = self._rows(
            f"SELECT {_ENROLMENT_COLUMNS} FROM enrolments WHERE name = ?",  # noqa: S608 - constant columns
            (name,),
        )
        return Enrolment(*rows[0]) if rows else None

    def enrolments(self) -> list[Enrolment]:
        rows = self._rows(f"SELECT {_ENROLMENT_COLUMNS} FROM enrolments ORDER BY name")  # noqa: S608 - constant columns
        return [Enrolment(*row) for row in rows]

    def use_enrolment(
        self, name: str, code_hash: str, now_ns: int, **changes: Any
    ) -> Enrolment | None:
        """Spend an enrolment code and write the person's credentials (`changes`), in one
        transaction; None if the code is not this account's, has expired or was spent. The code
        goes with a DELETE that only one of two transactions can make."""
        with self.transaction():
            rows = self._rows(
                "DELETE FROM enrolments WHERE name = ? AND code_hash = ? AND expires_ns > ? "  # noqa: S608 - constant columns
                f"RETURNING {_ENROLMENT_COLUMNS}",
                (name, code_hash, now_ns),
            )
            if not rows:
                return None
            self._set_operator(name, changes)
        return Enrolment(*rows[0])

    def drop_expired_enrolments(self, now_ns: int) -> list[Enrolment]:
        """Forget the codes whose time is up; returns them (once), to be audited."""
        if not self._rows("SELECT 1 FROM enrolments WHERE expires_ns <= ? LIMIT 1", (now_ns,)):
            return []  # the usual case: a read, no write transaction
        with self.transaction():
            rows = self._rows(
                f"DELETE FROM enrolments WHERE expires_ns <= ? RETURNING {_ENROLMENT_COLUMNS}",  # noqa: S608 - constant columns
                (now_ns,),
            )
        return sorted((Enrolment(*row) for row in rows), key=lambda e: e.name)

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

    def released_as(self, link: str, lane: int, seq: int) -> Draft | None:
        """The draft that a message of ours was released (or sent) as, if it was drafted."""
        rows = self._rows(
            f"SELECT {_DRAFT_COLUMNS} FROM drafts "  # noqa: S608 - constant columns
            "WHERE link = ? AND lane = ? AND seq = ? AND state = 'released' LIMIT 1",
            (link, lane, seq),
        )
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

    def drafts_decided(
        self, author: str, state: str, since_ns: int, limit: int = 50
    ) -> list[Draft]:
        """An author's drafts that were moved to `state` (rejected) since `since_ns`, oldest
        first: what the author must be told."""
        rows = self._rows(
            f"SELECT {_DRAFT_COLUMNS} FROM drafts "  # noqa: S608 - constant columns
            "WHERE drafted_by = ? AND state = ? AND decided_ns >= ? ORDER BY id DESC LIMIT ?",
            (author, state, since_ns, limit),
        )
        return [Draft(*row) for row in reversed(rows)]

    def decide_draft(
        self,
        draft_id: int,
        expected: str,
        state: str,
        by: str | None,
        now_ns: int | None,
        reason: str | None = None,
    ) -> bool:
        """Move a draft from `expected` to `state` (with why, for a rejection); False if
        another person moved it first."""
        with self.transaction():
            rows = self._rows("SELECT state FROM drafts WHERE id = ?", (draft_id,))
            if not rows or rows[0][0] != expected:
                return False
            self._execute(
                "UPDATE drafts SET state = ?, decided_by = ?, decided_ns = ?, reason = ? "
                "WHERE id = ?",
                (state, by, now_ns, reason, draft_id),
            )
        return True

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
        return [(key[len(prefix) :], value) for key, value in self.meta_like(prefix)]

    def meta_like(self, prefix: str) -> list[tuple[str, str]]:
        """The station's own notes (`meta`) whose keys begin with `prefix`: (key, value)."""
        rows = self._rows("SELECT key, value FROM meta WHERE key LIKE ?", (prefix + "%",))
        return [(str(key), str(value)) for key, value in rows]

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or, with None, remove) one of the station's own notes."""
        with self.transaction():
            self._execute("DELETE FROM meta WHERE key = ?", (key,))
            if value is not None:
                self._execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))

    def recent_call_records(self, link_id: bytes, limit: int = 64) -> list[bytes]:
        """Our newest call records on a link (envelopes as stored), newest first."""
        rows = self._rows(
            "SELECT envelope FROM outbox WHERE link_id = ? AND type = 5 "
            "ORDER BY accepted_ns DESC LIMIT ?",
            (link_id, limit),
        )
        return [bytes(row[0]) for row in rows]

    def set_open_call(self, link_id: bytes, call_id: str, note: str | None) -> None:
        """Note a call in progress (or, with None, that its record is written)."""
        self.set_meta(f"call.{link_id.hex()}.{call_id}", note)

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
