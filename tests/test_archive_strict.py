"""The archive read by a strict verifier (issue 13, items 12, 18 and 19): a bundle is refused
unless every member, every manifest value and every line is exactly as docs/archive.md says, and
the translation workflow's and docs/link.md's rules hold between the signed records.

Each bundle here is built from a real record: two link cores talk over a wire in memory while
London's store commits what London's core says, as a station does; London exports it. A forged
bundle is one London itself signed (its manifest re-signed after the change), so what refuses it
is the format, not a broken signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hotline.archive.bundle import ArchiveError, export_bundle, verify_bundle
from hotline.archive.export import MANIFEST_PURPOSE
from hotline.crypto.card import SignedCard, make_card
from hotline.crypto.identity import StationIdentity
from hotline.crypto.session import link_id_for
from hotline.crypto.signed import decode_signed
from hotline.errors import ConfigError
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.envelope import Attachment, Envelope, Lane, MessageType, Ref
from hotline.protocol.link import LinkCore
from hotline.protocol.state import LinkConfig, LinkState, Output
from hotline.protocol.transfer import Held
from hotline.store.sqlite import SqliteStore

SECOND = 10**9
T0 = 1_760_000_000 * SECOND
MAP = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
NOTE = b"%PDF-1.4 a note"


@dataclass
class Record:
    """London's store after a short conversation, and what the tests need to forge with."""

    path: Path
    store: SqliteStore
    london: StationIdentity
    moscow: StationIdentity
    cards: tuple[SignedCard, SignedCard]  # London's, Moscow's
    files: Path
    london_direction: int
    sent: dict[str, Envelope] = field(default_factory=dict)  # by a short name
    translated: list[Annotation] = field(default_factory=list)  # translation, review, certified

    def export(self, out: Path, **options: Any) -> Path:
        export_bundle(self.store, self.london, *self.cards, out, T0 + 3600 * SECOND,
                      files=self.files, pdf="never", **options)  # fmt: skip
        return out


class _Wire:
    """Two cores and a wire: London's batches are committed before its packets leave."""

    def __init__(self, record: Record, london: LinkCore, moscow: LinkCore, link_id: bytes) -> None:
        self.record, self.cores, self.link_id = (
            record,
            {"london": london, "moscow": moscow},
            link_id,
        )
        self.now = T0

    def run(self, who: str, output: Output) -> Output:
        queue = [(who, output)]
        while queue:
            sender, out = queue.pop(0)
            if sender == "london":
                self.record.store.commit(self.link_id, out.batch, self.now)
            other = "moscow" if sender == "london" else "london"
            for sid, packet in out.packets:
                queue.append((other, self.cores[other].receive(sid, packet, self.now)))
        return output

    def send(self, who: str, lane: Lane, text: str, language: str = "en", **kw: Any) -> Envelope:
        kind = kw.pop("kind", MessageType.PRINCIPAL)
        out = self.cores[who].send(lane, kind, language, text, self.now, **kw)
        self.run(who, out)
        return out.batch.outbound[0]

    def settle(self) -> None:
        for _ in range(3):
            self.now += 3 * SECOND
            for who in ("london", "moscow"):
                self.run(who, self.cores[who].tick(self.now))


def _attachment(name: str, data: bytes) -> Attachment:
    return Attachment(name, "application/octet-stream", len(data), hashlib.sha256(data).digest())


