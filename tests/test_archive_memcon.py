"""The record of conversation in the archive (issue 12, section 3): a memcon of London's own call
record, reviewed and certified, goes into London's bundle (version 4) beside the call in both
transcripts, and `hotline verify` checks its workflow as it checks a translation's: a bundle whose
memcon breaks a rule (no review, reviewed by its author, certified by one who may not, a second
record of one call certified, about an envelope that is not the exporter's call record, signed
by another, or in a bundle of version 3) is refused, naming the rule."""

# ruff: noqa: F811 - the tests take the fixture imported from test_archive by name
from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from pypdf import PdfReader

from hotline.archive.bundle import ArchiveError, verify_bundle
from hotline.crypto.identity import StationIdentity
from hotline.crypto.session import link_id_for
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.envelope import Envelope, decode_envelope
from tests.test_archive import SECOND, T0, CallLink, call_link  # noqa: F401
from tests.test_archive_strict import _line, _lines, _set, forge

NOTES = "The principals agreed to speak again at 14:00 UTC; the map follows by message."
OUR_RECORD, THEIR_RECORD, OUR_MESSAGE = ("out", 3, 2), ("in", 3, 2), ("out", 3, 1)


def _envelope(link: CallLink, where: tuple[str, int, int]) -> Envelope:
    side, lane, seq = where
    link_id = _link_id(link)
    data = (link.store.outbound if side == "out" else link.store.inbound)(link_id, lane, seq)
    assert data is not None
    return decode_envelope(data, None)


def _link_id(link: CallLink) -> bytes:
    return link_id_for(link.cards[0].identity, link.cards[1].identity)


Step = tuple[str, Kind, str, str, int | None]  # (about, kind, person, role, the memcon it checks)


def _annotate(
    link: CallLink, steps: list[Step], signer: StationIdentity | None = None
) -> list[Annotation]:
    """Annotations as a station's desk would store them, rules or none: `steps` in order, each
    about OUR_RECORD (or another envelope), a review or certification naming the memcon made
    at the index given."""
    made: list[Annotation] = []
    places = {"record": OUR_RECORD, "theirs": THEIR_RECORD, "message": OUR_MESSAGE}
    for n, (about, kind, person, role, checks) in enumerate(steps):
        envelope = _envelope(link, places[about])
        refers = made[checks].hash if checks is not None else b""
        text = "" if refers else f"{NOTES} ({n})"
        language = made[checks].body.language if checks is not None else "en"
        a = Annotation.create(signer or link.london, envelope, kind, language, text, person, role,
                              T0 + (200 + n) * SECOND, refers=refers)  # fmt: skip
        link.store.add_annotation(_link_id(link), a.body.lane, a.body.seq, a.body.kind, a.hash,
                                  a.signed.to_bytes(), a.body.made_ns)  # fmt: skip
        made.append(a)
    return made


CERTIFIED: list[Step] = [
    ("record", Kind.MEMCON, "vera", "translator", None),
    ("record", Kind.REVIEW, "lev", "translator", 0),
    ("record", Kind.CERTIFICATION, "olga", "supervisor", 0),
]


def test_a_certified_memcon_is_in_the_bundle_beside_its_call_and_verifies(
    call_link: CallLink, tmp_path: Path
) -> None:
    _annotate(call_link, CERTIFIED)
    out = tmp_path / "memcon.hotline"
    call_link.export(out)
    result = verify_bundle(out)
    assert (result.annotations, result.memcons, result.memcons_certified) == (3, 1, 1)
    assert result.certified == 0, "no translation is certified"
    with zipfile.ZipFile(out) as bundle:
        assert json.loads(bundle.read("manifest.json"))["version"] == 4
        page = bundle.read("transcript.html").decode()
        pdf = bundle.read("transcript.pdf")
    # London's call row, to the next row of the transcript: the call, and beside it its memcon.
    shown = page.split("outgoing (as <bdi>London</bdi> recorded it)")[1].split("<tr class=")[0]
    assert f"{NOTES} (0)" in shown, "the record of conversation, in the call's row"
    assert "certified by olga (supervisor); written by vera (translator), reviewed by lev" in shown
    assert page.count("Record of conversation") == 1, "beside London's record only"
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "record of conversation · en — certified by olga (supervisor); written by vera" in text
    assert f"{NOTES} (0)" in text
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "verify", str(out), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["memcons_certified"] == 1


def test_a_memcon_not_yet_certified_says_so(call_link: CallLink, tmp_path: Path) -> None:
    _annotate(call_link, CERTIFIED[:1])
    out = tmp_path / "draft.hotline"
    call_link.export(out)
    assert (verify_bundle(out).memcons, verify_bundle(out).memcons_certified) == (1, 0)
    with zipfile.ZipFile(out) as bundle:
        page = bundle.read("transcript.html").decode()
    assert "NOT CERTIFIED; written by vera (translator), not yet reviewed" in page


