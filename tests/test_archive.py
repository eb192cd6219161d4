"""The archive: a bundle exported from a station that really talked, verified offline, and every
kind of tampering caught with the place it happened."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from pypdf import PdfReader

from hotline.archive.bundle import ArchiveError, export_bundle, verify_bundle
from hotline.crypto.card import SignedCard, make_card
from hotline.crypto.identity import StationIdentity
from hotline.crypto.session import link_id_for
from hotline.crypto.signed import decode_signed, encode_signed
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.callrecord import (
    CallRecord,
    MediaFigures,
    Participant,
    Party,
    Recording,
    encode_record,
)
from hotline.protocol.envelope import Envelope, Lane, MessageType, decode_envelope
from hotline.protocol.link import LinkCore
from hotline.protocol.state import Batch, LinkConfig, LinkState
from hotline.station.datadir import DataDir
from hotline.station.launch import StationProcess, make_pair
from hotline.station.links import load_links
from hotline.store.sqlite import SqliteStore
from tests.consoledriver import wait_up

LANES = ["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"]
MAP = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # not a real picture: bytes to carry


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    london, moscow = make_pair(root)
    for station in (london, moscow):
        station.start()
    try:
        wait_up(london)
        for i in range(24):
            london.call(
                "POST", "/api/v1/links/moscow/messages", {"text": f"m{i}", "lane": LANES[i % 4]}
            )
        sent = moscow.call(
            "POST", "/api/v1/links/london/messages", {"text": "ответ <b>&</b>", "language": "ru"}
        )
        deadline = time.monotonic() + 60
        while not all(
            s.call("GET", "/api/v1/status")["links"][0]["in_agreement"] for s in (london, moscow)
        ):
            assert time.monotonic() < deadline, "the stations did not agree"
            time.sleep(0.2)
        london.call("POST", f"/api/v1/links/moscow/inbox/ROUTINE/{sent['seq']}/ack", {})
        _files_both_ways(london, moscow)
    finally:
        for station in (london, moscow):
            station.close()
    _translated(london.data.path, london.passphrase_file, sent["seq"])
    _called(london.data.path, london.passphrase_file)
    out = root / "london-moscow.hotline"
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "export", "--data-dir", str(london.data.path),
         "--out", str(out), "--passphrase-file", str(london.passphrase_file)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (root / "export.out").write_text(done.stdout)
    return out


def _upload(station: StationProcess, data: bytes) -> str:
    token = {"Authorization": f"Bearer {station.data.api_token()}"}
    answer = httpx.post(f"{station.api}/api/v1/attachments", content=data, headers=token)
    sha256: str = answer.json()["sha256"]
    return sha256


def _files_both_ways(london: StationProcess, moscow: StationProcess) -> None:
    """A map each way, until each sender holds the receiver's signed Held statement."""
    for sender, peer, data in ((london, "moscow", MAP), (moscow, "london", b"%PDF-1.4 note")):
        files = [{"sha256": _upload(sender, data), "name": "map.png", "media_type": "image/png"}]
        body = {"text": "a file", "attachments": files}
        sent = sender.call("POST", f"/api/v1/links/{peer}/messages", body)
        deadline = time.monotonic() + 60
        while not any(
            (m["lane"], m["seq"], m["files_held"]) == (sent["lane"], sent["seq"], True)
            for m in sender.call("GET", f"/api/v1/links/{peer}/outbox")
        ):
            assert time.monotonic() < deadline, "the file was not held"
            time.sleep(0.1)


