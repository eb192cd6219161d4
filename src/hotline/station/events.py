"""Events for people: each link event becomes a small JSON object, fanned out to every listener
of the service API's event stream (the console, `hotline` commands)."""

from __future__ import annotations

import asyncio
from typing import Any

from hotline.protocol.clock import clock_fault
from hotline.protocol.envelope import Envelope, Lane, MessageType
from hotline.protocol.state import (
    Acknowledged,
    CheckpointReceived,
    ClockFault,
    Event,
    MessageReceived,
    ProtocolViolation,
    Receipted,
    RttMeasured,
    SessionClosed,
    SessionReady,
)

__all__ = ["EventHub", "arrival_json", "describe", "envelope_json"]

QUEUE_LIMIT = 10_000  # a listener that falls this far behind is dropped, not buffered for


class EventHub:
    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        # Set when a FLASH arrives, for the alarm review: one flag, not a queue of every event
        # (at thousands of messages a second, waking a task per event costs more than the rest).
        self.flash_arrived = asyncio.Event()

    def listen(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._listeners.add(queue)
        return queue

    def listening(self, queue: asyncio.Queue[dict[str, Any]]) -> bool:
        """False once the queue fell too far behind and was dropped: its reader should end."""
        return queue in self._listeners

    def forget(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._listeners.discard(queue)

    def publish(self, event: dict[str, Any]) -> None:
        if event["type"] == "message" and event.get("lane") == "FLASH":
            self.flash_arrived.set()
        for queue in list(self._listeners):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._listeners.discard(queue)


def envelope_json(envelope: Envelope) -> dict[str, Any]:
    body = envelope.body
    return {
        "lane": Lane(body.lane).name,
        "seq": body.seq,
        "type": MessageType(body.type).name.lower(),
        "language": body.language,
        "text": body.text,
        "sent_ns": body.sent_ns,
        "hash": envelope.hash.hex(),
        "acknowledges": (
            {"lane": Lane(body.ref.lane).name, "seq": body.ref.seq} if body.ref else None
        ),
        "attachments": [
            {"name": a.name, "media_type": a.media_type, "size": a.size, "sha256": a.sha256.hex()}
            for a in body.attachments
        ],
    }


def arrival_json(envelope: Envelope, received_ns: int, bound_ns: int) -> dict[str, Any]:
    """When a peer's envelope arrived, by our clock (what lists go by), and whether its own
    date is a clock fault (hotline.protocol.clock): its `sent_ns` is then not to be believed."""
    return {
        "received_ns": received_ns,
        "clock_fault": clock_fault(envelope.body.sent_ns, received_ns, bound_ns),
    }


def describe(link: str, event: Event) -> dict[str, Any]:  # noqa: PLR0911 - one case per event
    match event:
        case MessageReceived(envelope=envelope):
            # The envelope's own "type" (principal, test...) must not hide the event's.
            return {**envelope_json(envelope), "type": "message", "link": link,
                    "message_type": MessageType(envelope.body.type).name.lower()}  # fmt: skip
        case ClockFault(envelope=envelope, skew_ns=skew):
            lane_name, seq, sent = envelope.lane.name, envelope.seq, envelope.body.sent_ns
            return {"type": "clock_fault", "link": link, "lane": lane_name, "seq": seq,
                    "sent_ns": sent, "skew_ns": skew}  # fmt: skip
        case Receipted(lane=lane, seq=seq):
            return {"type": "receipted", "link": link, "lane": lane.name, "seq": seq}
        case Acknowledged(lane=lane, seq=seq):
            return {"type": "acknowledged", "link": link, "lane": lane.name, "seq": seq}
        case CheckpointReceived(agreed=agreed):
            return {"type": "checkpoint", "link": link, "agreed": agreed}
        case SessionReady(sid=sid):
            return {"type": "session_ready", "link": link, "session": sid}
        case SessionClosed(sid=sid, reason=reason):
            return {"type": "session_closed", "link": link, "session": sid, "reason": reason}
        case RttMeasured(sid=sid, rtt_ns=rtt):
            return {"type": "rtt", "link": link, "session": sid, "rtt_ms": rtt / 1e6}
        case ProtocolViolation(sid=sid, reason=reason):
            return {"type": "violation", "link": link, "session": sid, "reason": reason}
    return {"type": "unknown", "link": link}
