"""`hotline serve`: run the station process."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from hotline.cli.common import DATA_DIR_OPTION, PASSPHRASE_FILE_OPTION, data_dir, read_passphrase
from hotline.station.runtime import serve as run_station


def serve(
    data: Path | None = DATA_DIR_OPTION,
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every session event."),
) -> None:
    """Run the station: its links, paths and service API, until SIGTERM or Ctrl-C."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    directory = data_dir(data)
    directory.config()  # a clear error about the directory before asking for a passphrase
    identity = directory.open_keystore(read_passphrase(passphrase_file, confirm=False))
    run_station(directory.path, identity)
