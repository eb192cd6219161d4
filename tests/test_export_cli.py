"""`hotline export` says what it is doing and what it wrote (issue 15, item 20): on a terminal, the
member it is writing and the envelopes so far, on one line of standard error rewritten in place
(nothing of it in a log); and a warning when the bundle holds no message at all."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from hotline.station.launch import StationProcess, make_pair
from tests.consoledriver import wait_up


def _export(station: StationProcess, out: Path, *, terminal: bool) -> tuple[int, str, str]:
    """(exit status, standard output, standard error) of `hotline export`; standard error a
    terminal of its own when `terminal`."""
    command = [sys.executable, "-m", "hotline", "export", "--data-dir", str(station.data.path),
               "--out", str(out), "--passphrase-file", str(station.passphrase_file)]  # fmt: skip
    if not terminal:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        return done.returncode, done.stdout, done.stderr
    controller, end = pty.openpty()
    try:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=end, text=True, check=False, timeout=120
        )
        os.close(end)
        said = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the other end is closed: all is read
                break
            if not chunk:
                break
            said += chunk
    finally:
        os.close(controller)
    return done.returncode, done.stdout, said.decode()


def test_an_empty_bundle_is_written_with_a_warning(tmp_path: Path) -> None:
    london, _ = make_pair(tmp_path)  # never started: no message, no link test
    code, out, err = _export(london, tmp_path / "empty.hotline", terminal=False)
    assert code == 0, err
    assert "Wrote " in out
    assert "0 envelopes" in out
    said = " ".join(err.split())
    assert "warning: the bundle is empty: this station holds no message of the link yet" in said
    assert "exporting:" not in err, "no progress line in a log"


def test_export_shows_its_progress_on_a_terminal(tmp_path: Path) -> None:
    london, moscow = make_pair(tmp_path)
    for station in (london, moscow):
        station.start()
    try:
        wait_up(london)
        london.call("POST", "/api/v1/links/moscow/messages", {"text": "for the record"})
    finally:
        for station in (london, moscow):
            station.close()
    code, out, err = _export(london, tmp_path / "live.hotline", terminal=True)
    assert code == 0, err
    for member in ("envelopes.jsonl", "annotations.jsonl", "transcript.html"):
        assert f"\r\x1b[Kexporting: {member} (" in err, err
    assert "envelopes so far)" in err
    assert err.endswith("\r\x1b[K"), "the line is wiped before the summary"
    assert "warning" not in err, "a bundle with messages is not empty"
    assert "Wrote " in out
    code, _out, err = _export(london, tmp_path / "logged.hotline", terminal=False)
    assert code == 0
    assert "exporting:" not in err
