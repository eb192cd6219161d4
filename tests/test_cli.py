"""The `hotline` command, run as a real process: init, card, fingerprint, demo, and its errors."""

from __future__ import annotations

import io
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from hotline.cli import client, common
from hotline.cli.common import PASSPHRASE_ENV, read_passphrase
from hotline.console.auth import password_matches
from hotline.crypto.card import parse_card
from hotline.errors import ConfigError, KeystoreError
from hotline.protocol.envelope import MessageType, decode_envelope
from hotline.station.datadir import DataDir
from hotline.station.launch import StationProcess
from hotline.station.runtime import open_store
from hotline.station.tls import expires_ns, fingerprint, make_self_signed

PASSPHRASE = "a long enough passphrase"


def hotline(
    *args: str, env: dict[str, str] | None = None, preexec: Callable[[], object] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args],
        capture_output=True,
        text=True,
        env=full_env,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
        preexec_fn=preexec,
    )


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase"
    path.write_text(PASSPHRASE + "\n")
    return path


def init(data: Path, passphrase_file: Path, name: str = "London", *listen: str) -> str:
    args = ["init", "-d", str(data), "--name", name, "--passphrase-file", str(passphrase_file)]
    for path in listen:
        args += ["--listen", path]
    done = hotline(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_init_creates_a_station_that_opens_with_its_passphrase(
    tmp_path: Path, passphrase_file: Path
) -> None:
    data = tmp_path / "london"
    out = init(data, passphrase_file, "London", "127.0.0.1:7001", "[::1]:7002")
    assert "Created station 'London'" in out
    assert sorted(snapshot(data)) == [
        "card.hotline", "keystore.hotline", "station.toml", "totp-seal.pub"
    ]  # fmt: skip
    assert {p.stat().st_mode & 0o777 for p in data.iterdir()} == {0o600}
    assert data.stat().st_mode & 0o777 == 0o700
    station = DataDir(data)
    assert station.config().station.listen == ["127.0.0.1:7001", "[::1]:7002"]
    identity = station.open_keystore(PASSPHRASE.encode())
    assert identity.public == station.card().identity
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        station.open_keystore(b"not the passphrase")


def test_init_makes_a_directory_that_existed_private_and_says_so(
    tmp_path: Path, passphrase_file: Path
) -> None:
    """Whatever its mode was, the station's directory becomes its owner's alone, and an
    operator added before the first start has a sealed TOTP secret (issue 13, item 16)."""
    data = tmp_path / "london"
    data.mkdir()
    data.chmod(0o755)
    out = init(data, passphrase_file)
    assert f"Made private (it was open to others): {data}: 0755 -> 0700" in out
    assert data.stat().st_mode & 0o777 == 0o700
    added = hotline("operator", "add", "olga", "--role", "operator", "-d", str(data))
    assert added.returncode == 0, added.stderr
    assert "enrolment code" in added.stdout, "the person chooses their own credentials"
    stored = b"".join(p.read_bytes() for p in data.glob("store.db*"))
    assert b"hotline-sealed-1:" in stored, "the (unknown) TOTP secret it was made with is sealed"
    assert {p.stat().st_mode & 0o777 for p in data.iterdir()} == {0o600}


def test_init_reads_the_passphrase_from_the_environment(tmp_path: Path) -> None:
    done = hotline(
        "init", "-d", str(tmp_path / "s"), "-n", "Moscow", env={"HOTLINE_PASSPHRASE": PASSPHRASE}
    )
    assert done.returncode == 0, done.stderr
    DataDir(tmp_path / "s").open_keystore(PASSPHRASE.encode())


def test_a_passphrase_file_loses_every_line_end_at_its_end_and_nothing_else(
    tmp_path: Path,
) -> None:
    """docs/operations.md and protocol.md §8 say the same (issue 13, item 21): a station made
    with the passphrase as typed opens from a file holding it followed by any line ends, and not
    from one with a space after it."""
    data = tmp_path / "london"
    done = hotline("init", "-d", str(data), "-n", "London", env={PASSPHRASE_ENV: PASSPHRASE})
    assert done.returncode == 0, done.stderr
    path = tmp_path / "passphrase"
    for ending in ("", "\n", "\r\n", "\n\n", "\r\n\r\n\n\r"):
        path.write_bytes((PASSPHRASE + ending).encode())
        assert read_passphrase(path, confirm=False) == PASSPHRASE.encode(), repr(ending)
    station = DataDir(data)
    assert station.open_keystore(read_passphrase(path, confirm=False)).public == (
        station.card().identity
    )
    for other in (PASSPHRASE + " \n", "\n" + PASSPHRASE):
        path.write_bytes(other.encode())
        assert read_passphrase(path, confirm=False) == other.rstrip("\n").encode()
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        station.open_keystore(read_passphrase(path, confirm=False))


def test_a_passphrase_file_that_is_not_utf8_is_refused_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "passphrase"
    path.write_bytes(b"a long enough passphrase \xff\xfe\n")
    done = hotline(
        "init", "-d", str(tmp_path / "s"), "-n", "London", "--passphrase-file", str(path)
    )
    assert done.returncode == 2, done.stderr
    assert f"passphrase file {path} is not UTF-8 text (byte 25)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "s" / "keystore.hotline").exists()


def test_init_without_any_passphrase_source_says_how_to_give_one(tmp_path: Path) -> None:
    done = hotline("init", "-d", str(tmp_path / "s"), "-n", "London")
    assert done.returncode == 2
    assert "no passphrase: give --passphrase-file, set HOTLINE_PASSPHRASE" in done.stderr
    assert not (tmp_path / "s").exists()


def test_init_refuses_to_overwrite_a_station(tmp_path: Path, passphrase_file: Path) -> None:
    data = tmp_path / "london"
    init(data, passphrase_file)
    before = snapshot(data)
    done = hotline(
        "init", "-d", str(data), "-n", "Other", "--passphrase-file", str(passphrase_file)
    )
    assert done.returncode == 2
    assert "already holds a station" in done.stderr
    assert snapshot(data) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", ""], "a station name is 1 to 64 printable characters"),
        (["-n", "London", "--listen", "nowhere"], "a path is host:port"),
        (["-n", "London", "--listen", "127.0.0.1:0"], "a path is host:port"),
    ],
)
def test_init_rejects_bad_values(
    tmp_path: Path, passphrase_file: Path, args: list[str], message: str
) -> None:
    done = hotline(
        "init", "-d", str(tmp_path / "s"), "--passphrase-file", str(passphrase_file), *args
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "s").exists()


