"""Translation engines: the glossary's placeholders (as properties), the `[translate]` settings,
the offline engine on a tiny real model packaged as Argos Translate packages it, and the HTTP
engine against a LibreTranslate-compatible server process on 127.0.0.1 (`translate_fixtures`)."""

# Russian is what these tests translate: its letters are meant, not confused with Latin ones.
# ruff: noqa: RUF001

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.errors import ConfigError, HotlineError
from hotline.station.tls import make_self_signed
from hotline.translate import (
    EngineSettings,
    Glossary,
    GlossaryEntry,
    GlossaryError,
    TranslationError,
    load_engine,
)
from hotline.translate.engine import Engine, translate_with_glossary
from hotline.translate.glossary import protect, restore
from hotline.translate.offline import MAX_TOKENS, OfflineEngine, split_text
from tests.translate_fixtures import (
    PACKAGE_NAME,
    PACKAGE_VERSION,
    TARGET_PREFIX,
    build_package,
    pack,
    running_server,
    unused_port,
)

API_KEY = "test-key-4e1d"
NO_GLOSSARY = Glossary()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def entry(source: str, target: str, pair: tuple[str, str] = ("ru", "en")) -> GlossaryEntry:
    return GlossaryEntry(pair[0], source, pair[1], target)


# The glossary ---------------------------------------------------------------------------------

TERM_WORD = st.text(alphabet="абвгдАБВГД", min_size=1, max_size=4)
TERM = st.lists(TERM_WORD, min_size=1, max_size=2).map(" ".join)
FILLER = st.text(alphabet="абвгдежxyz0123", min_size=1, max_size=6)
SEPARATOR = st.sampled_from([", ", ",\n", "; ", ". ", ",  "])
RENDERING = st.text(min_size=1, max_size=8).filter(str.strip)
SPELLINGS: list[Callable[[str], str]] = [str.strip, str.upper, str.lower, str.title]


@st.composite
def glossary_and_text(draw: st.DrawFn) -> tuple[Glossary, str, str]:
    """A glossary, a text mixing its terms (in any case) with other words, and the text the
    glossary's renderings should produce from it."""
    terms = draw(st.lists(TERM, min_size=1, max_size=4, unique_by=str.casefold))
    glossary = Glossary(tuple(entry(term, draw(RENDERING)) for term in terms))
    term_words = {word.casefold() for term in terms for word in term.split()}
    filler = FILLER.filter(lambda word: word.casefold() not in term_words)
    text, expected = [], []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            i = draw(st.integers(0, len(terms) - 1))
            spelling = draw(st.sampled_from(SPELLINGS))(terms[i])
            text.append(spelling)
            expected.append(glossary.entries[i].target)
        else:
            word = draw(filler)
            text.append(word)
            expected.append(word)
        separator = draw(SEPARATOR)  # a comma or stop: two terms never run into a longer one
        text.append(separator)
        expected.append(separator)
    return glossary, "".join(text), "".join(expected)


@given(glossary_and_text())
def test_protect_then_restore_renders_every_term(case: tuple[Glossary, str, str]) -> None:
    glossary, text, expected = case
    protected = protect(text, glossary, "ru", "en")
    assert restore(protected, protected.text) == expected  # an engine that changes nothing


# The letters of the terms, in both cases, and the old Cyrillic forms that fold to в and д.
TERM_LETTERS = "абвгдАБВГД\u1c80\u1c81"


@given(st.text(alphabet=st.characters(exclude_characters=TERM_LETTERS)), st.lists(TERM))
def test_text_without_terms_is_unchanged(text: str, terms: list[str]) -> None:
    glossary = Glossary(tuple(entry(term, "X") for term in terms))
    protected = protect(text, glossary, "ru", "en")
    assert protected.text == text
    assert protected.slots == ()
    assert restore(protected, text) == text


