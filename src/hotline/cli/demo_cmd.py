"""`hotline demo`: two stations, London and Moscow, as real processes on loopback, paired, each
with two paths; they exchange a greeting and a test message in both languages, and run until
Ctrl-C."""

from __future__ import annotations

import signal
import tempfile
import threading
import time
from pathlib import Path

import typer

from hotline.cli.common import console
from hotline.crypto.identity import format_fingerprint, short_authentication_string
from hotline.errors import ConfigError
from hotline.station.launch import StationProcess, make_pair

GREETINGS = (
    ("London", "moscow", "en", "principal", "Moscow, this is London. Link test: all paths up."),
    ("Moscow", "london", "ru", "principal", "Лондон, говорит Москва. Связь установлена."),
)
# The hourly test message of real hotlines uses every letter of both alphabets.
TEST_TEXT = (
    "THE QUICK BROWN FOX JUMPED OVER THE LAZY DOG'S BACK 1234567890 / "
    "СЪЕШЬ ЖЕ ЕЩЁ ЭТИХ МЯГКИХ ФРАНЦУЗСКИХ БУЛОК, ДА ВЫПЕЙ ЧАЮ 1234567890"
)


def demo(
    directory: Path | None = typer.Option(
        None, "--dir", help="Where to create the two stations [default: a new temporary directory]."
    ),
    stay: bool = typer.Option(True, "--stay/--no-stay", help="Keep running until Ctrl-C."),
) -> None:
    """Start two paired stations, London and Moscow, and let them talk."""
    if directory is not None and directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} is not empty; give a new directory for the demo")
    root = directory or Path(tempfile.mkdtemp(prefix="hotline-demo-"))
    london, moscow = make_pair(root)
    stations = {"London": london, "Moscow": moscow}
    try:
        _introduce(root, london, moscow)
        for station in stations.values():
            station.start()
        _wait_until_up(london)
        _exchange(stations)
        if stay:
            stop = threading.Event()
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            console.print("\nRunning. Press Ctrl-C to stop both stations.")
            stop.wait()
    finally:
        for station in stations.values():
            station.close()
        console.print("Both stations stopped cleanly.")


def _introduce(root: Path, london: StationProcess, moscow: StationProcess) -> None:
    console.print(f"[bold]Hotline demo[/bold] in {root}\n")
    for station in (london, moscow):
        card, config = station.data.card(), station.data.config()
        console.print(f"[bold]{station.name}[/bold]  {format_fingerprint(card.fingerprint)}")
        console.print(f"  paths    {', '.join(config.station.listen)}")
        console.print(
            f"  API      http://{config.api.listen}  (token in {station.data.token_file})"
        )
        console.print(f"  try      hotline status --data-dir {station.data.path}")
    sas = short_authentication_string(london.data.card().identity, moscow.data.card().identity)
    console.print(f"\nPaired by their cards; both operators read aloud: [bold]{sas}[/bold]")
    console.print("The console (the web page for operators) comes with the next release.\n")


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
        stations[sender].call(
            "POST",
            f"/api/v1/links/{link}/messages",
            {"text": TEST_TEXT, "type": "test", "language": language},
        )
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
                {"text": "Received" if message["language"] == "en" else "Принято"},
            )
            console.print(
                f"{name} received and acknowledged ({message['type']}): {message['text']}"
            )
    time.sleep(0.5)
    outbox = stations["London"].call("GET", "/api/v1/links/moscow/outbox")
    states = [m["state"] for m in outbox if m["type"] != "acknowledgement"]
    console.print(f"\nLondon's messages, as Moscow has them: {', '.join(states)}")
