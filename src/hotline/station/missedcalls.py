"""Missed calls that wait for a person (issue 12): a call that rang here and nobody answered is
an alarm until someone acknowledges it, and that must survive a restart and outlive the call
table, which forgets an ended call after a minute. So each is kept in the store (beside the notes
of calls in progress, in `meta`) from the moment it is missed until a person acknowledges it; the
call's own record, in the chain, says for good that it was missed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from hotline.protocol.calls import Call
from hotline.protocol.envelope import Lane

if TYPE_CHECKING:
    from hotline.store.base import SqlStore

__all__ = ["MissedCall", "forget_missed", "keep_missed", "missed_calls"]


@dataclass(frozen=True, slots=True)
class MissedCall:
    call_id: bytes
    lane: Lane
    caller: str
    caller_role: str
    invited_ns: int
    ended_ns: int

    @classmethod
    def of(cls, call: Call) -> MissedCall:
        ended = call.ended_ns if call.ended_ns is not None else call.invited_ns
        return cls(
            call.call_id, Lane(call.lane), call.caller, call.caller_role, call.invited_ns, ended
        )

    def to_json(self) -> dict[str, Any]:
        """As the API and the console show a call (`calls.call_json`), for an incoming one that
        ended unanswered."""
        return {
            "id": self.call_id.hex(),
            "direction": "incoming",
            "state": "ended",
            "precedence": self.lane.name,
            "caller": {"person": self.caller, "role": self.caller_role},
            "answerer": None,
            "invited_ns": self.invited_ns,
            "answered_ns": None,
            "ended_ns": self.ended_ns,
            "end_reason": "no answer",
        }


class _Kept(msgspec.Struct, frozen=True):
    lane: int
    caller: str
    caller_role: str
    invited_ns: int
    ended_ns: int


def _key(link_id: bytes, call_id: bytes) -> str:
    return f"missed.{link_id.hex()}.{call_id.hex()}"


def keep_missed(store: SqlStore, link_id: bytes, missed: MissedCall) -> None:
    kept = _Kept(
        int(missed.lane), missed.caller, missed.caller_role, missed.invited_ns, missed.ended_ns
    )
    store.set_meta(_key(link_id, missed.call_id), msgspec.json.encode(kept).decode())


def forget_missed(store: SqlStore, link_id: bytes, call_id: bytes) -> None:
    store.set_meta(_key(link_id, call_id), None)


def missed_calls(store: SqlStore, link_id: bytes) -> list[MissedCall]:
    """The link's missed calls nobody has acknowledged, oldest first (unreadable ones skipped:
    their records in the chain still say they were missed)."""
    found = []
    prefix = f"missed.{link_id.hex()}."
    for key, value in store.meta_like(prefix):
        try:
            kept = msgspec.json.decode(value, type=_Kept)
            call_id = bytes.fromhex(key[len(prefix) :])
            found.append(MissedCall(call_id, Lane(kept.lane), kept.caller, kept.caller_role,
                                    kept.invited_ns, kept.ended_ns))  # fmt: skip
        except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
            continue
    return sorted(found, key=lambda m: m.invited_ns)
