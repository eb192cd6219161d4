"""The deterministic simulator.

    python -m hotline.sim --seeds N [--start S] [--backend sqlite|postgres] [--jobs J]

Runs seeds S, S+1, ..., S+N-1. Each failure prints its seed, its problems and the one command that
replays it; the last line is ``N passed, M failed`` and the exit status is 1 when M > 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from hotline.sim.postgres import run_seed_on_postgres
from hotline.sim.scenario import RunResult, run_seed

__all__ = ["main"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hotline.sim", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=0, help="the first seed")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--verbose", "-v", action="store_true", help="a line for every seed")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or args.start < 0:
        parser.error("--seeds and --jobs must be at least 1, --start at least 0")
    return args


def _run_one(seed: int, backend: str) -> RunResult:
    return run_seed_on_postgres(seed) if backend == "postgres" else run_seed(seed)


def _results(args: argparse.Namespace) -> Iterator[RunResult]:
    seeds = range(args.start, args.start + args.seeds)
    if args.jobs == 1 or args.backend == "postgres":
        for seed in seeds:
            yield _run_one(seed, args.backend)
        return
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        yield from pool.map(_run_one, seeds, [args.backend] * len(seeds), chunksize=8)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    started = time.perf_counter()
    passed = failed = 0
    for result in _results(args):
        if result.passed:
            passed += 1
        else:
            failed += 1
            print(f"FAIL seed {result.seed}:")
            for problem in result.problems:
                print(f"  {problem}")
            print(
                f"  replay: python -m hotline.sim --seeds 1 --start {result.seed} "
                f"--backend {args.backend}"
            )
        if args.verbose:
            print(
                f"seed {result.seed}: {'ok' if result.passed else 'FAIL'}, "
                f"{result.messages} messages, {result.calls} calls ({result.frames_played} frames "
                f"played), {result.crashes} crashes, "
                f"{result.virtual_s:.0f} s simulated"
            )
    elapsed = time.perf_counter() - started
    print(
        f"{args.seeds} seeds in {elapsed:.1f} s ({args.seeds / elapsed * 60:.0f} seeds/min)",
        file=sys.stderr,
    )
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
