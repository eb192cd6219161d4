"""The call record a station writes when a call ends (docs/calls.md §4): built from the call
table's view of the call, the media figures and recordings, and the people who took part. And the
record a restart writes for a call that a stop cut short, from the note kept while it ran."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from hotline.protocol.callrecord import (
    RECORD_VERSION,
    CallRecord,
    MediaFigures,
    Participant,
    Party,
    Recording,
)
from hotline.protocol.calls import Call
from hotline.protocol.envelope import Lane

if TYPE_CHECKING:
    from hotline.station.callmedia import CallMedia
    from hotline.station.participants import Participant as Person

__all__ = ["build_record", "interrupted_record", "note_of"]

NO_MEDIA = MediaFigures(0, 0, 0, 0, 0, 0)
INTERRUPTED = "station stopped during the call"


def build_record(
    call: Call,
    own: str,
    peer: str,
    media: CallMedia | None,
    recordings: list[dict[str, Any]],
    people: list[Person],
) -> CallRecord:
    """The record as it stands; a call not yet ended is recorded as ending now (the note that a
    restart reads)."""
    caller_station = own if call.outgoing else peer
    answerer_station = peer if call.outgoing else own
    ended_ns = call.ended_ns if call.ended_ns is not None else time.time_ns()
    answerer = (
        Party(answerer_station, call.answerer, call.answerer_role or "-")
        if call.answerer is not None and call.answered_ns is not None
        else None
    )
    return CallRecord(
        version=RECORD_VERSION,
        call_id=call.call_id.hex(),
        direction="outgoing" if call.outgoing else "incoming",
        precedence=Lane(call.lane).name,  # type: ignore[arg-type]
        caller=Party(caller_station, call.caller, call.caller_role),
        answerer=answerer,
        invited_ns=call.invited_ns,
        answered_ns=call.answered_ns if answerer is not None else None,
        ended_ns=max(ended_ns, call.answered_ns or call.invited_ns),
        end_reason=(call.end_reason or "ended")[:300],
        media=_figures(media),
        transport=media.transport_used() if media is not None else "none",
        recorded=call.recorded,
        recordings=tuple(
            Recording(f"{call.call_id.hex()}-{r['name']}.opus", r["sha256"], r["size"])
            for r in recordings
        ),
        participants=tuple(
            Participant(
                p.person,
                p.role,
                "local",
                max(p.joined_ns, call.invited_ns),
                min(p.left_ns, ended_ns) if p.left_ns is not None else None,
            )
            for p in people
        ),
    )


def _figures(media: CallMedia | None) -> MediaFigures:
    if media is None:
        return NO_MEDIA
    got = media.received_figures()
    return MediaFigures(
        frames_sent=media.figures.frames_sent,
        frames_received=got["received"],
        lost=got["lost"],
        concealed=got["concealed"],
        late=got["late"],
        recovered_fec=got["recovered_fec"],
    )


def note_of(record: CallRecord) -> str:
    return msgspec.json.encode(record).decode()


def interrupted_record(note: str, recordings: Path) -> CallRecord:
    """The record of a call that was in progress when the station stopped: as last noted (the
    note is refreshed every few seconds, so its end time is when the station was last seen in
    the call), with the reason said plainly, and the recordings as far as they were written (a
    file cut short by a kill still plays up to where it stops)."""
    noted = msgspec.json.decode(note, type=CallRecord)
    found = []
    for direction in ("sent", "received") if noted.recorded else ():
        path = recordings / f"{noted.call_id}-{direction}.opus"
        if path.is_file():
            data = path.read_bytes()
            found.append(Recording(path.name, hashlib.sha256(data).hexdigest(), len(data)))
    return msgspec.structs.replace(noted, end_reason=INTERRUPTED, recordings=tuple(found))
