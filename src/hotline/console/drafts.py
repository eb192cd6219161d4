"""Sending a released draft exactly once.

A release first marks the draft `releasing` (its own transaction), then sends the message (the
link's transaction), then marks it `released` with its sequence number. A stop between the two
leaves `releasing`; at the next start `reconcile_drafts` looks in the outbox: the message is
there (sent after the release began, same lane, type, language and text), so the draft is
released; or it is not, so the draft waits again. Never sent twice, never lost."""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from hotline.errors import ProtocolError
from hotline.protocol.envelope import Lane, MessageType, decode_envelope
from hotline.station.api import FileRef, files_named
from hotline.store.base import SqlStore
from hotline.store.people import Draft

if TYPE_CHECKING:
    from hotline.console.security import Console
    from hotline.station.link_runtime import LinkRuntime
    from hotline.station.runtime import Station

__all__ = ["draft_json", "reconcile_drafts", "send_draft"]

log = logging.getLogger("hotline.console")


async def send_draft(
    console: Console, runtime: LinkRuntime, record: Draft, operator: str, action: str
) -> dict[str, Any]:
    """Send a draft marked `releasing`, then mark it released."""
    try:
        files = [FileRef.model_validate(f) for f in json.loads(record.attachments)]
        envelope = await runtime.send(
            Lane(record.lane),
            MessageType(record.type),
            record.language,
            record.text,
            attachments=files_named(runtime, files),
        )
    except ProtocolError as exc:
        await console.store(
            lambda s: s.decide_draft(record.id, "releasing", "rejected", operator, time.time_ns())
        )
        await console.audit(operator, "release failed", f"draft {record.id}: {exc}")
        raise HTTPException(422, str(exc)) from None
    await console.store(lambda s: s.draft_sent(record.id, envelope.seq))
    record.state, record.seq = "released", envelope.seq
    where = f"{record.link} {Lane(record.lane).name} {envelope.seq}"
    await console.audit(operator, action, f"draft {record.id} as {where}")
    console.station.hub.publish({"type": "drafts"})
    return draft_json(record)


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
    }


async def reconcile_drafts(station: Station) -> None:
    assert station.store is not None
    pending = await station.store.call(lambda s: s.drafts(("releasing",)))
    for record in pending:
        runtime = station.links.get(record.link)
        if runtime is not None:
            await station.store.call(functools.partial(_reconcile, record=record, runtime=runtime))


def _reconcile(store: SqlStore, record: Draft, runtime: LinkRuntime) -> None:
    """Oldest draft first, and a message another draft was sent as is not claimed twice: two
    drafts of the same text left `releasing` find a message each, or wait again."""
    link_id, since = runtime.link.config.link_id, record.decided_ns or record.drafted_ns
    claimed = store.claimed_seqs(record.link, record.lane)
    for seq, data in store.sent_since(link_id, record.lane, since):
        if seq in claimed:
            continue
        body = decode_envelope(bytes(data), None).body
        if (body.type, body.language, body.text) == (record.type, record.language, record.text):
            store.draft_sent(record.id, seq)
            log.warning("draft %s: found sent as %s after a stop", record.id, seq)
            return
    store.decide_draft(record.id, "releasing", "draft", None, None)
    log.warning("draft %s: its release did not finish before a stop; it waits again", record.id)
