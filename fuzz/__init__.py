"""Coverage-guided fuzzing of every parser that reads bytes from outside (issue 13, "Fuzzing").

One harness module per family of parsers, each with `test_one_input(data: bytes)`, which feeds
the bytes to the real parser and lets through only the refusals the parser documents
(`hotline.errors.RemoteError` and its subclasses): any other exception is a finding. Each module
also has `seeds()`, valid samples made by the project's own encoders, which `fuzz/seeds.py` writes
out as the starting corpus. `fuzz/run.py` runs the harnesses under atheris (libFuzzer);
tests/test_fuzz.py runs each briefly, and replays the seeds through the plain functions.
docs/security.md ("Fuzzing") says what each harness covers.
"""

from __future__ import annotations

__all__ = ["ALSO_INSTRUMENTED", "HARNESSES"]

# The harness modules under fuzz/, in the order the runner takes them.
HARNESSES = (
    "handshake",
    "frames",
    "envelope",
    "statements",
    "annotation",
    "callframes",
    "callrecord",
    "media",
    "cards",
    "offers",
    "transfer",
    "archive",
)
# Coverage comes from the `hotline` package; a harness whose input goes through a pure-Python
# parser of the standard library first has that parser instrumented too.
ALSO_INSTRUMENTED = {"archive": ("zipfile",)}