def _record(root: Path, lie: str | None = None) -> Record:
    """London and Moscow exchange messages, files, acknowledgements and checkpoints; London's
    translators translate, review and certify. `lie`: what Moscow's core gets wrong."""
    london, moscow = (StationIdentity.from_random(os.urandom(96)) for _ in range(2))
    cards = (make_card(london, "London", ["127.0.0.1:1"], 1_750_000_000),
             make_card(moscow, "Moscow", ["127.0.0.1:2"], 1_750_000_000))  # fmt: skip
    link_id = link_id_for(london.public, moscow.public)
    ours, theirs = (
        LinkConfig(link_id, london, moscow.public),
        LinkConfig(link_id, moscow, london.public),
    )
    root.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(root / "london.db")
    store.add_link(ours, T0)
    files = root / "files"
    files.mkdir()
    record = Record(root, store, london, moscow, cards, files, ours.direction)
    a, b = LinkCore(ours, LinkState.new(ours), T0), LinkCore(theirs, LinkState.new(theirs), T0)
    wire = _Wire(record, a, b, link_id)
    hello_a, hello_b = a.session_opened(1, T0), b.session_opened(1, T0)
    wire.run("london", hello_a)
    wire.run("moscow", hello_b)
    sent = record.sent
    sent["m1"] = wire.send("london", Lane.ROUTINE, "first message")
    sent["urgent"] = wire.send("london", Lane.FLASH, "urgent message")
    wire.now += SECOND
    if lie == "peer_head":
        b.last_inbound_hash = os.urandom(32)
    sent["answer"] = wire.send("moscow", Lane.ROUTINE, "ответ", "ru")
    sent["map"] = wire.send(
        "moscow", Lane.PRIORITY, "a map", attachments=(_attachment("map.png", MAP),)
    )
    (files / hashlib.sha256(MAP).hexdigest()).write_bytes(MAP)
    held = Held.create(london, sent["map"], 0, wire.now)
    store.record_held(link_id, "in", [(2, sent["map"].seq, 0, held.signed.to_bytes())], wire.now)
    sent["note"] = wire.send(
        "london", Lane.ROUTINE, "a note", attachments=(_attachment("n.pdf", NOTE),)
    )
    (files / hashlib.sha256(NOTE).hexdigest()).write_bytes(NOTE)
    held = Held.create(moscow, sent["note"], 0, wire.now)
    store.record_held(link_id, "out", [(3, sent["note"].seq, 0, held.signed.to_bytes())], wire.now)
    wire.now += SECOND
    sent["ack"] = wire.run(
        "london", a.acknowledge(sent["answer"], "en", "seen", wire.now)
    ).batch.outbound[0]
    if lie == "ack_lane":
        urgent = sent["urgent"]
        wire.send("moscow", Lane.ROUTINE, "seen", kind=MessageType.ACKNOWLEDGEMENT,
                  ref=Ref(Lane.FLASH, urgent.seq, urgent.hash))  # fmt: skip
    else:
        acknowledged = b.acknowledge(sent["urgent"], "en", "seen", wire.now)
        sent["peer_ack"] = wire.run("moscow", acknowledged).batch.outbound[0]
    record.translated = _translated(london, sent["answer"], wire.now)
    for a_ in record.translated:
        store.add_annotation(link_id, 3, sent["answer"].seq, a_.body.kind, a_.hash,
                             a_.signed.to_bytes(), a_.body.made_ns)  # fmt: skip
    wire.settle()
    sent["later"] = wire.send("london", Lane.ROUTINE, "after the first checkpoints")
    wire.settle()
    assert a.in_agreement
    assert b.in_agreement
    return record


def _translated(by: StationIdentity, envelope: Envelope, now: int) -> list[Annotation]:
    translation = Annotation.create(by, envelope, Kind.TRANSLATION, "en", "answer", "nina",
                                    "translator", now)  # fmt: skip
    review = Annotation.create(by, envelope, Kind.REVIEW, "en", "", "ivan", "translator", now + 1,
                               refers=translation.hash)  # fmt: skip
    certified = Annotation.create(by, envelope, Kind.CERTIFICATION, "en", "", "olga", "supervisor",
                                  now + 2, refers=translation.hash)  # fmt: skip
    return [translation, review, certified]


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Record]:
    made = _record(tmp_path_factory.mktemp("strict") / "record")
    yield made
    made.store.close()


@pytest.fixture(scope="module")
def bundle(record: Record) -> Path:
    return record.export(record.path / "london.hotline")


# -- forging: London signs whatever it is given ------------------------------------------------


def forge(
    src: Path,
    out: Path,
    signer: StationIdentity,
    members: Mapping[str, Callable[[bytes], bytes]] | None = None,
    manifest: Callable[[dict[str, Any]], object] | None = None,
    raw: Callable[[bytes], bytes] | None = None,
    before: tuple[tuple[str, bytes], ...] = (),
    method: int | None = None,
) -> Path:
    """Copy `src`, changing `members`, prepending `before`, then changing the manifest (its
    members' hashes kept true) and signing it with `signer`, as an exporter would."""
    changes = members or {}
    with zipfile.ZipFile(src) as zin:
        listing = json.loads(zin.read("manifest.json"))
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zipfile warns of a name written twice
                for name, data in before:
                    zout.writestr(name, data)
            for info in zin.infolist():
                if info.filename in ("manifest.json", "manifest.sig"):
                    continue
                data = zin.read(info.filename)
                if info.filename in changes:
                    data = changes[info.filename](data)
                if info.filename in listing["members"]:
                    listing["members"][info.filename] = hashlib.sha256(data).hexdigest()
                zout.writestr(info.filename, data, compress_type=method or info.compress_type)
            if manifest is not None:
                manifest(listing)
            data = (json.dumps(listing, indent=2) + "\n").encode()
            data = raw(data) if raw is not None else data
            zout.writestr("manifest.json", data)
            zout.writestr("manifest.sig", signer.sign(MANIFEST_PURPOSE, data))
    return out


