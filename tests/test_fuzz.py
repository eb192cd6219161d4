"""The fuzz harnesses (fuzz/, issue 13): every parser of remote bytes refuses what it must refuse
with the error it documents, and nothing else escapes.

Two checks. Each harness runs as plain Python over its seeds (valid samples the project's own
encoders make) and over simple mutations of them (cut short, a byte changed, doubled): the same
harnesses checked where coverage instrumentation is not, and a crash shown with its traceback.
Then the short run of CI: every harness under atheris (libFuzzer) for a few seconds, which fails
on any crash and names the input it wrote.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzz import HARNESSES

ROOT = Path(__file__).resolve().parent.parent
SHORT_RUN_SECONDS = 4  # per harness; two at a time: the whole run takes about 40 s


def _variants(seed: bytes) -> Iterator[bytes]:
    """The seed, and what a careless or hostile sender makes of it."""
    yield seed
    yield seed + seed
    for cut in {0, 1, 2, len(seed) // 2, len(seed) - 1}:
        yield seed[:cut]
    step = max(1, len(seed) // 24)  # about 24 places, from the first byte to the last
    for at in range(0, len(seed), step):
        for value in (0x00, 0xFF, seed[at] ^ 0x01):
            yield seed[:at] + bytes([value]) + seed[at + 1 :]


@pytest.mark.parametrize("name", HARNESSES)
def test_each_harness_takes_its_seeds_and_their_mutations(name: str) -> None:
    module = importlib.import_module(f"fuzz.{name}")
    seeds = list(module.seeds())
    assert seeds, f"{name} has no seeds"
    for seed in seeds:
        for variant in _variants(seed):
            module.test_one_input(variant)  # any exception but a documented refusal fails


def _short_run(
    tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    done = subprocess.run(
        [sys.executable, "fuzz/run.py", "--corpus", str(tmp_path / "corpus"),
         "--crashes", str(tmp_path / "crashes"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    return done, lines


def test_a_short_run_of_every_harness_finds_no_crash(tmp_path: Path) -> None:
    done, lines = _short_run(tmp_path, "--seconds", str(SHORT_RUN_SECONDS), "--jobs", "2")
    logs = "".join(
        f"\n--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
        for log in sorted((tmp_path / "crashes").glob("*.log"))
        if done.returncode != 0
    )
    assert done.returncode == 0, done.stdout + done.stderr + logs
    assert lines["crashes"] == "0"
    for name in HARNESSES:  # each one really ran under libFuzzer
        executions = int(lines[name].split(" executions")[0])
        assert executions > 100, f"{name}: {lines[name]}"
    assert int(lines["executions"]) > 100 * len(HARNESSES)


CRASHY = """
def seeds():
    yield b"boom"

def test_one_input(data):
    if data.startswith(b"boom"):
        raise IndexError("a bug, not a refusal")
"""


def test_the_runner_reports_a_crash_and_keeps_its_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a harness lets through is a crash: the run fails, and names the input it kept."""
    (tmp_path / "crashy").mkdir()
    (tmp_path / "crashy" / "__init__.py").write_text("")
    (tmp_path / "crashy" / "harness.py").write_text(CRASHY)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    done, lines = _short_run(tmp_path, "--seconds", "5", "--module", "crashy.harness")
    assert done.returncode == 1, done.stdout + done.stderr
    assert lines["crashes"] == "1"
    kept = list((tmp_path / "crashes").glob("crashy.harness-crash-*"))
    assert len(kept) == 1
    assert kept[0].read_bytes().startswith(b"boom")
    assert str(kept[0]) in lines["crashy.harness"]
