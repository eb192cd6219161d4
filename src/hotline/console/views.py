"""What the console shows, as JSON: the link board and the traffic of a link. Read from the
station's live state and its store; docs/console.md gives the shapes. Traffic is listed by this
station's clock, newest first: the peer's messages as they arrived, ours as we accepted them;
a message's own `sent_ns` is its sender's word, shown, never ordered by (hotline.protocol.clock)."""

from __future__ import annotations

import heapq
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from hotline.console.standing import QUEUED_TYPES, Standing, standings
from hotline.protocol.clock import CLOCK_FAULT_NS
from hotline.protocol.envelope import Envelope, Lane, MessageType, decode_envelope
from hotline.station.events import arrival_json, envelope_json
from hotline.store.backend import Row

if TYPE_CHECKING:
    from hotline.station.datadir import Deadlines
    from hotline.station.link_runtime import LinkRuntime
    from hotline.station.runtime import Station

__all__ = ["acknowledgement", "board", "traffic"]

# The board goes to every console after each change: under a flood of FLASH it names a bounded
# number of alarms, by id, and counts them all exactly (issue 13, item 8). The overlay needs the
# oldest FLASH; the list, the newest of the rest.
FLASH_SHOWN = 20
OTHERS_SHOWN = 40


def board(station: Station) -> dict[str, Any]:
    discipline = station.discipline
    links = []
    for runtime in station.links.values():
        status = runtime.status()
        tests = discipline.tests.get(runtime.link.name)
        for path in status["paths"]:
            history = runtime.paths[path["address"]].rtt_history
            path["rtt_history"] = [[at, ms] for at, ms in history]
        status["last_test"] = tests.last_sent if tests else None
        status["last_peer_test_ns"] = tests.last_received_ns if tests else None
        status["languages"] = list(runtime.link.languages)  # what people write in on it
        links.append(status)
    standing = discipline.alarms.values()
    flashes = [a for a in standing if a.kind == "flash"]
    others = [a for a in standing if a.kind != "flash"]
    by_time = attrgetter("raised_ns")
    shown = heapq.nsmallest(FLASH_SHOWN, flashes, by_time)
    shown += heapq.nlargest(OTHERS_SHOWN, others, by_time)
    return {
        "station": station.card.body.name,
        "exercise": discipline.exercise,
        "links": links,
        "alarms": [alarm.to_json() for alarm in shown],
        "alarm_counts": {
            "flash": len(flashes),
            "flash_loud": sum(1 for a in flashes if a.silenced_by is None),
            "other": len(others),
        },
    }


async def traffic(
    runtime: LinkRuntime,
    deadlines: Deadlines,
    now_ns: int,
    clock_fault_ns: int = CLOCK_FAULT_NS,
    page: tuple[list[Row], list[Row]] | None = None,
) -> dict[str, Any]:
    """The link's traffic: `page`, the outbox's and the inbox's rows to show (a page of each,
    records.py), or else the newest 200 of each."""
    config, name = runtime.link.config, runtime.link.name
    link_id = config.link_id
    if page is None:
        outbox = await runtime.store.call(lambda s: s.outbox(link_id, 200))
        inbox = await runtime.store.call(lambda s: s.inbox(link_id, 200))
    else:
        outbox, inbox = page
    extents = await runtime.store.call(lambda s: s.lane_extents(link_id))
    out = []
    # An acknowledgement is shown on the message it acknowledges (issue 15, item 2): found among
    # the rows listed, or else in the store (the peer's, by their hashes in one pass; ours by
    # the index on what they acknowledge). Ours acknowledge the peer's, and theirs ours.
    ours: dict[tuple[int, int], dict[str, Any]] = {}
    theirs: dict[tuple[int, int], dict[str, Any]] = {}
    for lane, seq, kind, accepted, _receipted, _acked, data in outbox:
        if kind == MessageType.ACKNOWLEDGEMENT:
            ack = decode_envelope(bytes(data), None)
            ours[_refers(ack)] = _ack_json(ack, lane, seq, "accepted_ns", accepted, clock_fault_ns)
    for lane, seq, kind, received, _acked, data in inbox:
        if kind == MessageType.ACKNOWLEDGEMENT:
            ack = decode_envelope(bytes(data), None)
            theirs[_refers(ack)] = _ack_json(
                ack, lane, seq, "received_ns", received, clock_fault_ns
            )
    unlisted = {bytes(ack_hash): (lane, seq) for lane, seq, _t, _a, _r, ack_hash, _d in outbox
                if ack_hash and (lane, seq) not in theirs}  # fmt: skip
    if unlisted:
        rows = await runtime.store.call(lambda s: s.peer_acknowledgements(link_id, [*unlisted]))
        for lane, seq, received, data, ack_hash in rows:
            ack = decode_envelope(bytes(data), None)
            theirs[unlisted[bytes(ack_hash)]] = _ack_json(
                ack, lane, seq, "received_ns", received, clock_fault_ns
            )
    for lane, seq, _type, accepted, receipted, acked, data in outbox:
        envelope = decode_envelope(bytes(data), None)
        message = envelope_json(envelope)
        deadline = deadlines.due_ns(message["lane"], accepted)
        asks = message["type"] in ("principal", "exercise")  # a person there must acknowledge
        waits = asks and not acked
        out.append(
            {
                "direction": "out",
                "link": name,
                **message,
                "accepted_ns": accepted,
                "receipted_ns": receipted,
                "state": "acknowledged" if acked else "receipted" if receipted else "accepted",
                "acknowledged": bool(acked),
                "deadline_ns": deadline if asks else None,
                "overdue": waits and now_ns > deadline,
                "acknowledgement": theirs.get((lane, seq)) if acked else None,
            }
        )
    inn = []
    # Where each received message is at the translation desk: Traffic's markers (queue.py).
    notes = await runtime.store.call(lambda s: list(s.annotation_refs(link_id)))
    desk = standings(notes, config.peer_direction)
    for lane, seq, _type, received, acked, data in inbox:  # newest arrival first
        envelope = decode_envelope(bytes(data), None)
        standing = desk.get((lane, seq), Standing())
        inn.append(
            {
                "direction": "in",
                "link": name,
                **envelope_json(envelope),
                "translations": len(standing.standing),
                "needs": standing.needs if _type in QUEUED_TYPES else None,
                **arrival_json(envelope, received, clock_fault_ns),
                "state": "acknowledged" if acked else "received",
                "acknowledged": bool(acked),
                **_due_here(deadlines, envelope, received, bool(acked), now_ns, clock_fault_ns),
                "acknowledgement": (
                    ours.get((lane, seq))
                    or await acknowledgement(runtime, "in", lane, seq, clock_fault_ns)
                )
                if acked
                else None,
            }
        )
    return {"inbox": inn, "outbox": out, "gaps": _gaps(extents)}