def test_a_bundle_without_a_memcon_stays_version_3(call_link: CallLink, tmp_path: Path) -> None:
    out = tmp_path / "plain.hotline"
    call_link.export(out)
    with zipfile.ZipFile(out) as bundle:
        assert json.loads(bundle.read("manifest.json"))["version"] == 3


BROKEN: dict[str, tuple[list[Step], str]] = {
    "certified without a review": (
        [CERTIFIED[0], CERTIFIED[2]],
        "certification of .*: certifies a record of conversation nobody reviewed",
    ),
    "reviewed by its author": (
        [CERTIFIED[0], ("record", Kind.REVIEW, "vera", "translator", 0)],
        "review of .*: by the author of the record of conversation it checks",
    ),
    "certified by a translator": (
        [*CERTIFIED[:2], ("record", Kind.CERTIFICATION, "boris", "translator", 0)],
        "certification of .*: by a translator, not a supervisor",
    ),
    "reviewed and certified by one person": (
        [*CERTIFIED[:2], ("record", Kind.CERTIFICATION, "lev", "supervisor", 0)],
        "by a reviewer of that record of conversation",
    ),
    "certified twice": (
        [*CERTIFIED, ("record", Kind.CERTIFICATION, "pavel", "supervisor", 0)],
        "certifies again a record of conversation olga certified",
    ),
    "two records of one call certified": (
        [*CERTIFIED, ("record", Kind.MEMCON, "vera", "translator", None),
         ("record", Kind.REVIEW, "lev", "translator", 3),
         ("record", Kind.CERTIFICATION, "pavel", "supervisor", 3)],
        "certifies a second record of conversation of a call olga certified one of",
    ),
    "about the peer's call record": (
        [("theirs", Kind.MEMCON, "vera", "translator", None)],
        "memcon of .*: not about a call record of the exporter's",
    ),
    "about a message, not a call record": (
        [("message", Kind.MEMCON, "vera", "translator", None)],
        "memcon of .*: not about a call record of the exporter's",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_memcon_against_the_workflow_is_refused(
    call_link: CallLink, tmp_path: Path, case: str
) -> None:
    steps, named = BROKEN[case]
    _annotate(call_link, steps)
    out = tmp_path / "broken.hotline"
    call_link.export(out)  # the exporter carries what the store holds; the verifier judges it
    with pytest.raises(ArchiveError, match=named):
        verify_bundle(out)
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "verify", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 4


def _flip(line: bytes) -> bytes:
    record = json.loads(line)
    signed = bytearray(base64.b64decode(record["signed"]))
    signed[len(signed) // 2] ^= 0x01
    return _line(bytes(signed))


FORGED: dict[str, tuple[Callable[[CallLink, Path, Path], Path], str]] = {
    "a memcon in a bundle of version 3": (
        lambda link, src, out: forge(src, out, link.london, manifest=_set("version", 3)),
        "memcon of .*: a record of conversation in a bundle of version 3; it needs 4",
    ),
    "the memcon's text changed": (
        lambda link, src, out: forge(
            src, out, link.london, {"annotations.jsonl": _lines(lambda ls: [_flip(ls[0]), *ls[1:]])}
        ),
        "annotation",
    ),
    "a memcon signed by another station": (
        lambda link, src, out: forge(src, out, link.london, {
            "annotations.jsonl": _lines(lambda ls: [_line(_stranger(link)), *ls[1:]])
        }),
        "memcon of .*: annotation has a bad signature",
    ),
}  # fmt: skip


def _stranger(link: CallLink) -> bytes:
    """London's memcon, word for word, signed by a key that is not London's."""
    mallory = StationIdentity.from_random(os.urandom(96))
    forged = Annotation.create(mallory, _envelope(link, OUR_RECORD), Kind.MEMCON, "en",
                               f"{NOTES} (0)", "vera", "translator", T0 + 200 * SECOND)  # fmt: skip
    return forged.signed.to_bytes()


@pytest.mark.parametrize("case", list(FORGED))
def test_a_forged_memcon_is_refused(call_link: CallLink, tmp_path: Path, case: str) -> None:
    _annotate(call_link, CERTIFIED)
    out = tmp_path / "memcon.hotline"
    call_link.export(out)
    verify_bundle(out)
    tamper, named = FORGED[case]
    with pytest.raises(ArchiveError, match=named):
        verify_bundle(tamper(call_link, out, tmp_path / "forged.hotline"))