def test_init_rejects_a_short_passphrase(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    done = hotline(
        "init", "-d", str(tmp_path / "s"), "-n", "London", "--passphrase-file", str(short)
    )
    assert done.returncode == 2
    assert "at least 10 characters" in done.stderr


def test_unknown_argument_is_a_usage_error(tmp_path: Path) -> None:
    done = hotline("card", "--bogus")
    assert done.returncode == 2
    assert "No such option: --bogus" in done.stderr
    done = hotline("launch")
    assert done.returncode == 2
    assert "No such command" in done.stderr


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))


def test_a_failing_disk_leaves_no_half_written_station(
    tmp_path: Path, passphrase_file: Path
) -> None:
    """The keystore fits, the card (over 1000 bytes) does not: the error is clear, nothing is left
    behind, and once the disk has room again the same command succeeds."""
    data = tmp_path / "s"
    done = hotline(
        "init",
        "-d",
        str(data),
        "-n",
        "London",
        "--passphrase-file",
        str(passphrase_file),
        preexec=_limit_file_size,
    )
    assert done.returncode == 2
    assert "cannot write" in done.stderr
    assert "File too large" in done.stderr
    assert list(data.iterdir()) == []
    with pytest.raises(ConfigError, match="no station"):
        DataDir(data).config()
    init(data, passphrase_file)
    assert DataDir(data).card().body.name == "London"


