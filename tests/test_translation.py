"""Translation at the receiving end, through the console: the original is kept; a machine draft
names its engine and model; a translation is reviewed by another person and certified by a
supervisor; each step is signed by the station and attributed; the glossary steers the engine.
London's console, in process, over a store holding messages received from Moscow."""

# ruff: noqa: F811 - the tests take fixtures imported from test_console by name
from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.envelope import Lane
from hotline.protocol.statements import Signed
from hotline.station.runtime import Station
from hotline.station.translation import TranslationDesk
from hotline.translate import EngineSettings

# The console's fixtures, shared: pytest finds them by these names, which the tests then take.
from tests.test_console import (  # noqa: F401
    _close_clients,
    anyio_backend,
    app,
    arrived,
    pair,
    signed_in,
    station,
)
from tests.translate_fixtures import running_server

TEXT = "Пожалуйста, подтвердите в полдень. Иванов"


def _at(seq: int) -> str:
    return f"/console/messages/moscow/in/ROUTINE/{seq}"


async def _post(browser: httpx.AsyncClient, csrf: str, path: str, body: dict[str, Any]) -> Any:
    return await browser.post(path, json=body, headers={"X-CSRF-Token": csrf})


@pytest.mark.anyio
async def test_a_translation_is_reviewed_by_another_and_certified_by_a_supervisor(
    app: Any, station: Station
) -> None:
    seq = await arrived(station, TEXT)
    nina, nina_csrf, nina_name = await signed_in(app, station, "translator")
    ivan, ivan_csrf, ivan_name = await signed_in(app, station, "translator")
    boss, boss_csrf, boss_name = await signed_in(app, station, "supervisor")
    clerk, clerk_csrf, _ = await signed_in(app, station, "operator")

    no_engine = await _post(nina, nina_csrf, f"{_at(seq)}/machine", {"target": "en"})
    assert no_engine.status_code == 409
    assert "no machine translation engine" in no_engine.json()["detail"]
    attempt = {"language": "en", "text": "x"}
    refused = await _post(clerk, clerk_csrf, f"{_at(seq)}/translations", attempt)
    assert refused.status_code == 403, "an operator does not translate"

    made = await _post(nina, nina_csrf, f"{_at(seq)}/translations",
                       {"language": "en", "text": "Call at noon. Ivanov"})  # fmt: skip
    assert made.status_code == 201, made.text
    translation = made.json()["hash"]
    own = await _post(nina, nina_csrf, f"{_at(seq)}/translations/{translation}/review", {})
    assert own.status_code == 409
    assert "someone other than its translator" in own.json()["detail"]
    early = await _post(boss, boss_csrf, f"{_at(seq)}/translations/{translation}/certify", {})
    assert early.status_code == 409
    assert "reviewed before" in early.json()["detail"]
    reviewed = await _post(ivan, ivan_csrf, f"{_at(seq)}/translations/{translation}/review",
                           {"remark": "Checked against the original."})  # fmt: skip
    assert reviewed.status_code == 201
    not_chief = await _post(ivan, ivan_csrf, f"{_at(seq)}/translations/{translation}/certify", {})
    assert not_chief.status_code == 403, "a translator does not certify"
    certified = await _post(boss, boss_csrf, f"{_at(seq)}/translations/{translation}/certify", {})
    assert certified.status_code == 201
    ghost = await _post(ivan, ivan_csrf, f"{_at(seq)}/translations/{'ab' * 32}/review", {})
    assert ghost.status_code == 409

    shown = (await clerk.get(_at(seq))).json()
    assert (shown["text"], shown["language"]) == (TEXT, "ru"), "the original is kept as sent"
    kinds = [(a["kind"], a["person"]) for a in shown["annotations"]]
    assert kinds == [("translation", nina_name), ("review", ivan_name),
                     ("certification", boss_name)]  # fmt: skip
    assert shown["annotations"][2]["refers"] == translation

    # Each is signed by London, about exactly that envelope, and kept as signed.
    runtime = station.links["moscow"]
    link_id, me = runtime.link.config.link_id, runtime.link.config.identity.public
    assert station.store is not None
    stored = await station.store.call(lambda s: s.annotations_of(link_id, int(Lane.ROUTINE), seq))
    checked = [Annotation.verify(Signed.from_bytes(s), me) for s in stored]
    assert [a.kind for a in checked] == [Kind.TRANSLATION, Kind.REVIEW, Kind.CERTIFICATION]
    assert all(a.body.seq == seq and a.body.role for a in checked)
    assert (await clerk.get("/console/messages/moscow/in/ROUTINE/99999")).status_code == 404


