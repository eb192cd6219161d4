"""The simulator itself: it passes on the real link, it is deterministic, and it fails loudly, with
a replay command, when a station breaks an invariant. (CI runs thousands of seeds through
`python -m hotline.sim`; these tests check the tool.)"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from typing import Any

import msgspec
import pytest

import hotline.sim.calls
from hotline.protocol.callrecord import CallRecord
from hotline.protocol.link import LinkCore
from hotline.protocol.state import Batch
from hotline.sim.__main__ import main
from hotline.sim.postgres import run_seed_on_postgres
from hotline.sim.scenario import run_seed
from hotline.station.callrecords import build_record as real_build_record
from hotline.station.jitter import JitterBuffer, Playout
from hotline.store.base import SqlStore

# Seeds with calls answered at both ends with media played (34, 42, 67); in 34 and 42 a station
# crashed during an answered call, the record then written by the restarted station.
SEEDS_WITH_CALLS = [34, 42, 67]


@pytest.mark.parametrize("seed", range(8))
def test_seeds_pass_on_sqlite(seed: int) -> None:
    result = run_seed(seed)
    assert result.passed, result.problems
    assert result.messages > 0


@pytest.mark.parametrize("seed", [3, 5])
def test_seeds_pass_on_postgres(seed: int) -> None:
    result = run_seed_on_postgres(seed)
    assert result.passed, result.problems


@pytest.mark.parametrize("seed", SEEDS_WITH_CALLS)
def test_seeds_with_calls_pass(seed: int) -> None:
    result = run_seed(seed)
    assert result.passed, result.problems
    assert result.calls > 0
    assert result.frames_played > 0  # media went through the real opener and jitter buffer


@pytest.mark.parametrize("seed", [11, 34])
def test_a_seed_replays_exactly(seed: int) -> None:
    first, second = run_seed(seed), run_seed(seed)
    assert (first.messages, first.crashes, first.virtual_s, first.frames_played) == (
        second.messages,
        second.crashes,
        second.virtual_s,
        second.frames_played,
    )


def test_the_command_prints_the_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "3", "--start", "100"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "3 passed, 0 failed"


@pytest.fixture
def forgetful_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that silently drops every third inbound envelope it is asked to commit."""
    original = SqlStore.commit
    calls = {"n": 0}

    def commit(self: SqlStore, link_id: bytes, batch: Batch, now_ns: int, keyed: Any = ()) -> None:
        if batch.inbound:
            calls["n"] += 1
            if calls["n"] % 3 == 0:
                batch = Batch(batch.outbound, [], batch.receipt, batch.checkpoints, batch.audit)
        original(self, link_id, batch, now_ns, keyed)

    monkeypatch.setattr(SqlStore, "commit", commit)


@pytest.mark.usefixtures("forgetful_store")
def test_a_station_that_loses_messages_is_caught_with_a_replay_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--seeds", "2", "--start", "7"]) == 1
    out = capsys.readouterr().out
    assert "FAIL seed 7:" in out
    assert "replay: python -m hotline.sim --seeds 1 --start 7 --backend sqlite" in out
    assert "StoreCorruptError" in out  # the restarted station's store noticed the lost rows
    assert out.splitlines()[-1] == "0 passed, 2 failed"


def test_a_station_that_forgets_send_keys_is_caught_sending_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Retried sends: a store that keeps no key makes a new message for every retry."""
    monkeypatch.setattr(SqlStore, "keyed_sends", lambda self, link_id, keys: {})
    monkeypatch.setattr(SqlStore, "_commit_send_keys", lambda self, link_id, sends, now: None)
    results = [run_seed(seed) for seed in range(6)]
    problems = [p for result in results for p in result.problems]
    assert any("made 2 messages" in p for p in problems)


def test_a_link_without_checkpoints_fails_agreement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LinkCore, "_maybe_checkpoint", lambda self, output, now_ns: None)
    result = run_seed(4)
    assert not result.passed
    assert any("invariant 5 (agreement)" in p for p in result.problems)
    assert any("did not settle" in p for p in result.problems)


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--seeds", "0"])
    assert exit_info.value.code == 2
    assert "--seeds and --jobs must be at least 1" in capsys.readouterr().err


def test_a_station_that_plays_a_frame_twice_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each jitter buffer hands out its first frame a second time."""
    original = JitterBuffer.pop
    again: dict[int, Playout | None] = {}

    def pop(self: JitterBuffer, now_ns: int) -> Playout | None:
        if again.get(id(self)) is not None:
            playout, again[id(self)] = again[id(self)], None
            return playout
        playout = original(self, now_ns)
        if playout is not None and playout.kind == "packet" and id(self) not in again:
            again[id(self)] = playout
        return playout

    monkeypatch.setattr(JitterBuffer, "pop", pop)
    result = run_seed(SEEDS_WITH_CALLS[0])
    assert not result.passed
    assert any("played a frame twice or out of order" in p for p in result.problems)


