"""What a copy of the data directory gives away (issue 13, item 16): a station's directory and all
it keeps there are its owner's alone whatever the modes were before, and the operators' TOTP
secrets are sealed in the store to a key derived from the keystore, older plain ones included."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from hotline.crypto.atrest import SEALED_PREFIX, open_sealed, seal, totp_key
from hotline.crypto.identity import StationIdentity
from hotline.crypto.keystore import KdfParams
from hotline.errors import ConfigError
from hotline.station.datadir import DataDir
from hotline.station.runtime import Station, open_store
from hotline.store.people import Operator
from hotline.store.sqlite import SqliteStore

PASSPHRASE = b"a long enough passphrase"
CHEAP = KdfParams(memory_kib=64, iterations=1, lanes=1)  # the directory is under test, not Argon2
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _station(tmp_path: Path) -> tuple[DataDir, StationIdentity]:
    data = DataDir(tmp_path / "london")
    data.init("London", PASSPHRASE, ["127.0.0.1:7001"], kdf=CHEAP, console="")
    return data, data.open_keystore(PASSPHRASE)


async def _open_and_close(data: DataDir, identity: StationIdentity) -> Station:
    station = Station(data, identity)
    await station.open()
    station.close()
    return station


def _bytes_of_the_store(data: DataDir) -> bytes:
    return b"".join(p.read_bytes() for p in data.path.glob("store.db*"))


def test_a_start_makes_the_directory_and_all_it_keeps_private_whatever_they_were(
    tmp_path: Path,
) -> None:
    data, identity = _station(tmp_path)
    asyncio.run(_open_and_close(data, identity))  # the store, the attachments' directories
    received = data.path / "attachments" / "a-received-file"
    received.write_bytes(b"a map")
    outside = tmp_path / "elsewhere"
    outside.write_text("not the station's")
    (data.path / "attachments" / "link").symlink_to(outside)
    loose = [p for p in data.path.rglob("*") if not p.is_symlink()] + [data.path]
    for path in loose:
        path.chmod(0o755 if path.is_dir() else 0o644)
    outside.chmod(0o644)

    asyncio.run(_open_and_close(data, identity))

    assert _mode(data.path) == 0o700
    assert {p.name for p in data.path.iterdir()} >= {"store.db", "station.toml", "keystore.hotline"}
    for path in data.path.rglob("*"):
        if not path.is_symlink():
            assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert _mode(outside) == 0o644, "a link out of the directory is not followed"


def test_a_path_that_cannot_be_made_private_is_a_clear_error(tmp_path: Path) -> None:
    """The start stops on it rather than run with its secrets open to others."""
    data, _ = _station(tmp_path)
    data.config_file.chmod(0o644)
    os.chmod(data.path, 0o755)

    def refused(path: Path, mode: int, **_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "chmod", refused)
        with pytest.raises(ConfigError, match=r"cannot make .* private"):
            data.secure()


def test_totp_secrets_added_before_the_first_start_are_sealed_and_the_station_opens_them(
    tmp_path: Path,
) -> None:
    """`hotline operator add` on a station that never ran: the key `init` published seals it."""
    data, identity = _station(tmp_path)
    tool = open_store(data, data.config())
    tool.add_operator(Operator("olga", "operator", "hash", SECRET, "en", False, 0, 0, 0, 1))
    tool.close()
    assert SECRET.encode() not in _bytes_of_the_store(data)
    assert _mode(data.store_file) == 0o600

    station = asyncio.run(_open_and_close(data, identity))
    reopened = SqliteStore(data.store_file)
    private, public = totp_key(station.identity)
    reopened.use_totp_key(public, private)
    olga = reopened.operator("olga")
    reopened.close()
    assert olga is not None
    assert olga.totp_secret == SECRET


def test_plain_totp_secrets_from_before_are_sealed_at_start_and_leave_no_trace(
    tmp_path: Path,
) -> None:
    data, identity = _station(tmp_path)
    data.totp_key_file.unlink()  # a station made before secrets were sealed
    before = open_store(data, data.config())
    before.add_operator(Operator("olga", "operator", "hash", SECRET, "en", False, 0, 0, 0, 1))
    before.close()
    assert SECRET.encode() in _bytes_of_the_store(data), "the test starts from a plain secret"

    async def look_while_it_runs() -> bytes:
        station = Station(data, identity)
        await station.open()
        try:
            return _bytes_of_the_store(data)
        finally:
            station.close()

    assert SECRET.encode() not in asyncio.run(look_while_it_runs()), "nor in old pages or the log"
    assert SECRET.encode() not in _bytes_of_the_store(data)
    assert data.totp_public_key() == totp_key(identity)[1]
    with contextlib.closing(sqlite3.connect(data.store_file)) as db:
        (stored,) = db.execute("SELECT totp_secret FROM operators").fetchone()
    assert stored.startswith(SEALED_PREFIX)
    private, _ = totp_key(identity)
    assert open_sealed(private, stored, b"hotline totp secret\0olga") == SECRET


def test_a_sealed_text_opens_only_with_its_key_and_its_context(
    make_identity: Callable[[], StationIdentity],
) -> None:
    ours, theirs = make_identity(), make_identity()
    private, public = totp_key(ours)
    sealed = seal(public, SECRET, b"olga", os.urandom(32))
    assert sealed.startswith(SEALED_PREFIX)
    assert seal(public, SECRET, b"olga", os.urandom(32)) != sealed, "fresh each time"
    assert open_sealed(private, sealed, b"olga") == SECRET
    assert totp_key(ours) == (private, public), "derived again the same from the keystore"
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    for key, text, context in (
        (totp_key(theirs)[0], sealed, b"olga"),
        (private, sealed, b"ivan"),
        (private, flipped, b"olga"),
        (private, sealed[:40], b"olga"),
        (private, SECRET, b"olga"),
        (private, SEALED_PREFIX + "!!", b"olga"),
    ):
        with pytest.raises(ValueError):
            open_sealed(key, text, context)