@pytest.mark.anyio
async def test_one_supervisor_neither_reviews_and_certifies_a_translation_nor_certifies_it_twice(
    app: Any, station: Station
) -> None:
    """Two people besides the translator check a certified translation (issue 13, item 12)."""
    seq = await arrived(station, TEXT)
    nina, nina_csrf, _ = await signed_in(app, station, "translator")
    boss, boss_csrf, boss_name = await signed_in(app, station, "supervisor")
    chief, chief_csrf, chief_name = await signed_in(app, station, "supervisor")
    made = await _post(nina, nina_csrf, f"{_at(seq)}/translations",
                       {"language": "en", "text": "Call at noon. Ivanov"})  # fmt: skip
    checks = f"{_at(seq)}/translations/{made.json()['hash']}"
    assert (await _post(boss, boss_csrf, f"{checks}/review", {})).status_code == 201
    own_review = await _post(boss, boss_csrf, f"{checks}/certify", {})
    assert own_review.status_code == 409
    assert "someone other than its reviewer" in own_review.json()["detail"]

    at_once = [_post(chief, chief_csrf, f"{checks}/certify", {}) for _ in range(3)]
    answers = await asyncio.gather(*at_once)
    assert sorted(a.status_code for a in answers) == [201, 409, 409]
    assert all("by you already" in a.json()["detail"] for a in answers if a.status_code == 409)
    own_certification = await _post(chief, chief_csrf, f"{checks}/review", {})
    assert own_certification.status_code == 409
    assert "someone other than its certifier" in own_certification.json()["detail"]

    shown = (await boss.get(_at(seq))).json()["annotations"]
    assert [(a["kind"], a["person"]) for a in shown[1:]] == [
        ("review", boss_name), ("certification", chief_name)
    ]  # fmt: skip


@pytest.mark.anyio
async def test_a_machine_draft_names_its_engine_and_follows_the_glossary(
    app: Any, station: Station
) -> None:
    nina, csrf, _ = await signed_in(app, station, "translator")
    clerk, clerk_csrf, _ = await signed_in(app, station, "operator")
    term = {"source_language": "ru", "source": "Иванов", "target_language": "en",
            "target": "Ivanov (Deputy Minister)"}  # fmt: skip
    assert (await _post(clerk, clerk_csrf, "/console/glossary/moscow", term)).status_code == 403
    assert (await _post(nina, csrf, "/console/glossary/moscow", term)).status_code == 201
    entries = (await clerk.get("/console/glossary/moscow")).json()
    assert [(e["source"], e["target"]) for e in entries] == [("Иванов", "Ivanov (Deputy Minister)")]

    with running_server(api_key=None) as url:
        settings = EngineSettings(kind="libretranslate", url=url)
        station.translation = TranslationDesk(settings, station.data.path)
        await station.translation.start()
        try:
            seq = await arrived(station, TEXT)
            draft = await _post(nina, csrf, f"{_at(seq)}/machine", {"target": "en"})
        finally:
            await station.translation.close()
    assert draft.status_code == 201, draft.text
    made = draft.json()
    assert made["kind"] == "machine"
    assert made["engine"].startswith("libretranslate: ")
    assert url in made["engine"], "the draft names the server (and pair) that wrote it"
    assert made["text"] == "Please, confirm at noon. Ivanov (Deputy Minister)"
    shown = (await clerk.get(_at(seq))).json()
    assert shown["text"] == TEXT

    removed = await nina.delete(f"/console/glossary/moscow/{entries[0]['id']}",
                                headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert removed.status_code == 204
    assert (await clerk.get("/console/glossary/moscow")).json() == []
