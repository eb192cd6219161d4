"""`hotline demo`: two stations, London and Moscow, as real processes on loopback, paired, each
with two paths and a console with six people (an operator, two supervisors, a translator, an
auditor and an admin: enough for every rule, the two-person release among them); they exchange a
greeting in each language and their link tests (every letter of both alphabets), and run until
Ctrl-C.

Where it leaves its keys: in a directory of its own making (no --dir), everything (the keystores,
their passphrase files, the TOTP secrets, the logs) is removed when the demo stops, unless
--keep (or the demo failed: its logs say why); a directory given with --dir is the user's, and
is left as it is, keys and all. Either way the demo says which, at the start and at the end."""

from __future__ import annotations

import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec
import typer

from hotline.cli.common import console
from hotline.console.auth import new_totp_secret
from hotline.console.operators import add_operator, complete_enrolment
from hotline.crypto.identity import format_fingerprint
from hotline.errors import ConfigError
from hotline.station.datadir import write_atomically
from hotline.station.launch import StationProcess, make_pair
from hotline.station.runtime import open_store

GREETINGS = (
    ("London", "moscow", "en", "principal", "Moscow, this is London. Link test: all paths up."),
    ("Moscow", "london", "ru", "principal", "Лондон, говорит Москва. Связь установлена."),
)
# Each console gets these people; their passwords are made fresh for each demo. Two supervisors,
# so that one can release what the other drafted (the two-person rule), and an auditor.
STAFF = {
    "London": [
        ("olga", "operator"),
        ("sam", "supervisor"),
        ("sue", "supervisor"),
        ("tom", "translator"),
        ("alan", "auditor"),
        ("ada", "admin"),
    ],
    "Moscow": [
        ("ivan", "operator"),
        ("nina", "supervisor"),
        ("pavel", "supervisor"),
        ("vera", "translator"),
        ("lidia", "auditor"),
        ("boris", "admin"),
    ],
}


def demo(
    directory: Path | None = typer.Option(
        None,
        "--dir",
        help="Where to create the two stations, kept after the demo [default: a new temporary "
        "directory, removed when the demo stops unless --keep].",
    ),
    stay: bool = typer.Option(True, "--stay/--no-stay", help="Keep running until Ctrl-C."),
    keep: bool = typer.Option(
        False, "--keep", help="Keep the temporary directory (keys, passphrases, logs) at the end."
    ),
) -> None:
    """Start two paired stations, London and Moscow, and let them talk."""
    if directory is not None and directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} is not empty; give a new directory for the demo")
    root = directory or Path(tempfile.mkdtemp(prefix="hotline-demo-"))
    remove = directory is None and not keep
    london, moscow = make_pair(root)
    stations = {"London": london, "Moscow": moscow}
    finished = False
    try:
        _introduce(root, london, moscow, remove)
        _staff(root, stations)
        for station in stations.values():
            station.start()
        _wait_until_up(london)
        _exchange(stations)
        if stay:
            stop = threading.Event()
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            _how_to_call(london, moscow)
            console.print("\nRunning. Press Ctrl-C to stop both stations.")
            stop.wait()
        finished = True
    finally:
        for station in stations.values():
            station.close()
        console.print("Both stations stopped cleanly.")
        if remove and finished:  # a demo that failed keeps its logs, to say why
            shutil.rmtree(root, ignore_errors=True)
            console.print(f"Removed {root}: the demo's keys, passphrases and logs are gone.")
        else:
            console.print(
                f"Left behind in {root}: the two stations' keys (sealed), their passphrase files, "
                f"the TOTP secrets and the logs. Remove them with: rm -r {root}",
                markup=False,
            )


def _hotline() -> str:
    """The `hotline` of this environment by its full path (a shell may not have it on PATH)."""
    beside = Path(sys.executable).parent / "hotline"
    return str(beside) if beside.exists() else f"{sys.executable} -m hotline"


def _how_to_call(london: StationProcess, moscow: StationProcess) -> None:
    hotline = _hotline()
    console.print("\n[bold]A call[/bold] (Moscow answers, London speaks a WAV file of yours):")
    console.print(
        f"  {hotline} call --data-dir {moscow.data.path} --answer --record-to heard.wav &",
        markup=False,
    )
    console.print(
        f"  {hotline} call --data-dir {london.data.path} -p FLASH --play speech.wav", markup=False
    )


