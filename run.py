#!/usr/bin/env python3
"""The project's two entry points, needing nothing but Python 3.11+ on the machine.

    python3 ./run.py demo  create .venv if needed, then run `hotline demo`
    python3 ./run.py test  create .venv if needed, then lint, type-check, run the vectors and tests

The virtual environment is rebuilt whenever pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".hotline-installed"


def _run(*command: str | Path) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    child = subprocess.Popen([str(c) for c in command], cwd=ROOT)  # noqa: S603
    while True:
        try:
            code = child.wait()
            break
        except KeyboardInterrupt:  # Ctrl-C reached the child too: let it stop cleanly
            continue
    if code != 0:
        sys.exit(code)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py is what a too-old Python runs first
        sys.exit(f"Hotline needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    if VENV.exists():
        shutil.rmtree(VENV)
    _run(sys.executable, "-m", "venv", VENV)
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted + "\n")


def demo(args: list[str]) -> None:
    _run(BIN / "hotline", "demo", *args)


def machine_parts() -> None:
    """What the tests run for real beside Python: a PostgreSQL server's binaries, Debian's
    chromium, `ip` and `iptables` for the paths' tests in network namespaces, etcd and
    Patroni for the replicated store's (tests/patroni.py), and systemd's systemd-analyze for the
    unit in docs/operations.md. Installed from the machine's packages when missing and we may
    (root, apt-get)."""
    wanted = []
    if not shutil.which("initdb") and not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        wanted.append("postgresql")
    if not shutil.which("chromium"):
        wanted.append("chromium")
    if not shutil.which("ip"):
        wanted.append("iproute2")
    if not shutil.which("iptables"):
        wanted.append("iptables")
    if not shutil.which("etcd"):  # the replicated store's tests: PostgreSQL under Patroni
        wanted.append("etcd-server")
    if not shutil.which("patroni"):
        wanted.append("patroni")
    if not shutil.which("systemd-analyze"):  # tests/test_systemd_unit.py
        wanted.append("systemd")
    if wanted and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        _run("apt-get", "update", "-qq")
        _run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *wanted)
    elif wanted:
        print(f"warning: the tests need {', '.join(wanted)}; install them first", flush=True)


def test(args: list[str]) -> None:
    machine_parts()
    _run(BIN / "ruff", "check", ".")
    _run(BIN / "ruff", "format", "--check", ".")
    _run(BIN / "mypy")
    _run(BIN / "python", "bench/crypto.py", "--quick")
    _run(
        BIN / "python",
        "-m",
        "hotline.crypto.noise.vectors",
        "tests/vectors/noise/cacophony.txt",
        "tests/vectors/hotline.json",
    )
    # The simulator is the main test of the link: thousands of seeds on SQLite, some on PostgreSQL.
    _run(BIN / "python", "-m", "hotline.sim", "--seeds", "2000", "--jobs", "2")
    _run(
        BIN / "python",
        "-m",
        "hotline.sim",
        "--seeds",
        "100",
        "--start",
        "1000000",
        "--backend",
        "postgres",
    )
    _run(BIN / "pytest", *args)


COMMANDS = {"demo": demo, "test": test}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 run.py {{{'|'.join(COMMANDS)}}} [ARGS...]")
    ensure_venv()
    COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
