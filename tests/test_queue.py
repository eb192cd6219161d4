"""The translators' queue (issue 15, item 15): GET /console/queue lists the peer's principal and
exercise messages that still need a translation, a review or a certification, FLASH first, then
by precedence, and the oldest first within one; a withdrawn translation or a machine draft does
not count; a certified one takes its message off the list. London's console in process, over a
store holding messages received from Moscow."""

# ruff: noqa: F811 - the tests take fixtures imported from test_console by name
from __future__ import annotations

from typing import Any

import pytest

from hotline.protocol.envelope import Lane
from hotline.station.runtime import Station

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


@pytest.mark.anyio
async def test_the_queue_is_most_urgent_then_oldest_first_and_follows_the_desk(
    app: Any, station: Station
) -> None:
    nina, nina_csrf, nina_name = await signed_in(app, station, "translator")
    ivan, ivan_csrf, _ = await signed_in(app, station, "translator")
    boss, boss_csrf, _ = await signed_in(app, station, "supervisor")
    before = {(i["lane"], i["seq"]) for i in (await nina.get("/console/queue")).json()["items"]}
    made = [
        (Lane.ROUTINE, await arrived(station, "первое")),
        (Lane.IMMEDIATE, await arrived(station, "второе", lane=Lane.IMMEDIATE)),
        (Lane.ROUTINE, await arrived(station, "третье")),
        (Lane.FLASH, await arrived(station, "четвёртое", lane=Lane.FLASH)),
    ]

    async def listed() -> list[tuple[str, int, str]]:
        answer = (await nina.get("/console/queue")).json()
        return [(i["lane"], i["seq"], i["needs"]) for i in answer["items"]
                if (i["lane"], i["seq"]) not in before]  # fmt: skip

    (r1, i1, r2, f1) = [(lane.name, seq) for lane, seq in made]
    assert await listed() == [
        (*f1, "translation"), (*i1, "translation"), (*r1, "translation"), (*r2, "translation"),
    ]  # fmt: skip

    def at(where: tuple[str, int]) -> str:
        return f"/console/messages/moscow/in/{where[0]}/{where[1]}/translations"

    async def post(who: Any, csrf: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = await who.post(path, json=body, headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    done = await post(nina, nina_csrf, at(f1), {"language": "en", "text": "the fourth"})
    wrong = await post(nina, nina_csrf, at(r1), {"language": "en", "text": "the second?"})
    assert (await listed())[:3] == [(*f1, "review"), (*i1, "translation"), (*r1, "review")]
    await post(ivan, ivan_csrf, f"{at(f1)}/{done['hash']}/review", {})
    assert (await listed())[0] == (*f1, "certification")
    await post(boss, boss_csrf, f"{at(f1)}/{done['hash']}/certify", {})
    assert f1 not in [(lane, seq) for lane, seq, _ in await listed()], "certified: off the list"

    # A withdrawn translation does not count: the message needs a translation again.
    runtime = station.links["moscow"]
    await station.translation.withdraw(
        runtime, Lane.ROUTINE, r1[1], bytes.fromhex(wrong["hash"]), "wrong message", nina_name,
        "translator",
    )  # fmt: skip
    assert await listed() == [(*i1, "translation"), (*r1, "translation"), (*r2, "translation")]
    answer = (await boss.get("/console/queue")).json()
    assert answer["total"] == len(answer["items"])
    assert answer["counts"]["certification"] == 0
    item = next(i for i in answer["items"] if (i["lane"], i["seq"]) == r1)
    assert (item["text"], item["language"], item["translations"]) == ("первое", "ru", 0)

    # Traffic carries the same standing as markers.
    traffic = (await boss.get("/console/traffic/moscow")).json()
    rows = {(m["lane"], m["seq"]): m for m in traffic["inbox"]}
    assert (rows[f1]["translations"], rows[f1]["needs"]) == (1, None)
    assert (rows[r1]["translations"], rows[r1]["needs"]) == (0, "translation")
