"""`hotline export` and `hotline verify`: a link's record as a bundle, and its offline check
(hotline/archive/bundle.py, docs/archive.md)."""

from __future__ import annotations

import json
import sys
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.text import Text

from hotline.archive.bundle import export_bundle, verify_bundle
from hotline.archive.export import PDF_AUTO_LIMIT
from hotline.cli.common import (
    DATA_DIR_OPTION,
    JSON_OPTION,
    PASSPHRASE_FILE_OPTION,
    console,
    data_dir,
    err_console,
    match_link,
    peer,
    read_passphrase,
)
from hotline.crypto.card import parse_card
from hotline.errors import CardError, ConfigError
from hotline.protocol.envelope import Lane
from hotline.station.runtime import open_store


def _moment(value: str | None, option: str) -> int | None:
    """An ISO 8601 date or time (UTC unless it says otherwise), in nanoseconds."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option} {value!r} is not an ISO 8601 date or time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1e9)


def export(
    out: Path = typer.Option(..., "--out", "-o", help="The bundle to write (a new file)."),
    link: str | None = typer.Option(
        None, "--link", help="Which link (if the station has several)."
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        help="Only messages this station received or sent from then on, by its own clock "
        "(ISO 8601, UTC by default).",
    ),
    until: str | None = typer.Option(
        None,
        "--until",
        help="Only messages this station received or sent until then, by its own clock "
        "(ISO 8601, UTC by default).",
    ),
    pdf: str = typer.Option(
        "auto",
        "--pdf",
        help=f"The PDF transcript: auto (up to {PDF_AUTO_LIMIT:,} messages), always or never.",
    ),
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    data: Path | None = DATA_DIR_OPTION,
) -> None:
    """Write a link's record (envelopes, receipts, checkpoints, translations, files, call
    recordings, both cards) to a bundle that `hotline verify` checks with no station and no key.
    The station signs the bundle's manifest, so its keystore passphrase is asked for."""
    if pdf not in ("auto", "always", "never"):
        raise ConfigError(f"--pdf is auto, always or never, not {pdf!r}")
    since_ns, until_ns = _moment(since, "--since"), _moment(until, "--until")
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise ConfigError("--until is before --since")
    directory = data_dir(data)
    config = directory.config()
    ours = directory.card()
    cards = [directory.path / "links" / match_link(directory.link_names(), link) / "peer.card"]
    if out.exists():
        raise ConfigError(f"{out} exists already; give a new file")
    try:
        peer = parse_card(cards[0].read_text(encoding="utf-8"))
    except (OSError, CardError) as exc:
        raise ConfigError(f"{cards[0]}: {exc}") from None
    identity = directory.open_keystore(read_passphrase(passphrase_file, confirm=False))
    store = open_store(directory, config)
    shown = _Progress()
    try:
        counts = export_bundle(
            store, identity, ours, peer, out, time.time_ns(), directory.path / "attachments",
            since_ns, until_ns, pdf, recordings=directory.path / "recordings",
            clock_fault_ns=config.console.clock_fault_s * 1_000_000_000,
            progress=shown.tell if shown.live else None,
        )  # fmt: skip
    finally:
        shown.clear()
        store.close()
    console.print(
        f"Wrote {out}: {counts['envelopes']} envelopes, {counts['receipts']} receipt(s), "
        f"{counts['checkpoints']} checkpoints, {counts['annotations']} annotations, "
        f"{counts['held']} Held statements, {counts['files']} files, "
        f"{counts['recordings']} call recordings, both cards; "
        "the manifest signed by this station."
    )
    if counts["missing_recordings"]:
        _warn_missing(out, directory.path / "recordings")
    if counts["envelopes"] == 0:
        what = "in that time range" if since_ns is not None or until_ns is not None else "yet"
        err_console.print(
            f"[bold yellow]warning:[/] the bundle is empty: this station holds no message of "
            f"the link {what}, so it proves nothing but the two cards."
        )


class _Progress:
    """What the export is writing, on one line of standard error rewritten in place while it
    runs, when that is a terminal (a log gets the closing summary only)."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.shown = False

    def tell(self, member: str, envelopes: int) -> None:
        sys.stderr.write(f"\r\x1b[Kexporting: {member} ({envelopes:,} envelopes so far)")
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _warn_missing(out: Path, recordings: Path) -> None:
    """Say which recordings this station's call records name that the bundle lacks: the manifest
    lists them, and a verifier reports them, but the person exporting should know now."""
    with zipfile.ZipFile(out) as bundle:
        missing: dict[str, str] = json.loads(bundle.read("manifest.json"))["missing_recordings"]
    why = {"absent": f"not in {recordings}", "altered": "its bytes differ from the call record"}
    console.print(
        f"[bold red]{len(missing)} call recording(s) are NOT in the bundle[/] "
        "(the manifest lists them as missing):"
    )
    for name, reason in missing.items():
        console.print(f"  {name}: {why.get(reason, reason)}", markup=False)


AGREEMENT = {
    "agreed": "both stations' newest checkpoints agree",
    "differ": "NOT SHOWN: the stations' newest checkpoints differ",
    "unknown": "not shown: a station's checkpoint is missing from the bundle",
}


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
        "annotations": result.annotations,
        "certified": result.certified,
        "memcons": result.memcons,
        "memcons_certified": result.memcons_certified,
        "withdrawn": result.withdrawn,
        "held": result.held,
        "files": result.files,
        "calls": result.calls,
        "recordings": result.recordings,
        "missing_recordings": result.missing_recordings,
        "exported_by": result.exported_by,
        "ranged": result.ranged,
        "heads": {
            result.stations[d]: [[h.seq, h.hash.hex()] for h in result.heads[d]] for d in (0, 1)
        },
        "agreed": result.agreed,
        "agreement": result.agreement,
    }
    if as_json:
        print(json.dumps(summary))
        return

    # Station names and recording names come from the bundle: printed as text, never as markup,
    # with nothing invisible (textsafety).
    def say(*parts: str | Text) -> None:
        console.print(Text.assemble(*parts))

    stations = [peer(result.stations[0]), peer(result.stations[1])]
    exporter = peer(result.exported_by)
    say(f"Bundle {bundle} verifies.")
    say(f"  link        {summary['link_id']}")
    say("  stations    ", stations[0], " and ", stations[1])
    say(
        f"  held        {result.envelopes} envelopes, every signature and chain link checked; "
        f"{result.receipts} receipt(s), {result.checkpoints} checkpoints"
    )
    say(
        f"  records     {result.annotations} annotations ({result.certified} translations "
        f"certified, {result.withdrawn} withdrawn), {result.held} Held statements, "
        f"{result.files} files, each hash checked"
    )
    say(
        f"  calls       {result.calls} call records; {result.recordings} recordings of ",
        exporter,
        "'s, each checked against its record; "
        f"{result.memcons_certified} with a certified record of conversation",
    )
    for name, reason in result.missing_recordings.items():
        say("  MISSING     recording ", peer(name), " (", peer(reason), ", as the exporter says)")
    say(
        "  exported by ",
        exporter,
        ", who signed the manifest and every member's hash"
        + ("; a time range: each lane a checked piece of its chain" if result.ranged else ""),
    )
    for d in (0, 1):
        lanes = ", ".join(f"{Lane(lane).name} {h.seq}" for lane, h in enumerate(result.heads[d]))
        say("  from ", stations[d], " " * max(1, 7 - len(stations[d])), lanes)
    say(f"  agreement   {AGREEMENT[result.agreement]}")
