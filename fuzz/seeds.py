"""Write the harnesses' seed corpora: valid samples that the project's own encoders make (each
harness module's `seeds()`), one file per sample, named by its SHA-1 as libFuzzer names its own.

    python fuzz/seeds.py [--out DIR] [HARNESS ...]     (default: fuzz/corpus/<harness>/seeds)

Generated at run time, never committed: the samples depend on the code that encodes them, so a
change of format changes the seeds with it. fuzz/run.py writes them itself before each run.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the project root holds the `fuzz` package
    sys.path.insert(0, str(ROOT))

from fuzz import HARNESSES  # noqa: E402 - after the path above

__all__ = ["module_name", "write_seeds"]


def module_name(harness: str) -> str:
    """A harness of fuzz/ by its name; any other module by its dotted name (a package's)."""
    return harness if "." in harness else f"fuzz.{harness}"


def write_seeds(directory: Path, harness: str) -> int:
    """Write `harness`'s seeds into `directory` (created if needed, emptied of older seeds: they
    may be of an older format); return how many."""
    module = importlib.import_module(module_name(harness))
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    count = 0
    for seed in module.seeds():
        (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)  # noqa: S324 - a name
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("harness", nargs="*", help=f"of {', '.join(HARNESSES)} (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "fuzz" / "corpus")
    args = parser.parse_args()
    if unknown := set(args.harness) - set(HARNESSES):
        parser.error(f"no harness {', '.join(sorted(unknown))}")
    for harness in args.harness or HARNESSES:
        count = write_seeds(args.out / harness / "seeds", harness)
        print(f"{harness}: {count} seeds in {args.out / harness / 'seeds'}")


if __name__ == "__main__":
    main()
