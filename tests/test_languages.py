"""Languages are BCP 47 tags of the link's languages (issue 15, item 10): the service API, the
console and the CLI refuse "english", "russian" (well-formed, but no language the registry
knows) and a language the link does not carry, each in one sentence; the board names the link's
languages for the console's pickers; a translation in the wrong language is withdrawn by its
translator or a supervisor, saying why, and stays in the record as withdrawn. London's console
and API in process, over a store holding messages received from Moscow."""

# ruff: noqa: F811 - the tests take fixtures imported from test_console by name
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.errors import ConfigError
from hotline.protocol.envelope import decode_envelope
from hotline.station.api import make_app
from hotline.station.launch import StationProcess, make_pair
from hotline.station.links import load_links
from hotline.station.runtime import Station

# The console's fixtures, shared: pytest finds them by these names, which the tests then take.
from tests.test_console import (  # noqa: F401
    _close_clients,
    _open_clients,
    anyio_backend,
    app,
    arrived,
    audit_actions,
    pair,
    signed_in,
    station,
)

TEXT = "Пожалуйста, подтвердите в полдень. Иванов"


def _at(seq: int) -> str:
    return f"/console/messages/moscow/in/ROUTINE/{seq}"


async def _post(browser: httpx.AsyncClient, csrf: str, path: str, body: dict[str, Any]) -> Any:
    return await browser.post(path, json=body, headers={"X-CSRF-Token": csrf})


def _api(station: Station) -> tuple[httpx.AsyncClient, dict[str, str]]:
    api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_app(station)), base_url="http://127.0.0.1"
    )
    _open_clients.append(api)
    return api, {"Authorization": f"Bearer {station.data.api_token()}"}


@pytest.mark.anyio
async def test_the_api_takes_only_a_language_of_the_link(station: Station) -> None:
    api, bearer = _api(station)
    sends = "/api/v1/links/moscow/messages"
    base = {"text": "status?", "type": "service"}
    english = await api.post(sends, json={**base, "language": "english"}, headers=bearer)
    assert english.status_code == 422
    assert (
        english.json()["detail"] == "'english' is not a BCP 47 language tag (say en, ru, en-GB...)"
    )
    french = await api.post(sends, json={**base, "language": "fr"}, headers=bearer)
    assert french.status_code == 422
    assert french.json()["detail"] == "'fr' is not a language of link moscow: en or ru"
    for language in ("ru", "en-GB"):
        sent = await api.post(sends, json={**base, "language": language}, headers=bearer)
        assert sent.status_code == 201, sent.text
    unsaid = await api.post(sends, json=base, headers=bearer)
    assert unsaid.status_code == 201, "no language said: the link's first"
    link_id = station.links["moscow"].link.config.link_id
    assert station.store is not None
    data = await station.store.call(lambda s: s.outbound(link_id, 3, unsaid.json()["seq"]))
    assert decode_envelope(data or b"", None).body.language == "en"

    seq = await arrived(station, TEXT)
    ack = f"/api/v1/links/moscow/inbox/ROUTINE/{seq}/ack"
    russian = await api.post(ack, json={"language": "russian"}, headers=bearer)
    assert russian.status_code == 422
    assert "'russian' is not a BCP 47 language tag" in russian.json()["detail"]
    acked = await api.post(ack, json={"language": "ru", "text": "Принято"}, headers=bearer)
    assert acked.status_code == 201, acked.text


@pytest.mark.anyio
async def test_the_console_offers_and_takes_only_the_link_s_languages(
    app: Any, station: Station
) -> None:
    boss, boss_csrf, _ = await signed_in(app, station, "supervisor")
    board = (await boss.get("/console/board")).json()
    assert [link["languages"] for link in board["links"]] == [["en", "ru"]]
    draft = {"link": "moscow", "lane": "ROUTINE", "type": "service", "text": "status?"}
    english = await _post(boss, boss_csrf, "/console/drafts", {**draft, "language": "english"})
    assert english.status_code == 422
    assert "'english' is not a BCP 47 language tag" in english.text
    german = await _post(boss, boss_csrf, "/console/drafts", {**draft, "language": "de"})
    assert german.status_code == 422
    assert german.json()["detail"] == "'de' is not a language of link moscow: en or ru"
    sent = await _post(boss, boss_csrf, "/console/drafts", {**draft, "language": "ru"})
    assert sent.status_code == 201, sent.text

    seq = await arrived(station, TEXT)
    nina, nina_csrf, _ = await signed_in(app, station, "translator")
    for language, said in (("russian", "is not a BCP 47 language tag"),
                           ("fr", "'fr' is not a language of link moscow: en or ru")):  # fmt: skip
        refused = await _post(nina, nina_csrf, f"{_at(seq)}/translations",
                              {"language": language, "text": "Call at noon."})  # fmt: skip
        assert refused.status_code == 422
        assert said in refused.text
    asked = await _post(nina, nina_csrf, f"{_at(seq)}/machine", {"target": "fr"})
    assert asked.status_code == 422, "the engine is not asked for a language of no use here"