def _lines(change: Callable[[list[bytes]], list[bytes]]) -> Callable[[bytes], bytes]:
    return lambda data: b"".join(line + b"\n" for line in change(data.splitlines()))


def _each(change: Callable[[dict[str, Any]], object]) -> Callable[[bytes], bytes]:
    """Change every line's JSON object in place."""

    def one(line: bytes) -> bytes:
        record = json.loads(line)
        change(record)
        return json.dumps(record, separators=(",", ":")).encode()

    return _lines(lambda lines: [one(line) for line in lines])


def _line(signed: bytes, **fields: object) -> bytes:
    text = base64.b64encode(signed).decode()
    return json.dumps({**fields, "signed": text}, separators=(",", ":")).encode()


def _set(path: str, value: object) -> Callable[[dict[str, Any]], object]:
    def change(manifest: dict[str, Any]) -> None:
        *parents, key = path.split(".")
        target = manifest
        for parent in parents:
            target = target[parent]
        target[key] = value

    return change


def _drop(key: str) -> Callable[[dict[str, Any]], object]:
    return lambda manifest: manifest.pop(key)


def _refused(path: Path, named: str) -> None:
    with pytest.raises(ArchiveError, match=named):
        verify_bundle(path)


def test_the_record_exports_a_bundle_that_verifies(bundle: Path) -> None:
    result = verify_bundle(bundle)
    assert (result.envelopes, result.receipts, result.held, result.files) == (8, 1, 2, 2)
    assert (result.annotations, result.certified) == (3, 1)
    assert (result.agreed, result.agreement) == (True, "agreed")


def test_a_bundle_forged_with_nothing_changed_verifies(
    record: Record, bundle: Path, tmp_path: Path
) -> None:
    """The forging helper itself: what the tests below refuse is their change, nothing else."""
    verify_bundle(forge(bundle, tmp_path / "same.hotline", record.london))


