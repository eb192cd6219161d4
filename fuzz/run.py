"""Run the fuzz harnesses under atheris (libFuzzer), each in a process of its own, for a bounded
time, and say how many inputs each ran and whether any crashed.

    python fuzz/run.py --seconds N [--harness NAME ...] [--jobs J] [--corpus DIR] [--crashes DIR]
    python fuzz/run.py --harness NAME --replay FILE ...     (one harness, plain Python, traceback)

--module PACKAGE.MODULE runs a harness from elsewhere (tests/test_fuzz.py checks the runner so).

Each harness runs for N seconds (libFuzzer's -max_total_time) from its seeds (written afresh by
fuzz/seeds.py into CORPUS/<harness>/seeds) and what earlier runs found (CORPUS/<harness>/found,
where libFuzzer adds each input that reaches new code). Only the `hotline` package is
instrumented for coverage. A crash is any exception a harness does not accept (fuzz/__init__.py),
an input running over --timeout seconds, or memory over --rss-limit MB; libFuzzer writes the
input to CRASHES/<harness>-crash-<sha1> (or timeout-, oom-), and the harness's log beside it.

Prints `name: value` lines, one per harness, then the totals; the exit status is 1 if any harness
crashed. --jobs runs that many harnesses at once (the default, 1, keeps a machine usable).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path[0] == str(Path(__file__).resolve().parent):  # run as a script: fuzz/ is first
    sys.path[0] = str(ROOT)  # ... so that the harnesses import as the `fuzz` package

from fuzz import ALSO_INSTRUMENTED, HARNESSES  # noqa: E402 - after the path above
from fuzz.seeds import module_name, write_seeds  # noqa: E402

__all__ = ["Result", "fuzz", "main"]

_EXECUTED = re.compile(r"^stat::number_of_executed_units:\s*(\d+)", re.MULTILINE)
_NEW = re.compile(r"^stat::new_units_added:\s*(\d+)", re.MULTILINE)
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


@dataclass(frozen=True, slots=True)
class Result:
    harness: str
    executions: int
    new_units: int
    crashes: list[Path]
    seconds: float
    status: int
    log: Path

    @property
    def crashed(self) -> bool:
        return self.status != 0 or bool(self.crashes)


def fuzz(
    harness: str,
    seconds: int,
    corpus: Path,
    crashes: Path,
    timeout: int = 30,
    rss_limit: int = 2048,
) -> Result:
    """Run one harness in a child process for `seconds`; what it ran and what it found."""
    found, seeds = corpus / harness / "found", corpus / harness / "seeds"
    found.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    log = crashes / f"{harness}.log"
    flags = [
        f"-max_total_time={seconds}",
        f"-timeout={timeout}",
        f"-rss_limit_mb={rss_limit}",
        f"-artifact_prefix={crashes}/{harness}-",
        "-print_final_stats=1",
        str(found),
        str(seeds),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    start = time.monotonic()
    with log.open("w") as out:
        status = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, __file__, "--child", harness, *flags],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            check=False,
        ).returncode
    text = log.read_text(errors="replace")
    executed, new = _EXECUTED.findall(text), _NEW.findall(text)
    return Result(
        harness,
        int(executed[-1]) if executed else 0,
        int(new[-1]) if new else 0,
        [Path(p) for p in _ARTIFACT.findall(text)],
        time.monotonic() - start,
        status,
        log,
    )


def _child(harness: str, flags: list[str]) -> None:
    """In the child: seeds, then libFuzzer over the instrumented harness (never returns)."""
    import atheris  # noqa: PLC0415 - only the child needs it

    with atheris.instrument_imports(include=["hotline", *ALSO_INSTRUMENTED.get(harness, ())]):
        module = importlib.import_module(module_name(harness))

    seeds = Path(flags[-1])
    write_seeds(seeds, harness)  # also builds what the harness caches (a bundle, keys)
    atheris.Setup([sys.argv[0], *flags], module.test_one_input)
    atheris.Fuzz()


def replay(harness: str, files: list[Path]) -> None:
    """Run inputs through a harness as plain Python: a crash shows its traceback."""
    module = importlib.import_module(module_name(harness))
    for path in files:
        module.test_one_input(path.read_bytes())
        print(f"{path}: accepted or refused as documented")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="per harness")
    parser.add_argument("--harness", action="append", choices=HARNESSES, help="default: all")
    parser.add_argument(
        "--module", action="append", default=[], help="a harness outside fuzz/, by dotted name"
    )
    parser.add_argument("--jobs", type=int, default=1, help="harnesses run at once")
    parser.add_argument("--corpus", type=Path, default=ROOT / "fuzz" / "corpus")
    parser.add_argument("--crashes", type=Path, default=ROOT / "fuzz" / "crashes")
    parser.add_argument("--timeout", type=int, default=30, help="seconds one input may take")
    parser.add_argument("--rss-limit", type=int, default=2048, help="MB a harness may use")
    parser.add_argument("--replay", type=Path, nargs="+", help="inputs to run through HARNESS")
    args = parser.parse_args()
    harnesses = [*(args.harness or ([] if args.module else HARNESSES)), *args.module]
    if args.replay:
        if len(harnesses) != 1:
            parser.error("--replay needs exactly one --harness or --module")
        replay(harnesses[0], args.replay)
        return
    crashes = args.crashes.resolve()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(
            pool.map(
                lambda h: fuzz(h, args.seconds, args.corpus.resolve(), crashes, args.timeout,
                               args.rss_limit),
                harnesses,
            )
        )  # fmt: skip
    for r in results:
        found = f", crash inputs: {' '.join(map(str, r.crashes))}" if r.crashes else ""
        failed = f", exit status {r.status} (log: {r.log})" if r.crashed else ""
        print(
            f"{r.harness}: {r.executions} executions, {len(r.crashes)} crashes, "
            f"{r.new_units} new inputs, {r.seconds:.0f} s{found}{failed}"
        )
    crashed = [r for r in results if r.crashed]
    print(f"executions: {sum(r.executions for r in results)}")
    print(f"crashes: {sum(max(len(r.crashes), r.crashed) for r in results)}")
    print(f"crash inputs: {crashes}")
    sys.exit(1 if crashed else 0)


if __name__ == "__main__":
    main()
