"""The archive: a bundle exported from a station that really talked, verified offline, and every
kind of tampering caught with the place it happened."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from hotline.archive.bundle import ArchiveError, verify_bundle
from hotline.crypto.card import make_card
from hotline.crypto.identity import StationIdentity
from hotline.crypto.signed import decode_signed, encode_signed
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.envelope import decode_envelope
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
    out = root / "london-moscow.hotline"
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "export", "--data-dir", str(london.data.path),
         "--out", str(out), "--passphrase-file", str(london.passphrase_file)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
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


def test_an_exported_bundle_verifies_offline(bundle: Path) -> None:
    result = verify_bundle(bundle)
    assert set(result.stations.values()) == {"London", "Moscow"}
    assert result.envelopes >= 24 + 1 + 1 + 2  # London's, Moscow's answer, an ack, the files
    assert result.receipts == 1
    assert result.checkpoints >= 2
    assert (result.annotations, result.certified) == (3, 1)
    assert (result.held, result.files) == (2, 2), "both files, and both receivers' word for them"
    assert result.exported_by == "London"
    with zipfile.ZipFile(bundle) as archive:
        assert archive.read(f"files/{hashlib.sha256(MAP).hexdigest()}") == MAP
        assert archive.read("transcript.pdf").startswith(b"%PDF")
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "verify", str(bundle), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["envelopes"] == result.envelopes


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
