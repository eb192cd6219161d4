"""What the simulator watches of the calls, and what it checks at the end of a run that had some:

- playout: no frame was played twice or out of order, and each was the frame it claims to be;
- records: each station wrote exactly one call record for every call it noted (placed, or rang
  for), into its chain (so invariants 1 to 5 cover them), and the two stations' records of one
  call agree on its id, precedence, caller, whether it was answered and by whom;
- ends: every call ended at both stations within a bound after the traffic stopped, and a call
  whose station crashed while it was answered ended at the peer within a bound of the crash.

Answered or not may differ in one case only, and the check says which: the callee answered, but
the answer never reached the caller (lost with its session, or the caller died first). The caller
then never had the callee's key share, so it sent no media, and the callee received none.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hotline.protocol.callrecord import CallRecord, decode_record
from hotline.protocol.envelope import MessageType, decode_envelope
from hotline.sim.media import opus_seq
from hotline.sim.world import SECOND
from hotline.station.jitter import Playout

if TYPE_CHECKING:
    from hotline.sim.node import Node

__all__ = ["CUT_SHORT_BOUND_NS", "CallOracle", "check_calls", "records_of"]

# A crash mid-call: the peer hears no keepalive, and ends the call "peer lost" after the dead time
# (3 s), at its next tick (250 ms), the last keepalive having been at most a network delay late.
CUT_SHORT_BOUND_NS = 4 * SECOND


@dataclass
class CallOracle:
    placed: int = 0
    missed: int = 0
    refused: int = 0  # call frames a desk refused: here, frames of a call a crash forgot
    noted: dict[str, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    # (station, call id): (kind, seq, the frame the packet stands for) for each frame played
    played: dict[tuple[str, bytes], list[tuple[str, int, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    cut_short: list[tuple[str, bytes, int]] = field(default_factory=list)  # crashed mid-call

    def play(self, station: str, call_id: bytes, playout: Playout) -> None:
        if playout.opus is not None:  # concealment plays no frame
            frame = opus_seq(playout.opus)
            self.played[station, call_id].append((playout.kind, playout.seq, frame))


def records_of(node: Node) -> dict[bytes, list[CallRecord]]:
    """The call records in a station's own chain, by call id."""
    assert node.store is not None
    rows = node.store._rows(
        "SELECT envelope FROM outbox WHERE link_id = ? AND type = ? ORDER BY lane, seq",
        (node.config.link_id, int(MessageType.CALL_RECORD)),
    )
    records: dict[bytes, list[CallRecord]] = defaultdict(list)
    for (data,) in rows:
        record = decode_record(decode_envelope(bytes(data), None).body.text)
        records[bytes.fromhex(record.call_id)].append(record)
    return records


def check_calls(oracle: CallOracle, a: Node, b: Node, ended_by_ns: int) -> list[str]:
    problems = _playout(oracle)
    records = {node.name: records_of(node) for node in (a, b)}
    for node in (a, b):
        problems += _one_record_each(oracle, node.name, records[node.name])
        problems += [
            f"calls: {node.name}'s call {call_id.hex()[:8]} ended too late"
            for call_id, recs in records[node.name].items()
            if any(r.ended_ns > ended_by_ns for r in recs)
        ]
    ra, rb = records[a.name], records[b.name]
    for call_id in sorted(ra.keys() & rb.keys()):
        problems += [
            f"calls: the records of call {call_id.hex()[:8]} disagree: {why}"
            for x, y in itertools.product(ra[call_id], rb[call_id])
            if (why := _disagreement(x, y))
        ]
    for station, call_id, crashed_ns in oracle.cut_short:
        peer = records[b.name if station == a.name else a.name].get(call_id, [])
        if any(r.answered_ns and r.ended_ns > crashed_ns + CUT_SHORT_BOUND_NS for r in peer):
            problems.append(
                f"calls: {station} crashed during call {call_id.hex()[:8]}, and the peer's call "
                "went on"
            )
    return problems


def _playout(oracle: CallOracle) -> list[str]:
    problems = []
    for (station, call_id), plays in oracle.played.items():
        wrong = [(kind, seq, got) for kind, seq, got in plays if got != seq + (kind == "fec")]
        seqs = [seq for _, seq, _ in plays]
        if wrong:
            problems.append(
                f"calls: {station} played a frame as another in call {call_id.hex()[:8]}: "
                f"{wrong[0][0]} {wrong[0][1]} from the packet of frame {wrong[0][2]}"
            )
        if any(later <= earlier for earlier, later in itertools.pairwise(seqs)):
            problems.append(
                f"calls: {station} played a frame twice or out of order in call {call_id.hex()[:8]}"
            )
    return problems


def _one_record_each(
    oracle: CallOracle, station: str, records: dict[bytes, list[CallRecord]]
) -> list[str]:
    """One record for every call the station noted; never two for one call."""
    problems = [
        f"calls: {station} wrote no record of call {call_id.hex()[:8]}"
        for call_id in sorted(oracle.noted[station] - records.keys())
    ]
    problems += [
        f"calls: {station} wrote {len(recs)} records of call {call_id.hex()[:8]}"
        for call_id, recs in sorted(records.items())
        if len(recs) > 1
    ]
    return problems


def _disagreement(x: CallRecord, y: CallRecord) -> str | None:
    if {x.direction, y.direction} != {"outgoing", "incoming"}:
        return f"directions {x.direction} and {y.direction}"
    if x.precedence != y.precedence:
        return f"precedence {x.precedence} and {y.precedence}"
    if x.caller != y.caller:
        return "the caller"
    if (x.answerer is None) != (y.answerer is None):
        caller, callee = (x, y) if x.direction == "outgoing" else (y, x)
        if caller.answerer is not None or callee.media.frames_received:
            return "answered at one side only, and not an answer the caller never heard"
    elif x.answerer != y.answerer:
        return "the answerer"
    return None
