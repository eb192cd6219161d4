"""The store's pages (issue 15, item 18), on SQLite and PostgreSQL alike: the outbox by its key
(accepted_ns, lane, seq), ties of one instant included; the inbox by its id; the audit log by
its id with its filters. Each page beyond a cursor, newest first or, after one, oldest first;
pages one after another hold every row once."""

from __future__ import annotations

from typing import Any

from hotline.protocol.envelope import Lane, MessageType
from hotline.store.base import SqlStore
from tests import test_store as ts
from tests.test_store import NOW, SECOND, OpenStore, Traffic

# The suite's fixtures, both backends.
pg, store_factory, identities, configs, traffic = (
    ts.pg, ts.store_factory, ts.identities, ts.configs, ts.traffic
)  # fmt: skip


def _walk(fetch: Any, key: Any, limit: int) -> list[Any]:
    """Every row, page after page beyond the last row's key (at most 20 pages)."""
    seen: list[Any] = []
    cursor = None
    for _ in range(20):
        page = fetch(limit, cursor)
        seen += page
        if len(page) < limit:
            return seen
        cursor = key(page[-1])
    raise AssertionError("more pages than rows")


def test_the_outbox_pages_by_its_key_with_ties_of_one_instant(traffic: Traffic) -> None:
    store, link_id = traffic.store, traffic.config.link_id

    def key(r: Any) -> tuple[int, int, int]:  # accepted_ns, lane, seq
        return (r[3], r[0], r[1])

    every = store.outbox(link_id, 100)
    older = _walk(lambda n, c: store.outbox_page(link_id, n, before=c), key, 2)
    assert sorted(map(key, older)) == sorted(map(key, every)), "each row once"
    assert [key(r) for r in older] == sorted(map(key, every), reverse=True), "newest first"
    assert len({r[3] for r in every}) < len(every), "some were accepted at one instant"
    newer = _walk(lambda n, c: store.outbox_page(link_id, n, after=c or (0, 0, 0)), key, 3)
    assert newer == older[::-1], "after a cursor: oldest first"
    hidden = store.outbox_page(link_id, 100, hide_lanes=[int(Lane.ROUTINE)])
    assert {Lane(r[0]) for r in hidden} == {Lane.FLASH}


def test_the_inbox_pages_by_its_id(traffic: Traffic) -> None:
    store, link_id = traffic.store, traffic.config.link_id
    every = store.inbox(link_id, 100)
    pages = _walk(lambda n, c: store.inbox_page(link_id, n, before=c), lambda r: r[-1], 1)
    assert [r[:6] for r in pages] == every
    shown = store.inbox_page(link_id, 100, hide_types=[int(MessageType.ACKNOWLEDGEMENT)])
    assert [r[:2] for r in shown] == [(int(Lane.PRIORITY), 2), (int(Lane.PRIORITY), 1)]


def test_the_audit_pages_by_its_id_with_its_filters(store_factory: OpenStore) -> None:
    store: SqlStore = store_factory()
    for n in range(7):
        store.audit_person("anna" if n % 2 else "boris", "shift note", f"{n}", NOW + n * SECOND)
    store.audit_person("anna", "silenced", "flash:moscow:1", NOW + 7 * SECOND)
    every = store.audit_page(100)
    assert [r[4] for r in every] == ["flash:moscow:1", *[str(n) for n in range(6, -1, -1)]]
    pages = _walk(lambda n, c: store.audit_page(n, before=c), lambda r: r[0], 3)
    assert pages == every
    assert [r[4] for r in store.audit_page(100, actor="anna", action="shift note")] == [
        "5", "3", "1"
    ]  # fmt: skip
    timed = store.audit_page(100, since_ns=NOW + 2 * SECOND, until_ns=NOW + 4 * SECOND)
    assert [r[4] for r in timed] == ["3", "2"]
    assert [r[4] for r in store.audit_page(2, after=every[3][0])] == ["5", "6"]
    assert store.audit_actors() == ["anna", "boris"]
