"""`hotline export` and `hotline verify`: a link's record as a bundle, and its offline check
(hotline/archive/bundle.py, docs/archive.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from hotline.archive.bundle import export_bundle, verify_bundle
from hotline.cli.common import DATA_DIR_OPTION, JSON_OPTION, console, data_dir
from hotline.crypto.card import parse_card
from hotline.errors import CardError, ConfigError
from hotline.protocol.envelope import Lane
from hotline.station.runtime import open_store


def export(
    out: Path = typer.Option(..., "--out", "-o", help="The bundle to write (a new file)."),
    link: str | None = typer.Option(
        None, "--link", help="Which link (if the station has several)."
    ),
    data: Path | None = DATA_DIR_OPTION,
) -> None:
    """Write a link's whole record (envelopes, receipts, checkpoints, both cards) to a bundle
    that `hotline verify` checks with no station and no key."""
    directory = data_dir(data)
    config = directory.config()
    ours = directory.card()
    every = sorted((directory.path / "links").glob("*/peer.card"))
    cards = [c for c in every if link is None or c.parent.name == link]
    if len(cards) != 1:
        names = ", ".join(c.parent.name for c in every)
        raise ConfigError(f"say which link with --link (this station has: {names or 'none'})")
    if out.exists():
        raise ConfigError(f"{out} exists already; give a new file")
    try:
        peer = parse_card(cards[0].read_text(encoding="utf-8"))
    except (OSError, CardError) as exc:
        raise ConfigError(f"{cards[0]}: {exc}") from None
    store = open_store(directory, config)
    try:
        counts = export_bundle(store, ours, peer, out, time.time_ns())
    finally:
        store.close()
    console.print(
        f"Wrote {out}: {counts['envelopes']} envelopes, {counts['receipts']} receipt(s), "
        f"{counts['checkpoints']} checkpoints, both cards."
    )


def verify(
    bundle: Path = typer.Argument(..., help="A bundle written by `hotline export`."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a bundle offline: cards, every signature, every chain, receipts, checkpoints, and
    whether both stations agree. Exits non-zero at the first problem, naming it."""
    result = verify_bundle(bundle)
    summary = {
        "link_id": result.link_id.hex(),
        "stations": [result.stations[0], result.stations[1]],
        "envelopes": result.envelopes,
        "receipts": result.receipts,
        "checkpoints": result.checkpoints,
        "heads": {
            result.stations[d]: [[h.seq, h.hash.hex()] for h in result.heads[d]] for d in (0, 1)
        },
        "agreed": result.agreed,
    }
    if as_json:
        print(json.dumps(summary))
        return
    console.print(f"Bundle {bundle} verifies.")
    console.print(f"  link        {summary['link_id']}")
    console.print(f"  stations    {result.stations[0]} and {result.stations[1]}")
    console.print(
        f"  held        {result.envelopes} envelopes, every signature and chain link checked; "
        f"{result.receipts} receipt(s), {result.checkpoints} checkpoints"
    )
    for d in (0, 1):
        lanes = ", ".join(f"{Lane(lane).name} {h.seq}" for lane, h in enumerate(result.heads[d]))
        console.print(f"  from {result.stations[d]:<7}{lanes}")
    console.print(
        "  agreement   both stations' newest checkpoints agree"
        if result.agreed
        else "  agreement   not shown (the stations' newest checkpoints differ, or one is missing)"
    )
