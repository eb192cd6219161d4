"""Sending a released draft exactly once.

A release first marks the draft `releasing` (its own transaction), then sends the message (the
link's transaction) named by the draft's id as its send key (store/sendkeys.py), then marks the
draft `released` with its sequence number. A stop between the two leaves `releasing`; at the next
start `reconcile_drafts` looks the draft's key up: the message was sent under it, so the draft is
released as that message; or it was not, so the draft waits again. Never sent twice, never lost."""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from hotline.errors import ProtocolError
from hotline.protocol.envelope import Lane, MessageType
from hotline.station.api import FileRef, files_named
from hotline.station.link_runtime import KeyReused
from hotline.store.base import SqlStore
from hotline.store.people import Draft

if TYPE_CHECKING:
    from hotline.console.security import Console
    from hotline.station.link_runtime import LinkRuntime
    from hotline.station.runtime import Station

__all__ = ["draft_json", "reconcile_drafts", "send_draft", "tell_author"]

log = logging.getLogger("hotline.console")


async def send_draft(
    console: Console, runtime: LinkRuntime, record: Draft, operator: str, action: str
) -> dict[str, Any]:
    """Send a draft marked `releasing`, then mark it released."""
    try:
        files = [FileRef.model_validate(f) for f in json.loads(record.attachments)]
        sent = await runtime.send_once(
            Lane(record.lane),
            MessageType(record.type),
            record.language,
            record.text,
            draft_key(record.id),
            attachments=files_named(runtime, files),
        )
    except (ProtocolError, KeyReused) as exc:
        now, why = time.time_ns(), f"the station refused it: {exc}"
        await console.store(
            lambda s: s.decide_draft(record.id, "releasing", "rejected", operator, now, why)
        )
        await console.audit(operator, "release failed", f"draft {record.id}: {exc}")
        record.state, record.decided_by, record.decided_ns, record.reason = (
            "rejected",
            operator,
            now,
            why,
        )
        tell_author(console, record)
        raise HTTPException(422, str(exc)) from None
    seq = sent.envelope.seq
    await console.store(lambda s: s.draft_sent(record.id, seq))
    record.state, record.seq = "released", seq
    where = f"{record.link} {Lane(record.lane).name} {seq}"
    await console.audit(operator, action, f"draft {record.id} as {where}")
    console.station.hub.publish({"type": "drafts"})
    return draft_json(record)


def tell_author(console: Console, record: Draft) -> None:
    """Every console reloads its drafts, and the author's is told what became of theirs: who
    rejected it and why (the console's event stream passes this to the author's sessions only)."""
    console.station.hub.publish({"type": "drafts"})
    console.station.hub.publish(
        {"type": "draft_decided", "id": record.id, "author": record.drafted_by,
         "state": record.state, "by": record.decided_by, "reason": record.reason}
    )  # fmt: skip


def draft_json(d: Draft) -> dict[str, Any]:
    return {
        "id": d.id,
        "link": d.link,
        "lane": Lane(d.lane).name,
        "type": MessageType(d.type).name.lower(),
        "language": d.language,
        "text": d.text,
        "drafted_by": d.drafted_by,
        "drafted_ns": d.drafted_ns,
        "state": d.state,
        "decided_by": d.decided_by,
        "decided_ns": d.decided_ns,
        "seq": d.seq,
        "attachments": json.loads(d.attachments),
        "reason": d.reason,
    }


async def reconcile_drafts(station: Station) -> None:
    assert station.store is not None
    pending = await station.store.call(lambda s: s.drafts(("releasing",)))
    for record in pending:
        runtime = station.links.get(record.link)
        if runtime is not None:
            await station.store.call(functools.partial(_reconcile, record=record, runtime=runtime))


def draft_key(draft_id: int) -> str:
    """The send key of a draft's release: one message per draft, however often it is tried."""
    return f"draft:{draft_id}"


def _reconcile(store: SqlStore, record: Draft, runtime: LinkRuntime) -> None:
    key = draft_key(record.id)
    made = store.keyed_sends(runtime.link.config.link_id, [key]).get(key)
    if made is not None:
        store.draft_sent(record.id, made.seq)
        log.warning("draft %s: found sent as %s after a stop", record.id, made.seq)
        return
    store.decide_draft(record.id, "releasing", "draft", None, None)
    log.warning("draft %s: its release did not finish before a stop; it waits again", record.id)