def test_tls_renew_makes_a_new_certificate_for_the_console_before_the_old_one_ends(
    tmp_path: Path, passphrase_file: Path
) -> None:
    """The answer to the 30-day alarm (issue 13, item 17)."""
    plain = tmp_path / "plain"
    init(plain, passphrase_file)
    refused = hotline("tls", "renew", "-d", str(plain))
    assert refused.returncode == 2
    assert "not served over TLS" in refused.stderr

    data = tmp_path / "paris"
    args = ["init", "-d", str(data), "-n", "Paris", "--console", "192.0.2.10:8999"]
    assert hotline(*args, "--passphrase-file", str(passphrase_file)).returncode == 0
    cert, key = DataDir(data).console_cert_file, DataDir(data).console_key_file
    make_self_signed("Paris", "192.0.2.10", cert, key, days=20)  # 20 days left: the alarm is up
    old_end, old_print = expires_ns(cert), fingerprint(cert)
    renewed = hotline("tls", "renew", "-d", str(data))
    assert renewed.returncode == 0, renewed.stderr
    new_print = fingerprint(cert)
    assert new_print != old_print
    assert new_print in renewed.stdout
    assert expires_ns(cert) - old_end > 700 * 86_400 * 10**9
    assert key.stat().st_mode & 0o777 == 0o600
    assert "Restart the station" in renewed.stdout


def test_card_prints_exports_and_speaks_json(tmp_path: Path, passphrase_file: Path) -> None:
    data = tmp_path / "london"
    init(data, passphrase_file, "London", "127.0.0.1:7001")
    shown = hotline("card", "-d", str(data))
    assert shown.returncode == 0
    assert "-----BEGIN HOTLINE STATION CARD-----" in shown.stdout
    assert parse_card(shown.stdout).body.name == "London"
    exported = tmp_path / "london.card"
    assert hotline("card", "-d", str(data), "--export", str(exported)).returncode == 0
    assert parse_card(exported.read_text()).body_bytes == DataDir(data).card().body_bytes
    as_json = json.loads(hotline("card", "-d", str(data), "--json").stdout)
    assert as_json["name"] == "London"
    assert as_json["paths"] == ["127.0.0.1:7001"]
    assert as_json["fingerprint"] == DataDir(data).card().fingerprint.hex()


def test_fingerprint_shows_both_cards_and_leaves_the_string_to_the_ceremony(
    tmp_path: Path, passphrase_file: Path
) -> None:
    london, moscow = tmp_path / "london", tmp_path / "moscow"
    init(london, passphrase_file, "London")
    init(moscow, passphrase_file, "Moscow")
    ours = json.loads(hotline("fingerprint", "-d", str(london), "--json").stdout)
    assert ours["fingerprint"] == DataDir(london).card().fingerprint.hex()
    at_london = json.loads(
        hotline(
            "fingerprint", "-d", str(london), "--peer", str(moscow / "card.hotline"), "--json"
        ).stdout
    )
    at_moscow = json.loads(
        hotline(
            "fingerprint", "-d", str(moscow), "--peer", str(london / "card.hotline"), "--json"
        ).stdout
    )
    assert (
        at_london["peer_fingerprint"]
        == at_moscow["fingerprint"]
        == DataDir(moscow).card().fingerprint.hex()
    )
    assert at_moscow["peer_fingerprint"] == ours["fingerprint"]
    # A string of the two cards alone would be the weak one (protocol.md §6.1): none is shown.
    assert "sas" not in at_london
    human = hotline("fingerprint", "-d", str(london), "--peer", str(moscow / "card.hotline"))
    assert "Short authentication string" not in human.stdout
    assert "hotline pair --offer" in human.stdout


def test_a_tampered_peer_card_is_refused(tmp_path: Path, passphrase_file: Path) -> None:
    london = tmp_path / "london"
    init(london, passphrase_file, "London")
    card = (london / "card.hotline").read_text()
    tampered = tmp_path / "tampered.card"
    tampered.write_text(card.replace("Name: London", "Name: Moscow"))
    done = hotline("fingerprint", "-d", str(london), "--peer", str(tampered))
    assert done.returncode == 4
    assert "hotline: error: station card header names another station" in done.stderr


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[station]\nname = 'London'\ncolour = 'red'\n", "Object contains unknown field `colour`"),
        ("[station\n", "is not valid TOML"),
        ("[station]\nlisten = []\n", "missing required field `name`"),
        ("[station]\nname = 'London'\nlisten = ['x']\n", "a path is host:port"),
    ],
)
def test_bad_config_is_a_clear_error(
    tmp_path: Path, passphrase_file: Path, config: str, message: str
) -> None:
    data = tmp_path / "london"
    init(data, passphrase_file)
    (data / "station.toml").write_text(config)
    done = hotline("card", "-d", str(data))
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stderr.count("\n") == 1  # one line, no traceback