@pytest.mark.anyio
async def test_a_translation_in_the_wrong_language_is_withdrawn_and_kept(
    app: Any, station: Station
) -> None:
    seq = await arrived(station, TEXT)
    nina, nina_csrf, nina_name = await signed_in(app, station, "translator")
    ivan, ivan_csrf, _ = await signed_in(app, station, "translator")
    boss, boss_csrf, boss_name = await signed_in(app, station, "supervisor")
    clerk, clerk_csrf, _ = await signed_in(app, station, "operator")

    wrong = await _post(nina, nina_csrf, f"{_at(seq)}/translations",
                        {"language": "ru", "text": "Позвоните в полдень."})  # fmt: skip
    assert wrong.status_code == 201
    ref = wrong.json()["hash"]
    withdraw = f"{_at(seq)}/translations/{ref}/withdraw"
    unsaid = await _post(nina, nina_csrf, withdraw, {"reason": ""})
    assert unsaid.status_code == 422, "a withdrawal says why"
    by_clerk = await _post(clerk, clerk_csrf, withdraw, {"reason": "wrong language"})
    assert by_clerk.status_code == 403
    by_other = await _post(ivan, ivan_csrf, withdraw, {"reason": "wrong language"})
    assert by_other.status_code == 409
    assert by_other.json()["detail"] == (
        "a translation is withdrawn by its translator or a supervisor"
    )
    done = await _post(nina, nina_csrf, withdraw, {"reason": "wrong language: into Russian"})
    assert done.status_code == 201, done.text
    assert (done.json()["kind"], done.json()["refers"]) == ("withdrawal", ref)
    again = await _post(boss, boss_csrf, withdraw, {"reason": "again"})
    assert again.status_code == 409
    assert again.json()["detail"] == "this translation is withdrawn already"
    review = await _post(ivan, ivan_csrf, f"{_at(seq)}/translations/{ref}/review", {})
    assert review.status_code == 409
    assert review.json()["detail"] == "this translation is withdrawn: it is no longer reviewed"

    shown = (await nina.get(_at(seq))).json()["annotations"]
    kinds = [(a["kind"], a["person"], a["refers"]) for a in shown]
    assert kinds == [("translation", nina_name, None), ("withdrawal", nina_name, ref)]
    assert shown[0]["text"] == "Позвоните в полдень.", "the withdrawn translation is kept"
    assert "withdrawn" in await audit_actions(station, nina_name)

    # A supervisor withdraws anyone's.
    other = await _post(ivan, ivan_csrf, f"{_at(seq)}/translations",
                        {"language": "en-US", "text": "Call at noon, Ivanov."})  # fmt: skip
    by_boss = await _post(boss, boss_csrf, f"{_at(seq)}/translations/{other.json()['hash']}"
                          "/withdraw", {"reason": "the link's English is en"})  # fmt: skip
    assert by_boss.status_code == 201
    assert "withdrawn" in await audit_actions(station, boss_name)


def test_hotline_send_refuses_a_language_that_is_no_tag(
    pair: tuple[StationProcess, Any],
) -> None:
    london, _ = pair
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "send", "hello", "--lang", "russian",
         "--data-dir", str(london.data.path)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    said = " ".join(done.stderr.split())
    assert "--lang: 'russian' is not a BCP 47 language tag (say en, ru, en-GB...)" in said
    assert len(done.stderr.strip().splitlines()) == 1, "one sentence, no dump"


@pytest.mark.anyio
async def test_the_console_acknowledges_in_a_language_of_the_link(
    app: Any, station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person's console language when the link carries it; else one the link carries."""
    runtime = station.links["moscow"]
    link_id = runtime.link.config.link_id
    store = station.store
    assert store is not None
    clerk, clerk_csrf, clerk_name = await signed_in(app, station, "operator")
    await clerk.put("/console/me/language", json={"language": "ru"},
                    headers={"X-CSRF-Token": clerk_csrf})  # fmt: skip

    async def acknowledged_in() -> tuple[str, str]:
        seq = await arrived(station, TEXT)
        done = await _post(clerk, clerk_csrf, f"/console/inbox/moscow/ROUTINE/{seq}/ack", {})
        assert done.status_code == 201, done.text
        data = await store.call(lambda s: s.outbound(link_id, 3, done.json()["seq"]))
        body = decode_envelope(data or b"", None).body
        return body.language, body.text.split(":")[0]

    assert await acknowledged_in() == ("ru", "Получение подтверждено")
    # A link of English and French: no Russian on it, though the console speaks Russian.
    monkeypatch.setattr(runtime, "link", dataclasses.replace(runtime.link, languages=("fr", "en")))
    language, said = await acknowledged_in()
    assert (language, said) == ("en", f"Acknowledged by {clerk_name}")


def test_a_link_s_languages_are_its_link_toml_s(tmp_path: Path) -> None:
    """`hotline pair` writes the default for people to see and change; a tag that is no
    language, or none at all, is refused when the link is loaded, naming the link."""
    london, _ = make_pair(tmp_path)
    identity = london.data.open_keystore(london.passphrase_file.read_bytes().rstrip(b"\n"))
    written = london.data.path / "links" / "moscow" / "link.toml"
    paired = written.read_text()
    assert 'languages = ["en","ru"]' in paired
    assert [link.languages for link in load_links(london.data, identity)] == [("en", "ru")]
    for said, refused in [
        ('["en-GB", "zh-Hans"]', None),
        ('["english"]', "link moscow: languages: 'english' is not a BCP 47 language tag"),
        ("[]", "link moscow: languages names none"),
    ]:
        written.write_text(paired.replace('["en","ru"]', said))
        if refused is None:
            assert load_links(london.data, identity)[0].languages == ("en-GB", "zh-Hans")
            continue
        with pytest.raises(ConfigError, match=re.escape(refused)):
            load_links(london.data, identity)