def _translated(data_dir: Path, passphrase_file: Path, seq: int) -> None:
    """London's translators at work on Moscow's message, as the translation desk signs it."""
    identity = DataDir(data_dir).open_keystore(passphrase_file.read_bytes().rstrip(b"\n"))
    link = load_links(DataDir(data_dir), identity)[0]
    store = SqliteStore(DataDir(data_dir).store_file)
    try:
        envelope = decode_envelope(store.inbound(link.config.link_id, 3, seq) or b"", None)
        now = time.time_ns()
        translation = Annotation.create(identity, envelope, Kind.TRANSLATION, "en",
                                        "answer <b>&</b>", "nina", "translator", now)  # fmt: skip
        review = Annotation.create(identity, envelope, Kind.REVIEW, "en", "", "ivan",
                                   "translator", now + 1, refers=translation.hash)  # fmt: skip
        certified = Annotation.create(identity, envelope, Kind.CERTIFICATION, "en", "", "olga",
                                      "supervisor", now + 2, refers=translation.hash)  # fmt: skip
        for a in (translation, review, certified):
            store.add_annotation(link.config.link_id, 3, seq, a.body.kind, a.hash,
                                 a.signed.to_bytes(), a.body.made_ns)  # fmt: skip
    finally:
        store.close()


def _called(data_dir: Path, passphrase_file: Path) -> None:
    """London's record of a recorded call, as its call desk writes it when a call ends, and one
    of the two recordings it names left in London's recordings directory."""
    identity = DataDir(data_dir).open_keystore(passphrase_file.read_bytes().rstrip(b"\n"))
    config = load_links(DataDir(data_dir), identity)[0].config
    store = SqliteStore(DataDir(data_dir).store_file)
    try:
        now = time.time_ns()
        record = _call_record(
            True, (_recording("sent", SENT), _recording("received", RECEIVED)), "ended by alice"
        )
        record = msgspec.structs.replace(record, invited_ns=now - 200 * SECOND,
                                         answered_ns=now - 190 * SECOND, ended_ns=now,
                                         participants=())  # fmt: skip
        core = LinkCore(config, store.load(config), now)
        text = encode_record(record)
        out = core.send(Lane.ROUTINE, MessageType.CALL_RECORD, "zxx", text, now)
        store.commit(config.link_id, out.batch, now)
    finally:
        store.close()
    (data_dir / "recordings").mkdir(mode=0o700, exist_ok=True)
    (data_dir / "recordings" / f"{CALL_ID}-sent.opus").write_bytes(SENT)


def test_an_exported_bundle_verifies_offline(bundle: Path) -> None:
    result = verify_bundle(bundle)
    assert set(result.stations.values()) == {"London", "Moscow"}
    assert result.envelopes >= 24 + 1 + 1 + 2  # London's, Moscow's answer, an ack, the files
    assert result.receipts == 1
    assert result.checkpoints >= 2
    assert (result.annotations, result.certified) == (3, 1)
    assert (result.held, result.files) == (2, 2), "both files, and both receivers' word for them"
    assert result.exported_by == "London"
    assert (result.calls, result.recordings) == (1, 1)
    assert result.missing_recordings == {f"{CALL_ID}-received.opus": "absent"}
    with zipfile.ZipFile(bundle) as archive:
        assert archive.read(f"files/{hashlib.sha256(MAP).hexdigest()}") == MAP
        assert archive.read("transcript.pdf").startswith(b"%PDF")
        assert archive.read(f"recordings/{CALL_ID}-sent.opus") == SENT
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "verify", str(bundle), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["envelopes"] == result.envelopes
    assert (summary["calls"], summary["recordings"]) == (1, 1)
    assert summary["missing_recordings"] == {f"{CALL_ID}-received.opus": "absent"}


def test_export_says_which_recordings_it_could_not_carry(bundle: Path) -> None:
    said = " ".join((bundle.parent / "export.out").read_text().split())
    assert "1 call recordings" in said
    assert "1 call recording(s) are NOT in the bundle (the manifest lists them as missing)" in said
    assert f"{CALL_ID}-received.opus: not in {bundle.parent / 'london' / 'recordings'}" in said
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "verify", str(bundle)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"MISSING recording {CALL_ID}-received.opus (absent" in " ".join(done.stdout.split())