def test_a_station_toml_from_before_constant_bit_rates_keeps_its_calls_sounding_as_they_did(
    tmp_path: Path, passphrase_file: Path
) -> None:
    """`hotline init` wrote `bitrate = 48000` before calls went at a constant bit rate; at a
    constant rate that would sound worse (PESQ 3.71 against 4.10), so it is read as 64000. A
    file that says `constant_bitrate` chose its rate, and keeps it."""
    data = tmp_path / "london"
    init(data, passphrase_file)
    toml = (data / "station.toml").read_text()
    assert "constant_bitrate = true" in toml
    assert DataDir(data).config().calls.bitrate == 64000
    old = re.sub(r"constant_bitrate = true\n", "", toml).replace("64000", "48000")
    (data / "station.toml").write_text(old)
    calls = DataDir(data).config().calls
    assert (calls.bitrate, calls.constant_bitrate) == (64000, True)
    (data / "station.toml").write_text(old.replace("bitrate = 48000", "bitrate = 40000"))
    assert DataDir(data).config().calls.bitrate == 40000  # a rate chosen by hand
    (data / "station.toml").write_text(toml.replace("64000", "48000"))
    assert DataDir(data).config().calls.bitrate == 48000  # chosen knowing of constant rates


def test_missing_data_directory(tmp_path: Path) -> None:
    done = hotline("fingerprint", "-d", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "no station in" in done.stderr
    assert "create one with `hotline init`" in done.stderr


def test_keystore_of_another_station_is_refused(tmp_path: Path, passphrase_file: Path) -> None:
    london, moscow = tmp_path / "london", tmp_path / "moscow"
    init(london, passphrase_file, "London")
    init(moscow, passphrase_file, "Moscow")
    (london / "keystore.hotline").write_bytes((moscow / "keystore.hotline").read_bytes())
    with pytest.raises(KeystoreError, match="another identity than this station's card"):
        DataDir(london).open_keystore(PASSPHRASE.encode())


def test_demo_pairs_two_station_processes_that_talk(tmp_path: Path) -> None:
    done = hotline("demo", "--dir", str(tmp_path / "demo"), "--no-stay")
    assert done.returncode == 0, done.stderr
    assert "Moscow received and acknowledged (principal): Moscow, this is London" in done.stdout
    assert "London received and acknowledged (principal): Лондон, говорит Москва" in done.stdout
    assert "СЪЕШЬ ЖЕ ЕЩЁ ЭТИХ МЯГКИХ ФРАНЦУЗСКИХ БУЛОК" in done.stdout
    assert "London's messages, as Moscow has them: acknowledged, acknowledged" in done.stdout
    assert "Both stations stopped cleanly." in done.stdout
    assert DataDir(tmp_path / "demo" / "london").card().body.name == "London"
    assert {p.name for p in (tmp_path / "demo").iterdir()} >= {"london", "moscow"}
    # How to sign in: each person's password, and the file whose code `hotline totp` shows.
    olga = next(line.split() for line in done.stdout.splitlines() if line.split()[:1] == ["olga"])
    password, totp_file = olga[olga.index("password") + 1], Path(olga[-1])
    assert hotline("totp", str(totp_file)).stdout.strip().isdigit()
    london = DataDir(tmp_path / "demo" / "london")
    store = open_store(london, london.config())
    try:
        assert password_matches(store.operator("olga"), password), "enrolled with that password"
    finally:
        store.close()
    moscow = DataDir(tmp_path / "demo" / "moscow")
    store = open_store(moscow, moscow.config())
    try:  # London acknowledged Moscow's Russian greeting in Russian, and said so
        kind = int(MessageType.ACKNOWLEDGEMENT)
        rows = store._rows("SELECT envelope FROM inbox WHERE type = ?", (kind,))
        bodies = [decode_envelope(bytes(data), None).body for (data,) in rows]
        assert ("Принято", "ru") in {(body.text, body.language) for body in bodies}
    finally:
        store.close()


def _demo_people(stdout: str) -> dict[str, list[str]]:
    """The cast the demo printed, per console: each person's role."""
    cast: dict[str, list[str]] = {}
    station = ""
    for line in stdout.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("London", "Moscow") and "://" in words[1]:
            station = words[0]
        elif station and "password" in words and len(words) > 2:
            cast.setdefault(station, []).append(words[1])
    return cast


def test_the_demo_s_cast_can_exercise_every_rule_and_its_commands_run_as_printed(
    tmp_path: Path,
) -> None:
    """Issue 15, item 21: two supervisors (one releases what the other drafts), an auditor, an
    operator, a translator and an admin per console; the passphrase files and the keys named;
    the commands printed with the full path of `hotline`, so they run as they are; a directory
    given with --dir is left behind, and the demo says so."""
    root = tmp_path / "demo"
    done = hotline("demo", "--dir", str(root), "--no-stay")
    assert done.returncode == 0, done.stderr
    cast = _demo_people(done.stdout)
    for station in ("London", "Moscow"):
        assert sorted(cast[station]) == sorted(
            ["operator", "supervisor", "supervisor", "translator", "auditor", "admin"]
        ), cast
    full = str(Path(sys.executable).parent / "hotline")
    lines = done.stdout.splitlines()
    for name in ("london", "moscow"):
        passphrase = root / f"{name}.passphrase"
        keys = DataDir(root / name).keystore_file
        assert any(line.split()[-1:] == [str(passphrase)] for line in lines), "passphrase file"
        assert any(line.split()[-1:] == [str(keys)] for line in lines), "where the keys are"
        assert passphrase.exists()
        assert keys.exists()
    shown = [line.split("code: ", 1)[1] for line in lines if "code: " in line]
    assert len(shown) == 12
    assert all(command.startswith(f"{full} totp ") for command in shown), shown
    status = next(line.split("try", 1)[1].split() for line in lines if "status" in line)
    assert status[0] == full
    assert f"Left behind in {root}" in done.stdout
    assert "keys" in done.stdout.split(f"Left behind in {root}", 1)[1]
    totp = subprocess.run(  # the printed command, as a shell would run it
        shown[0].split(), capture_output=True, text=True, check=False, timeout=60
    )
    assert totp.stdout.strip().isdigit(), totp.stderr


def test_a_demo_in_a_directory_of_its_own_removes_it_unless_asked_to_keep_it() -> None:
    """Without --dir the demo makes a temporary directory, says its keys go with it, and removes
    it when it stops; with --keep it is left, and the demo says where."""
    gone = hotline("demo", "--no-stay")
    assert gone.returncode == 0, gone.stderr
    root = Path(gone.stdout.split("Hotline demo in ", 1)[1].split()[0])
    assert "removed when the demo stops" in gone.stdout
    assert f"Removed {root}" in gone.stdout
    assert not root.exists()
    kept = hotline("demo", "--no-stay", "--keep")
    assert kept.returncode == 0, kept.stderr
    root = Path(kept.stdout.split("Hotline demo in ", 1)[1].split()[0])
    try:
        assert f"Left behind in {root}" in kept.stdout
        assert (root / "london" / "keystore.hotline").exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_demo_runs_until_ctrl_c_and_stops_both_stations(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "hotline", "demo", "--dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert demo.stdout is not None
    lines = []
    for line in demo.stdout:
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    demo.send_signal(signal.SIGINT)
    rest, errors = demo.communicate(timeout=60)
    assert demo.returncode == 0, errors
    assert "Both stations stopped cleanly." in rest
    for name in ("london", "moscow"):
        log = (tmp_path / "demo" / f"{name}.log").read_text()
        assert "shutting down" in log


def test_demo_refuses_a_directory_in_use(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep me")
    done = hotline("demo", "--dir", str(tmp_path))
    assert done.returncode == 2
    assert "is not empty" in done.stderr
    assert (tmp_path / "x").read_text() == "keep me"


def test_version_and_help() -> None:
    assert hotline("--version").stdout.startswith("hotline 0.")
    help_text = hotline("--help").stdout
    for command in ("init", "card", "fingerprint", "demo"):
        assert command in help_text


def test_inbox_prints_the_peer_s_strings_as_text_never_as_markup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13, items 4 and 5: Rich markup from the peer (a hidden hyperlink, concealed text) is
    printed as the characters it is, and a bidi override is named, not obeyed."""
    text = "[link=https://e.x]ok[/link] [conceal]hid[/conceal] \u202e0030\u202c"
    row = {"lane": "FLASH", "seq": 1, "type": "principal", "language": "en",
           "received_ns": 1_741_944_723_000_000_000, "state": "received", "text": text}  # fmt: skip
    out = io.StringIO()
    terminal = Console(file=out, force_terminal=True, color_system="truecolor", width=200)
    monkeypatch.setattr(client, "console", terminal)
    monkeypatch.setattr(client, "_call", lambda *args, **kwargs: [row])
    monkeypatch.setattr(client, "_only_link", lambda data, link: link)
    client.inbox(link="moscow", limit=50, data=None, as_json=False)
    shown = out.getvalue()
    assert "[link=https://e.x]ok[/link]" in shown
    assert "[conceal]hid[/conceal]" in shown
    assert "\x1b]8;" not in shown  # no OSC 8 hyperlink
    assert "\x1b[8m" not in shown  # no concealed text
    assert "\u2039U+202E RLO\u203a" in shown  # (styled: reverse video)
    assert "\u202e" not in shown


def test_usage_errors_are_one_line_each_with_exit_status_2() -> None:
    """Issue 15, item 14: the parser's errors follow the one-line format, with the command."""
    for args, said in [
        (("send", "--bogus", "x"), "hotline: error: No such option: --bogus (see `hotline send"),
        (("export",), "hotline: error: Missing option '--out' / '-o' (see `hotline export"),
        (("ack", "FLASH", "x"), "hotline: error: Invalid value for 'seq'"),
        (("launch",), "hotline: error: No such command 'launch' (see `hotline --help`)"),
    ]:
        done = hotline(*args)
        assert done.returncode == 2, args
        assert done.stderr.startswith(said), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr  # one line, no usage block


def test_the_commands_that_talk_to_a_station_say_what_is_wrong_in_one_sentence(
    stations: tuple[StationProcess, StationProcess],
) -> None:
    """Issue 15, item 14: bad lanes, types and empty texts are refused before anything is sent,
    a link is named in any case, and a station's refusal is a sentence, not a dump."""
    london, _ = stations
    london.start()
    where = ("--data-dir", str(london.data.path))
    for args, said in [
        (("ack", "URGENT", "1"), "the lane is one of FLASH, IMMEDIATE, PRIORITY, ROUTINE, not"),
        (("send", "-t", "exercise", "hi"), "--type is one of principal, service, test, not"),
        (("send", ""), "the message is empty"),
        (("send", "--link", "paris", "hi"), "no link named 'paris' (this station has: moscow)"),
        (("send", "--lang", "x" * 40, "hi"), "--lang: language tag 'xxxxxxxx"),
        (("send", "--lang", "english", "hi"), "--lang: 'english' is not a BCP 47 language tag"),
        (("send", "--lang", "fr", "hi"), "the station refused: 'fr' is not a language of link"),
        (("ack", "FLASH", "99"), "the station refused: no message FLASH 99 in the inbox"),
    ]:
        done = hotline(*args, *where)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith(f"hotline: error: {said}"), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert "[{" not in done.stderr  # no validation dump
    sent = hotline("send", "--link", "MOSCOW", "-p", "FLASH", "in any case", *where)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("accepted: FLASH 1 to moscow")
    listed = hotline("outbox", "--link", "Moscow", "--json", *where)
    assert any(m["text"] == "in any case" for m in json.loads(listed.stdout))
    export = hotline("export", "--link", "paris", "--out", str(london.data.path / "x.zip"), *where)
    assert export.returncode == 2
    assert "no link named 'paris' (this station has: moscow)" in export.stderr


def test_our_own_words_are_printed_without_emoji_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fingerprint holding ":AB:" printed as it is, not with Rich's emoji in its place (the
    SHA-256 of a certificate or a card is compared by eye)."""
    out = io.StringIO()
    monkeypatch.setattr(common.console, "file", out)
    common.console.print("SHA-256  60:33:7B:AB:53:23:ID:5A:CL:65", markup=False)
    assert out.getvalue() == "SHA-256  60:33:7B:AB:53:23:ID:5A:CL:65\n"
