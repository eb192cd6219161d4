"""The Noise engine against the public cacophony vectors and the hotline's own vectors."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hotline.crypto import session
from hotline.crypto.noise.vectors import load_vectors, run_vector
from tests.conftest import CACOPHONY, HOTLINE_VECTORS

CACOPHONY_VECTORS = load_vectors(CACOPHONY)
OWN_VECTORS = load_vectors(HOTLINE_VECTORS)


@pytest.mark.parametrize(
    "vector", CACOPHONY_VECTORS, ids=[v["protocol_name"] for v in CACOPHONY_VECTORS]
)
def test_cacophony_vector(vector: dict[str, Any]) -> None:
    result = run_vector(vector)
    assert result.passed, result.reason


@pytest.mark.parametrize("vector", OWN_VECTORS, ids=[str(i) for i in range(len(OWN_VECTORS))])
def test_hotline_vector(vector: dict[str, Any]) -> None:
    result = run_vector(vector)
    assert result.passed, result.reason


def test_vector_files_cover_every_pattern_function_and_the_hotline_protocol() -> None:
    assert len(CACOPHONY_VECTORS) == 944
    names = {v["protocol_name"] for v in CACOPHONY_VECTORS}
    for part in ("_448_", "_AESGCM_", "_BLAKE2b", "_BLAKE2s", "_SHA512", "psk0", "psk3", "I1X1"):
        assert any(part in name for name in names), part
    assert {v["protocol_name"] for v in OWN_VECTORS} == {
        "Noise_KKpsk0+hfs_25519+MLKEM768_ChaChaPoly_SHA256"
    }


@pytest.mark.parametrize(
    ("field", "index"),
    [("messages", 0), ("messages", 1), ("messages", 2), ("handshake_hash", None)],
)
@pytest.mark.parametrize("source", ["cacophony", "hotline"])
def test_altered_vector_fails(source: str, field: str, index: int | None) -> None:
    vector = copy.deepcopy((CACOPHONY_VECTORS if source == "cacophony" else OWN_VECTORS)[0])
    if index is None:
        vector[field] = ("00" if vector[field][:2] != "00" else "01") + vector[field][2:]
    else:
        text = vector[field][index]["ciphertext"]
        vector[field][index]["ciphertext"] = text[:-2] + ("00" if text[-2:] != "00" else "01")
    assert not run_vector(vector).passed


def test_altered_kem_ciphertext_fails() -> None:
    vector = copy.deepcopy(OWN_VECTORS[0])
    ct = vector["resp_kem_ciphertext"]
    vector["resp_kem_ciphertext"] = ct[:10] + ("0" if ct[10] != "0" else "1") + ct[11:]
    result = run_vector(vector)
    assert not result.passed
    assert "differs" in result.reason


def test_unsupported_protocol_counts_as_failed() -> None:
    vector = copy.deepcopy(CACOPHONY_VECTORS[0])
    vector["protocol_name"] = "Noise_NN_25519_Twofish_SHA256"
    result = run_vector(vector)
    assert not result.passed
    assert "unsupported cipher 'Twofish'" in result.reason


def _runner(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline.crypto.noise.vectors", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_runner_prints_the_count_and_succeeds() -> None:
    done = _runner(CACOPHONY, HOTLINE_VECTORS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "946 passed, 0 failed"


def test_runner_fails_and_names_the_failing_vector(tmp_path: Path) -> None:
    vectors = copy.deepcopy(CACOPHONY_VECTORS[:3])
    vectors[1]["protocol_name"] = "Noise_ZZ_25519_ChaChaPoly_SHA256"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"vectors": vectors}))
    done = _runner(broken)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[-1] == "2 passed, 1 failed"
    assert lines[0].startswith("FAIL Noise_ZZ_25519_ChaChaPoly_SHA256: ")


def test_runner_reports_an_unreadable_file(tmp_path: Path) -> None:
    done = _runner(tmp_path / "missing.json")
    assert done.returncode == 2
    assert "cannot read vectors" in done.stderr


# -- the hotline transport: the counter header and REKEY every 2^16 messages (issue 13, item 20) --


def test_hotline_vectors_cover_the_counter_header_and_rekeying() -> None:
    for vector in OWN_VECTORS:
        entries = vector["hotline_transport"]
        sent = {side: [e["n"] for e in entries if e["sender"] == side] for side in ("init", "resp")}
        assert {0, 1, 65_535, 65_536, 65_537, 131_072} <= set(sent["init"])
        assert {0, 65_536} <= set(sent["resp"])
        for entry in entries:  # the header is the counter, big-endian, in clear
            assert bytes.fromhex(entry["message"])[:8] == entry["n"].to_bytes(8, "big")


@pytest.mark.parametrize("where", ["header", "ciphertext"])
@pytest.mark.parametrize("n", [0, 65_535, 65_536, 131_072])
def test_an_altered_hotline_transport_message_fails(where: str, n: int) -> None:
    vector = copy.deepcopy(OWN_VECTORS[0])
    entry = next(e for e in vector["hotline_transport"] if (e["sender"], e["n"]) == ("init", n))
    message = bytearray.fromhex(entry["message"])
    message[7 if where == "header" else -1] ^= 0x01
    entry["message"] = message.hex()
    result = run_vector(vector)
    assert not result.passed
    assert f"hotline transport {vector['hotline_transport'].index(entry)} (init message {n})" in (
        result.reason
    )


def test_a_session_that_does_not_rekey_at_2_to_the_16_fails_the_vectors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(session, "REKEY_INTERVAL", 2**17)
    result = run_vector(OWN_VECTORS[0])
    assert not result.passed
    assert "(init message 65536): sealed differs" in result.reason


# -- any conforming file runs: optional keys left out, fail and fallback (item 22) ----------------


def _without_optional_keys(vector: dict[str, Any]) -> dict[str, Any]:
    """The vector as the format allows it: no handshake hash, optional keys null or absent."""
    stripped = copy.deepcopy(vector)
    del stripped["handshake_hash"]
    for side in ("init", "resp"):
        for key in ("static", "remote_static", "psks", "remote_ephemeral"):
            stripped.setdefault(f"{side}_{key}", None)
    stripped.update(name=None, fail=None, fallback=None, fallback_pattern=None, hybrid=None)
    return stripped


def test_a_file_without_the_optional_keys_runs_every_vector(tmp_path: Path) -> None:
    stripped = [_without_optional_keys(v) for v in CACOPHONY_VECTORS + OWN_VECTORS]
    path = tmp_path / "minimal.json"
    path.write_text(json.dumps({"vectors": stripped}))
    done = _runner(path)
    assert done.returncode == 0, done.stdout[-2000:]
    assert done.stdout.splitlines()[-1] == "946 passed, 0 failed"


def test_a_vector_without_its_hash_still_checks_its_messages() -> None:
    vector = _without_optional_keys(CACOPHONY_VECTORS[0])
    text = vector["messages"][1]["ciphertext"]
    vector["messages"][1]["ciphertext"] = text[:-2] + ("00" if text[-2:] != "00" else "01")
    assert not run_vector(vector).passed


def _failing(vector: dict[str, Any]) -> dict[str, Any]:
    """One side given another secret than the other's, where it changes nothing that side
    writes before it reads: a PSK the responder reads the first message with, or (NN has no
    key) the prologue the initiator reads the second with. A receiver then fails to read."""
    broken = copy.deepcopy(vector)
    if broken.get("resp_psks"):
        broken["resp_psks"] = [bytes(32).hex(), *broken["resp_psks"][1:]]
    else:
        broken["init_prologue"] = (broken.get("init_prologue") or "") + "00"
    return broken


@pytest.mark.parametrize("source", ["cacophony", "hotline"])
def test_a_vector_marked_fail_passes_only_when_the_handshake_fails(source: str) -> None:
    vector = (CACOPHONY_VECTORS if source == "cacophony" else OWN_VECTORS)[0]
    assert run_vector({**_failing(vector), "fail": True}).passed
    assert not run_vector(_failing(vector)).passed
    result = run_vector({**copy.deepcopy(vector), "fail": True})
    assert not result.passed
    assert "should fail" in result.reason


def test_a_fallback_vector_counts_as_failed_and_says_why() -> None:
    vector = {**copy.deepcopy(CACOPHONY_VECTORS[0]), "fallback": True}
    result = run_vector(vector)
    assert not result.passed
    assert "fallback (Noise Pipes) is not supported" in result.reason
