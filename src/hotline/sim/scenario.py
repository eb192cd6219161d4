"""One simulation run: two stations, random traffic, random faults, then the invariants.

Everything is drawn from the seed: the keys, the fault profile, the traffic, every loss and every
crash. A run has two phases. While traffic flows, the network misbehaves and the stations crash.
Then traffic stops, the network heals, and the run waits for the link to settle: every accepted
message delivered and receipted, and both stations holding checkpoints that agree. Then the
invariants of DESIGN.md (1 to 5) are checked against both stores.

In some seeds the stations also call each other (`sim/callplan.py`): then the link has settled
only once every call has ended and every call record is in both chains, and the calls' own checks
(`sim/callchecks.py`) run beside the invariants.
"""

from __future__ import annotations

import functools
import itertools
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hotline.crypto.identity import StationIdentity
from hotline.crypto.noise.functions import DH_FUNCTIONS
from hotline.crypto.session import LinkKeys, link_id_for
from hotline.protocol.envelope import Envelope, Lane, MessageType
from hotline.protocol.state import Event, LinkConfig, MessageReceived
from hotline.sim.callchecks import check_calls
from hotline.sim.callplan import People, plan_calls
from hotline.sim.checks import Oracle, check_invariants
from hotline.sim.network import Faults
from hotline.sim.network import Path as NetPath
from hotline.sim.node import Chaos, Node
from hotline.sim.world import MS, SECOND, World
from hotline.store.base import SqlStore
from hotline.store.sqlite import SqliteStore

__all__ = ["RunResult", "run_seed"]

SETTLE_DEADLINE_NS = 300 * SECOND
TEXTS = {
    "en": ["Link test.", "Request status of the exercise.", "Acknowledge receipt of the map."],
    "ru": ["Проверка связи.", "Прошу подтвердить получение.", "Сообщение принято, ждём ответа."],
}
LANE_WEIGHTS = {Lane.FLASH: 1, Lane.IMMEDIATE: 2, Lane.PRIORITY: 3, Lane.ROUTINE: 6}
TYPES = [MessageType.PRINCIPAL, MessageType.SERVICE, MessageType.TEST, MessageType.EXERCISE]

# A client hears no answer to one send in twenty even when the station made it (a dropped
# connection), and tries again every half second while there is none, for up to 5 minutes.
LOST_ANSWER = 0.05
RETRY_NS = 500 * MS
MAX_TRIES = 600
CALLS_SALT = 0xCA11  # the call plan's own source: a seed without calls runs as it always did
StoreFactory = Callable[[str], Callable[[], SqlStore]]


@dataclass(slots=True)
class RunResult:
    seed: int
    passed: bool
    problems: list[str] = field(default_factory=list)
    messages: int = 0
    crashes: int = 0
    virtual_s: float = 0.0
    calls: int = 0  # placed
    frames_played: int = 0  # call media frames played, at both stations


def sqlite_stores(directory: Path) -> StoreFactory:
    return lambda name: lambda: SqliteStore(directory / f"{name}.db")


def run_seed(seed: int, stores: StoreFactory | None = None) -> RunResult:
    """Run one seed; SQLite files in a temporary directory unless `stores` is given."""
    if stores is not None:
        return _run(seed, stores)
    shm = Path("/dev/shm")  # noqa: S108 - tmpfs, so fsync costs nothing; a private subdirectory
    base = str(shm) if shm.is_dir() else None
    with tempfile.TemporaryDirectory(prefix=f"hotline-sim-{seed}-", dir=base) as directory:
        return _run(seed, sqlite_stores(Path(directory)))


def _run(seed: int, stores: StoreFactory) -> RunResult:
    """Any exception is a failure of the seed, reported with it, not a crash of the simulator."""
    try:
        return _run_checked(seed, stores)
    except Exception as exc:
        return RunResult(seed, False, [f"the run raised {type(exc).__name__}: {exc}"])


