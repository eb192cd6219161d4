"""A withdrawn translation in the archive (issue 15, item 10): a translation in the wrong language
is withdrawn by a signed annotation; the bundle (version 5) keeps both, `hotline verify` accepts
the withdrawal and counts it, and both transcripts show the translation as withdrawn, by whom
and why. A withdrawal against the rules (by a translator not its own, twice, of a review, in a
bundle of version 4) or a check of a withdrawn translation is refused, naming the rule."""

# ruff: noqa: F811 - the tests take the fixture imported from test_archive by name
from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from pypdf import PdfReader

from hotline.archive.bundle import ArchiveError, verify_bundle
from hotline.crypto.session import link_id_for
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.envelope import decode_envelope
from tests.test_archive import SECOND, T0, CallLink, call_link  # noqa: F401
from tests.test_archive_strict import _set, forge

WRONG = "позвоните мне"  # a "translation" of Moscow's "call me" into Russian: the wrong language
REASON = "wrong language: into Russian, not English"

# (kind, language, text, person, role, the index of the annotation it names)
Step = tuple[Kind, str, str, str, str, int | None]

WITHDRAWN: list[Step] = [
    (Kind.TRANSLATION, "ru", WRONG, "nina", "translator", None),
    (Kind.WITHDRAWAL, "ru", REASON, "nina", "translator", 0),
    (Kind.TRANSLATION, "en", "call me, please", "nina", "translator", None),
    (Kind.REVIEW, "en", "", "ivan", "translator", 2),
    (Kind.CERTIFICATION, "en", "", "olga", "supervisor", 2),
]


def _annotate(link: CallLink, steps: list[Step]) -> list[Annotation]:
    """London's annotations of Moscow's first message ("call me", ROUTINE 1), rules or none."""
    link_id = link_id_for(link.cards[0].identity, link.cards[1].identity)
    envelope = decode_envelope(link.store.inbound(link_id, 3, 1) or b"", None)
    made: list[Annotation] = []
    for n, (kind, language, text, person, role, names) in enumerate(steps):
        refers = made[names].hash if names is not None else b""
        a = Annotation.create(link.london, envelope, kind, language, text, person, role,
                              T0 + (300 + n) * SECOND, refers=refers)  # fmt: skip
        link.store.add_annotation(link_id, a.body.lane, a.body.seq, a.body.kind, a.hash,
                                  a.signed.to_bytes(), a.body.made_ns)  # fmt: skip
        made.append(a)
    return made


def test_a_withdrawn_translation_is_kept_verified_and_shown_as_withdrawn(
    call_link: CallLink, tmp_path: Path
) -> None:
    _annotate(call_link, WITHDRAWN)
    out = tmp_path / "withdrawn.hotline"
    call_link.export(out)
    result = verify_bundle(out)
    assert (result.annotations, result.certified, result.withdrawn) == (5, 1, 1)
    with zipfile.ZipFile(out) as bundle:
        assert json.loads(bundle.read("manifest.json"))["version"] == 5
        page = bundle.read("transcript.html").decode()
        pdf = bundle.read("transcript.pdf")
    assert WRONG in page, "the withdrawn translation stays in the record"
    assert f"WITHDRAWN by nina (translator): {REASON}; translated by nina" in page
    assert "class=withdrawn" in page, "struck through"
    assert page.index("call me, please") < page.index(WRONG), "the certified one first"
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "WITHDRAWN by nina (translator): wrong language" in text
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "verify", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "(1 translations certified, 1 withdrawn)" in " ".join(done.stdout.split())
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "verify", str(out), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert json.loads(done.stdout)["withdrawn"] == 1


def test_a_supervisor_withdraws_anyone_s_translation(call_link: CallLink, tmp_path: Path) -> None:
    _annotate(call_link, [WITHDRAWN[0], (Kind.WITHDRAWAL, "ru", REASON, "olga", "supervisor", 0)])
    out = tmp_path / "by-supervisor.hotline"
    call_link.export(out)
    assert verify_bundle(out).withdrawn == 1


BROKEN: dict[str, tuple[list[Step], str]] = {
    "by another translator": (
        [WITHDRAWN[0], (Kind.WITHDRAWAL, "ru", REASON, "ivan", "translator", 0)],
        "withdrawal of .*: by a translator who is not its translator",
    ),
    "withdrawn twice": (
        [*WITHDRAWN[:2], (Kind.WITHDRAWAL, "ru", "again", "olga", "supervisor", 0)],
        "withdraws again a translation nina withdrew",
    ),
    "a review withdrawn": (
        [WITHDRAWN[0], (Kind.REVIEW, "ru", "", "ivan", "translator", 0),
         (Kind.WITHDRAWAL, "ru", REASON, "olga", "supervisor", 1)],
        "withdrawal of .*: names no earlier translation of that envelope",
    ),
    "in another language than the translation's": (
        [WITHDRAWN[0], (Kind.WITHDRAWAL, "en", REASON, "nina", "translator", 0)],
        "is in 'en', not in its translation's 'ru'",
    ),
    "reviewed once withdrawn": (
        [*WITHDRAWN[:2], (Kind.REVIEW, "ru", "", "ivan", "translator", 0)],
        "review of .*: checks a translation nina withdrew",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_withdrawal_against_the_rules_is_refused(
    call_link: CallLink, tmp_path: Path, case: str
) -> None:
    steps, named = BROKEN[case]
    _annotate(call_link, steps)
    out = tmp_path / "broken.hotline"
    call_link.export(out)  # the exporter carries what the store holds; the verifier judges it
    with pytest.raises(ArchiveError, match=named):
        verify_bundle(out)


def test_a_withdrawal_in_a_bundle_of_version_4_is_refused(
    call_link: CallLink, tmp_path: Path
) -> None:
    _annotate(call_link, WITHDRAWN[:2])
    out = tmp_path / "withdrawn.hotline"
    call_link.export(out)
    forged = forge(out, tmp_path / "v4.hotline", call_link.london, manifest=_set("version", 4))
    with pytest.raises(ArchiveError, match="a withdrawal in a bundle of version 4; it needs 5"):
        verify_bundle(forged)
