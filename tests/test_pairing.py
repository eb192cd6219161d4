"""Pairing, both ways, through the real command: by a one-time code (SPAKE2 over a direct
connection) and by card files with the short authentication string. A wrong code, a changed
card or a refused confirmation leaves no link behind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hotline.crypto.pairing import card_pairing_keys
from hotline.station.datadir import DataDir
from hotline.station.launch import StationProcess, free_ports
from hotline.station.links import Link, load_links

PASSPHRASE = "pairing test passphrase"


def _hotline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def two(tmp_path: Path) -> tuple[DataDir, DataDir, Path]:
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(PASSPHRASE + "\n")
    ports = free_ports(6)
    dirs = []
    for name, (path_port, api_port, console_port) in (
        ("Alpha", ports[0:3]),
        ("Bravo", ports[3:6]),
    ):
        data = DataDir(tmp_path / name.lower())
        data.init(
            name,
            PASSPHRASE.encode(),
            [f"127.0.0.1:{path_port}"],
            api=f"127.0.0.1:{api_port}",
            console=f"127.0.0.1:{console_port}",
        )
        dirs.append(data)
    return dirs[0], dirs[1], passphrase


def _links(data: DataDir) -> list[Link]:
    return load_links(data, data.open_keystore(PASSPHRASE.encode()))


def _pair_by_code(
    a: DataDir, b: DataDir, passphrase: Path, wrong_code: bool = False
) -> tuple[str, str]:
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
    given = "00000-00000" if wrong_code else code.group(0)
    dialer = _hotline("pair", "-d", str(b.path), "--connect", address, "--code", given,
                      "--passphrase-file", str(passphrase))  # fmt: skip
    out, err = listener.communicate(timeout=60)
    return dialer.stdout + dialer.stderr, out + err


def test_pairing_by_code_pins_both_sides_with_a_shared_secret(
    two: tuple[DataDir, DataDir, Path],
) -> None:
    a, b, passphrase = two
    dialer_output, listener_output = _pair_by_code(a, b, passphrase)
    assert "Paired with Alpha as link 'alpha'." in dialer_output
    assert "Paired with Bravo as link 'bravo'." in listener_output
    (at_a,), (at_b,) = _links(a), _links(b)
    assert at_a.keys.link_id == at_b.keys.link_id
    assert at_a.keys.psk == at_b.keys.psk
    identity = a.open_keystore(PASSPHRASE.encode())
    assert at_a.keys.psk != card_pairing_keys(identity, at_a.peer_card.identity).psk
    assert (a.path / "links" / "bravo" / "psk.sealed").stat().st_mode & 0o777 == 0o600
    assert at_a.keys.psk not in (a.path / "links" / "bravo" / "psk.sealed").read_bytes()
    # The PSK from the code opens real sessions between the two stations.
    stations = [
        StationProcess(d.card().body.name, d, passphrase, d.path.parent / f"{d.path.name}.log")
        for d in (a, b)
    ]
    try:
        for station in stations:
            station.start()
        deadline = time.monotonic() + 30
        while stations[0].call("GET", "/api/v1/status")["links"][0]["state"] != "UP":
            assert time.monotonic() < deadline, "the stations paired by code did not connect"
            time.sleep(0.1)
        stations[0].call("POST", "/api/v1/links/bravo/messages", {"text": "paired by code"})
        deadline = time.monotonic() + 30
        while not stations[1].call("GET", "/api/v1/links/alpha/inbox"):
            assert time.monotonic() < deadline, "the message did not arrive"
            time.sleep(0.1)
    finally:
        for station in stations:
            station.close()


def test_a_wrong_code_pairs_nothing(two: tuple[DataDir, DataDir, Path]) -> None:
    a, b, passphrase = two
    dialer_output, listener_output = _pair_by_code(a, b, passphrase, wrong_code=True)
    assert "the codes differ (or someone interfered): not paired" in dialer_output
    assert "the codes differ (or someone interfered): not paired" in listener_output
    assert not (a.path / "links").exists()
    assert not (b.path / "links").exists()


def test_pairing_by_card_checks_the_string(
    two: tuple[DataDir, DataDir, Path], tmp_path: Path
) -> None:
    a, b, passphrase = two
    card = str(b.card_file)
    wrong = _hotline(
        "pair",
        card,
        "-d",
        str(a.path),
        "--sas",
        "12345 12345",
        "--passphrase-file",
        str(passphrase),
    )
    assert wrong.returncode == 2
    assert "the string read by the other operator differs: not paired" in wrong.stderr
    unconfirmed = _hotline("pair", card, "-d", str(a.path), "--passphrase-file", str(passphrase))
    assert unconfirmed.returncode == 2
    assert "was not confirmed: not paired" in unconfirmed.stderr
    changed = tmp_path / "changed.card"
    changed.write_text(b.card_file.read_text().replace("Name: Bravo", "Name: Mallory"))
    refused = _hotline(
        "pair", str(changed), "-d", str(a.path), "--passphrase-file", str(passphrase)
    )
    assert refused.returncode == 4
    assert not (a.path / "links").exists()
    own = _hotline("pair", str(a.card_file), "-d", str(a.path), "--sas",
                   _sas(a, a), "--passphrase-file", str(passphrase))  # fmt: skip
    assert "that is this station's own card" in own.stderr
    done = _hotline(
        "pair", card, "-d", str(a.path), "--sas", _sas(a, b), "--passphrase-file", str(passphrase)
    )
    assert done.returncode == 0, done.stderr
    assert [link.name for link in _links(a)] == ["bravo"]


def _sas(a: DataDir, b: DataDir) -> str:
    done = _hotline("fingerprint", "-d", str(a.path), "--peer", str(b.card_file), "--json")
    sas: str = json.loads(done.stdout)["sas"]
    return sas
