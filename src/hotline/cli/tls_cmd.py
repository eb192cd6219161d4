"""`hotline tls renew`: a new self-signed certificate for the console, before the old one ends.

The station raises an alarm 30 days before the certificate it serves expires (tls.WARN_DAYS).
Renewing writes a new key and certificate for the same address, in the same files; the station
serves them from its next start, and the operators check the new fingerprint in their browsers
as they did the first. A certificate of the organisation's own (`tls_cert` outside the data
directory) is renewed where it was issued, not here."""

from __future__ import annotations

import datetime
from pathlib import Path

import typer

from hotline.cli.common import DATA_DIR_OPTION, console, data_dir
from hotline.errors import ConfigError
from hotline.station.tls import VALID_DAYS, expires_ns, make_self_signed

__all__ = ["app", "renew"]

app = typer.Typer(
    help="The console's TLS certificate (for a console served off loopback).",
    no_args_is_help=True,
)


@app.command("renew")
def renew(data: Path | None = DATA_DIR_OPTION) -> None:
    """Make a new self-signed certificate for the console's address (valid for two years)."""
    directory = data_dir(data)
    config = directory.config()
    settings = config.console
    if not (settings.listen and settings.tls_cert):
        raise ConfigError("this station's console is not served over TLS: nothing to renew")
    cert, key = Path(settings.tls_cert), Path(settings.tls_key)
    ours = (directory.console_cert_file.resolve(), directory.console_key_file.resolve())
    if (cert.resolve(), key.resolve()) != ours:
        raise ConfigError(
            f"tls_cert names a certificate of your own ({cert}): renew it where it was issued"
        )
    before = expires_ns(cert) if cert.exists() else None
    host = settings.listen.rpartition(":")[0].strip("[]")
    made = make_self_signed(config.station.name, host, cert, key, VALID_DAYS)
    console.print(f"Renewed the console's certificate for {host}", markup=False)
    if before is not None:
        console.print(f"  the old one   ends {_day(before)}")
    console.print(f"  the new one   ends {_day(expires_ns(cert))}")
    console.print(f"  SHA-256       {made}")
    console.print(
        "Restart the station to serve it; operators check this fingerprint in their browsers."
    )


def _day(ns: int) -> str:
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
