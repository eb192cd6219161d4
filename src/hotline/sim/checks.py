"""What the simulator watches, and the invariants it checks at the end of a run (DESIGN.md):

1. No loss: every message a station accepted (committed) is in the peer's store.
2. No duplicates: no person was shown a message twice.
3. Order: within a lane, messages were shown in the sender's order.
4. Integrity: everything in both stores verifies (signatures, chains, receipt, checkpoints).
5. Agreement: both stations hold the same chain heads, each holds the other's receipt for them,
   and each holds the other's checkpoint of exactly those heads.
6. Sent once: every send a client named by a key made exactly one message, however often it was
   tried, and every try that was answered was answered with that message.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hotline.errors import HotlineError
from hotline.protocol.envelope import LANES, Envelope, decode_envelope
from hotline.protocol.state import Event, MessageReceived

if TYPE_CHECKING:
    from hotline.sim.node import Node
    from hotline.store.base import SqlStore

__all__ = ["Oracle", "check_invariants"]


@dataclass
class Oracle:
    accepted: dict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    shown: dict[str, dict[int, list[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    # Per station, what clients asked it to send, by key (the text), and the answers they heard.
    asked: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    answered: dict[str, dict[str, Envelope]] = field(default_factory=lambda: defaultdict(dict))

    def unanswered(self) -> list[str]:
        return [
            k for name, keys in self.asked.items() for k in keys if k not in self.answered[name]
        ]

    def accept(self, node: Node, envelope: Envelope) -> None:
        self.accepted[node.name].append(envelope)

    def on_event(self, station: str, event: Event) -> None:
        if isinstance(event, MessageReceived):
            self.shown[station][event.envelope.body.lane].append(event.envelope.seq)


def check_invariants(oracle: Oracle, a: Node, b: Node) -> list[str]:
    problems: list[str] = []
    for sender, receiver in ((a, b), (b, a)):
        problems += _no_loss(oracle, sender, receiver)
        problems += _shown_once_in_order(oracle, receiver)
    for node in (a, b):
        problems += _integrity(node)
        problems += _sent_once(oracle, node)
    problems += _agreement(a, b)
    return problems


def _sent_once(oracle: Oracle, node: Node) -> list[str]:
    """Each key's text is in the outbox exactly once, as the message its answer named."""
    made: dict[str, list[bytes]] = defaultdict(list)
    by_text = {text: key for key, text in oracle.asked[node.name].items()}
    for (data,) in _store(node)._rows(
        "SELECT envelope FROM outbox WHERE link_id = ?", (node.config.link_id,)
    ):
        envelope = decode_envelope(bytes(data), None)
        if envelope.body.text in by_text:
            made[by_text[envelope.body.text]].append(envelope.hash)
    problems = []
    for key in oracle.asked[node.name]:
        if len(made[key]) != 1:
            problems.append(f"{node.name}: the send named {key} made {len(made[key])} messages")
        answer = oracle.answered[node.name].get(key)
        if answer is None:
            problems.append(f"{node.name}: the send named {key} was never answered")
        elif made[key] and answer.hash != made[key][0]:
            problems.append(f"{node.name}: the send named {key} was answered with another message")
    return problems


def _no_loss(oracle: Oracle, sender: Node, receiver: Node) -> list[str]:
    held = {
        (lane, seq): bytes(h)
        for lane, seq, h in _store(receiver)._rows(
            "SELECT lane, seq, hash FROM inbox WHERE link_id = ?", (receiver.config.link_id,)
        )
    }
    lost = [e for e in oracle.accepted[sender.name] if held.get((e.body.lane, e.seq)) != e.hash]
    if not lost:
        return []
    first = lost[0]
    return [
        f"invariant 1 (no loss): {len(lost)} message(s) accepted by {sender.name} missing at "
        f"{receiver.name}, first {LANES[first.body.lane].name} {first.seq}"
    ]


def _shown_once_in_order(oracle: Oracle, receiver: Node) -> list[str]:
    """A message is shown when it is committed; a crash right after the commit can swallow the
    notice (the console shows it from the store), but never show it twice or out of order."""
    problems = []
    for lane, seqs in oracle.shown[receiver.name].items():
        if any(later <= earlier for earlier, later in itertools.pairwise(seqs)):
            problems.append(
                f"invariants 2 and 3: {receiver.name} showed {LANES[lane].name} "
                "twice or out of order"
            )
    stored: dict[int, list[int]] = defaultdict(list)
    for lane, seq in _store(receiver)._rows(
        "SELECT lane, seq FROM inbox WHERE link_id = ? ORDER BY id", (receiver.config.link_id,)
    ):
        stored[lane].append(seq)
    for lane, seqs in stored.items():
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(
                f"invariant 3 (order): {receiver.name} stored {LANES[lane].name} out of order"
            )
    return problems


def _integrity(node: Node) -> list[str]:
    try:
        _store(node).verify(node.config)
    except HotlineError as exc:
        return [f"invariant 4 (integrity): {node.name}: {exc}"]
    return []


def _agreement(a: Node, b: Node) -> list[str]:
    problems = []
    state_a, state_b = _store(a).load(a.config), _store(b).load(b.config)
    if state_a.outbound != state_b.inbound or state_a.inbound != state_b.outbound:
        problems.append("invariant 5 (agreement): the chain heads differ")
    for node, state in ((a, state_a), (b, state_b)):
        if state.receipted != state.outbound:
            problems.append(f"invariant 5 (agreement): {node.name} lacks the receipt for its heads")
        checkpoint = _store(node).peer_checkpoint(node.config)
        if checkpoint is None or (checkpoint.outbound, checkpoint.inbound) != (
            state.inbound,
            state.outbound,
        ):
            problems.append(
                f"invariant 5 (agreement): {node.name} lacks the peer's checkpoint of the heads"
            )
    return problems


def _store(node: Node) -> SqlStore:
    if node.store is None:
        node.start()
    assert node.store is not None
    return node.store