def _introduce(root: Path, london: StationProcess, moscow: StationProcess, remove: bool) -> None:
    console.print(f"[bold]Hotline demo[/bold] in {root}\n")
    hotline = _hotline()
    for station in (london, moscow):
        card, config = station.data.card(), station.data.config()
        console.print(f"[bold]{station.name}[/bold]  {format_fingerprint(card.fingerprint)}")
        console.print(f"  paths      {', '.join(config.station.listen)}")
        console.print(
            f"  API        http://{config.api.listen}  (token in {station.data.token_file})",
            markup=False,
        )
        console.print(f"  keys       {station.data.keystore_file}", markup=False)
        console.print(f"  passphrase {station.passphrase_file}", markup=False)
        console.print(f"  try        {hotline} status --data-dir {station.data.path}", markup=False)
    sas = london.pairing_string
    console.print(f"\nPaired by their cards; both operators read aloud: [bold]{sas}[/bold]")
    if remove:
        console.print(
            "The keys and everything else here are removed when the demo stops (--keep, or "
            "--dir DIR, keeps them).",
            markup=False,
        )
    else:
        console.print(
            f"The keys and everything else are left in {root} when the demo stops.", markup=False
        )


def _staff(root: Path, stations: dict[str, StationProcess]) -> None:
    """Operators for each console, enrolled by the demo itself: you are all of them. Each gets
    an enrolment code as anyone does, and the demo uses it as each person would at the console's
    enrolment page; their TOTP secrets go in files in the demo directory (readable by you only),
    and `hotline totp FILE` shows a code, as an app would. The demo's consoles let a new account
    release at once (`new_account_hold_h = 0`): a real station holds it back a day."""
    console.print("\n[bold]Consoles[/bold] (sign in with name, password and the current code):")
    hotline = _hotline()
    for name, station in stations.items():
        _no_hold(station)
        console.print(f"  {name}  {station.console}")
        store = open_store(station.data, station.data.config())
        try:
            for person, role in STAFF[name]:
                password, secret = secrets.token_urlsafe(12), new_totp_secret()
                now = time.time_ns()
                made = add_operator(store, person, role, now, "demo", _LANGUAGE[name])
                complete_enrolment(store, person, made.code, password, secret, now)
                store.audit_person(person, "enrolled", "by the demo, which is every person", now)
                secret_file = root / f"{name.lower()}-{person}.totp"
                write_atomically(secret_file, secret.encode() + b"\n", mode=0o600)
                console.print(
                    f"    {person:<6} {role:<10} password {password}   "
                    f"code: {hotline} totp {secret_file}",
                    markup=False,
                )
        finally:
            store.close()
    console.print(
        "  (new accounts may release at once here; a real station holds them back "
        "[console] new_account_hold_h = 24 hours)\n",
        markup=False,
    )


def _no_hold(station: StationProcess) -> None:
    config = station.data.config()
    console_section = msgspec.structs.replace(config.console, new_account_hold_h=0)
    relaxed = msgspec.structs.replace(config, console=console_section)
    write_atomically(station.data.config_file, relaxed.to_toml().encode("utf-8"), mode=0o600)


_LANGUAGE = {"London": "en", "Moscow": "ru"}


def _wait_until_up(station: StationProcess) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        links = station.call("GET", "/api/v1/status")["links"]
        if links and links[0]["state"] == "UP":
            return
        time.sleep(0.1)
    raise ConfigError(
        "the two stations did not connect within 15 s; see the logs in the demo directory"
    )


def _exchange(stations: dict[str, StationProcess]) -> None:
    for sender, link, language, kind, text in GREETINGS:
        accepted = stations[sender].call(
            "POST",
            f"/api/v1/links/{link}/messages",
            {"text": text, "language": language, "type": kind},
        )
        console.print(f"{sender} sent {accepted['lane']} {accepted['seq']}: {text}")
    time.sleep(0.5)
    for name, station in stations.items():
        link = "moscow" if name == "London" else "london"
        for message in reversed(station.call("GET", f"/api/v1/links/{link}/inbox")):
            if message["type"] == "acknowledgement":
                console.print(
                    f"{name} sees its message {message['acknowledges']['lane']} "
                    f"{message['acknowledges']['seq']} acknowledged: {message['text']}"
                )
                continue
            station.call(
                "POST",
                f"/api/v1/links/{link}/inbox/{message['lane']}/{message['seq']}/ack",
                {"text": "Received", "language": "en"}
                if message["language"] == "en"
                else {"text": "Принято", "language": "ru"},
            )
            console.print(
                f"{name} received and acknowledged ({message['type']}): {message['text']}"
            )
    time.sleep(0.5)
    outbox = stations["London"].call("GET", "/api/v1/links/moscow/outbox")
    states = [m["state"] for m in outbox if m["type"] != "acknowledgement"]
    console.print(f"\nLondon's messages, as Moscow has them: {', '.join(states)}")