@given(st.text(), st.lists(st.text(min_size=1).filter(str.strip), max_size=4))
def test_any_text_survives_an_engine_that_changes_nothing(text: str, terms: list[str]) -> None:
    glossary = Glossary(tuple(entry(term, f"<{i}>") for i, term in enumerate(terms)))
    protected = protect(text, glossary, "ru", "en")
    assert restore(protected, protected.text) is not None


def test_terms_match_whole_words_in_any_case_longest_first() -> None:
    glossary = Glossary(
        (
            entry("Лавров", "Lavrov"),
            entry("министр Лавров", "Minister Lavrov"),
            entry("Смит", "Smith"),
        )
    )
    text = "МИНИСТР\n  лавров и ЛАВРОВ; Смитсон, Смит-младший, [0] и [ 1 ]."
    protected = protect(text, glossary, "ru", "en")
    assert [slot.found for slot in protected.slots] == ["МИНИСТР\n  лавров", "ЛАВРОВ", "Смит"]
    assert [slot.number for slot in protected.slots] == [2, 3, 4]  # [0] and [1] were taken
    assert restore(protected, protected.text) == (
        "Minister Lavrov и Lavrov; Смитсон, Smith-младший, [0] и [ 1 ]."
    )
    assert protected.terms == ("министр Лавров", "Лавров", "Смит")


def test_a_mangled_placeholder_is_not_restored() -> None:
    protected = protect(
        "Лавров и Смит", Glossary((entry("Лавров", "L"), entry("Смит", "S"))), "ru", "en"
    )
    assert protected.text == "[0] и [1]"
    assert restore(protected, "[ 0 ] and [1]") == "L and S"
    assert restore(protected, "[0] and 1") is None  # lost
    assert restore(protected, "[0] and [1] [1]") is None  # repeated
    assert restore(protected, "[0] and [l]") is None


def test_glossary_direction_and_first_entry_wins() -> None:
    glossary = Glossary(
        (
            entry("Лавров", "Lavrov"),
            entry("лавров", "Lavroff"),
            GlossaryEntry("en", "Lavrov", "ru", "Лавров"),
        )
    )
    assert restore(protect("Лавров", glossary, "RU", "en"), "[0]") == "Lavrov"
    assert protect("Lavrov", glossary, "ru", "en").slots == ()
    assert protect("Лавров", glossary, "ru", "de").slots == ()
    with pytest.raises(GlossaryError, match="non-empty source"):
        entry("  ", "x")


@pytest.mark.anyio
async def test_a_mangling_engine_gets_the_text_again_without_placeholders() -> None:
    seen: list[str] = []

    async def drops_brackets(text: str) -> str:
        seen.append(text)
        return text.replace("[", "").replace("]", "").upper()

    glossary = Glossary((entry("Лавров", "Lavrov"),))
    text, missed = await translate_with_glossary(
        drops_brackets, "Лавров звонил", glossary, "ru", "en"
    )
    assert seen == ["[0] звонил", "Лавров звонил"]
    assert (text, missed) == ("ЛАВРОВ ЗВОНИЛ", ("Лавров",))


def test_split_text_keeps_lines_blank_lines_and_indentation() -> None:
    text = "Один. Два!\n\n  три  \r\nчетыре"
    layout, segments = split_text(text)
    assert segments == ["Один.", "Два!", "три", "четыре"]
    rebuilt = "".join(p if isinstance(p, str) else segments[p] for p in layout)
    assert rebuilt == text


