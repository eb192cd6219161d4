"""Who calls whom in a simulation run, and how the people at each end behave; and the datagram
routes the calls' media take.

In some seeds (drawn from the seed) a few calls are placed during the traffic phase, by either
station, at any precedence. Each call has a plan drawn when it is placed: the callee answers after
a moment, declines, or lets it ring until the ring timeout (a missed call); the caller may give up
ringing; once answered, one side hangs up after a while. People outlive crashes: they act on the
station's desk of the moment, and an act the desk refuses (the call is gone with a crash, or it
ended) is simply not done, as at a console. Each path gets a datagram route of its own with its
own loss, copies, corruption, delays (so reordering) and cuts, and sometimes one route, or all of
them, is blocked outright (UDP dropped by a firewall: the media then go over TCP).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from typing import Literal

from hotline.errors import CallRefused
from hotline.protocol.calls import (
    INVITE_RESEND_AFTER_NS,
    MAX_SENDS,
    RESEND_EVERY_NS,
    Call,
    CallState,
)
from hotline.protocol.envelope import Lane
from hotline.sim.callchecks import CallOracle
from hotline.sim.calls import DEAD_AFTER_NS, desk_maker
from hotline.sim.network import Datagrams, Faults
from hotline.sim.network import Path as NetPath
from hotline.sim.node import Node
from hotline.sim.world import MS, SECOND, World

__all__ = ["CALL_SEEDS", "People", "plan_calls"]

CALL_SEEDS = 0.5  # the share of seeds with calls
MAX_TALK_NS = 15 * SECOND
MAX_ANSWER_NS = 4 * SECOND
PEOPLE = {
    "london": [("Duty officer", "principal"), ("Interpreter (ru)", "interpreter")],
    "moscow": [("Дежурный офицер", "principal"), ("Переводчик (en)", "interpreter")],
}
LANE_WEIGHTS = {Lane.FLASH: 1, Lane.IMMEDIATE: 1, Lane.PRIORITY: 2, Lane.ROUTINE: 4}


Reply = Literal["answer", "decline", "ignore"]
REPLIES: dict[Reply, int] = {"answer": 7, "decline": 1, "ignore": 2}  # their weights


@dataclass(frozen=True, slots=True)
class _Plan:
    reply: Reply
    reply_after_ns: int
    give_up_ns: int | None  # the caller hangs up while it rings (None: waits for the timer)
    talk_ns: int
    hangs_up: Literal["caller", "callee"]


@dataclass
class People:
    world: World
    nodes: dict[str, Node]
    routes: list[Datagrams]
    ring_timeout_ns: int
    frame_ms: int
    until_ns: int  # no call is placed after the traffic stops
    oracle: CallOracle = field(default_factory=CallOracle)
    plans: dict[bytes, _Plan] = field(default_factory=dict)

    @property
    def end_bound_ns(self) -> int:
        """Every call ends by this long after the traffic stops (when the last was placed). Its
        invite may go again for a few seconds; then it rings out, or is answered, heard by the
        caller within the callee's dead time, and talked over; one side's end may be lost, and
        the other's dead time ends it there (docs/calls.md section 3's timers)."""
        inviting = INVITE_RESEND_AFTER_NS + (MAX_SENDS - 2) * RESEND_EVERY_NS
        answered = MAX_ANSWER_NS + DEAD_AFTER_NS + MAX_TALK_NS
        return inviting + max(self.ring_timeout_ns, answered) + DEAD_AFTER_NS + 2 * SECOND

    def peer_of(self, name: str) -> str:
        return next(other for other in self.nodes if other != name)

    # -- acts --------------------------------------------------------------------------------------

    def place(self, node: Node, tries: int) -> None:
        world, rng = self.world, self.world.rng
        if world.now >= self.until_ns:
            return
        person, role = rng.choice(PEOPLE[node.name])
        lane = rng.choices(list(LANE_WEIGHTS), weights=list(LANE_WEIGHTS.values()))[0]
        try:
            if node.calls is None:
                raise CallRefused("the station is down")
            call_id = node.calls.place(lane, person, role)
        except CallRefused:  # down, the link not up, or a call on it already: try again soon
            if tries > 1:
                world.after(rng.randint(1, 3) * SECOND, lambda: self.place(node, tries - 1))
            return
        self.oracle.placed += 1
        plan = _Plan(
            rng.choices(list(REPLIES), weights=list(REPLIES.values()))[0],
            rng.randint(200 * MS, MAX_ANSWER_NS),
            rng.randint(2, 30) * SECOND if rng.random() < 0.2 else None,
            rng.randint(1 * SECOND, MAX_TALK_NS),
            rng.choice(["caller", "callee"]),
        )
        self.plans[call_id] = plan
        if plan.give_up_ns is not None:
            world.after(plan.give_up_ns, functools.partial(self._give_up, node, call_id))

    def ringing(self, node: Node, call: Call) -> None:
        plan = self.plans.get(call.call_id)
        if plan is None or plan.reply == "ignore":
            return
        person, role = self.world.rng.choice(PEOPLE[node.name])

        def reply() -> None:
            try:
                if node.calls is not None and plan.reply == "answer":
                    node.calls.answer(call.call_id, person, role)
                elif node.calls is not None:
                    node.calls.decline(call.call_id, "not now")
            except CallRefused:
                pass  # it stopped ringing, or the station died meanwhile

        self.world.after(plan.reply_after_ns, reply)

    def answered(self, node: Node, call: Call) -> None:
        plan = self.plans.get(call.call_id)
        if plan is not None and (plan.hangs_up == "caller") == call.outgoing:
            self.world.after(plan.talk_ns, functools.partial(self._hang_up, node, call.call_id))

    def _give_up(self, node: Node, call_id: bytes) -> None:
        call = node.calls.table.get(call_id) if node.calls is not None else None
        if node.calls is not None and call is not None and call.state in RINGING:
            node.calls.end(call_id, "gave up")

    def _hang_up(self, node: Node, call_id: bytes) -> None:
        call = node.calls.table.get(call_id) if node.calls is not None else None
        if node.calls is not None and call is not None and call.live:
            node.calls.end(call_id, "hung up")


RINGING = (CallState.OUTGOING, CallState.RINGING_OUT)


def plan_calls(
    world: World,
    plan: random.Random,
    nodes: tuple[Node, Node],
    paths: list[NetPath],
    start_ns: int,
    until_ns: int,
) -> People | None:
    """Calls for this seed, or None: give the nodes their desks, lay the datagram routes and
    schedule the calls. `plan` is drawn from the seed apart from the world's source, so a seed
    without calls runs exactly as before calls existed."""
    if plan.random() >= CALL_SEEDS:
        return None
    names = (nodes[0].name, nodes[1].name)
    routes = [Datagrams(world, path, _route_faults(plan), names) for path in paths]
    people = People(
        world,
        {node.name: node for node in nodes},
        routes,
        plan.choice([10, 20, 45]) * SECOND,
        plan.choice([10, 20]),
        until_ns,
    )
    for node in nodes:
        node.make_calls = desk_maker(people)
        for route in routes:
            route.receivers[node.name] = functools.partial(_datagram, node)
    blocked = plan.random()
    for route in routes:
        if blocked < 0.1 or plan.random() < 0.1:  # UDP blocked: on every route, or this one
            route.cut_until_ns = until_ns + 3600 * SECOND
        for _ in range(plan.randint(0, 2)):
            at = plan.randint(start_ns, until_ns)
            world.at(at, functools.partial(_cut, route, at + plan.randint(1, 10) * SECOND))
    for _ in range(plan.randint(1, 5)):
        caller = plan.choice(nodes)
        world.at(plan.randint(start_ns, until_ns), functools.partial(people.place, caller, 3))
    return people


def _route_faults(plan: random.Random) -> Faults:
    return Faults(
        loss=plan.choice([0.0, 0.02, 0.1, 0.3]),
        duplicate=plan.choice([0.0, 0.02, 0.1]),
        corrupt=plan.choice([0.0, 0.002, 0.02]),
        min_delay_ns=1 * MS,
        max_delay_ns=plan.choice([5, 40, 150]) * MS,
    )


def _cut(route: Datagrams, until_ns: int) -> None:
    route.cut_until_ns = max(route.cut_until_ns, until_ns)


def _datagram(node: Node, _index: int, data: bytes) -> None:
    if node.up and node.calls is not None:
        node.calls.on_datagram(data)
