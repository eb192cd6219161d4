"""The deterministic simulator.

    python -m hotline.sim --seeds N [--start S] [--backend sqlite|postgres] [--jobs J] [--quiet]

Runs seeds S, S+1, ..., S+N-1. Each failure prints its seed, its problems and the one command that
replays it; the last line is ``N passed, M failed`` and the exit status is 1 when M > 0.

While it runs it shows its progress on standard error (standard output keeps the results): the
seeds done, the rate, the failures so far and the time left, on one line updated in place on a
terminal, or else as a line every --progress-every seconds (a log, CI); --quiet shows none.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TextIO

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
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress while it runs")
    parser.add_argument(
        "--progress-every",
        type=float,
        default=30.0,
        metavar="S",
        help="when standard error is not a terminal: a progress line every S seconds (0: a line "
        "per seed)",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or args.start < 0:
        parser.error("--seeds and --jobs must be at least 1, --start at least 0")
    if not args.progress_every >= 0:
        parser.error("--progress-every is a number of seconds, 0 or more")
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


class Progress:
    """The seeds done so far, on `stream`: one line rewritten in place on a terminal, else a
    line every `every` seconds; nothing when `quiet`."""

    def __init__(self, total: int, stream: TextIO, quiet: bool, every: float) -> None:
        self.total, self.stream, self.every = total, stream, every
        self.live = not quiet and stream.isatty()
        self.logged = not quiet and not self.live
        self.started = self.last = time.perf_counter()
        self.shown = False

    def line(self, done: int, failed: int) -> str:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = done / elapsed * 60
        left = (self.total - done) / (done / elapsed) if done else None
        eta = f", about {_duration(left)} left" if left is not None and done < self.total else ""
        return f"{done}/{self.total} seeds, {rate:.0f} seeds/min, {failed} failed so far{eta}"

    def update(self, done: int, failed: int) -> None:
        now = time.perf_counter()
        if self.live:
            self.stream.write(f"\r\x1b[K{self.line(done, failed)}")
            self.stream.flush()
            self.shown = True
        elif self.logged and now - self.last >= self.every and done < self.total:
            self.last = now
            print(f"progress: {self.line(done, failed)}", file=self.stream, flush=True)

    def clear(self) -> None:
        """Before another line is printed: the line in place is wiped, not left half over."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    started = time.perf_counter()
    passed = failed = 0
    progress = Progress(args.seeds, sys.stderr, args.quiet, args.progress_every)
    for result in _results(args):
        progress.clear()
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
        sys.stdout.flush()  # the results before the progress line that follows them
        progress.update(passed + failed, failed)
    progress.clear()
    elapsed = time.perf_counter() - started
    print(
        f"{args.seeds} seeds in {elapsed:.1f} s ({args.seeds / elapsed * 60:.0f} seeds/min)",
        file=sys.stderr,
    )
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
