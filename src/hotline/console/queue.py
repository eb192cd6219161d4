"""The translators' queue (issue 15, item 15): the peer's messages that still need a person's
work at the translation desk (a translation, a review or a certification: standing.py), most
urgent first (FLASH before ROUTINE), and within a precedence the oldest first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from hotline.console.security import ConsoleDep, Viewer
from hotline.console.standing import NEEDS, QUEUED_TYPES, Standing, standings
from hotline.protocol.envelope import Lane, MessageType, decode_envelope

__all__ = ["router"]

router = APIRouter(prefix="/console")
SHOWN = 200  # the queue's longest list; its count is always whole
SHORT = 160  # characters of each message's text shown in the list


@router.get("/queue")
async def queue(_: Viewer, console: ConsoleDep) -> dict[str, Any]:
    """What needs a translation, a review or a certification, on every link: FLASH first, then
    by precedence, and the oldest first within one; the first SHOWN of them, and the counts."""
    waiting: list[tuple[int, int, str, int, int, Standing, bytes]] = []
    for runtime in console.station.links.values():
        link = runtime.link
        link_id, peer = link.config.link_id, link.config.peer_direction
        notes = await console.store(lambda s: list(s.annotation_refs(link_id)))  # noqa: B023
        at = standings(notes, peer)
        received = await console.store(
            lambda s: list(s.inbound_of_types(link_id, QUEUED_TYPES))  # noqa: B023
        )
        for lane, seq, kind, received_ns, data in received:
            standing = at.get((lane, seq), Standing())
            if standing.needs is not None:
                waiting.append((lane, received_ns, link.name, seq, kind, standing, data))
    waiting.sort(key=lambda w: (w[0], w[1]))
    counts = {n: sum(1 for w in waiting if w[5].needs == n) for n in NEEDS}
    items = []
    for lane, received_ns, name, seq, kind, standing, data in waiting[:SHOWN]:
        body = decode_envelope(data, None).body
        items.append({
            "link": name, "lane": Lane(lane).name, "seq": seq,
            "type": MessageType(kind).name.lower(), "language": body.language,
            "sent_ns": body.sent_ns, "received_ns": received_ns, "text": body.text[:SHORT],
            "needs": standing.needs, "translations": len(standing.standing),
        })  # fmt: skip
    return {"items": items, "total": len(waiting), "counts": counts}
