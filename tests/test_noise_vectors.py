"""The Noise engine against the public cacophony vectors and the hotline's own vectors."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
