"""Harness: archive bundles (hotline.archive), read by the offline verifier from a file anyone may
have made: the ZIP container, the strict JSON of its manifest and of every `.jsonl` line, the
cards, and the signed statements in them. `verify_bundle` refuses with ArchiveError (a
RemoteError). A bundle is built once per process from a link that really talked (London, the
exporter, and Moscow: envelopes each way, an acknowledgement, a receipt, checkpoints, an
annotation), and verifies. Entry points:

    0  container    the bytes as the bundle file
    1  member       the first byte picks a member of the genuine bundle, the rest replaces it;
                    the manifest is updated to its hash and signed again by London, as an
                    exporter would: everything behind the signature is then read
    2  manifest     the bytes as manifest.json, signed by London
    3  strict JSON  the bytes as one `.jsonl` line (`read_line`, with the envelopes' fields),
                    its signed bytes as a statement, and as strict JSON (`loads`)
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from fuzz.cards import CREATED, moscow_card
from fuzz.common import (
    LINK_ID,
    LONDON,
    LONDON_CONFIG,
    MOSCOW_CONFIG,
    SECOND,
    T0,
    mode,
    refused,
    with_mode,
)
from hotline.archive.bundle import verify_bundle
from hotline.archive.export import MANIFEST_PURPOSE, export_bundle
from hotline.archive.strict import DIRECTION, LANE, SEQ, loads, read_line
from hotline.crypto.card import make_card
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.envelope import Lane, MessageType
from hotline.protocol.link import LinkCore
from hotline.protocol.state import LinkState, Output
from hotline.protocol.statements import Signed
from hotline.store.sqlite import SqliteStore

__all__ = ["seeds", "test_one_input"]

MODES = 4
_ENVELOPE_LINE = {"direction": DIRECTION, "lane": LANE, "seq": SEQ}


@functools.cache
def _workdir() -> Path:
    """A scratch directory for this process, removed when it ends."""
    path = Path(tempfile.mkdtemp(prefix="hotline-fuzz-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _talk(store: SqliteStore) -> None:
    """London and Moscow exchange messages, an acknowledgement and checkpoints; London's store
    commits each of London's outputs, as its driver does."""
    london = LinkCore(LONDON_CONFIG, LinkState.new(LONDON_CONFIG), T0)
    moscow = LinkCore(MOSCOW_CONFIG, LinkState.new(MOSCOW_CONFIG), T0)
    peer = {id(london): moscow, id(moscow): london}

    def flow(outputs: list[tuple[LinkCore, Output]], now: int) -> None:
        while outputs:
            sender, output = outputs.pop(0)
            if sender is london:
                store.commit(LINK_ID, output.batch, now)
            receiver = peer[id(sender)]
            outputs += [(receiver, receiver.receive(sid, p, now)) for sid, p in output.packets]

    flow([(london, london.session_opened(1, T0)), (moscow, moscow.session_opened(1, T0))], T0)
    flow([(london, london.send(Lane.FLASH, MessageType.PRINCIPAL, "en", "Call us.", T0))], T0)
    out = moscow.send(Lane.FLASH, MessageType.PRINCIPAL, "ru", "Звоним.", T0 + SECOND)
    received = out.batch.outbound[0]
    flow([(moscow, out)], T0 + SECOND)
    flow([(london, london.acknowledge(received, "en", "seen", T0 + 2 * SECOND))], T0 + 2 * SECOND)
    for later in (T0 + 5 * SECOND, T0 + 6 * SECOND):  # idle: both sign their checkpoints
        flow([(london, london.tick(later)), (moscow, moscow.tick(later))], later)
    note = Annotation.create(
        LONDON, received, Kind.TRANSLATION, "en", "We call.", "ann", "translator", later
    )
    store.add_annotation(
        LINK_ID, received.body.lane, received.seq, Kind.TRANSLATION, note.hash,
        note.signed.to_bytes(), later,
    )  # fmt: skip


@functools.cache
def genuine() -> tuple[tuple[str, bytes], ...]:
    """The members of London's bundle of the link, in the order written."""
    store = SqliteStore(_workdir() / "london.db")
    store.add_link(LONDON_CONFIG, T0)
    _talk(store)
    london_card = make_card(LONDON, "London", ["203.0.113.5:7400"], CREATED)
    out = _workdir() / "genuine.hotline"
    export_bundle(store, LONDON, london_card, moscow_card(), out, T0 + 3600 * SECOND, pdf="never")
    store.close()
    verify_bundle(out)
    with zipfile.ZipFile(out) as bundle:
        return tuple((info.filename, bundle.read(info)) for info in bundle.infolist())


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members:
            bundle.writestr(name, data)
    return buffer.getvalue()


def _signed(members: list[tuple[str, bytes]], manifest: bytes) -> bytes:
    """The bundle with this manifest, and London's signature over it."""
    rest = [(n, d) for n, d in members if n not in ("manifest.json", "manifest.sig")]
    signature = LONDON.sign(MANIFEST_PURPOSE, manifest)
    return _zip([*rest, ("manifest.json", manifest), ("manifest.sig", signature)])


def _replaced(choice: int, data: bytes) -> bytes:
    members = list(genuine())
    names = [n for n, _ in members if n not in ("manifest.json", "manifest.sig")]
    name = names[choice % len(names)]
    members = [(n, data if n == name else d) for n, d in members]
    manifest = json.loads(dict(members)["manifest.json"])
    if name in manifest["members"]:
        manifest["members"][name] = hashlib.sha256(data).hexdigest()
    return _signed(members, (json.dumps(manifest, indent=2) + "\n").encode())


def _verify(bundle: bytes) -> None:
    path = _workdir() / "input.hotline"
    path.write_bytes(bundle)
    refused(lambda: verify_bundle(path))


def test_one_input(data: bytes) -> None:
    choice, payload = mode(data, MODES)
    if choice == 0:
        _verify(payload)
    elif choice == 1:
        _verify(_replaced(payload[0] if payload else 0, payload[1:]))
    elif choice == 2:
        _verify(_signed(list(genuine()), payload))
    else:
        line = refused(lambda: read_line(payload, _ENVELOPE_LINE, "a line"))
        if line is not None:
            refused(lambda: Signed.from_bytes(line[1]))
        refused(lambda: loads(payload, "a member"))


def seeds() -> Iterator[bytes]:
    members = genuine()
    yield with_mode(0, _zip(list(members)))
    names = [n for n, _ in members if n not in ("manifest.json", "manifest.sig")]
    for index, name in enumerate(names):
        if name != "transcript.html":  # for people, not evidence: the verifier only hashes it
            yield with_mode(1, bytes([index]) + dict(members)[name])
    yield with_mode(2, dict(members)["manifest.json"])
    for name, data in members:
        if name.endswith(".jsonl") and data:
            yield with_mode(3, data.splitlines(keepends=True)[0])
    yield with_mode(3, dict(members)["manifest.json"])
    # Found for issue 13: JSON nested deeper than Python's stack (was a RecursionError).
    deep = b'{"direction":' + b"[" * 2000 + b"]" * 2000 + b',"lane":0,"seq":1,"signed":"AA=="}\n'
    yield with_mode(3, deep)
    yield with_mode(1, bytes([names.index("envelopes.jsonl")]) + deep)