def test_the_bundle_holds_a_readable_transcript_with_every_text_escaped(bundle: Path) -> None:
    with zipfile.ZipFile(bundle) as archive:
        page = archive.read("transcript.html").decode()
    assert "ответ &lt;b&gt;&amp;&lt;/b&gt;" in page, "the peer's text, escaped"
    assert "<b>&</b>" not in page
    assert "<script" not in page
    assert page.count("<tr class=") >= 28
    assert "hotline verify" in page
    assert "answer &lt;b&gt;&amp;&lt;/b&gt;" in page, "the certified translation beside it"
    assert "certified by olga (supervisor); translated by nina, reviewed by ivan" in page
    assert "map.png (image/png" in page


def test_a_time_range_exports_a_checked_piece_of_each_chain(bundle: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle) as archive:
        sent = sorted(
            decode_envelope(base64.b64decode(json.loads(line)["signed"]), None).body.sent_ns
            for line in archive.read("envelopes.jsonl").splitlines()
        )
    since = sent[len(sent) // 2]
    data_dir = bundle.parent / "london"
    out = tmp_path / "range.hotline"
    moment = datetime.fromtimestamp(since / 1e9, UTC).isoformat()
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "export", "--data-dir", str(data_dir), "--out",
         str(out), "--since", moment, "--passphrase-file",
         str(bundle.parent / "london.passphrase")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = verify_bundle(out)
    assert result.ranged
    assert 0 < result.envelopes < len(sent)
    assert result.envelopes >= sum(1 for t in sent if t >= since + 1000)


def _rewrite(bundle: Path, out: Path, member: str, change: Callable[[bytes], bytes]) -> Path:
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            dst.writestr(item.filename, change(data) if item.filename == member else data)
    return out


def _lines(change: Callable[[list[bytes]], list[bytes]]) -> Callable[[bytes], bytes]:
    return lambda data: b"".join(line + b"\n" for line in change(data.splitlines()))


def _flip_signed_byte(line: bytes) -> bytes:
    record = json.loads(line)
    signed = bytearray(base64.b64decode(record["signed"]))
    signed[len(signed) // 3] ^= 0x01
    record["signed"] = base64.b64encode(bytes(signed)).decode()
    return json.dumps(record).encode()


def _forged_receipt(line: bytes) -> bytes:
    record = json.loads(line)
    wire = decode_signed(base64.b64decode(record["signed"]))
    mallory = StationIdentity.from_random(os.urandom(96))
    forged = encode_signed(wire.body, mallory.sign_ed25519("receipt", wire.body))
    record["signed"] = base64.b64encode(forged).decode()
    return json.dumps(record).encode()


def _drop_flash_3(lines: list[bytes]) -> list[bytes]:
    """Out of the middle of a chain: London's FLASH 3 (London sent six FLASH messages)."""

    def flash_3(line: bytes) -> bool:
        record = json.loads(line)
        return (record["lane"], record["seq"]) == (0, 3)

    return [line for line in lines if not flash_3(line)]


TAMPERING = {
    "a byte flipped in an envelope": (
        "envelopes.jsonl", _lines(lambda ls: [ls[0], _flip_signed_byte(ls[1]), *ls[2:]]),
        "envelope 0/",
    ),
    "an envelope removed": ("envelopes.jsonl", _lines(_drop_flash_3), "FLASH 4.*3 is missing"),
    "two envelopes swapped": (
        "envelopes.jsonl",
        _lines(lambda ls: [ls[0], ls[2], ls[1], *ls[3:]]),
        "line 2.*missing before it|line 3.*out of order",
    ),
    "an envelope duplicated": (
        "envelopes.jsonl", _lines(lambda ls: [ls[0], ls[1], ls[1], *ls[2:]]), "repeated",
    ),
    "a receipt forged": ("receipts.jsonl", _lines(lambda ls: [_forged_receipt(ls[0])]), "receipt"),
    "a checkpoint altered": (
        "checkpoints.jsonl", _lines(lambda ls: [_flip_signed_byte(ls[0]), *ls[1:]]), "checkpoint",
    ),
    "the counts changed": (
        "manifest.json", lambda d: d.replace(b'"receipts": 1', b'"receipts": 2'), "not signed by",
    ),
    "the manifest's signature replaced": (
        "manifest.sig", lambda d: bytes(len(d)), "not signed by London",
    ),
    "a translation altered": (
        "annotations.jsonl", _lines(lambda ls: [_flip_signed_byte(ls[0]), *ls[1:]]), "annotation",
    ),
    "a certification without its review": (
        "annotations.jsonl", _lines(lambda ls: [ls[0], ls[2]]), "nobody reviewed",
    ),
    "a Held statement altered": (
        "held.jsonl", _lines(lambda ls: [_flip_signed_byte(ls[0]), *ls[1:]]), "held statement",
    ),
    "a file's byte flipped": (
        f"files/{hashlib.sha256(MAP).hexdigest()}", lambda d: d[:10] + b"X" + d[11:],
        "do not hash to its name",
    ),
    "the transcript edited": (
        "transcript.html", lambda d: d.replace(b"ivan", b"boris"),
        "transcript.html is not the member the manifest signed",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_is_caught_and_named(bundle: Path, tmp_path: Path, case: str) -> None:
    member, change, named = TAMPERING[case]
    tampered = _rewrite(bundle, tmp_path / "tampered.hotline", member, change)
    with pytest.raises(ArchiveError, match=named):
        verify_bundle(tampered)
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "verify", str(tampered)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 4
    assert re.search(named, done.stderr), done.stderr


def test_a_swapped_card_is_caught(bundle: Path, tmp_path: Path) -> None:
    other = StationIdentity.from_random(os.urandom(96))
    impostor = make_card(other, "Moscow", ["127.0.0.1:1"], 1_800_000_000)
    with zipfile.ZipFile(bundle) as src:
        cards = [n for n in src.namelist() if n.startswith("cards/")]
    out = tmp_path / "swapped.hotline"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            if item.filename == cards[1]:
                dst.writestr(f"cards/{impostor.fingerprint.hex()}.card", impostor.armored())
            else:
                dst.writestr(item.filename, src.read(item.filename))
    with pytest.raises(ArchiveError, match="not those of the link"):
        verify_bundle(out)


def test_a_damaged_file_is_caught(bundle: Path, tmp_path: Path) -> None:
    """A bit flipped in the stored envelopes: the ZIP's checksum or its inflater notices (the
    container's own dates and comments are not part of the record, and are not checked)."""
    with zipfile.ZipFile(bundle) as archive:
        info = archive.getinfo("envelopes.jsonl")
    data = bytearray(bundle.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0x10
    damaged = tmp_path / "damaged.hotline"
    damaged.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"envelopes\.jsonl"):
        verify_bundle(damaged)


# -- calls: each station's record of a call, and the exporter's recordings ----------------------

T0 = 1_750_000_000_000_000_000
SECOND = 10**9
CALL_ID = "c0ffee00" * 4
SENT = b"OggS\x00\x02" + bytes(range(256)) * 5  # not real Opus: bytes that the record seals
RECEIVED = b"OggS\x00\x02" + bytes(reversed(range(256))) * 3
HOSTILE = "ended by peer: <img src=x onerror=alert(1)> & gone"


def _recording(kind: str, data: bytes) -> Recording:
    return Recording(f"{CALL_ID}-{kind}.opus", hashlib.sha256(data).hexdigest(), len(data))


def _call_record(outgoing: bool, recordings: tuple[Recording, ...], reason: str) -> CallRecord:
    """One station's record of a FLASH call from London's alice, answered by Moscow's ivan."""
    return CallRecord(
        version=1, call_id=CALL_ID, direction="outgoing" if outgoing else "incoming",
        precedence="FLASH", caller=Party("London", "alice", "principal"),
        answerer=Party("Moscow", "ivan", "principal"), invited_ns=T0 + 10 * SECOND,
        answered_ns=T0 + 14 * SECOND, ended_ns=T0 + 14 * SECOND + 125 * SECOND,
        end_reason=reason, media=MediaFigures(6250, 6190, 12, 9, 3, 5),
        transport="udp+tcp", recorded=bool(recordings), recordings=recordings,
        participants=(
            Participant("alice", "principal", "local" if outgoing else "peer", T0 + 10 * SECOND,
                        None),
            Participant("ivan", "principal", "peer" if outgoing else "local", T0 + 14 * SECOND,
                        None),
        ),
    )  # fmt: skip


@dataclass
class CallLink:
    """London's store after a recorded call: a message each way, and both stations' records."""

    store: SqliteStore
    london: StationIdentity
    cards: tuple[SignedCard, SignedCard]  # London's, Moscow's
    recordings: Path  # London's recordings directory

    def export(self, out: Path, **options: Any) -> dict[str, int]:
        return export_bundle(
            self.store, self.london, *self.cards, out, T0 + 3600 * SECOND,
            recordings=self.recordings, pdf="always", **options,
        )  # fmt: skip


@pytest.fixture
def call_link(tmp_path: Path) -> Iterator[CallLink]:
    london = StationIdentity.from_random(os.urandom(96))
    moscow = StationIdentity.from_random(os.urandom(96))
    cards = (
        make_card(london, "London", ["127.0.0.1:1"], 1_750_000_000),
        make_card(moscow, "Moscow", ["127.0.0.1:2"], 1_750_000_000),
    )
    link_id = link_id_for(london.public, moscow.public)
    ours, theirs = (
        LinkConfig(link_id, london, moscow.public),
        LinkConfig(link_id, moscow, london.public),
    )
    a, b = LinkCore(ours, LinkState.new(ours), T0), LinkCore(theirs, LinkState.new(theirs), T0)
    our_record = _call_record(
        True, (_recording("sent", SENT), _recording("received", RECEIVED)), "ended by alice"
    )
    # Moscow's record names Moscow's own recordings: the same names, other files.
    their_record = _call_record(
        False, (_recording("sent", RECEIVED + b"!"), _recording("received", SENT + b"!")), HOSTILE
    )

    def send(core: LinkCore, at: int, kind: MessageType, text: str) -> Envelope:
        language = "zxx" if kind == MessageType.CALL_RECORD else "en"
        return core.send(Lane.ROUTINE, kind, language, text, T0 + at * SECOND).batch.outbound[0]

    store = SqliteStore(tmp_path / "london.db")
    store.add_link(ours, T0)
    outbound = [
        send(a, 1, MessageType.PRINCIPAL, "before the call"),
        send(a, 140, MessageType.CALL_RECORD, encode_record(our_record)),
    ]
    inbound = [send(b, 2, MessageType.PRINCIPAL, "call me"),
               send(b, 141, MessageType.CALL_RECORD, encode_record(their_record))]  # fmt: skip
    # Taken in as a station takes them: the messages before the call, the records after it (a
    # time range goes by these times, London's own, not by the envelopes' sent_ns).
    store.commit(link_id, Batch(outbound=outbound[:1], inbound=inbound[:1]), T0 + 2 * SECOND)
    store.commit(link_id, Batch(outbound=outbound[1:], inbound=inbound[1:]), T0 + 142 * SECOND)
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    (recordings / f"{CALL_ID}-sent.opus").write_bytes(SENT)
    (recordings / f"{CALL_ID}-received.opus").write_bytes(RECEIVED)
    yield CallLink(store, london, cards, recordings)
    store.close()


def test_a_call_is_exported_with_its_recordings_and_verifies(
    call_link: CallLink, tmp_path: Path
) -> None:
    out = tmp_path / "call.hotline"
    counts = call_link.export(out)
    assert (counts["recordings"], counts["missing_recordings"]) == (2, 0)
    result = verify_bundle(out)
    assert (result.calls, result.recordings, result.missing_recordings) == (2, 2, {})
    with zipfile.ZipFile(out) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
        carried = sorted(n for n in bundle.namelist() if n.startswith("recordings/"))
        assert carried == [f"recordings/{CALL_ID}-received.opus", f"recordings/{CALL_ID}-sent.opus"]
        assert bundle.read(f"recordings/{CALL_ID}-sent.opus") == SENT, "London's, not Moscow's"
    assert (
        manifest["members"][f"recordings/{CALL_ID}-sent.opus"] == hashlib.sha256(SENT).hexdigest()
    )
    assert manifest["counts"]["recordings"] == 2
    assert manifest["missing_recordings"] == {}


def test_a_missing_or_changed_recording_is_listed_as_missing(
    call_link: CallLink, tmp_path: Path
) -> None:
    (call_link.recordings / f"{CALL_ID}-sent.opus").unlink()
    (call_link.recordings / f"{CALL_ID}-received.opus").write_bytes(RECEIVED[:-1] + b"X")
    out = tmp_path / "missing.hotline"
    counts = call_link.export(out)
    assert (counts["recordings"], counts["missing_recordings"]) == (0, 2)
    result = verify_bundle(out)  # the bundle says what it lacks, and still verifies
    assert result.recordings == 0
    assert result.missing_recordings == {
        f"{CALL_ID}-received.opus": "altered",
        f"{CALL_ID}-sent.opus": "absent",
    }
    with zipfile.ZipFile(out) as bundle:
        assert not [n for n in bundle.namelist() if n.startswith("recordings/")]
        page = bundle.read("transcript.html").decode()
    assert "NOT IN THIS BUNDLE: not found at the station when exported" in page
    assert "NOT IN THIS BUNDLE: the station&#x27;s file differs from this record" in page


def test_a_time_range_carries_only_its_calls_recordings(
    call_link: CallLink, tmp_path: Path
) -> None:
    out = tmp_path / "before.hotline"
    counts = call_link.export(out, until_ns=T0 + 100 * SECOND)  # before the records were written
    assert (counts["envelopes"], counts["recordings"], counts["missing_recordings"]) == (2, 0, 0)
    assert (verify_bundle(out).calls, verify_bundle(out).recordings) == (0, 0)


def _member_added(name: str, data: bytes) -> Callable[[Path, Path], Path]:
    def add(bundle: Path, out: Path) -> Path:
        _rewrite(bundle, out, "", lambda d: d)
        with zipfile.ZipFile(out, "a") as dst:
            dst.writestr(name, data)
        return out

    return add


def _member_dropped(name: str) -> Callable[[Path, Path], Path]:
    def drop(bundle: Path, out: Path) -> Path:
        with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
            for item in src.infolist():
                if item.filename != name:
                    dst.writestr(item.filename, src.read(item.filename))
        return out

    return drop


def _member_changed(name: str, change: Callable[[bytes], bytes]) -> Callable[[Path, Path], Path]:
    return lambda bundle, out: _rewrite(bundle, out, name, change)


SENT_MEMBER = f"recordings/{CALL_ID}-sent.opus"
RECORDING_TAMPERING = {
    "a byte of a recording changed": (
        _member_changed(SENT_MEMBER, lambda d: d[:40] + bytes([d[40] ^ 1]) + d[41:]),
        rf"{SENT_MEMBER}: not the bytes whose SHA-256 envelope \d/ROUTINE 2 names",
    ),
    "a recording cut short": (
        _member_changed(SENT_MEMBER, lambda d: d[:-10]),
        rf"{SENT_MEMBER}: 1,276 bytes, where envelope \d/ROUTINE 2 names 1,286",
    ),
    "a recording replaced by the peer's": (
        _member_changed(SENT_MEMBER, lambda d: RECEIVED + b"!"),
        f"{SENT_MEMBER}: .* bytes, where envelope",
    ),
    "a recording left out": (
        _member_dropped(SENT_MEMBER),
        f"{SENT_MEMBER}: named by envelope .*, neither in the bundle nor listed as missing",
    ),
    "a recording no record names": (
        _member_added("recordings/extra.opus", SENT),
        "recordings/extra.opus: no call record of the exporter's in the bundle names it",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(RECORDING_TAMPERING))
def test_a_recording_that_is_not_as_recorded_is_refused(
    call_link: CallLink, tmp_path: Path, case: str
) -> None:
    out = tmp_path / "call.hotline"
    call_link.export(out)
    tamper, named = RECORDING_TAMPERING[case]
    tampered = tamper(out, tmp_path / "tampered.hotline")
    with pytest.raises(ArchiveError, match=named):
        verify_bundle(tampered)


def test_verify_refuses_a_changed_recording_with_exit_4(
    call_link: CallLink, tmp_path: Path
) -> None:
    out = tmp_path / "call.hotline"
    call_link.export(out)
    tampered = _rewrite(out, tmp_path / "tampered.hotline", SENT_MEMBER, lambda d: d[::-1])
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "verify", str(tampered)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 4
    assert "not the bytes whose SHA-256" in done.stderr


def test_the_transcripts_show_each_stations_record_of_the_call(
    call_link: CallLink, tmp_path: Path
) -> None:
    out = tmp_path / "call.hotline"
    call_link.export(out)
    with zipfile.ZipFile(out) as bundle:
        page = bundle.read("transcript.html").decode()
        pdf = bundle.read("transcript.pdf")
    assert page.count("<tr class='call'>") == 2, "London's record and Moscow's"
    assert '"call_id"' not in page, "a record is shown as a call, not as its JSON"
    assert "call me" in page.split("FLASH call")[0], "in time order among the messages"
    for shown in (
        "FLASH call</strong>, outgoing (as <bdi>London</bdi> recorded it)",
        "FLASH call</strong>, incoming (as <bdi>Moscow</bdi> recorded it)",
        "<th>caller</th><td><bdi>London: alice (principal)</bdi></td>",
        "<th>answerer</th><td><bdi>Moscow: ivan (principal)</bdi></td>",
        "<th>invited</th><td><bdi>2025-06-15 15:06:50 UTC</bdi></td>",
        "<th>answered</th><td><bdi>2025-06-15 15:06:54 UTC</bdi></td>",
        "<th>ended</th><td><bdi>2025-06-15 15:08:59 UTC</bdi></td>",
        "<th>duration</th><td><bdi>2 min 05 s from the answer</bdi></td>",
        "<th>end reason</th><td><bdi>ended by alice</bdi></td>",
        "<th>transport</th><td><bdi>udp+tcp</bdi></td>",
        "6,250 frames sent; of the peer&#x27;s, 6,190 received, 12 lost",
        f"{CALL_ID}-sent.opus, 1,286 bytes, sha256 {hashlib.sha256(SENT).hexdigest()} "
        f"(in this bundle as recordings/{CALL_ID}-sent.opus)",
        f"sha256 {hashlib.sha256(SENT + b'!').hexdigest()} (kept by Moscow, not in this bundle)",
    ):
        assert shown in page, shown
    assert "ended by peer: &lt;img src=x onerror=alert(1)&gt; &amp; gone" in page
    assert "<img" not in page
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf)).pages)
    for shown in (
        "London ROUTINE 2 call record FLASH call, outgoing, as London recorded it",
        "Moscow ROUTINE 2 call record FLASH call, incoming, as Moscow recorded it",
        "caller: London: alice (principal) answerer: Moscow: ivan (principal)",
        "invited: 2025-06-15 15:06:50 UTC answered: 2025-06-15 15:06:54 UTC "
        "ended: 2025-06-15 15:08:59 UTC duration: 2 min 05 s from the answer",
        "transport: udp+tcp media: 6,250 frames sent",
        f"recorded: {CALL_ID}-sent.opus, 1,286 bytes, sha256 {hashlib.sha256(SENT).hexdigest()}",
        f"end reason: {HOSTILE}",
    ):
        assert shown in text, shown
    assert '"call_id"' not in text
