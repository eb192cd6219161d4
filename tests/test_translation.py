"""Translation at the receiving end, through the console: the original is kept; a machine draft
names its engine and model; a translation is reviewed by another person and certified by a
supervisor; each step is signed by the station and attributed; the glossary steers the engine.
London's console, in process, over a store holding messages received from Moscow."""

# ruff: noqa: F811 - the tests take fixtures imported from test_console by name
from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.envelope import ENVELOPE_VERSION, Envelope, EnvelopeBody, Lane, MessageType
from hotline.protocol.state import Batch
from hotline.protocol.statements import Head, Signed
from hotline.station.datadir import DataDir
from hotline.station.runtime import Station
from hotline.station.translation import TranslationDesk
from hotline.translate import EngineSettings

# The console's fixtures, shared: pytest finds them by these names, which the tests then take.
from tests.test_console import (  # noqa: F401
    _close_clients,
    anyio_backend,
    app,
    pair,
    signed_in,
    station,
)
from tests.translate_fixtures import running_server

TEXT = "Пожалуйста, подтвердите в полдень. Иванов"


async def arrived(station: Station, text: str, language: str = "ru") -> int:
    """A principal message from Moscow, stored at London as if it had come over the link."""
    runtime = station.links["moscow"]
    assert runtime.core is not None
    assert station.store is not None
    config, head = runtime.link.config, runtime.core.inbound[Lane.ROUTINE]
    moscow = station.data.path.parent / "moscow"
    passphrase = (moscow.parent / "moscow.passphrase").read_bytes().rstrip(b"\n")
    peer = DataDir(moscow).open_keystore(passphrase)
    body = EnvelopeBody(
        ENVELOPE_VERSION, config.link_id, config.peer_direction, int(Lane.ROUTINE), head.seq + 1,
        time.time_ns(), int(MessageType.PRINCIPAL), language, text, head.hash, bytes(32), None,
    )  # fmt: skip
    envelope = Envelope.create(body, peer)
    link_id = config.link_id
    await station.store.call(lambda s: s.commit(link_id, Batch(inbound=[envelope]), time.time_ns()))
    runtime.core.inbound[Lane.ROUTINE] = Head(envelope.seq, envelope.hash)
    return envelope.seq


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