def test_call_records_that_disagree_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The callee's station writes the wrong precedence into its records."""

    def build_record(*args: Any) -> CallRecord:
        record = real_build_record(*args)
        if record.direction == "outgoing":
            return record
        wrong = "ROUTINE" if record.precedence == "FLASH" else "FLASH"
        return msgspec.structs.replace(record, precedence=wrong)

    monkeypatch.setattr(hotline.sim.calls, "build_record", build_record)
    result = run_seed(SEEDS_WITH_CALLS[0])
    assert not result.passed
    assert any("disagree: precedence" in p for p in result.problems)


def test_a_station_that_forgets_calls_cut_short_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A restarted station that does not look for the calls it was in when it died writes no
    record of them."""
    monkeypatch.setattr(SqlStore, "open_calls", lambda self, link_id: [])
    result = run_seed(SEEDS_WITH_CALLS[1])
    assert not result.passed
    assert any("wrote no record of call" in p for p in result.problems)


def test_a_call_that_outlives_its_peers_crash_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A station that waits 30 s, not 3, before it calls its silent peer lost."""
    monkeypatch.setattr(hotline.sim.calls, "DEAD_AFTER_NS", 30 * 1_000_000_000)
    result = run_seed(SEEDS_WITH_CALLS[1])
    assert not result.passed
    assert any("and the peer's call went on" in p for p in result.problems)


def _sim(*args: str, stderr: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline.sim", *args],
        stdout=subprocess.PIPE, stderr=stderr if stderr is not None else subprocess.PIPE,
        text=True, check=False, timeout=300,
    )  # fmt: skip


def test_progress_is_one_line_in_place_on_a_terminal_and_none_when_quiet() -> None:
    """Issue 15, item 20: the seeds done, the rate and the failures so far, while it runs, on
    standard error; standard output keeps the results and its last line."""
    for quiet in (False, True):
        controller, terminal = pty.openpty()
        try:
            done = _sim("--seeds", "3", "--start", "100", *(["--quiet"] if quiet else []),
                        stderr=terminal)  # fmt: skip
            os.close(terminal)
            shown = b""
            while True:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the terminal's other end is closed: all is read
                    break
                if not chunk:
                    break
                shown += chunk
        finally:
            os.close(controller)
        assert done.returncode == 0
        assert done.stdout.splitlines()[-1] == "3 passed, 0 failed"
        said = shown.decode()
        if quiet:
            assert "seeds/min, 0 failed so far" not in said
            continue
        for n in (1, 2, 3):
            assert f"\r\x1b[K{n}/3 seeds, " in said, said
        assert "0 failed so far, about" in said
        assert "3 seeds in " in said  # the closing count, after the progress line is wiped


def test_progress_is_a_line_every_so_often_in_a_log() -> None:
    done = _sim("--seeds", "3", "--start", "100", "--progress-every", "0")
    assert done.returncode == 0
    lines = done.stderr.splitlines()
    assert [line.split(",")[0] for line in lines[:2]] == [
        "progress: 1/3 seeds",
        "progress: 2/3 seeds",
    ]
    assert "0 failed so far" in lines[0]
    assert "\r" not in done.stderr
    assert "\x1b" not in done.stderr
    assert done.stdout.splitlines() == ["3 passed, 0 failed"]
    quiet = _sim("--seeds", "1", "--start", "100", "--progress-every", "0", "--quiet")
    assert "progress:" not in quiet.stderr
