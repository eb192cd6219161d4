"""A side on several machines tells its peer where every node listens through its card (version
2): `hotline card --remake` signs the card from station.toml ([station] listen and [node]
other_nodes), pairing pins it, and the peer dials every node with no hand-written link.toml; a
newer card of the same station (`hotline pair --update`) changes the nodes without pairing
again, and an older one, another station's or an altered one is refused. A card that does not
list where the side listens is said, not silently kept."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hotline.crypto.card import parse_card
from hotline.errors import ConfigError
from hotline.station.datadir import DataDir
from hotline.station.launch import free_ports
from hotline.station.links import Link, load_links

PASSPHRASE = "side card test passphrase"
STORE = "postgresql://hotline@/side"  # never connected to: the nodes' station.toml needs one


def _hotline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


@pytest.fixture
def passphrase(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase"
    path.write_text(PASSPHRASE + "\n")
    return path


def _station(tmp_path: Path, name: str, paths: int = 2) -> DataDir:
    ports = free_ports(paths + 2)
    data = DataDir(tmp_path / name.lower())
    listen = [f"127.0.0.1:{p}" for p in ports[2:]]
    api, console = f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}"
    data.init(name, PASSPHRASE.encode(), listen, api=api, console=console)
    return data


def _as_node(data: DataDir, name: str, others: list[list[str]]) -> None:
    """Make the station node `name` of a side whose other nodes listen on `others`, as its
    operators do in station.toml."""
    text = data.config_file.read_text()
    text = text.replace('[store]\nurl = ""', f'[store]\nurl = "{STORE}"')
    text = text.replace('[node]\nname = ""', f'[node]\nname = "{name}"')
    text = re.sub(r"(?m)^other_nodes = .*$", f"other_nodes = {json.dumps(others)}", text)
    data.config_file.write_text(text)


def _links(data: DataDir) -> list[Link]:
    return load_links(data, data.open_keystore(PASSPHRASE.encode()))


def _pair_by_code(a: DataDir, b: DataDir, passphrase: Path) -> tuple[str, str]:
    address = f"127.0.0.1:{free_ports(1)[0]}"
    listener = subprocess.Popen(
        [sys.executable, "-m", "hotline", "pair", "-d", str(a.path), "--listen", address,
         "--wait", "30", "--passphrase-file", str(passphrase)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert listener.stdout is not None
    code = re.search(r"\d{5}-\d{5}", listener.stdout.readline())
    assert code is not None
    listener.stdout.readline()  # "waiting on ..."
    dialer = _hotline("pair", "-d", str(b.path), "--connect", address, "--code", code.group(0),
                      "--passphrase-file", str(passphrase))  # fmt: skip
    out, err = listener.communicate(timeout=60)
    assert dialer.returncode == 0, dialer.stderr
    assert listener.returncode == 0, err
    return dialer.stdout, out


def test_pairing_with_a_side_of_two_nodes_gives_the_peer_both_from_the_card(
    tmp_path: Path, passphrase: Path
) -> None:
    london, moscow = _station(tmp_path, "London"), _station(tmp_path, "Moscow")
    node_b = ["127.0.0.2:7101", "127.0.0.2:7102"]
    _as_node(london, "a", [node_b])
    shown = _hotline("card", "-d", str(london.path))
    assert "does not list" not in shown.stdout  # the card is not yet the side's:
    assert "lists other nodes than [node] other_nodes" in shown.stdout  # said, not kept silent
    remade = _hotline("card", "-d", str(london.path), "--remake", "--passphrase-file",
                      str(passphrase), "--json")  # fmt: skip
    assert remade.returncode == 0, remade.stderr
    summary = json.loads(remade.stdout)
    assert (summary["format_version"], summary["other_nodes"], summary["problem"]) == (
        2, [node_b], None
    )  # fmt: skip
    card = london.card()
    assert card.body.nodes == [node_b]
    assert card.body.paths == london.config().station.listen
    assert card.fingerprint == parse_card(summary["card"]).fingerprint
    # Paired by code: the card travels in its binary form, sealed, and is pinned as it came.
    dialer_output, _ = _pair_by_code(london, moscow, passphrase)
    assert "Other node     127.0.0.2:7101, 127.0.0.2:7102" in dialer_output
    (link,) = _links(moscow)
    assert link.peer_card.body_bytes == card.body_bytes
    assert link.dial == london.config().station.listen
    assert link.other_nodes == (tuple(node_b),)
    assert link.dial_all == [*london.config().station.listen, *node_b]
    assert link.peer_nodes == [london.config().station.listen, node_b]
    link_toml = (moscow.path / "links" / "london" / "link.toml").read_text()
    assert not re.search(r"(?m)^other_nodes", link_toml)  # nothing written by hand


def test_a_newer_card_of_the_side_updates_the_link_without_pairing_again(
    tmp_path: Path, passphrase: Path
) -> None:
    london, moscow = _station(tmp_path, "London"), _station(tmp_path, "Moscow")
    _pair_by_code(london, moscow, passphrase)
    old_card = tmp_path / "old.card"
    assert _hotline("card", "-d", str(london.path), "--export", str(old_card)).returncode == 0
    # London becomes a side of two nodes; its operators make the card again and send it.
    node_b = ["127.0.0.2:7201"]
    _as_node(london, "a", [node_b])
    new_card = tmp_path / "new.card"
    made = _hotline("card", "-d", str(london.path), "--remake", "--passphrase-file",
                    str(passphrase), "--export", str(new_card))  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "send it to the peer" in made.stdout
    link_toml = moscow.path / "links" / "london" / "link.toml"
    before = link_toml.read_text()
    updated = _hotline("pair", "-d", str(moscow.path), "--update", str(new_card))
    assert updated.returncode == 0, updated.stderr
    assert "other nodes (none) -> 127.0.0.2:7201" in updated.stdout
    assert "restart the station" in updated.stdout
    (link,) = _links(moscow)
    assert link.other_nodes == (tuple(node_b),)
    assert link_toml.read_text() == before  # its paths did not change: nor did dial
    again = _hotline("pair", "-d", str(moscow.path), "--update", str(new_card))
    assert "already holds this card" in again.stdout
    # An older card (replayed, or sent late) does not take the node back.
    older = _hotline("pair", "-d", str(moscow.path), "--update", str(old_card))
    assert older.returncode == 2
    assert "not after the one the link 'london' holds" in older.stderr
    assert _links(moscow)[0].other_nodes == (tuple(node_b),)
    # Another station's card, or an altered one, changes nothing.
    stranger = _hotline("pair", "-d", str(moscow.path), "--update", str(moscow.card_file))
    assert stranger.returncode == 2
    assert "no link is paired with the station of this card" in stranger.stderr
    altered = tmp_path / "altered.card"
    altered.write_text(new_card.read_text().replace("Name: London", "Name: Londres"))
    refused = _hotline("pair", "-d", str(moscow.path), "--update", str(altered))
    assert refused.returncode == 4
    assert "header names another station" in refused.stderr
    # The node's paths move: the next card carries them, and dial follows the first node's.
    text = london.config_file.read_text()
    first = london.config().station.listen
    moved = ["127.0.0.3:7301", "127.0.0.3:7302"]
    london.config_file.write_text(text.replace(json.dumps(first), json.dumps(moved)))
    assert _hotline("card", "-d", str(london.path), "--remake", "--passphrase-file",
                    str(passphrase), "--export", str(new_card)).returncode == 0  # fmt: skip
    assert _hotline("pair", "-d", str(moscow.path), "--update", str(new_card)).returncode == 0
    (link,) = _links(moscow)
    assert (link.dial, link.other_nodes) == (moved, (tuple(node_b),))


def test_hand_written_nodes_in_link_toml_are_dialled_besides_the_cards(
    tmp_path: Path, passphrase: Path
) -> None:
    """link.toml's `other_nodes` still works: merged with the card's nodes, an address on both
    dialled once; and a `dial` written by hand is kept when a newer card comes."""
    london, moscow = _station(tmp_path, "London"), _station(tmp_path, "Moscow")
    _as_node(london, "a", [["127.0.0.2:7401"]])
    london.remake_card(london.open_keystore(PASSPHRASE.encode()))
    _pair_by_code(london, moscow, passphrase)
    link_toml = moscow.path / "links" / "london" / "link.toml"
    by_hand = [["127.0.0.2:7401", "10.9.9.9:7401"], ["127.0.0.4:7401"], ["127.0.0.2:7401"]]
    link_toml.write_text(link_toml.read_text() + f"other_nodes = {json.dumps(by_hand)}\n")
    (link,) = _links(moscow)
    assert link.other_nodes == (("127.0.0.2:7401",), ("10.9.9.9:7401",), ("127.0.0.4:7401",))
    nat = '"192.0.2.1:7001"'
    link_toml.write_text(re.sub(r"(?m)^dial = .*$", f"dial = [{nat}]", link_toml.read_text()))
    _as_node(london, "a", [["127.0.0.2:7402"]])
    london.remake_card(london.open_keystore(PASSPHRASE.encode()))
    updated = _hotline("pair", "-d", str(moscow.path), "--update", str(london.card_file))
    assert updated.returncode == 0, updated.stderr
    assert "was written by hand: left as it is" in updated.stdout
    (link,) = _links(moscow)
    assert link.dial == ["192.0.2.1:7001"]
    assert link.other_nodes == (
        ("127.0.0.2:7402",), ("127.0.0.2:7401", "10.9.9.9:7401"), ("127.0.0.4:7401",)
    )  # fmt: skip


def test_other_nodes_in_station_toml_are_checked(tmp_path: Path) -> None:
    london = _station(tmp_path, "London", paths=1)
    (own,) = london.config().station.listen
    text = london.config_file.read_text()
    for others, message in (
        ([["127.0.0.2:1"]], r"node\.other_nodes is set: name this node too"),
        ([], None),
    ):
        london.config_file.write_text(
            re.sub(r"(?m)^other_nodes = .*$", f"other_nodes = {json.dumps(others)}", text)
        )
        if message is None:
            london.config()
        else:
            with pytest.raises(ConfigError, match=message):
                london.config()
    bad: list[tuple[list[list[str]], str]] = [
        ([[own]], "an address is on the card twice"),
        ([[]], "each other node on a card has at least one path"),
        ([["127.0.0.2"]], "a path is host:port"),
        ([[f"127.0.1.{n}:1"] for n in range(9)], "a card lists at most 8 other nodes"),
    ]
    for others, message in bad:
        london.config_file.write_text(text)
        _as_node(london, "a", others)
        with pytest.raises(ConfigError, match=rf"node\.other_nodes: {message}"):
            london.config()


def test_a_node_whose_paths_are_not_on_the_card_says_so(tmp_path: Path, passphrase: Path) -> None:
    """Node b holds the side's card, copied from node a, which does not list b's paths (made
    before b was): `hotline card` and `hotline serve` say so at b."""
    london = _station(tmp_path, "London", paths=1)
    _as_node(london, "b", [["127.0.0.9:7501"]])  # node a's paths; the card lists b's own only
    shown = _hotline("card", "-d", str(london.path), "--json")
    assert "lists other nodes than [node] other_nodes" in json.loads(shown.stdout)["problem"]
    text = london.config_file.read_text()
    first = london.config().station.listen
    london.config_file.write_text(text.replace(json.dumps(first), '["127.0.0.1:7502"]'))
    served = subprocess.Popen(
        [sys.executable, "-m", "hotline", "serve", "-d", str(london.path),
         "--passphrase-file", str(passphrase)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:  # said first thing, before the node looks for its store (which is not there)
        assert served.stderr is not None
        lines = [served.stderr.readline() for _ in range(5)]
        assert any("does not list this node's paths ([station] listen)" in ln for ln in lines)
    finally:
        served.terminate()
        served.communicate(timeout=30)
