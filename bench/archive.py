"""How fast a link's record exports to a bundle and verifies offline.

    .venv/bin/python bench/archive.py [--envelopes 100000] [--quick]

Two link cores in one process (bench/link.py's Pair: real SQLite stores, real signatures) send
the given number of envelopes, 200-byte texts, then the sender signs a checkpoint. Then, from the
sender's store: `export_bundle`, and `verify_bundle` on the result. Prints `name: value` lines:

  archive_envelopes: envelopes in the bundle
  export_s / export_envelopes_per_s: writing the bundle (streamed from the store; no PDF past
      PDF_AUTO_LIMIT messages)
  export_with_pdf_s: a bundle of the last PDF_AUTO_LIMIT messages, with its PDF transcript
  verify_s / verify_envelopes_per_s: checking it offline, every signature and chain link
  bundle_mb: its size (MB = 10**6 bytes)
  verify_peak_rss_mb: this process's peak resident set after the verify (the verifier keeps a
      hash per envelope in memory, about 100 bytes each)

Everything is in the system's temporary directory. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import json
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from hotline.archive.bundle import export_bundle, verify_bundle
from hotline.archive.export import PDF_AUTO_LIMIT
from hotline.crypto.card import make_card
from hotline.protocol.envelope import decode_envelope
from hotline.store.sqlite import SqliteStore
from link import Pair

S = 1_000_000_000


def emit(name: str, value: object) -> None:
    print(f"{name}: {value}", flush=True)


def sent_times(bundle: Path) -> list[int]:
    with zipfile.ZipFile(bundle) as archive:
        return [
            decode_envelope(base64.b64decode(json.loads(line)["signed"]), None).body.sent_ns
            for line in archive.read("envelopes.jsonl").splitlines()
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envelopes", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="5,000 envelopes")
    args = parser.parse_args()
    total = 5_000 if args.quick else max(1, min(args.envelopes, 1_000_000))
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        pair = Pair(lambda name: SqliteStore(Path(tmp) / f"{name}.db"))
        started = time.perf_counter()
        while pair.receipted < total:
            pair.send_batch(min(500, total - pair.receipted))
        later = time.time_ns() + 3 * S  # traffic paused (the session alive): a checkpoint
        pair.deliver(0, pair.cores[0].tick(later))
        emit("fill_s", f"{time.perf_counter() - started:.1f}")
        cards = [
            make_card(config.identity, name, [], int(time.time()))
            for config, name in zip(pair.configs, ("London", "Moscow"), strict=True)
        ]
        out = Path(tmp) / "record.hotline"
        started = time.perf_counter()
        identity = pair.configs[0].identity
        counts = export_bundle(pair.stores[0], identity, cards[0], cards[1], out, time.time_ns())
        export_s = time.perf_counter() - started
        # The PDF transcript is for a time range (export leaves it out past PDF_AUTO_LIMIT
        # messages): the last PDF_AUTO_LIMIT messages, exported with one.
        since = sorted(sent_times(out))[-PDF_AUTO_LIMIT]
        started = time.perf_counter()
        ranged = export_bundle(
            pair.stores[0], identity, cards[0], cards[1], Path(tmp) / "range.hotline",
            time.time_ns(), since_ns=since, pdf="always",
        )  # fmt: skip
        emit("export_with_pdf_envelopes", ranged["envelopes"])
        emit("export_with_pdf_s", f"{time.perf_counter() - started:.2f}")
        pair.close()
        started = time.perf_counter()
        result = verify_bundle(out)
        verify_s = time.perf_counter() - started
        emit("archive_envelopes", counts["envelopes"])
        emit("archive_checkpoints", counts["checkpoints"])
        emit("export_s", f"{export_s:.2f}")
        emit("export_envelopes_per_s", f"{counts['envelopes'] / export_s:.0f}")
        emit("verify_s", f"{verify_s:.2f}")
        emit("verify_envelopes_per_s", f"{result.envelopes / verify_s:.0f}")
        emit("bundle_mb", f"{out.stat().st_size / 1e6:.1f}")
        emit(
            "verify_peak_rss_mb", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
        )


if __name__ == "__main__":
    main()
