"""The `hotline` command: the Typer app, and the one place where errors become exit codes."""

from __future__ import annotations

import sys

import typer
from rich.text import Text

from hotline import __version__
from hotline.cli import (
    archive_cmd,
    call_cmd,
    card_cmd,
    client,
    demo_cmd,
    fingerprint_cmd,
    init_cmd,
    node_cmd,
    operator_cmd,
    pair_cmd,
    serve_cmd,
    tls_cmd,
)
from hotline.cli.common import err_console, peer
from hotline.errors import HotlineError, KeystoreError, LocalError, RemoteError

app = typer.Typer(
    name="hotline",
    help="Hotline: a secure, post-quantum, always-verified direct link between two organisations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("init")(init_cmd.init)
app.command("card")(card_cmd.card)
app.command("fingerprint")(fingerprint_cmd.fingerprint)
app.command("pair")(pair_cmd.pair)
app.command("serve")(serve_cmd.serve)
app.command("send")(client.send)
app.command("inbox")(client.inbox)
app.command("outbox")(client.outbox)
app.command("ack")(client.ack)
app.command("status")(client.status)
app.command("paths")(client.paths)
app.command("call")(call_cmd.call)
app.command("demo")(demo_cmd.demo)
app.add_typer(operator_cmd.app, name="operator")
app.add_typer(tls_cmd.app, name="tls")
app.add_typer(node_cmd.app, name="node")
app.command("totp")(operator_cmd.totp)
app.command("export")(archive_cmd.export)
app.command("verify")(archive_cmd.verify)

# Exit status by whose fault it was; 2 is also what the parser uses for a bad argument.
EXIT_CODES: list[tuple[type[HotlineError], int]] = [
    (LocalError, 2),
    (KeystoreError, 3),
    (RemoteError, 4),
    (HotlineError, 1),
]


def _version(value: bool) -> None:
    if value:
        print(f"hotline {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Hotline station tools."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. Every deliberate error is one line on stderr and the exit status of its kind
    (a bad argument, as the parser finds it, is 2); anything else is a bug and keeps its
    traceback."""
    try:
        code = app(args=argv, standalone_mode=False)
    except typer.TyperException as exc:  # the parser's: a bad argument, or help asked for
        message = exc.format_message().strip()
        if "\n" in message:  # the help, shown when no command is given
            exc.show()  # type: ignore[attr-defined]
            return int(getattr(exc, "exit_code", 2))
        names: list[str] = []
        ctx = getattr(exc, "ctx", None)
        while ctx is not None and ctx.parent is not None:  # up to the root, however invoked
            names.insert(0, ctx.info_name)
            ctx = ctx.parent
        where = " ".join(["hotline", *names])
        said = message.rstrip(".")
        err_console.print(f"hotline: error: {said} (see `{where} --help`)", markup=False)
        return 2
    except typer.Abort:  # Ctrl-C at a prompt
        err_console.print("hotline: error: interrupted", markup=False)
        return 130
    except HotlineError as exc:
        err_console.print(Text.assemble("hotline: error: ", peer(exc)))  # it may quote the peer
        return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