# -- item 18: the container ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["transcript.html", "manifest.json"])
def test_a_member_named_twice_is_refused(
    record: Record, bundle: Path, tmp_path: Path, name: str
) -> None:
    """zipfile reads the last member of a name, `unzip -p` the first: a forged one placed first
    would be what a person reads, while the verifier checked the other."""
    with zipfile.ZipFile(bundle) as archive:
        real = archive.read(name)
    forged = real.replace(b"ivan", b"boris") if name.endswith("html") else b'{"forged": true}'
    out = tmp_path / "twice.hotline"
    with (
        zipfile.ZipFile(bundle) as src,
        zipfile.ZipFile(out, "w") as dst,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # zipfile warns of a name written twice
        dst.writestr(name, forged)
        for info in src.infolist():
            dst.writestr(info, src.read(info.filename))
    _refused(out, f"two members named '{name}'")
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "verify", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 4
    assert f"two members named '{name}'" in done.stderr


def test_a_member_the_format_does_not_have_is_refused_even_if_signed(
    record: Record, bundle: Path, tmp_path: Path
) -> None:
    text = b"read me first"

    def listed(manifest: dict[str, Any]) -> None:
        manifest["members"]["notes/readme.txt"] = hashlib.sha256(text).hexdigest()

    out = forge(bundle, tmp_path / "extra.hotline", record.london,
                before=(("notes/readme.txt", text),), manifest=listed)  # fmt: skip
    _refused(out, "'notes/readme.txt', which is not a member of the format")


def test_a_required_member_left_out_is_refused_even_if_signed(
    record: Record, bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "no-transcript.hotline"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != "transcript.html":
                dst.writestr(info, src.read(info.filename))
    out = forge(out, tmp_path / "signed.hotline", record.london,
                manifest=lambda m: m["members"].pop("transcript.html"))  # fmt: skip
    _refused(out, "the manifest does not list transcript.html")


def test_a_member_compressed_otherwise_than_stored_or_deflated_is_refused(
    record: Record, bundle: Path, tmp_path: Path
) -> None:
    out = forge(bundle, tmp_path / "lzma.hotline", record.london, method=zipfile.ZIP_LZMA)
    _refused(out, r"compressed by method 14, not stored \(0\) or deflated \(8\)")


# -- item 19: the manifest, every value of its type ---------------------------------------------


def _raw(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        assert old in data, old
        return data.replace(old, new, 1)

    return change


MANIFESTS: dict[str, tuple[dict[str, Any], str]] = {
    "version 3.0": ({"raw": _raw(b'"version": 3,', b'"version": 3.0,')}, "version is 3.0, not 3"),
    "a count 1.0": (
        {"raw": _raw(b'"receipts": 1,', b'"receipts": 1.0,')}, "counts is .*, not an object of",
    ),
    "a count true": (
        {"raw": _raw(b'"receipts": 1,', b'"receipts": true,')}, "counts is .*, not an object of",
    ),
    "a key twice": (
        {"raw": _raw(b'{\n', b'{\n  "version": 2,\n')}, "'version' appears twice",
    ),
    "a key the format lacks": ({"manifest": _set("signed_by", "London")}, "key.*: signed_by"),
    "range missing": ({"manifest": _drop("range")}, "lacks the key.* range"),
    "range {}": ({"manifest": _set("range", {})}, "range is {}, not null, or"),
    'range "all"': ({"manifest": _set("range", "all")}, 'range is "all", not null, or'),
    "range with one key": ({"manifest": _set("range", {"since_ns": 0})}, "range is .*, not null"),
    "range of two nulls": (
        {"manifest": _set("range", {"since_ns": None, "until_ns": None})}, "range is .*, not null",
    ),
    "range ending before it starts": (
        {"manifest": _set("range", {"since_ns": 2, "until_ns": 1})}, "range is .*, not null",
    ),
    "exported_ns a string": (
        {"manifest": _set("exported_ns", "1750000000")}, "exported_ns is .*, not an integer",
    ),
    "transcript_pdf 0": (
        {"raw": _raw(b'"transcript_pdf": false', b'"transcript_pdf": 0')},
        "transcript_pdf is 0, not true or false",
    ),
    "UTF-16": ({"raw": lambda d: d.decode().encode("utf-16")}, "manifest.json is not UTF-8"),
    "NaN": ({"raw": _raw(b'"exported_ns": ', b'"x": NaN, "exported_ns": ')}, "NaN is not"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MANIFESTS))
def test_a_manifest_value_of_another_type_is_refused_though_signed(
    record: Record, bundle: Path, tmp_path: Path, case: str
) -> None:
    options, named = MANIFESTS[case]
    _refused(forge(bundle, tmp_path / "forged.hotline", record.london, **options), named)


# -- item 19: every line's keys and values -------------------------------------------------------


def _first_padded(lines: list[bytes]) -> list[bytes]:
    """The first line whose base64 ends in padding, written with other unused bits: the same
    bytes to a lenient decoder, another text to a strict one."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for i, line in enumerate(lines):
        record = json.loads(line)
        text = record["signed"].encode()
        if text.endswith(b"="):
            at = len(text.rstrip(b"=")) - 1
            text = text[:at] + bytes([alphabet[alphabet.index(text[at]) ^ 1]]) + text[at + 1 :]
            assert base64.b64decode(text) == base64.b64decode(record["signed"])
            record["signed"] = text.decode()
            lines[i] = json.dumps(record, separators=(",", ":")).encode()
            return lines
    raise AssertionError("no padded line")


def _wide_msgpack(line: bytes) -> bytes:
    """The same [body, signature], its body as bin 32: MessagePack, but not the one encoding."""
    record = json.loads(line)
    wire = decode_signed(base64.b64decode(record["signed"]))
    wide = b"\x92\xc6" + len(wire.body).to_bytes(4, "big") + wire.body
    wide += msgspec.msgpack.encode(wire.signature)
    assert decode_signed(wide) == wire
    return _line(wide, **{k: v for k, v in record.items() if k != "signed"})


LINES: dict[str, tuple[str, Callable[[bytes], bytes], str, dict[str, Any]]] = {
    "a Held line without side": (
        "held.jsonl", _each(lambda r: r.pop("side")), "held.jsonl line 1 lacks the key.* side", {},
    ),
    "a Held line of the wrong side": (
        "held.jsonl", _each(lambda r: r.update(side="in" if r["side"] == "out" else "out")),
        "its side is '(in|out)', not '(out|in)'", {},
    ),
    "true as a sequence number": (
        "envelopes.jsonl", _each(lambda r: r.update(seq=True) if r["seq"] == 1 else None),
        "seq is true, not an integer", {},
    ),
    "an envelope line with a key more": (
        "envelopes.jsonl", _each(lambda r: r.update(note="x")), "not have: note", {},
    ),
    "a key twice in a line": (
        "envelopes.jsonl", _raw(b'"seq":', b'"seq":99,"seq":'), "'seq' appears twice", {},
    ),
    "base64 with other unused bits": (
        "envelopes.jsonl", _lines(_first_padded), "signed is .*, not canonical base64", {},
    ),
    "a statement in another MessagePack encoding": (
        "checkpoints.jsonl", _lines(lambda ls: [_wide_msgpack(ls[0]), *ls[1:]]),
        "checkpoints.jsonl line 1.*not in the one MessagePack encoding", {},
    ),
    "a receipt twice": (
        "receipts.jsonl", _lines(lambda ls: ls + ls), "a bundle holds one receipt at most",
        {"manifest": _set("counts.receipts", 2)},
    ),
    "a line without its newline": (
        "annotations.jsonl", lambda d: d[:-1], "line 3 does not end with a newline", {},
    ),
    "a line nested a thousand deep": (  # found for issue 13 (fuzzing): was a RecursionError
        "envelopes.jsonl", _lines(lambda ls: [b"[" * 5000 + b"]" * 5000, *ls[1:]]),
        "envelopes.jsonl line 1 is not strict JSON: it nests too deeply", {},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(LINES))
def test_a_line_not_exactly_as_specified_is_refused_though_signed(
    record: Record, bundle: Path, tmp_path: Path, case: str
) -> None:
    member, change, named, options = LINES[case]
    out = forge(bundle, tmp_path / "forged.hotline", record.london, {member: change}, **options)
    _refused(out, named)


# -- item 19: step 4, the envelopes' ties to the other chain --------------------------------------


def test_a_peer_head_that_names_no_envelope_of_ours_is_refused(tmp_path: Path) -> None:
    """A peer that writes another `peer_head` than the last envelope it received: the station
    stores it (the link core does not check it), and the verifier names it."""
    lying = _record(tmp_path / "record", lie="peer_head")
    try:
        out = lying.export(tmp_path / "lie.hotline")
    finally:
        lying.store.close()
    _refused(out, r"envelope \d/PRIORITY 1: its peer_head names no envelope of the other side")


def test_an_acknowledgement_in_another_lane_is_refused(tmp_path: Path) -> None:
    lying = _record(tmp_path / "record", lie="ack_lane")
    try:
        out = lying.export(tmp_path / "lie.hotline")
    finally:
        lying.store.close()
    _refused(out, r"envelope \d/ROUTINE 2: acknowledges a message of another lane")


def test_a_time_range_checks_what_it_holds_and_not_what_lies_outside(
    record: Record, tmp_path: Path
) -> None:
    """Each envelope of the range names its predecessor and its peer's head outside it, and the
    peer's acknowledgement in it names a message before it: none of that is refused."""
    since = record.sent["ack"].body.sent_ns
    result = verify_bundle(record.export(tmp_path / "range.hotline", since_ns=since))
    assert result.ranged
    assert result.envelopes == 3  # both acknowledgements, and London's last message


# -- items 12 and 19: step 7, the translation workflow --------------------------------------------


def _annotated(
    record: Record, *made: Callable[[Record], Annotation]
) -> Callable[[Path, Path], Path]:
    """The bundle with more annotations, as London signed them."""

    def build(bundle: Path, out: Path) -> Path:
        more = [_line(make(record).signed.to_bytes()) for make in made]
        return forge(bundle, out, record.london,
                     {"annotations.jsonl": _lines(lambda ls: ls + more)},
                     manifest=_set("counts.annotations", 3 + len(more)))  # fmt: skip

    return build


def _new_translation(record: Record) -> Annotation:
    """Another translation of Moscow's answer (the same bytes each time: Ed25519 is
    deterministic)."""
    return Annotation.create(record.london, record.sent["answer"], Kind.TRANSLATION, "en",
                             "the answer", "nina", "translator", T0 + 50 * SECOND)  # fmt: skip


def _check(
    kind: Kind, person: str, role: str = "supervisor", language: str = "en", new: bool = False
) -> Callable[[Record], Annotation]:
    """A review or certification of the record's translation (or of the new one)."""

    def make(record: Record) -> Annotation:
        translation = _new_translation(record) if new else record.translated[0]
        return Annotation.create(record.london, record.sent["answer"], kind, language, "", person,
                                 role, T0 + 100 * SECOND, refers=translation.hash)  # fmt: skip

    return make


def _about(envelope: str, by: str = "london") -> Callable[[Record], Annotation]:
    def make(record: Record) -> Annotation:
        signer = record.london if by == "london" else record.moscow
        return Annotation.create(signer, record.sent[envelope], Kind.TRANSLATION, "ru", "текст",
                                 "nina", "translator", T0 + 100 * SECOND)  # fmt: skip

    return make


REVIEW, CERTIFICATION = Kind.REVIEW, Kind.CERTIFICATION
WORKFLOW: dict[str, tuple[tuple[Callable[[Record], Annotation], ...], str]] = {
    "a review and a certification by one person": (
        (_new_translation, _check(REVIEW, "olga", new=True),
         _check(CERTIFICATION, "olga", new=True)),
        "certification of .* by a reviewer of that translation",
    ),
    "a certification, then a review by the certifier": (
        (_check(REVIEW, "olga"),), "review of .* a review by the person who certified",
    ),
    "a translation certified twice by one supervisor": (
        (_check(CERTIFICATION, "olga"),), "certifies again a translation olga certified",
    ),
    "a translation certified twice by two supervisors": (
        (_check(CERTIFICATION, "pavel"),), "certifies again a translation olga certified",
    ),
    "a review in another language than its translation": (
        (_new_translation, _check(REVIEW, "ivan", "translator", "fr", new=True)),
        "review of .* is in 'fr', not in its translation's 'en'",
    ),
    "an acknowledgement annotated": (
        (_about("peer_ack"),), "translation of .* an acknowledgement is not annotated",
    ),
    "the peer's annotation of the exporter's message": (
        (_about("m1", by="moscow"),), "translation of .* about a message the exporter sent",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(WORKFLOW))
def test_an_annotation_against_the_workflow_is_refused(
    record: Record, bundle: Path, tmp_path: Path, case: str
) -> None:
    made, named = WORKFLOW[case]
    _refused(_annotated(record, *made)(bundle, tmp_path / "forged.hotline"), named)


def test_a_second_review_by_another_person_is_accepted(
    record: Record, bundle: Path, tmp_path: Path
) -> None:
    out = _annotated(record, _check(REVIEW, "boris", "translator"))(bundle, tmp_path / "b.hotline")
    assert verify_bundle(out).certified == 1


# -- item 19: step 13, agreement told apart from its absence ---------------------------------------


def test_agreement_is_unknown_without_the_peers_checkpoint_and_differs_with_an_old_one(
    record: Record, bundle: Path, tmp_path: Path
) -> None:
    ours = record.london_direction
    with zipfile.ZipFile(bundle) as archive:
        lines = archive.read("checkpoints.jsonl").splitlines()
    signers = [json.loads(line)["signer_direction"] for line in lines]
    assert signers.count(ours) >= 2
    assert signers.count(1 - ours) >= 1

    def keep(test: Callable[[int, int], bool]) -> dict[str, Any]:
        kept = [line for i, line in enumerate(lines) if test(i, signers[i])]
        return {"members": {"checkpoints.jsonl": _lines(lambda _: kept)},
                "manifest": _set("counts.checkpoints", len(kept))}  # fmt: skip

    alone = forge(bundle, tmp_path / "alone.hotline", record.london,
                  **keep(lambda _i, signer: signer == ours))  # fmt: skip
    newest_ours = max(i for i, signer in enumerate(signers) if signer == ours)
    older = forge(bundle, tmp_path / "older.hotline", record.london,
                  **keep(lambda i, _signer: i != newest_ours))  # fmt: skip
    assert (verify_bundle(alone).agreed, verify_bundle(alone).agreement) == (False, "unknown")
    assert (verify_bundle(older).agreed, verify_bundle(older).agreement) == (False, "differ")


# -- the exporter writes only ranges the verifier reads -----------------------------------------


def test_export_refuses_a_range_that_ends_before_it_starts(record: Record, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ends before it starts"):
        record.export(tmp_path / "empty.hotline", since_ns=T0 + 10, until_ns=T0)
    assert not (tmp_path / "empty.hotline").exists()


def test_export_starts_a_range_from_before_1970_at_0(record: Record, tmp_path: Path) -> None:
    out = record.export(tmp_path / "old.hotline", since_ns=-(10**18))
    with zipfile.ZipFile(out) as archive:
        assert json.loads(archive.read("manifest.json"))["range"] == {
            "since_ns": 0,
            "until_ns": None,
        }
    assert verify_bundle(out).envelopes == 8
