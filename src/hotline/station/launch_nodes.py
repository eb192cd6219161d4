"""One side on several nodes, as real processes on loopback: for the failover tests and a demo of
it (issue 14; docs/operations.md, "One side on two machines").

`make_side` pairs two stations (launch.make_pair), puts the first on a PostgreSQL store as node
"a", and makes its other nodes ("b", ...) as a second machine would be made: a copy of its data
directory (the sealed keystore, the card, the links), with addresses of its own for the paths,
the API and the console (node "b" on 127.0.0.2, as if on a machine of its own; Moscow is on
127.0.0.100), and the same store. Then as operators do it: each node's `[node] other_nodes`
names the others' paths, the card is made again on node "a" (`hotline card --remake`) and copied
to the other nodes, and Moscow takes it in place of the one it paired with (`hotline pair
--update`). So Moscow knows every node from London's card alone, and dials them all when it is
the side that dials; its link.toml is never edited.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path
from typing import Any, Literal

import httpx
import msgspec

from hotline.station.datadir import DataDir, NodeSection, write_atomically
from hotline.station.launch import READY_TIMEOUT_S, StationProcess, make_pair
from hotline.station.links import update_link

__all__ = ["Timing", "make_side", "node_of", "wait_role"]

# What a second node copies from the first: all it needs to be the same station (the keystore
# opens with the same passphrase), but not the store (shared), the lock or the files it received.
_COPIED = ("keystore.hotline", "card.hotline", "totp-seal.pub", "api.token", "links")


class Timing(msgspec.Struct, frozen=True):
    lease_ms: int = 1500
    renew_ms: int = 300
    poll_ms: int = 200


def make_side(
    root: Path,
    url: str,
    nodes: int = 2,
    dialer: Literal["london", "moscow"] = "moscow",
    timing: Timing = Timing(),  # noqa: B008 - frozen
) -> tuple[list[StationProcess], StationProcess]:
    """London on `nodes` nodes sharing the PostgreSQL store `url`, Moscow on SQLite, paired and
    not started; `dialer` is the side whose station dials (pairs are made until it is)."""
    for attempt in range(64):  # which side dials follows from the keys: half the pairs each
        # Moscow on an address of its own, as London's other nodes (_another_node, below).
        hosts = (["127.0.0.1"] * 3, ["127.0.0.100"] * 3)
        london, moscow = make_pair(root / f"pair-{attempt}", hosts=hosts)
        london_dials = london.data.card().fingerprint < moscow.data.card().fingerprint
        if london_dials == (dialer == "london"):
            break
    else:
        raise RuntimeError("no pair with the wanted dialer in 64 tries")
    _as_node(london.data, url, "a", timing)
    london.name = "London-a"
    side = [london]
    for index in range(1, nodes):
        side.append(_another_node(london, chr(ord("a") + index), root))
    listens = [side_node.data.config().station.listen for side_node in side]
    for index, side_node in enumerate(side):
        config = side_node.data.config()
        others = [listen for i, listen in enumerate(listens) if i != index]
        node = msgspec.structs.replace(config.node, other_nodes=others)
        config = msgspec.structs.replace(config, node=node)
        write_atomically(side_node.data.config_file, config.to_toml().encode(), mode=0o600)
    passphrase = london.passphrase_file.read_bytes().rstrip(b"\n")
    card = london.data.remake_card(london.data.open_keystore(passphrase))
    for side_node in side[1:]:
        write_atomically(side_node.data.card_file, card.armored().encode(), mode=0o600)
    update_link(moscow.data, card)
    return side, moscow


def _as_node(data: DataDir, url: str, name: str, timing: Timing, **changes: Any) -> None:
    config = data.config()
    node = NodeSection(name, timing.lease_ms, timing.renew_ms, timing.poll_ms)
    config = msgspec.structs.replace(
        config, store=msgspec.structs.replace(config.store, url=url), node=node, **changes
    )
    write_atomically(data.config_file, config.to_toml().encode(), mode=0o600)


def _another_node(first: StationProcess, name: str, root: Path) -> StationProcess:
    first.data.api_token()  # made now, so that every node has the same: clients fail over too
    data = DataDir(root / f"london-{name}")
    data.path.mkdir(mode=0o700)
    for entry in _COPIED:
        source = first.data.path / entry
        if source.is_dir():
            shutil.copytree(source, data.path / entry)
        elif source.exists():
            shutil.copy2(source, data.path / entry)
    config = first.data.config()
    # Each node on a loopback address of its own, as on a machine of its own: a standby binds its
    # paths only when it takes over, and ports picked on 127.0.0.1 long before may by then be
    # some client connection's (every outgoing connection here leaves from 127.0.0.1).
    host = f"127.0.0.{ord(name) - ord('a') + 1}"
    ports = _free_ports(host, len(config.station.listen) + 2)
    listen = [f"{host}:{p}" for p in ports[2:]]
    shutil.copy2(first.data.config_file, data.config_file)
    _as_node(
        data,
        config.store.url,
        name,
        Timing(config.node.lease_ms, config.node.renew_ms, config.node.poll_ms),
        station=msgspec.structs.replace(config.station, listen=listen),
        api=msgspec.structs.replace(config.api, listen=f"{host}:{ports[0]}"),
        console=msgspec.structs.replace(config.console, listen=f"{host}:{ports[1]}"),
    )
    return StationProcess(
        f"London-{name}", data, first.passphrase_file, root / f"london-{name}.log"
    )


def _free_ports(host: str, count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def node_of(station: StationProcess) -> dict[str, Any] | None:
    """The node's own answer about itself (None: it does not answer now)."""
    try:
        answer: dict[str, Any] = station.call("GET", "/api/v1/node")
    except httpx.HTTPError:
        return None
    return answer


def wait_role(station: StationProcess, role: str, timeout: float = READY_TIMEOUT_S) -> None:
    """Wait until the node says it is `role` ("active" or "standby")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if station.process is not None and station.process.poll() is not None:
            raise RuntimeError(f"{station.name} exited: {station.log_file.read_text()[-2000:]}")
        answer = node_of(station)
        if answer is not None and answer["role"] == role:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{station.name} is not {role}: {station.log_file.read_text()[-2000:]}")
