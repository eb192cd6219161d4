"""`hotline init`: create a station (identity, sealed keystore, card, configuration)."""

from __future__ import annotations

from pathlib import Path

import typer

from hotline.cli.common import (
    DATA_DIR_OPTION,
    PASSPHRASE_FILE_OPTION,
    console,
    data_dir,
    read_passphrase,
)
from hotline.crypto.identity import format_fingerprint
from hotline.station.datadir import DEFAULT_API, DEFAULT_CONSOLE
from hotline.station.tls import fingerprint


def init(
    name: str = typer.Option(..., "--name", "-n", help="The station's name, e.g. London."),
    listen: list[str] = typer.Option(
        [], "--listen", "-l", help="host:port where the station listens; repeat for more paths."
    ),
    api: str = typer.Option(DEFAULT_API, "--api", help="host:port of the local service API."),
    console_address: str = typer.Option(
        DEFAULT_CONSOLE,
        "--console",
        help="host:port of the operators' console, on loopback ('' for none; another address "
        "needs a TLS certificate set in station.toml).",
    ),
    data: Path | None = DATA_DIR_OPTION,
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
) -> None:
    """Create a new station: its keys, sealed keystore, signed card and configuration."""
    directory = data_dir(data)
    passphrase = read_passphrase(passphrase_file, confirm=True)
    for line in directory.secure():  # a directory that existed: only its owner may enter it
        console.print(f"Made private (it was open to others): {line}", markup=False)
    card = directory.init(name, passphrase, listen, api=api, console=console_address)
    console.print(f"Created station {card.body.name!r} in {directory.path}")
    console.print(f"  fingerprint  {format_fingerprint(card.fingerprint)}")
    console.print(f"  card         {directory.card_file}")
    console.print(f"  keystore     {directory.keystore_file} (sealed with your passphrase)")
    settings = directory.config().console
    if settings.tls_cert:
        console.print(f"  console      https://{settings.listen} (a self-signed certificate:")
        console.print(f"               SHA-256 {fingerprint(Path(settings.tls_cert))})")
    elif settings.listen:
        console.print(f"  console      http://{settings.listen}")
