"""Text that cannot lie to the eye (issue 13, item 4): language tags that are BCP 47, texts without
controls, and every string from outside shown the same way everywhere: invisible characters by
name, words that mix scripts marked, isolated; the console's shown.js agreeing with Python's
textsafety character by character."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import unicodedata
from pathlib import Path

import msgspec
import pytest

from hotline.archive.transcript import Entry, Timeline, Translation, write_html
from hotline.crypto.card import make_card
from hotline.crypto.identity import StationIdentity
from hotline.errors import ProtocolError
from hotline.protocol.annotation import Annotation, AnnotationBody, Kind
from hotline.protocol.envelope import Envelope, EnvelopeBody, Lane, MessageType
from hotline.protocol.statements import Signed
from hotline.protocol.textsafety import (
    classify,
    is_language_tag,
    language_problem,
    pieces,
    shown,
    text_problem,
)

SHOWN_JS = Path(__file__).parents[1] / "src/hotline/console/static/shown.js"
RLO, PDF, ZWSP = "\u202e", "\u202c", "\u200b"
LQ, RQ = "\u2039", "\u203a"  # the guillemets around a mark
LIE = f"strike at {RLO}0030{PDF}"  # reads "strike at 0300" where bidi controls are obeyed
SPOOF = "p\u0430ypal"  # a Cyrillic a among Latin letters


@pytest.mark.parametrize(
    "tag",
    ["en", "ru", "EN-gb", "zxx", "zh-Hant-TW", "sr-Latn-RS", "de-CH-1901", "es-419", "zh-min-nan",
     "en-US-u-ca-gregory", "x-hotline", "en-x-a-a", "i-klingon", "sgn-BE-FR", "art-lojban"],
)  # fmt: skip
def test_well_formed_bcp47_tags_are_taken(tag: str) -> None:
    assert language_problem(tag) is None
    assert is_language_tag(tag)


@pytest.mark.parametrize(
    "tag",
    ["", "e", "en_GB", "en-", "-en", "en--GB", "ru\n", "en GB", "ru\u202e", "\uff11\uff12", "enġ",
     "x", "en-a", "en-x", "abcdefghi", "en-GB-GB", "de-1901-1901", "en-a-bb-a-cc", "i-foo"],
)  # fmt: skip
def test_anything_else_is_refused(tag: str) -> None:
    assert language_problem(tag) is not None
    assert not is_language_tag(tag)


@pytest.mark.parametrize(
    ("text", "named"),
    [("\x00", "U+0000 (NUL)"), ("ring\x07", "U+0007 (BEL)"), ("a\rb", "U+000D (CR)"),
     ("\x1b[8m", "U+001B (ESC)"), ("\x7f", "U+007F (DEL)"), ("\x9b", "U+009B")],
)  # fmt: skip
def test_controls_but_tab_and_newline_are_refused_in_a_text(text: str, named: str) -> None:
    problem = text_problem(text)
    assert problem is not None
    assert named in problem


def test_tab_newline_and_bidi_text_are_carried() -> None:
    assert text_problem(f"a\tb\nc {LIE} שלום {ZWSP}") is None


STATION = StationIdentity.from_random(os.urandom(96))
RECEIVED = Envelope.create(
    EnvelopeBody(1, bytes(32), 1, Lane.ROUTINE, 1, 0, MessageType.PRINCIPAL, "ru", "Проверка",
                 bytes(32), bytes(32), None),
    STATION,
)  # fmt: skip


@pytest.mark.parametrize(
    ("language", "text", "person"),
    [("en_GB", "Check.", "olga"), ("en", "Check.\x00", "olga"), ("en", "Check.", "ol\x1bga")],
)
def test_an_annotation_keeps_the_envelope_s_rules(language: str, text: str, person: str) -> None:
    with pytest.raises(ProtocolError, match="annotation refused"):
        Annotation.create(
            STATION, RECEIVED, Kind.TRANSLATION, language, text, person, "translator", 1
        )
    good = Annotation.create(STATION, RECEIVED, Kind.TRANSLATION, "en", "Check.", "olga", "t", 1)
    body = msgspec.structs.replace(good.body, language=language, text=text, person=person)
    body_bytes = msgspec.msgpack.encode(body)
    signed = Signed(body_bytes, STATION.sign_ed25519("annotation", body_bytes))
    assert isinstance(msgspec.msgpack.decode(body_bytes, type=AnnotationBody), AnnotationBody)
    with pytest.raises(ProtocolError, match="annotation refused"):  # as the verifier reads it
        Annotation.decode(signed)


def test_a_bidi_override_is_named_not_obeyed() -> None:
    assert shown(LIE) == f"strike at {LQ}U+202E RLO{RQ}0030{LQ}U+202C PDF{RQ}"
    assert [p.kind for p in pieces(LIE)] == ["text", "mark", "text", "mark"]


@pytest.mark.parametrize(
    ("char", "mark"),
    [(ZWSP, "U+200B ZWSP"), ("\u2066", "U+2066 LRI"), ("\ufeff", "U+FEFF BOM"),
     ("\u00ad", "U+00AD SHY"), ("\ufe0f", "U+FE0F VS16"), ("\u3164", "U+3164"),
     ("\U000e0041", "U+E0041"), ("\x1b", "U+001B ESC"), ("\u2028", "U+2028 LSEP"),
     ("\ue000", "U+E000"), ("\u2800", "U+2800")],
)  # fmt: skip
def test_invisible_characters_are_shown_by_name(char: str, mark: str) -> None:
    assert shown(f"a{char}b") == f"a{LQ}{mark}{RQ}b"


def test_words_that_mix_scripts_are_marked_and_others_are_not() -> None:
    assert shown(f"pay {SPOOF} now") == f"pay {SPOOF}{LQ}mixed Latin+Cyrillic{RQ} now"
    assert shown("\u0391lpha") == f"\u0391lpha{LQ}mixed Latin+Greek{RQ}"
    plain = "Просим срочно связаться. Please call. Τέλος. 2025 \u0433. COVID-19, e\u0301te\u0301"
    assert shown(plain) == plain
    assert shown("a\tb\nc") == "a\tb\nc"


def _html(entry: Entry) -> str:
    cards = [
        make_card(StationIdentity.from_random(os.urandom(96)), name, [], 0)
        for name in ("London", "Mos\u0441ow")
    ]
    timeline, out = Timeline(), io.BytesIO()
    try:
        timeline.add(1, 0, entry)
        write_html(out, bytes(32), cards, timeline)
    finally:
        timeline.close()
    return out.getvalue().decode()


def test_the_html_transcript_isolates_and_names_what_it_shows() -> None:
    translation = Translation("en", f"{RLO}evil", "NOT CERTIFIED; translated by olga")
    html = _html(Entry(0, "Mos\u0441ow", "FLASH", 1, "principal", "ru", LIE, None,
                       [f"map{ZWSP}.png (image/png)"], [translation]))  # fmt: skip
    shown_lie = (
        f"<bdi>strike at <span class='mark'>{LQ}U+202E RLO{RQ}</span>0030"
        f"<span class='mark'>{LQ}U+202C PDF{RQ}</span></bdi>"
    )
    assert shown_lie in html
    assert f"<bdi><span class='mark'>{LQ}U+202E RLO{RQ}</span>evil</bdi>" in html
    assert f"<bdi>map<span class='mark'>{LQ}U+200B ZWSP{RQ}</span>.png (image/png)</bdi>" in html
    assert f"<bdi><mark>Mos\u0441ow</mark><span class='mark'>{LQ}mixed" in html  # the sender
    assert "<bdi>ru</bdi>" in html
    assert RLO not in html
    assert PDF not in html
    assert ZWSP not in html


def test_the_html_transcript_escapes_a_text_still() -> None:
    html = _html(Entry(0, "London", "ROUTINE", 1, "test", "en", "<script>x</script> & co"))
    assert "<bdi>&lt;script&gt;x&lt;/script&gt; &amp; co</bdi>" in html


# -- the console's copy of the rules -------------------------------------------------------------

_SWEEP = """
import { classify, pieces } from "./shown.mjs";
const classes = [];
for (let cp = 0; cp <= 0x10FFFF; cp++) {
  if (cp >= 0xD800 && cp <= 0xDFFF) continue;
  classes.push(classify(String.fromCodePoint(cp)));
}
const ignorable = /\\p{Default_Ignorable_Code_Point}/u, missed = [];
for (let cp = 0; cp <= 0x10FFFF; cp++) {
  const c = String.fromCodePoint(cp);
  if (ignorable.test(c) && classify(c) !== "invisible") missed.push(cp);
}
const corpus = JSON.parse(process.argv[2]);
console.log(JSON.stringify({ classes, missed, pieces: corpus.map((t) => pieces(t)) }));
"""
CORPUS = [
    LIE, SPOOF, f"pay {SPOOF} now", "Просим срочно. Please call.", "a\tb\nc", "\x00\x07\x1b[31m",
    f"x{ZWSP}y\ufeff\u2066z\u2069", "T\u0448irt 00\u04170", "e\u0301te\u0301 \u0391lpha", "",
    "😀❤\ufe0f",
    "שלום world", "مرحبا" + "a", "\u10d0a", "\u2028\u2029", "\U000e0041\U000e007f",
]  # fmt: skip


@pytest.fixture(scope="module")
def javascript(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[object]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the console's copy of the rules is not checked")
    work = tmp_path_factory.mktemp("shown")
    (work / "shown.mjs").write_text(SHOWN_JS.read_text(encoding="utf-8"), encoding="utf-8")
    (work / "sweep.mjs").write_text(_SWEEP, encoding="utf-8")
    done = subprocess.run(
        [node, str(work / "sweep.mjs"), json.dumps(CORPUS)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    result: dict[str, list[object]] = json.loads(done.stdout)
    return result


def test_the_console_classifies_every_character_as_python_does(
    javascript: dict[str, list[object]],
) -> None:
    # Python's Unicode may be older than node's: a character it does not know (Cn) is shown
    # as a mark by Python, and by node only if node does not know it either.
    code_points = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    differ = [
        (f"U+{cp:04X}", ours, theirs)
        for cp, theirs in zip(code_points, javascript["classes"], strict=True)
        if unicodedata.category(chr(cp)) != "Cn" and (ours := classify(chr(cp))) != theirs
    ]
    assert differ == []
    assert javascript["missed"] == [], "every default-ignorable code point is shown as a mark"


def test_the_console_cuts_texts_into_the_same_pieces(
    javascript: dict[str, list[object]],
) -> None:
    ours = [[[p.kind, p.text] for p in pieces(text)] for text in CORPUS]
    assert javascript["pieces"] == ours