def _run_checked(seed: int, stores: StoreFactory) -> RunResult:
    world = World(seed)
    rng = world.rng
    faults = Faults(
        loss=rng.choice([0.0, 0.005, 0.02, 0.05]),
        duplicate=rng.choice([0.0, 0.005, 0.02]),
        corrupt=rng.choice([0.0, 0.002, 0.01]),
        min_delay_ns=1 * MS,
        max_delay_ns=rng.choice([5, 20, 80]) * MS,
    )
    paths = [NetPath(0, faults), NetPath(1, faults)]
    oracle = Oracle()
    london, moscow = _make_nodes(world, paths, stores, oracle)
    traffic_ns = rng.randint(15, 45) * SECOND
    end_of_traffic = world.now + traffic_ns
    plan = random.Random(seed ^ CALLS_SALT)  # noqa: S311 - reproducible on purpose
    people = plan_calls(world, plan, (london, moscow), paths, world.now, end_of_traffic)
    for node in (london, moscow):
        node.start()
        _schedule_traffic(world, node, end_of_traffic, rng.uniform(0.2, 2.0), oracle)
        for _ in range(rng.randint(0, 3)):
            at = world.now + rng.randint(0, traffic_ns)
            world.at(at, functools.partial(node.crash, rng.randint(100 * MS, 8 * SECOND)))
    for _ in range(rng.randint(0, 3)):
        path = rng.choice(paths)
        start = world.now + rng.randint(0, traffic_ns)
        world.at(start, functools.partial(_cut, path, start + rng.randint(1, 15) * SECOND))
    world.run_until(end_of_traffic)
    _calm(world, faults, (london, moscow))
    settled = world.run_until(
        world.now + SETTLE_DEADLINE_NS, lambda: _settled(london, moscow, people, oracle)
    )
    problems = (
        []
        if settled
        else ["the link did not settle after traffic stopped: " + _why(london, moscow)]
    )
    problems += check_invariants(oracle, london, moscow)
    if people is not None:
        ended_by = end_of_traffic + people.end_bound_ns
        problems += check_calls(people.oracle, london, moscow, ended_by)
    for node in (london, moscow):
        if node.store is not None:
            node.store.close()
    return RunResult(
        seed,
        not problems,
        problems,
        sum(len(v) for v in oracle.accepted.values()),
        london.crashes + moscow.crashes,
        (world.now - end_of_traffic + traffic_ns) / SECOND,
        people.oracle.placed if people is not None else 0,
        sum(map(len, people.oracle.played.values())) if people is not None else 0,
    )


def _make_nodes(
    world: World, paths: list[NetPath], stores: StoreFactory, oracle: Oracle
) -> tuple[Node, Node]:
    london_id = StationIdentity.from_random(world.random_bytes(96))
    moscow_id = StationIdentity.from_random(world.random_bytes(96))
    link_id = link_id_for(london_id.public, moscow_id.public)
    psk = world.random_bytes(32)
    chaos = Chaos(
        crash_per_output=world.rng.choice([0.0, 0.001, 0.005]),
        store_failure=world.rng.choice([0.0, 0.001, 0.005]),
    )
    nodes = []
    for name, me, peer, dialer in (
        ("london", london_id, moscow_id, True),
        ("moscow", moscow_id, london_id, False),
    ):
        config = LinkConfig(link_id, me, peer.public)
        keys = LinkKeys(
            link_id, me.dh_seed, DH_FUNCTIONS["25519"].keypair(peer.dh_seed).public, psk
        )
        factory = stores(name)
        first = factory()
        first.add_link(config, world.now)
        first.close()
        node = Node(
            world,
            name,
            config,
            keys,
            factory,
            paths,
            dialer,
            chaos=Chaos(chaos.crash_per_output, chaos.store_failure),
        )
        node.on_event = lambda n, e: _on_event(world, oracle, n, e)
        node.on_accepted = oracle.accept
        nodes.append(node)
    nodes[0].peer, nodes[1].peer = nodes[1], nodes[0]
    return nodes[0], nodes[1]


