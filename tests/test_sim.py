"""The simulator itself: it passes on the real link, it is deterministic, and it fails loudly, with
a replay command, when a station breaks an invariant. (CI runs thousands of seeds through
`python -m hotline.sim`; these tests check the tool.)"""

from __future__ import annotations

import pytest

from hotline.protocol.link import LinkCore
from hotline.protocol.state import Batch
from hotline.sim.__main__ import main
from hotline.sim.postgres import run_seed_on_postgres
from hotline.sim.scenario import run_seed
from hotline.store.base import SqlStore


@pytest.mark.parametrize("seed", range(8))
def test_seeds_pass_on_sqlite(seed: int) -> None:
    result = run_seed(seed)
    assert result.passed, result.problems
    assert result.messages > 0


@pytest.mark.parametrize("seed", [3, 5])
def test_seeds_pass_on_postgres(seed: int) -> None:
    result = run_seed_on_postgres(seed)
    assert result.passed, result.problems


def test_a_seed_replays_exactly() -> None:
    first, second = run_seed(11), run_seed(11)
    assert (first.messages, first.crashes, first.virtual_s) == (
        second.messages,
        second.crashes,
        second.virtual_s,
    )


def test_the_command_prints_the_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "3", "--start", "100"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "3 passed, 0 failed"


@pytest.fixture
def forgetful_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that silently drops every third inbound envelope it is asked to commit."""
    original = SqlStore.commit
    calls = {"n": 0}

    def commit(self: SqlStore, link_id: bytes, batch: Batch, now_ns: int) -> None:
        if batch.inbound:
            calls["n"] += 1
            if calls["n"] % 3 == 0:
                batch = Batch(batch.outbound, [], batch.receipt, batch.checkpoints, batch.audit)
        original(self, link_id, batch, now_ns)

    monkeypatch.setattr(SqlStore, "commit", commit)


@pytest.mark.usefixtures("forgetful_store")
def test_a_station_that_loses_messages_is_caught_with_a_replay_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--seeds", "2", "--start", "7"]) == 1
    out = capsys.readouterr().out
    assert "FAIL seed 7:" in out
    assert "replay: python -m hotline.sim --seeds 1 --start 7 --backend sqlite" in out
    assert "missing row" in out  # the restarted station's store noticed the hole in its chain
    assert out.splitlines()[-1] == "0 passed, 2 failed"


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
