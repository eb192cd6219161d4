"""The systemd unit in docs/operations.md, as written there: `systemd-analyze verify` finds
nothing to say about it (a warning fails too: systemd ignores a line it cannot read, and starts
the rest), and its command line is one `hotline serve` accepts. systemd-analyze is a tool these
tests need (.ci/run installs Debian's systemd): without it the test fails, it does not skip."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")  # what the unit refers to (its targets)


def _unit() -> str:
    blocks = re.findall(r"^```ini\n(.*?)^```$", DOCS.read_text(encoding="utf-8"), re.M | re.S)
    units = [block for block in blocks if "ExecStart=" in block]
    assert len(units) == 1, f"{DOCS} shows {len(units)} systemd units, not one"
    return str(units[0])


def _exec_start(unit: str) -> list[str]:
    (line,) = re.findall(r"(?m)^ExecStart=(.*)$", unit)
    return shlex.split(line)


def _verify(unit: str, root: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify of `unit` as /etc/systemd/system/hotline.service in `root`: a copy
    of this machine's own units, and the command the unit runs (so the check does not depend on
    where this machine installed it)."""
    assert Path(ANALYZE).is_file(), (
        f"{ANALYZE} is missing: install Debian's systemd package (.ci/run does)"
    )
    if not (root / "usr/lib/systemd/system").exists():
        shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    command = root / _exec_start(unit)[0].lstrip("/")
    command.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(sys.executable).parent / "hotline", command)  # this build's entry point
    target = root / "etc/systemd/system/hotline.service"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(unit, encoding="utf-8")
    return subprocess.run(
        [ANALYZE, "verify", "--man=no", f"--root={root}", "hotline.service"],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_the_systemd_unit_in_the_docs_verifies(tmp_path: Path) -> None:
    result = _verify(_unit(), tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (("RestartSec=2", "RestartSecs=2"), "Unknown key 'RestartSecs'"),
        (("Restart=always", "Restart=sometimes"), "Failed to parse service restart"),
        (("serve --data-dir", "serve\n--data-dir"), "Missing '=', ignoring line"),
    ],
)
def test_a_unit_systemd_would_read_otherwise_is_caught(
    tmp_path: Path, change: tuple[str, str], said: str
) -> None:
    """What the check above would catch: a line systemd ignores, with only a warning."""
    result = _verify(_unit().replace(*change), tmp_path)
    assert said in result.stdout + result.stderr


def test_the_units_command_line_is_one_hotline_serve_takes(tmp_path: Path) -> None:
    """The unit's options as `hotline serve` reads them: it goes as far as the data directory
    (not there: a configuration error), past every option of the command line."""
    args = _exec_start(_unit())
    assert args[1] == "serve"
    args[args.index("--data-dir") + 1] = str(tmp_path / "absent")
    args[args.index("--passphrase-file") + 1] = str(tmp_path / "passphrase")
    served = subprocess.run(
        [sys.executable, "-m", "hotline", *args[1:]],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert served.returncode == 2
    assert f"no station in {tmp_path / 'absent'}" in served.stderr