async def acknowledgement(
    runtime: LinkRuntime, direction: str, lane: int, seq: int, clock_fault_ns: int = CLOCK_FAULT_NS
) -> dict[str, Any] | None:
    """The acknowledgement of a message ("in": the peer's, acknowledged by us; "out": ours, by
    the peer), from the store: the envelope that carried it, its text and language, when it was
    sent (by its sender's clock) and accepted or received here (by ours); None if it has none."""
    link_id = runtime.link.config.link_id
    row: Row | None = await runtime.store.call(
        lambda s: s.acknowledgement(link_id, direction, lane, seq)
    )
    if row is None:
        return None
    ack_lane, ack_seq, at, data = row
    when = "accepted_ns" if direction == "in" else "received_ns"
    return _ack_json(
        decode_envelope(bytes(data), None), ack_lane, ack_seq, when, at, clock_fault_ns
    )


def _refers(ack: Envelope) -> tuple[int, int]:
    ref = ack.body.ref
    return (ref.lane, ref.seq) if ref else (-1, -1)


def _ack_json(
    ack: Envelope, lane: int, seq: int, when: str, at: int, clock_fault_ns: int
) -> dict[str, Any]:
    body = ack.body
    shown = {"lane": Lane(lane).name, "seq": seq, "language": body.language, "text": body.text,
             "sent_ns": body.sent_ns, "hash": ack.hash.hex(), when: at}  # fmt: skip
    if when == "received_ns":  # the peer's: its date is its sender's word (clock faults)
        shown.update(arrival_json(ack, at, clock_fault_ns))
    return shown


def _due_here(
    deadlines: Deadlines, envelope: Any, received_ns: int, acked: bool, now_ns: int, bound_ns: int
) -> dict[str, Any]:
    """An incoming principal (or exercise) message's deadline for a person here, as the alarms
    count it (Deadlines.due_in_ns), and whether it has passed unacknowledged."""
    message = envelope_json(envelope)
    if message["type"] not in ("principal", "exercise"):
        return {"deadline_ns": None, "overdue": False}
    due = deadlines.due_in_ns(message["lane"], message["sent_ns"], received_ns, bound_ns)
    return {"deadline_ns": due, "overdue": not acked and now_ns > due}


def _gaps(extents: dict[str, dict[int, tuple[int, int, list[int]]]]) -> dict[str, Any]:
    """Per direction and lane: the first and last sequence number held, and the numbers missing
    between 1 and the last (the store's own count, checked, not assumed)."""
    return {
        direction: {
            Lane(lane).name: {"first": first, "last": last, "missing": missing}
            for lane, (first, last, missing) in sorted(lanes.items())
        }
        for direction, lanes in extents.items()
    }