# The settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"kind": "google"}, "kind must be one of"),
        ({"kind": "ctranslate2", "modle": "x"}, "unknown key 'modle'"),
        ({"kind": "ctranslate2"}, "needs model"),
        ({"kind": "ctranslate2", "model": 5}, "model must be a non-empty string"),
        ({"kind": "ctranslate2", "model": ""}, "model must be a non-empty string"),
        ({"kind": "ctranslate2", "model": "m", "url": "https://x"}, "url is not used"),
        ({"kind": "libretranslate"}, "needs url"),
        ({"kind": "libretranslate", "url": "ftp://host"}, "http:// or https://"),
        ({"kind": "libretranslate", "url": "https://"}, "http:// or https://"),
        ({"kind": "libretranslate", "url": "http://lt.example.org"}, "plain http is only"),
        ({"kind": "libretranslate", "url": "https://u:p@lt.example.org"}, "user or password"),
        ({"kind": "libretranslate", "url": "https://lt.example.org/?k=1"}, "without"),
        ({"kind": "libretranslate", "url": "https://h", "model": "m"}, "model is not used"),
        ({"kind": "libretranslate", "url": "https://h", "timeout_s": "20"}, "number of seconds"),
        ({"kind": "libretranslate", "url": "https://h", "timeout_s": True}, "number of seconds"),
        ({"kind": "libretranslate", "url": "https://h", "timeout_s": 0}, "above 0"),
        ({"kind": "libretranslate", "url": "https://h", "timeout_s": 601}, "at most 600"),
        ({"kind": "libretranslate", "url": "https://h", "api_key_file": ["k"]}, "non-empty string"),
    ],
)
def test_settings_refuse_what_cannot_be_used(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EngineSettings.from_toml(table)


def test_settings_accept_what_can_be_used(tmp_path: Path) -> None:
    assert EngineSettings.from_toml({}) == EngineSettings()
    assert load_engine(EngineSettings.from_toml({}), tmp_path) is None
    # Turning the engine off keeps the other keys in place, unused.
    off = EngineSettings.from_toml({"kind": "none", "url": "https://h", "model": "gone"}, tmp_path)
    assert off.kind == "none"
    for url in (
        "http://127.0.0.1:5000",
        "http://localhost:5000/",
        "http://[::1]:5000",
        "https://h",
    ):
        assert EngineSettings.from_toml({"kind": "libretranslate", "url": url}).url == url
    (tmp_path / "pkg.argosmodel").write_bytes(b"")
    settings = EngineSettings.from_toml(
        {"kind": "ctranslate2", "model": "pkg.argosmodel"}, tmp_path
    )
    assert settings.model == Path("pkg.argosmodel")


def test_settings_check_files_against_the_data_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no file or directory at"):
        EngineSettings.from_toml({"kind": "ctranslate2", "model": "missing.argosmodel"}, tmp_path)
    table = {"kind": "libretranslate", "url": "https://h", "api_key_file": "key"}
    with pytest.raises(ConfigError, match="api_key_file: no file"):
        EngineSettings.from_toml(table, tmp_path)
    for content in ("", "two words", "x" * 2000):
        (tmp_path / "key").write_text(content)
        with pytest.raises(ConfigError, match="one key on one line"):
            load_engine(EngineSettings.from_toml(table, tmp_path), tmp_path)


# The offline engine ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_package(tmp_path_factory.mktemp("argos"))


@pytest.fixture(scope="session")
def package_file(package_dir: Path) -> Path:
    return pack(package_dir, package_dir.parent / "translate-ru_en-0_1.argosmodel")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach the network fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the offline engine tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def offline(model: Path, base: Path) -> OfflineEngine:
    engine = load_engine(EngineSettings("ctranslate2", model=model), base)
    assert isinstance(engine, OfflineEngine)
    return engine


@pytest.fixture
async def engine(package_file: Path, tmp_path: Path, no_network: None) -> AsyncIterator[Engine]:
    copy = tmp_path / package_file.name
    shutil.copy(package_file, copy)
    engine = load_engine(EngineSettings("ctranslate2", model=Path(copy.name)), tmp_path)
    assert engine is not None
    yield engine
    await engine.close()


@pytest.mark.anyio
async def test_offline_engine_loads_a_package_file_and_names_its_model(engine: Engine) -> None:
    await engine.start()
    assert engine.name == "ctranslate2"
    assert engine.pairs() == [("ru", "en")]
    assert f"{PACKAGE_NAME} {PACKAGE_VERSION}" in engine.describe()
    draft = await engine.translate("Министр позвонит в полдень.", "ru", "en", NO_GLOSSARY)
    assert isinstance(draft.text, str)
    assert TARGET_PREFIX not in draft.text
    assert draft.engine == "ctranslate2"
    assert draft.model.startswith(f"{PACKAGE_NAME} {PACKAGE_VERSION} (translate-ru_en-0_1.argos")
    assert "sha256:" in draft.model


@pytest.mark.anyio
async def test_offline_engine_keeps_the_shape_of_the_text(engine: Engine) -> None:
    text = "Линия проверяется каждый час. Учения начнутся завтра.\n\n  Подтвердите.\nМинистр"
    lines = (await engine.translate(text, "RU", "en", NO_GLOSSARY)).text.split("\n")
    assert len(lines) == 4
    assert lines[1] == ""
    assert lines[2].startswith("  ")
    for blank in ("", "  \n\n "):
        assert (await engine.translate(blank, "ru", "en", NO_GLOSSARY)).text == blank


@pytest.mark.anyio
async def test_offline_engine_takes_a_sentence_longer_than_the_model_does(engine: Engine) -> None:
    text = " ".join(["подтвердите получение этого сообщения"] * (MAX_TOKENS // 8))
    assert isinstance((await engine.translate(text, "ru", "en", NO_GLOSSARY)).text, str)


@pytest.mark.anyio
async def test_offline_engine_follows_or_reports_the_glossary(engine: Engine) -> None:
    glossary = Glossary((entry("Министр", "Minister"),))
    draft = await engine.translate("Министр позвонит.", "ru", "en", glossary)
    # Random weights rarely carry "[0]" through; either way no placeholder reaches the reader.
    assert "[0]" not in draft.text
    assert ("Minister" in draft.text) != (draft.glossary_missed == ("Министр",))


@pytest.mark.anyio
async def test_offline_engine_refuses_a_pair_it_does_not_have(engine: Engine) -> None:
    with pytest.raises(TranslationError, match="translates ru→en, not en→ru"):
        await engine.translate("The minister", "en", "ru", NO_GLOSSARY)
    await engine.close()
    with pytest.raises(TranslationError, match="closed"):
        await engine.translate("Министр", "ru", "en", NO_GLOSSARY)


@pytest.mark.anyio
async def test_a_package_file_is_unpacked_once(
    package_file: Path, tmp_path: Path, no_network: None
) -> None:
    first = offline(package_file, tmp_path)
    (unpacked,) = (tmp_path / "models").iterdir()
    stamp = next(unpacked.rglob("model.bin")).stat().st_mtime_ns
    second = offline(package_file, tmp_path)
    assert list((tmp_path / "models").iterdir()) == [unpacked]
    assert next(unpacked.rglob("model.bin")).stat().st_mtime_ns == stamp
    assert first.model == second.model
    await first.close()
    await second.close()


@pytest.mark.anyio
async def test_an_unpacked_package_directory_loads_too(package_dir: Path, tmp_path: Path) -> None:
    engine = offline(package_dir, tmp_path)
    assert engine.model == f"{PACKAGE_NAME} {PACKAGE_VERSION} ({package_dir.name})"
    assert not (tmp_path / "models").exists()
    await engine.close()


def _zip(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def _damaged(kind: str, package_file: Path, tmp_path: Path) -> Path:
    target = tmp_path / f"{kind}.argosmodel"
    good = package_file.read_bytes()
    if kind == "garbage":
        target.write_bytes(os.urandom(4096))
    elif kind == "truncated":
        target.write_bytes(good[: len(good) // 2])
    elif kind == "bad-crc":
        with zipfile.ZipFile(package_file) as zf:
            data = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zf:
            for name, content in data.items():
                zf.writestr(name, content)
        raw = bytearray(target.read_bytes())
        spot = raw.find(b'"from_code"')
        raw[spot + 2] ^= 0x20
        target.write_bytes(bytes(raw))
    elif kind == "traversal":
        _zip(target, {"pkg/metadata.json": b"{}", "../evil.txt": b"x"})
    elif kind == "absolute":
        _zip(target, {"pkg/metadata.json": b"{}", "/tmp/evil.txt": b"x"})
    elif kind == "link":
        _zip(target, {"pkg/metadata.json": b"{}"}, links=("pkg/sentencepiece.model",))
    elif kind == "no-metadata":
        _zip(target, {"pkg/model/model.bin": b"x"})
    elif kind == "bad-metadata":
        _zip(target, {"pkg/metadata.json": b'{"from_code": "ru"}'})
    elif kind == "no-model":
        _zip(target, {"pkg/metadata.json": b'{"from_code": "ru", "to_code": "en"}'})
    return target


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("garbage", "not a readable model package"),
        ("truncated", "not a readable model package"),
        ("bad-crc", "not a readable model package"),
        ("traversal", "refusing member '../evil.txt'"),
        ("absolute", "refusing member '/tmp/evil.txt'"),
        ("link", "refusing member 'pkg/sentencepiece.model'"),
        ("no-metadata", "no metadata.json"),
        ("bad-metadata", "to_code must name a language"),
        ("no-model", "no model/model.bin"),
    ],
)
def test_a_damaged_or_unsafe_package_is_refused(
    kind: str, message: str, package_file: Path, tmp_path: Path, no_network: None
) -> None:
    base = tmp_path / "data"
    base.mkdir()
    damaged = _damaged(kind, package_file, tmp_path)
    with pytest.raises(ConfigError, match=message):
        offline(damaged, base)
    assert not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/evil.txt").exists()  # where the zip aimed
    leftovers = [p.name for p in (base / "models").glob(".unpacking*")]
    assert leftovers == []


def test_a_package_without_sentencepiece_is_refused(package_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "pkg"
    shutil.copytree(package_dir, copy)
    (copy / "sentencepiece.model").unlink()
    with pytest.raises(ConfigError, match=r"no sentencepiece\.model"):
        offline(copy, tmp_path)


# The HTTP engine ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    with running_server(API_KEY) as url:
        yield url


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "translate.key"
    path.write_text(API_KEY + "\n")
    return path


def libre(url: str, base: Path, key: Path | None = None, timeout_s: float = 5) -> Engine:
    table: dict[str, object] = {"kind": "libretranslate", "url": url, "timeout_s": timeout_s}
    if key is not None:
        table["api_key_file"] = key.name
    engine = load_engine(EngineSettings.from_toml(table, base), base)
    assert engine is not None
    return engine


@pytest.mark.anyio
async def test_http_engine_translates_with_the_api_key(
    server: str, key_file: Path, tmp_path: Path
) -> None:
    engine = libre(server, tmp_path, key_file)
    await engine.start()
    assert engine.pairs() == [("en", "ru"), ("ru", "en"), ("zh-hant", "en")]
    assert "3 language pairs" in engine.describe()
    draft = await engine.translate("Please confirm.\n\nMinister", "en", "ru", NO_GLOSSARY)
    assert draft.text == "Пожалуйста подтвердите.\n\nМинистр"
    assert (draft.engine, draft.model) == ("libretranslate", f"{server} en→ru")
    # Codes are compared in lower case and sent as the server spells them.
    assert (await engine.translate("中文 [1]", "ZH-hant", "en", NO_GLOSSARY)).text == "Chinese [1]"
    await engine.close()


@pytest.mark.anyio
async def test_http_engine_keeps_the_glossary(server: str, key_file: Path, tmp_path: Path) -> None:
    engine = libre(server, tmp_path, key_file)
    glossary = Glossary((entry("Smith", "Смит", ("en", "ru")), entry("Smith", "Smyth")))
    draft = await engine.translate("Minister SMITH will call at noon [0].", "en", "ru", glossary)
    assert draft.text == "Министр Смит будет звонить в полдень [0]."
    assert draft.glossary_missed == ()
    await engine.close()


@pytest.mark.anyio
async def test_http_engine_without_the_right_key_is_refused(server: str, tmp_path: Path) -> None:
    for engine in (libre(server, tmp_path), libre_with_key(server, tmp_path, "wrong")):
        with pytest.raises(TranslationError, match="answered 403: Invalid API key"):
            await engine.translate("Please", "en", "ru", NO_GLOSSARY)
        await engine.close()


def libre_with_key(url: str, base: Path, key: str) -> Engine:
    (base / "other.key").write_text(key)
    return libre(url, base, base / "other.key")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("boom now", "answered 500: Internal error"),
        ("garbled words", "answer is not JSON"),
        ("slow words", "timed out"),
    ],
)
async def test_http_engine_failures_are_clear(
    server: str, key_file: Path, tmp_path: Path, text: str, message: str
) -> None:
    engine = libre(server, tmp_path, key_file, timeout_s=0.5)
    with pytest.raises(TranslationError, match=message):
        await engine.translate(text, "en", "ru", NO_GLOSSARY)
    await engine.close()


@pytest.mark.anyio
async def test_http_engine_refuses_a_pair_the_server_lacks(
    server: str, key_file: Path, tmp_path: Path
) -> None:
    engine = libre(server, tmp_path, key_file)
    with pytest.raises(TranslationError, match="does not offer en→de"):
        await engine.translate("Please", "en", "de", NO_GLOSSARY)
    await engine.close()


@pytest.mark.anyio
async def test_http_engine_never_logs_or_quotes_the_text(
    server: str, key_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "echo Operation Nightingale begins"
    engine = libre(server, tmp_path, key_file)
    with pytest.raises(TranslationError, match="answered 400") as refused:
        await engine.translate(secret, "en", "ru", NO_GLOSSARY)
    await engine.translate("Please confirm Nightingale", "en", "ru", NO_GLOSSARY)
    await engine.close()
    assert "Nightingale" not in str(refused.value)
    assert "quotes the message" in str(refused.value)
    assert "Nightingale" not in caplog.text
    assert "/translate: 200" in caplog.text  # sizes and statuses are logged


@pytest.mark.anyio
async def test_http_engine_with_its_server_down(tmp_path: Path) -> None:
    engine = libre(f"http://127.0.0.1:{unused_port()}", tmp_path)
    await engine.start()  # does not raise: the station starts without its translation server
    assert engine.pairs() == []
    assert "languages not known yet (cannot connect" in engine.describe()
    with pytest.raises(TranslationError, match="cannot connect to the translation server"):
        await engine.translate("Please", "en", "ru", NO_GLOSSARY)
    await engine.close()


@pytest.mark.anyio
async def test_http_engine_over_https_trusts_only_the_configured_authority(
    tmp_path: Path, key_file: Path
) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    make_self_signed("translation", "127.0.0.1", cert, key)
    with running_server(API_KEY, tls=(cert, key)) as url:
        base = {"kind": "libretranslate", "url": url, "api_key_file": key_file.name}
        trusting = load_engine(
            EngineSettings.from_toml({**base, "ca_file": cert.name}, tmp_path), tmp_path
        )
        assert trusting is not None
        draft = await trusting.translate("Please confirm", "en", "ru", NO_GLOSSARY)
        assert draft.text == "Пожалуйста подтвердите"
        await trusting.close()
        doubting = libre(url, tmp_path, key_file)
        with pytest.raises(TranslationError, match="certificate was not accepted"):
            await doubting.translate("Please confirm", "en", "ru", NO_GLOSSARY)
        await doubting.close()


def test_a_ca_file_must_hold_a_certificate(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate")
    table = {"kind": "libretranslate", "url": "https://h", "ca_file": "ca.pem"}
    with pytest.raises(ConfigError, match=r"ca_file: .* is not usable"):
        load_engine(EngineSettings.from_toml(table, tmp_path), tmp_path)
    with pytest.raises(ConfigError, match="ca_file: no file"):
        EngineSettings.from_toml({**table, "ca_file": "gone.pem"}, tmp_path)
    with pytest.raises(ConfigError, match="ca_file is not used"):
        EngineSettings.from_toml({"kind": "ctranslate2", "model": "m", "ca_file": "ca.pem"})


def test_translation_error_is_a_hotline_error() -> None:
    assert issubclass(TranslationError, HotlineError)
