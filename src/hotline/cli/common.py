"""What several commands share: the data-directory option, the passphrase, the consoles, and how
a string from outside is printed."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from hotline.errors import ConfigError
from hotline.protocol.textsafety import pieces
from hotline.station.datadir import DataDir

# No emoji codes: a fingerprint's ":AB:" (or ":ID:", ":CL:") is printed as those characters, never
# as the emoji Rich would put in its place (an operator compares fingerprints by eye).
console = Console(highlight=False, soft_wrap=True, emoji=False)

err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

PASSPHRASE_ENV = "HOTLINE_PASSPHRASE"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hotline"


DATA_DIR_OPTION = typer.Option(
    None,
    "--data-dir",
    "-d",
    envvar="HOTLINE_DATA_DIR",
    help="The station's data directory [default: $XDG_DATA_HOME/hotline].",
    show_default=False,
)
PASSPHRASE_FILE_OPTION = typer.Option(
    None,
    "--passphrase-file",
    help=f"Read the keystore passphrase from this file (else ${PASSPHRASE_ENV}, else a prompt).",
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")


_STYLES = {"text": "", "mark": "reverse", "mixed": "underline", "note": "reverse"}


def peer(text: object) -> Text:
    """A string from outside (the peer, a card file, a bundle) as the terminal is to show it
    (issue 13, item 5): a Text, so Rich reads no markup and no emoji code in it; every invisible
    character (an escape or a bidi control among them) shown as its mark and every word that
    mixes scripts marked, as the console and the transcripts show them (textsafety)."""
    out = Text()
    for piece in pieces(str(text)):
        out.append(piece.text, style=_STYLES[piece.kind])
    return out


def data_dir(path: Path | None) -> DataDir:
    return DataDir(path if path is not None else default_data_dir())


def cli_actor() -> str:
    """Who is acting, for the audit log: the station host's user, as the CLI knows them."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container): say so
        return "cli:?"


def match_link(names: list[str], given: str | None) -> str:
    """The link a command means: the one named by --link, whatever its case, or the only one.

    Raises:
        ConfigError: no such link, or several and none named.
    """
    has = f"this station has: {', '.join(names) or 'no link yet'}"
    if given is None:
        if len(names) == 1:
            return names[0]
        raise ConfigError(f"say which link with --link ({has})")
    for name in names:
        if name.casefold() == given.casefold():
            return name
    raise ConfigError(f"no link named {given!r} ({has})")


def read_passphrase(passphrase_file: Path | None, *, confirm: bool) -> bytes:
    """The passphrase from a file, the environment, or a prompt, in that order, as UTF-8.

    A file is UTF-8 text, and every `\r` and `\n` at its end is removed (docs/protocol.md §8):
    what an editor, `echo` or Windows line ends add, and what no prompt can give. Nothing else
    is touched, so a passphrase may begin or end with spaces. The environment's and the prompt's
    are taken as they are.
    """
    if passphrase_file is not None:
        try:  # bytes, decoded: text mode would turn a `\r` inside the passphrase into `\n`
            text = passphrase_file.read_bytes().decode("utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read passphrase file {passphrase_file}: {exc.strerror}"
            ) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"passphrase file {passphrase_file} is not UTF-8 text (byte {exc.start})"
            ) from None
        return text.rstrip("\r\n").encode("utf-8")
    if PASSPHRASE_ENV in os.environ:
        return os.environ[PASSPHRASE_ENV].encode("utf-8")
    if not sys.stdin.isatty():
        raise ConfigError(
            f"no passphrase: give --passphrase-file, set {PASSPHRASE_ENV}, or run in a terminal"
        )
    text = typer.prompt("Keystore passphrase", hide_input=True, confirmation_prompt=confirm)
    return str(text).encode("utf-8")