def _schedule_traffic(
    world: World, node: Node, until_ns: int, rate_s: float, oracle: Oracle
) -> None:
    """Messages at random times until `until_ns`, each sent by a client that names it by a key
    and sends it again until it hears an answer (a lost answer, or a station down or dead on the
    way), as `hotline send` does."""
    numbers = itertools.count(1)

    def send() -> None:
        if world.now >= until_ns:
            return
        lane = world.rng.choices(list(LANE_WEIGHTS), weights=list(LANE_WEIGHTS.values()))[0]
        language = world.rng.choice(["en", "ru"])
        key = f"{node.name}-{next(numbers)}"
        text = f"{world.rng.choice(TEXTS[language])} #{world.rng.randrange(10**6)} ({key})"
        kind = world.rng.choice(TYPES)
        oracle.asked[node.name][key] = text
        _send_until_answered(world, node, oracle, key, (lane, kind, language, text), 0)
        world.after(int(world.rng.expovariate(rate_s) * SECOND) + 1, send)

    world.after(int(world.rng.expovariate(rate_s) * SECOND) + 1, send)


def _send_until_answered(
    world: World,
    node: Node,
    oracle: Oracle,
    key: str,
    message: tuple[Lane, MessageType, str, str],
    tries: int,
) -> None:
    envelope = node.send_keyed(key, *message)
    if envelope is not None and world.rng.random() >= LOST_ANSWER:
        oracle.answered[node.name][key] = envelope
    elif tries < MAX_TRIES:  # no answer heard: the same send, under the same key, a bit later
        again = functools.partial(_send_until_answered, world, node, oracle, key, message)
        world.after(RETRY_NS, lambda: again(tries + 1))


def _on_event(world: World, oracle: Oracle, node: Node, event: Event) -> None:
    oracle.on_event(node.name, event)
    if isinstance(event, MessageReceived):
        received = event.envelope
        if received.body.type == MessageType.PRINCIPAL and world.rng.random() < 0.7:
            delay = world.rng.randint(500 * MS, 10 * SECOND)
            world.after(delay, lambda: _acknowledge(world, node, received))


def _acknowledge(world: World, node: Node, received: Envelope) -> None:
    node.act(
        lambda core: core.acknowledge(received, "en", "Acknowledged by duty officer", world.now)
    )


def _cut(path: NetPath, until_ns: int) -> None:
    path.cut_until_ns = max(path.cut_until_ns, until_ns)


def _calm(world: World, faults: Faults, nodes: tuple[Node, Node]) -> None:
    """Traffic has stopped: heal the network, stop the crashes, and bring everyone back up."""
    faults.calm()
    for node in nodes:
        node.chaos.enabled = False
        for path in node.paths:
            path.cut_until_ns = min(path.cut_until_ns, world.now)


def _settled(a: Node, b: Node, people: People | None, oracle: Oracle) -> bool:
    if not (a.up and b.up and a.core and b.core) or oracle.unanswered():
        return False
    if people is not None and not all(n.calls is not None and n.calls.quiet for n in (a, b)):
        return False
    return all(
        x.core.unreceipted == 0 and x.core.out.heads == y.core.inbound and x.core.in_agreement
        for x, y in ((a, b), (b, a))
        if x.core is not None and y.core is not None
    )


def _why(a: Node, b: Node) -> str:
    parts = []
    for node in (a, b):
        if not node.up or node.core is None:
            parts.append(f"{node.name} is down")
            continue
        pending = sum(len(p) for p in node.core.out.pending)
        parts.append(f"{node.name}: {pending} unreceipted, {len(node.conns)} connections")
        if node.calls is not None and not node.calls.quiet:
            live = node.calls.table.live
            parts.append(
                f"{node.name}: call {live.state if live else 'none'} live, "
                f"{node.calls.writing} records due, {len(node.calls.noted)} noted"
            )
    return "; ".join(parts)
