"""The records people search, a page at a time (issue 15, item 18): the traffic of a link and
the audit log, newest first, with a text search, filters, and "older"/"newer" cursors (an id,
or a time with its tie-breakers), each request reading a bounded number of rows.

The audit log for people (issue 15, item 11): each row as the store keeps it (it is
evidence, never rewritten), and beside it in words, in English and in Russian: what was done,
by whom (a person, the station, the link, the API's token or a user at the station host), on
which link, and the detail with its ids made readable ("silenced flash:london:1" reads
"Alarm silenced: FLASH 1 from london"). Searched and filtered on the server, a page at a time
(by id, newest first), and exported as CSV for auditors, the export itself audited.

The words are made here, not in the page, so the page and the CSV say the same. A row whose
detail is not in a form known here shows its detail as stored."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from hotline.console import views
from hotline.console.security import Auditor, ConsoleDep, Viewer
from hotline.protocol.envelope import Envelope, Lane, MessageType, decode_envelope

if TYPE_CHECKING:
    from hotline.console.security import Console

__all__ = ["ACTIONS", "PAGE_MAX", "Shown", "render", "router", "scan"]

router = APIRouter()  # under /console: routes.py takes it in

PAGE_DEFAULT = 50
PAGE_MAX = 200  # rows in one page of the log
SCAN_MAX = 5000  # rows one request reads looking for a search's or a link's matches
EXPORT_MAX = 100_000  # rows in one CSV export: narrow it by time for more

Words = tuple[str, str]  # (en, ru)

# What was done, in words: every action any door writes (console/, station/, cli/).
ACTIONS: dict[str, Words] = {
    "login": ("Signed in", "Вход"),
    "login refused": ("Sign-in refused", "Вход отклонён"),
    "logout": ("Signed out", "Выход"),
    "drafted": ("Draft written", "Черновик составлен"),
    "sent": ("Message sent", "Сообщение отправлено"),
    "released": ("Draft released", "Черновик выпущен"),
    "release failed": ("Release failed", "Выпуск не удался"),
    "rejected": ("Draft rejected", "Черновик отклонён"),
    "withdrawn": ("Draft withdrawn", "Черновик отозван"),
    "exercise started": ("Exercise started", "Учения начаты"),
    "exercise ended": ("Exercise ended", "Учения завершены"),
    "acknowledged": ("Message acknowledged", "Сообщение подтверждено"),
    "silenced": ("Alarm silenced", "Тревога заглушена"),
    "hand-over": ("Hand-over note", "Запись о передаче смены"),  # noqa: RUF001 - Russian words
    "shift note": ("Shift log note", "Запись в журнале смены"),
    "machine draft": ("Machine translation drafted", "Машинный перевод составлен"),
    "translated": ("Translation written", "Перевод составлен"),
    "reviewed": ("Translation reviewed", "Перевод проверен"),
    "certified": ("Translation certified", "Перевод заверен"),
    "glossary": ("Glossary changed", "Глоссарий изменён"),
    "uploaded": ("File uploaded", "Файл загружен"),
    "memcon written": ("Record of conversation written", "Запись беседы составлена"),
    "memcon reviewed": ("Record of conversation reviewed", "Запись беседы проверена"),
    "memcon certified": ("Record of conversation certified", "Запись беседы заверена"),
    "recording played": ("Recording played", "Запись звонка прослушана"),
    "call placed": ("Call placed", "Звонок сделан"),
    "call answered": ("Call answered", "Звонок принят"),
    "call declined": ("Call declined", "Звонок отклонён"),
    "call ended": ("Call ended", "Звонок завершён"),
    "call joined": ("Joined a call", "Подключение к звонку"),
    "call left": ("Left a call", "Отключение от звонка"),
    "missed call seen": ("Missed call seen", "Пропущенный звонок просмотрен"),
    "missed call acknowledged": ("Missed call acknowledged", "Пропущенный звонок подтверждён"),
    "enrolment begun": ("Enrolment begun", "Регистрация начата"),
    "enrolment refused": ("Enrolment refused", "Регистрация отклонена"),
    "enrolment expired": ("Enrolment code expired", "Код регистрации истёк"),
    "enrolled": ("Enrolled", "Регистрация завершена"),
    "operator added": ("Operator added", "Оператор добавлен"),
    "operator reset": ("Operator reset", "Учётная запись сброшена"),
    "operator disabled": ("Operator disabled", "Оператор отключён"),
    "operator enabled": ("Operator enabled", "Оператор включён"),
    "operator change refused": ("Operator change refused", "Изменение оператора отклонено"),
    "role changed": ("Role changed", "Роль изменена"),
    "clock fault": ("Peer's clock fault", "Сбой часов партнёра"),
    "protocol violation": ("Protocol violation", "Нарушение протокола"),
    "attachment refused": ("File not fetched", "Файл не получен"),
    "held statement refused": ("File receipt refused", "Расписка о файле отклонена"),  # noqa: RUF001 - Russian words
    "handshake refused": ("Connection refused", "Подключение отклонено"),
    "handshakes refused": ("Connections refused", "Подключения отклонены"),
    "handshake refusals not recorded": (
        "Refused connections no longer recorded this hour",
        "Отклонённые подключения в этот час больше не записываются",
    ),
    "audit exported": ("Audit log exported", "Журнал аудита выгружен"),
    "node_active": ("A node became the active one", "Узел стал активным"),  # store/lease.py
}

_TYPES: dict[str, Words] = {
    "principal": ("principal", "основное"),
    "service": ("service", "служебное"),
    "test": ("test", "проверочное"),
    "exercise": ("exercise", "учебное"),
    "acknowledgement": ("acknowledgement", "подтверждение"),
    "call_record": ("call record", "запись о звонке"),  # noqa: RUF001 - Russian words
}
_ROLES: dict[str, Words] = {
    "operator": ("operator", "оператор"),
    "supervisor": ("supervisor", "руководитель"),
    "translator": ("translator", "переводчик"),
    "auditor": ("auditor", "аудитор"),
    "admin": ("administrator", "администратор"),
    "principal": ("principal", "участник"),
    "note-taker": ("note-taker", "протоколист"),
    "listener": ("listener", "слушатель"),
}
_LOGIN: dict[str, Words] = {
    "signed in": ("signed in", "вход выполнен"),
    "wrong password": ("wrong password", "неверный пароль"),
    "wrong code": ("wrong code", "неверный код"),
    "code used before": ("a code used before", "код уже использовался"),
    "no such operator": ("no such operator", "нет такого оператора"),
    "account disabled": ("the account is disabled", "учётная запись отключена"),
    "held for new devices": ("held for new devices", "задержан для новых устройств"),
}
_DEVICE: dict[str, Words] = {
    "a known device": ("from a known device", "с известного устройства"),  # noqa: RUF001 - Russian words
    "a new device": ("from a new device", "с нового устройства"),  # noqa: RUF001 - Russian words
}
_LANES = "FLASH|IMMEDIATE|PRIORITY|ROUTINE"


@dataclass(slots=True)
class Shown:
    """A detail in words, and the link it names (None if it names none)."""

    en: str
    ru: str
    link: str | None = None


def _message(lane: str, seq: str, link: str | None, incoming: bool) -> Words:
    """ "FLASH 1 from london" (the peer's) or "FLASH 1 to london" (ours)."""
    if link is None:
        return f"{lane} {seq}", f"{lane} {seq}"
    if incoming:
        return f"{lane} {seq} from {link}", f"{lane} {seq} от {link}"
    return f"{lane} {seq} to {link}", f"{lane} {seq} для {link}"


def _lane_of(number: str) -> str:
    try:
        return Lane(int(number)).name
    except ValueError:
        return number


_ALARM_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Words]]] = [
    (
        re.compile(r"flash:(?P<l>.+):(?P<s>\d+)"),
        lambda m: _message("FLASH", m["s"], m["l"], True),
    ),
    (
        re.compile(rf"overdue:(?P<l>.+):in:(?P<n>{_LANES}):(?P<s>\d+)"),
        lambda m: (
            f"overdue: {_message(m['n'], m['s'], m['l'], True)[0]}",
            f"просрочено: {_message(m['n'], m['s'], m['l'], True)[1]}",
        ),
    ),
    (
        re.compile(rf"overdue:(?P<l>.+):(?P<n>{_LANES}):(?P<s>\d+)"),
        lambda m: (
            f"overdue: {_message(m['n'], m['s'], m['l'], False)[0]}",
            f"просрочено: {_message(m['n'], m['s'], m['l'], False)[1]}",
        ),
    ),
    (
        re.compile(r"link_down:(?P<l>.+)"),
        lambda m: (f"link {m['l']} down", f"линия {m['l']} не работает"),
    ),
    (
        re.compile(r"path_down:(?P<l>[^:]+):(?P<a>.+)"),
        lambda m: (f"path {m['a']} of {m['l']} down", f"канал {m['a']} линии {m['l']} не работает"),
    ),
    (
        re.compile(r"missed_call:(?P<l>[^:]+):(?P<c>[0-9a-f]+)"),
        lambda m: (
            f"missed call {m['c'][:8]} on {m['l']}",
            f"пропущенный звонок {m['c'][:8]}, линия {m['l']}",
        ),
    ),
    (
        re.compile(r"test_failed:(?P<l>.+)"),
        lambda m: (f"test failed on {m['l']}", f"проверка не прошла, линия {m['l']}"),
    ),
    (
        re.compile(r"test_missing:(?P<l>.+)"),
        lambda m: (f"test missing from {m['l']}", f"нет проверки от {m['l']}"),
    ),
    (
        re.compile(r"clock_fault:(?P<l>.+)"),
        lambda m: (f"clock fault of {m['l']}", f"сбой часов {m['l']}"),
    ),
    (re.compile(r"failover"), lambda m: ("failover", "переключение узла")),
]


def _alarm(alarm_id: str) -> tuple[Words, str | None]:
    for pattern, words in _ALARM_PATTERNS:
        m = pattern.fullmatch(alarm_id)
        if m is not None:
            return words(m), m.groupdict().get("l")
    return (alarm_id, alarm_id), None


def _silenced(detail: str, _link: str | None) -> Shown | None:
    more = re.fullmatch(r"(?P<ids>.*) and (?P<n>\d+) more", detail)
    ids = (more["ids"] if more else detail).split(", ")
    shown = [_alarm(i) for i in ids if i]
    if not shown:
        return None
    en, ru = "; ".join(w[0] for w, _ in shown), "; ".join(w[1] for w, _ in shown)
    if more:
        en, ru = f"{en} and {more['n']} more", f"{ru} и ещё {more['n']}"
    links = {link for _, link in shown}
    return Shown(en, ru, links.pop() if len(links) == 1 else None)


def _acknowledged(detail: str, link: str | None) -> Shown | None:
    m = re.fullmatch(rf"(?P<l>\S+) (?P<n>{_LANES}) (?P<s>\d+)", detail)  # the console's
    if m:
        en, ru = _message(m["n"], m["s"], m["l"], True)
        return Shown(en, ru, m["l"])
    m = re.fullmatch(rf"(?P<n>{_LANES}) (?P<s>\d+) \(as (?P<an>{_LANES}) (?P<as>\d+)\)", detail)
    if m:  # the API's, on its link
        en, ru = _message(m["n"], m["s"], link, True)
        return Shown(
            f"{en} (our acknowledgement: {m['an']} {m['as']})",
            f"{ru} (наше подтверждение: {m['an']} {m['as']})",
            link,
        )
    return None


def _sent(detail: str, link: str | None) -> Shown | None:
    m = re.fullmatch(rf"(?P<n>{_LANES}) (?P<s>\d+), (?P<t>\w+)", detail)
    if not m:
        return None
    en, ru = _message(m["n"], m["s"], link, False)
    kind = _TYPES.get(m["t"], (m["t"], m["t"]))
    return Shown(f"{en} ({kind[0]})", f"{ru} ({kind[1]})", link)


def _annotated(detail: str, link: str | None) -> Shown | None:
    m = re.fullmatch(r"(?P<n>\d+)/(?P<s>\d+)", detail)
    if not m:
        return None
    en, ru = _message(_lane_of(m["n"]), m["s"], link, True)
    return Shown(f"of {en}", f"к {ru}", link)


def _draft(detail: str, link: str | None) -> Shown | None:
    m = re.fullmatch(rf"draft (?P<d>\d+): (?P<l>\S+) (?P<n>{_LANES})", detail)  # drafted
    if m:
        en, ru = (
            f"draft {m['d']}: {m['n']} to {m['l']}",
            f"черновик {m['d']}: {m['n']} для {m['l']}",
        )
        return Shown(en, ru, m["l"])
    m = re.fullmatch(rf"draft (?P<d>\d+) as (?P<l>\S+) (?P<n>{_LANES}) (?P<s>\d+)", detail)
    if m:  # sent or released
        en, ru = _message(m["n"], m["s"], m["l"], False)
        return Shown(f"draft {m['d']}, as {en}", f"черновик {m['d']}, как {ru}", m["l"])
    m = re.fullmatch(r"draft (?P<d>\d+) by (?P<a>\S+): (?P<r>.*)", detail, re.S)  # rejected
    if m:
        return Shown(
            f"draft {m['d']} by {m['a']}; why: {m['r']}",
            f"черновик {m['d']} (автор {m['a']}); причина: {m['r']}",
            link,
        )
    m = re.fullmatch(r"draft (?P<d>\d+): (?P<l>\S+)", detail)  # withdrawn
    if m:
        return Shown(f"draft {m['d']} for {m['l']}", f"черновик {m['d']} для {m['l']}", m["l"])
    m = re.fullmatch(r"draft (?P<d>\d+)(?:: (?P<r>.*))?", detail, re.S)  # rejected, failed
    if m:
        why = m["r"]
        return Shown(
            f"draft {m['d']}" + (f": {why}" if why else ""),
            f"черновик {m['d']}" + (f": {why}" if why else ""),
            link,
        )
    return None


def _login(detail: str, _link: str | None) -> Shown | None:
    m = re.fullmatch(r"(?P<r>.+) from (?P<d>a known device|a new device)", detail)
    if not m:
        return None
    reason, device = _LOGIN.get(m["r"], (m["r"], m["r"])), _DEVICE[m["d"]]
    return Shown(f"{reason[0]}, {device[0]}", f"{reason[1]}, {device[1]}")


def _call(detail: str, link: str | None) -> Shown | None:
    m = re.fullmatch(rf"(?P<p>{_LANES}) call to (?P<l>\S+)", detail)
    if m:
        return Shown(f"{m['p']} call to {m['l']}", f"звонок {m['p']} на {m['l']}", m["l"])
    m = re.fullmatch(r"call (?P<c>[0-9a-f]+)(?: as (?P<r>\S+))?", detail)
    if m:
        role = _ROLES.get(m["r"] or "", (m["r"], m["r"]))
        on = (f" on {link}", f", линия {link}") if link else ("", "")
        return Shown(
            f"call {m['c']}{on[0]}" + (f", as {role[0]}" if m["r"] else ""),
            f"звонок {m['c']}{on[1]}" + (f", как {role[1]}" if m["r"] else ""),
            link,
        )
    m = re.fullmatch(
        rf"(?P<l>\S+): (?P<p>{_LANES}) call (?P<c>[0-9a-f]+) from (?P<w>.+) \((?P<r>\S+)\)",
        detail,
    )
    if m:
        role = _ROLES.get(m["r"], (m["r"], m["r"]))
        return Shown(
            f"{m['p']} call {m['c']} from {m['w']} ({role[0]}) on {m['l']}",
            f"звонок {m['p']} {m['c']} от {m['w']} ({role[1]}), линия {m['l']}",
            m["l"],
        )
    return None


def _memcon(detail: str, _link: str | None) -> Shown | None:
    m = re.fullmatch(r"(?P<l>\S+) call record (?P<s>\d+)(?:: memcon (?P<h>[0-9a-f]+))?", detail)
    if m:
        return Shown(
            f"call record {m['s']} on {m['l']}",
            f"запись о звонке {m['s']}, линия {m['l']}",  # noqa: RUF001 - Russian words
            m["l"],
        )
    m = re.fullmatch(r"(?P<l>\S+) (?P<s>\d+): (?P<f>.+)", detail)  # recording played
    if m:
        return Shown(
            f"{m['f']}, of call record {m['s']} on {m['l']}",
            f"{m['f']}, запись о звонке {m['s']}, линия {m['l']}",  # noqa: RUF001 - Russian words
            m["l"],
        )
    return None


def _glossary(detail: str, _link: str | None) -> Shown | None:
    m = re.fullmatch(r"(?P<l>[^:\s]+): removed entry (?P<e>\d+)", detail)
    if m:
        return Shown(
            f"entry {m['e']} removed, {m['l']}", f"запись {m['e']} удалена, {m['l']}", m["l"]
        )
    m = re.fullmatch(r"(?P<l>[^:\s]+): (?P<s>.*) -> (?P<t>.*)", detail, re.S)
    if m:
        return Shown(f"{m['s']} → {m['t']}, {m['l']}", f"{m['s']} → {m['t']}, {m['l']}", m["l"])
    return None


def _uploaded(detail: str, _link: str | None) -> Shown | None:
    m = re.fullmatch(r"(?P<h>[0-9a-f]{64}) \((?P<n>\d+) bytes\)", detail)
    if not m:
        return None
    return Shown(
        f"{m['n']} bytes, SHA-256 {m['h'][:16]}…", f"{m['n']} байт, SHA-256 {m['h'][:16]}…"
    )


def _operator(detail: str, _link: str | None) -> Shown | None:
    m = re.fullmatch(r"(?P<n>\S+): (?P<a>\w+) to (?P<b>\w+)", detail)  # role changed
    if m:
        a, b = _ROLES.get(m["a"], (m["a"], m["a"])), _ROLES.get(m["b"], (m["b"], m["b"]))
        return Shown(f"{m['n']}: {a[0]} → {b[0]}", f"{m['n']}: {a[1]} → {b[1]}")
    until = r"an enrolment code valid until (?P<u>.+)"
    m = re.fullmatch(rf"(?P<n>\S+) as (?P<r>\w+); {until}", detail)  # added
    if m:
        role = _ROLES.get(m["r"], (m["r"], m["r"]))
        return Shown(
            f"{m['n']} as {role[0]}; enrolment code valid until {m['u']}",
            f"{m['n']}, роль {role[1]}; код регистрации действует до {m['u']}",
        )
    m = re.fullmatch(rf"(?P<n>\S+); {until}", detail)  # reset
    if m:
        return Shown(
            f"{m['n']}; enrolment code valid until {m['u']}",
            f"{m['n']}; код регистрации действует до {m['u']}",
        )
    m = re.fullmatch(r"with the code (?P<w>\S+) made(?:; from (?P<f>.+))?", detail)  # enrolment
    if m:
        return Shown(
            f"with the code {m['w']} made" + (f", from {m['f']}" if m["f"] else ""),
            f"по коду, выданному {m['w']}" + (f", с {m['f']}" if m["f"] else ""),  # noqa: RUF001 - Russian words
        )
    return None


def _named(detail: str, _link: str | None) -> Shown | None:
    """An account's name alone (disabled, enabled)."""
    return Shown(detail, detail) if re.fullmatch(r"\S+", detail) else None


_DETAILS: dict[str, Callable[[str, str | None], Shown | None]] = {
    "silenced": _silenced,
    "acknowledged": _acknowledged,
    "sent": _sent,
    "machine draft": _annotated,
    "translated": _annotated,
    "reviewed": _annotated,
    "certified": _annotated,
    "drafted": _draft,
    "released": _draft,
    "release failed": _draft,
    "rejected": _draft,
    "withdrawn": _draft,
    "login": _login,
    "login refused": _login,
    "call placed": _call,
    "call answered": _call,
    "call declined": _call,
    "call ended": _call,
    "call joined": _call,
    "call left": _call,
    "missed call seen": _call,
    "missed call acknowledged": _call,
    "memcon written": _memcon,
    "memcon reviewed": _memcon,
    "memcon certified": _memcon,
    "recording played": _memcon,
    "glossary": _glossary,
    "uploaded": _uploaded,
    "role changed": _operator,
    "operator added": _operator,
    "operator reset": _operator,
    "enrolled": _operator,
    "enrolment begun": _operator,
    "operator disabled": _named,
    "operator enabled": _named,
}


def actor_words(actor: str) -> Words:
    """Who did it: a person by name; the station, the link, the API's token, or a user at the
    station host (the `hotline` commands) in words."""
    if actor == "station":
        return "the station", "станция"
    if actor == "link":
        return "the link", "линия"
    if actor == "api":
        return "the API (the station's token)", "API (токен станции)"
    if actor.startswith("cli:"):
        name = actor[4:]
        return f"{name}, at the station host", f"{name}, на хосте станции"
    return actor, actor


def _exported(detail: str, _link: str | None) -> Shown | None:
    m = re.fullmatch(r"(?P<n>\d+) rows(?: \((?P<f>.*)\))?", detail, re.S)
    if not m:
        return None
    said = f" ({m['f']})" if m["f"] else ""
    return Shown(f"{m['n']} rows{said}", f"строк: {m['n']}{said}")


_DETAILS["audit exported"] = _exported
_TRANSLATION_WITHDRAWN: Words = ("Translation withdrawn", "Перевод отозван")


def render(actor: str, action: str, detail: str, link: str | None) -> dict[str, Any]:
    """One row for people: `link` is the link the row was stored with (by id), if any."""
    words = ACTIONS.get(action, (action, action))
    if action == "withdrawn" and re.fullmatch(r"\d+/\d+", detail):  # a translation's, not a draft's
        words, action = _TRANSLATION_WITHDRAWN, "translated"
    shown = _DETAILS[action](detail, link) if action in _DETAILS else None
    if shown is None:  # in no form known here: as stored
        shown = Shown(detail, detail, link)
    who = actor_words(actor)
    return {
        "link": link or shown.link,
        "words": {
            "en": {"actor": who[0], "action": words[0], "detail": shown.en},
            "ru": {"actor": who[1], "action": words[1], "detail": shown.ru},
        },
    }


# -- reading a page: the search, the filters, the cursor ---------------------------------------

Fetch = Callable[[int, Any, Any], Awaitable[list[Any]]]


async def scan(
    fetch: Fetch,
    key: Callable[[Any], Any],
    keep: Callable[[list[Any]], Awaitable[list[Any]]],
    limit: int,
    before: Any,
    after: Any,
    scan_max: int = SCAN_MAX,
    chunk: int = 200,
) -> tuple[list[Any], bool, Any]:
    """Up to `limit` rows that `keep` keeps, read from the store a chunk at a time beyond the
    cursor (`fetch(n, before, after)`: newest first, or oldest first after `after`), at most
    `scan_max` rows: what was kept (in the order read), whether more may follow, and the cursor
    to go on from (`key` of a row). `keep` is given a chunk's rows and returns, for each, what
    to show of it or None."""
    found: list[Any] = []
    read, cursor_before, cursor_after, last = 0, before, after, None
    while read < scan_max:
        size = min(max(chunk, limit + 1), scan_max - read)
        rows = await fetch(size, cursor_before, cursor_after)
        read += len(rows)
        for row, shown in zip(rows, await keep(rows), strict=True):
            if shown is None:
                continue
            if len(found) == limit:  # one more than asked for: there is a next page
                return found, True, last
            found.append(shown)
            last = key(row)
        if len(rows) < size:
            return found, False, None
        if after is not None:
            cursor_after = key(rows[-1])
        else:
            cursor_before = key(rows[-1])
    return found, True, cursor_after if after is not None else cursor_before


def _cursors(
    found: list[Any], more: bool, stopped: Any, before: Any, after: Any, key: Callable[[Any], Any]
) -> tuple[Any, Any]:
    """The cursors of the pages older and newer than this one (None: there is none); `found`
    is newest first."""
    if after is not None:
        return (key(found[-1]) if found else after), (stopped if more else None)
    return (stopped if more else None), (key(found[0]) if found and before is not None else None)


# -- the audit log -----------------------------------------------------------------------------


def _matches(row: dict[str, Any], link: str | None, q: str | None) -> bool:
    if link is not None and (row["link"] or "").casefold() != link.casefold():
        return False
    if not q:
        return True
    said = [row["actor"], row["action"], row["detail"], row["link"] or "", str(row["id"])]
    for words in row["words"].values():
        said.extend(words.values())
    return q.casefold() in "\n".join(said).casefold()


@dataclass(slots=True)
class AuditQuery:
    """What a person asked of the log: the store's filters, and the two read here."""

    actor: str | None = None
    action: str | None = None
    link: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    q: str | None = None

    def said(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)}" for k in self.__slots__ if getattr(self, k))


async def _audit_scan(
    console: Console, ask: AuditQuery, limit: int, before: int | None, after: int | None,
    scan_max: int = SCAN_MAX,
) -> tuple[list[dict[str, Any]], bool, int | None]:  # fmt: skip
    names = {r.link.config.link_id: name for name, r in console.station.links.items()}

    async def fetch(n: int, b: int | None, a: int | None) -> list[Any]:
        rows: list[Any] = await console.store(
            lambda s: s.audit_page(n, b, a, ask.actor, ask.action, ask.since_ns, ask.until_ns)
        )
        return rows

    async def keep(rows: list[Any]) -> list[dict[str, Any] | None]:
        drafts = await _draft_links(console, rows)
        kept: list[dict[str, Any] | None] = []
        for row_id, at, actor, action, detail, link_id in rows:
            link = names.get(bytes(link_id)) if link_id is not None else None
            if link is None and (m := _DRAFT.match(detail)):
                link = drafts.get(int(m[1]))
            row = {"id": row_id, "at_ns": at, "actor": actor, "action": action, "detail": detail}
            row.update(render(actor, action, detail, link))
            kept.append(row if _matches(row, ask.link, ask.q) else None)
        return kept

    return await scan(fetch, _first, keep, limit, before, after, scan_max)


_DRAFT = re.compile(r"draft (\d+)\b")


def _first(row: Any) -> Any:
    return row[0]


async def _draft_links(console: Console, rows: list[Any]) -> dict[int, str]:
    """The links of the drafts these rows name and do not say the link of."""
    ids = {int(m[1]) for r in rows if r[5] is None and (m := _DRAFT.match(r[4]))}
    if not ids:
        return {}
    links: dict[int, str] = await console.store(lambda s: s.draft_links(sorted(ids)))
    return links


Limit = Annotated[int, Query(ge=1, le=PAGE_MAX)]
Cursor = Annotated[int | None, Query(ge=0, le=2**63 - 1)]
Nanos = Annotated[int | None, Query(ge=0, le=2**63 - 1)]
Said = Annotated[str | None, Query(max_length=200)]


@router.get("/audit")
async def audit_log(
    _: Auditor,
    console: ConsoleDep,
    limit: Limit = PAGE_DEFAULT,
    before: Cursor = None,
    after: Cursor = None,
    actor: Said = None,
    action: Said = None,
    link: Said = None,
    since_ns: Nanos = None,
    until_ns: Nanos = None,
    q: Said = None,
) -> dict[str, Any]:
    """A page of the audit log, newest first: `before` an id for older rows, `after` one for
    newer; filtered by actor, action, link and time (ns since the epoch, `since_ns` inclusive)
    and searched for `q` in what is stored and in its words, in either language. `older` and
    `newer`: the cursors of the pages beyond (null: none). A search reads at most SCAN_MAX rows
    a request: a short page with `older` set has not reached the start of the log."""
    if before is not None and after is not None:
        raise HTTPException(422, "ask for the rows before an id or after one, not both")
    ask = AuditQuery(actor or None, action or None, link or None, since_ns, until_ns,
                     (q or "").strip() or None)  # fmt: skip
    rows, more, stopped = await _audit_scan(console, ask, limit, before, after)
    if after is not None:
        rows.reverse()
    older, newer = _cursors(rows, more, stopped, before, after, lambda r: r["id"])
    actors = await console.store(lambda s: s.audit_actors())
    return {
        "rows": rows,
        "older": older,
        "newer": newer,
        "limit": limit,
        "actors": [{"actor": a, "en": actor_words(a)[0], "ru": actor_words(a)[1]} for a in actors],
        "actions": {a: {"en": w[0], "ru": w[1]} for a, w in ACTIONS.items()},
        "links": sorted(console.station.links),
    }


@router.get("/audit.csv")
async def audit_csv(
    session: Auditor,
    console: ConsoleDep,
    actor: Said = None,
    action: Said = None,
    link: Said = None,
    since_ns: Nanos = None,
    until_ns: Nanos = None,
    q: Said = None,
    lang: Literal["en", "ru"] | None = None,
) -> Response:
    """The rows the same filters select, oldest first, as CSV for auditors: the stored fields
    (time, actor, action, link, detail as written) and the words in one language (the person's,
    or `lang`); at most EXPORT_MAX rows. The export is itself audited, with its filters."""
    ask = AuditQuery(actor or None, action or None, link or None, since_ns, until_ns,
                     (q or "").strip() or None)  # fmt: skip
    rows, more, _ = await _audit_scan(console, ask, EXPORT_MAX, None, None, 2 * EXPORT_MAX)
    if more:
        raise HTTPException(
            413, f"more than {EXPORT_MAX} rows to export: export a shorter time at a time"
        )
    rows.reverse()
    language = lang or ("ru" if session.language == "ru" else "en")
    out = io.StringIO()
    write = csv.writer(out, lineterminator="\r\n")
    stored = ["id", "time_utc", "at_ns", "actor", "action", "link", "detail_as_stored"]
    write.writerow([*stored, "who", "what", "detail"])
    for r in rows:
        words = r["words"][language]
        as_stored = [r["id"], _utc(r["at_ns"]), r["at_ns"], r["actor"], r["action"]]
        write.writerow(
            [
                *as_stored,
                r["link"] or "",
                r["detail"],
                *(words[k] for k in ("actor", "action", "detail")),
            ]
        )
    said = ask.said()
    detail = f"{len(rows)} rows" + (f" ({said})" if said else "")
    await console.audit(session.operator, "audit exported", detail, ask.link)
    stamp = datetime.fromtimestamp(time.time(), UTC).strftime("%Y%m%d-%H%M%S")
    filename = f"hotline-audit-{_safe(console.station.card.body.name)}-{stamp}.csv"
    return Response(
        "\ufeff" + out.getvalue(),  # a BOM: spreadsheets then read the Cyrillic as UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:40] or "station"


# -- the traffic of a link ---------------------------------------------------------------------

_OUT_CURSOR = re.compile(r"(\d{1,19})\.([0-3])\.(\d{1,19})")  # accepted_ns.lane.seq
OutCursor = Annotated[str | None, Query(pattern=_OUT_CURSOR.pattern, max_length=50)]
LaneName = Literal["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"]
TypeName = Literal["principal", "service", "test", "exercise", "acknowledgement", "call_record"]


def _out_key(row: Any) -> str:
    return f"{row[3]}.{row[0]}.{row[1]}"


def _out_tuple(cursor: str | None) -> tuple[int, int, int] | None:
    if cursor is None:
        return None
    m = _OUT_CURSOR.fullmatch(cursor)
    assert m is not None  # the query's pattern
    return int(m[1]), int(m[2]), int(m[3])


def _says(envelope: Envelope, q: str) -> bool:
    """Whether a message says `q` (any case): in its text, its language, a file's name, or its
    lane and number ("FLASH 3")."""
    body = envelope.body
    said = [body.text, body.language, f"{Lane(body.lane).name} {body.seq}",
            *(a.name for a in body.attachments)]  # fmt: skip
    return q.casefold() in "\n".join(said).casefold()


@router.get("/traffic/{name}")
async def traffic(
    name: str,
    _: Viewer,
    console: ConsoleDep,
    limit: Limit = PAGE_DEFAULT,
    in_before: Cursor = None,
    in_after: Cursor = None,
    out_before: OutCursor = None,
    out_after: OutCursor = None,
    q: Said = None,
    hide_lane: Annotated[list[LaneName] | None, Query()] = None,
    hide_type: Annotated[list[TypeName] | None, Query()] = None,
) -> dict[str, Any]:
    """A page of each list of a link's traffic, newest first: the inbox by the order of arrival
    (`in_before`/`in_after`: an id), the outbox by when we accepted each (`out_before`/
    `out_after`: "accepted_ns.lane.seq"); none of the lanes and types hidden; only the
    messages that say `q`. `paging`: each list's cursors of the pages beyond (null: none)."""
    if (in_before is not None and in_after is not None) or (out_before and out_after):
        raise HTTPException(422, "ask for the rows before a cursor or after one, not both")
    runtime = console.link(name)
    link_id = runtime.link.config.link_id
    lanes = [int(Lane[v]) for v in hide_lane or ()]
    types = [int(MessageType[v.upper()]) for v in hide_type or ()]
    text = (q or "").strip() or None

    def said(at: int) -> Callable[[list[Any]], Awaitable[list[Any]]]:
        """What of a chunk is shown: every row, or those whose envelope (column `at`) says
        the text searched for."""

        async def keep(rows: list[Any]) -> list[Any]:
            if text is None:
                return list(rows)
            return [r if _says(decode_envelope(bytes(r[at]), None), text) else None for r in rows]

        return keep

    async def outbox(n: int, b: str | None, a: str | None) -> list[Any]:
        before, after = _out_tuple(b), _out_tuple(a)
        rows: list[Any] = await runtime.store.call(
            lambda s: s.outbox_page(link_id, n, before, after, lanes, types)
        )
        return rows

    async def inbox(n: int, b: int | None, a: int | None) -> list[Any]:
        rows: list[Any] = await runtime.store.call(
            lambda s: s.inbox_page(link_id, n, b, a, lanes, types)
        )
        return rows

    paging: dict[str, dict[str, Any]] = {}
    pages: list[list[Any]] = []
    for side, fetch, key, keep, before, after in (
        ("out", outbox, _out_key, said(6), out_before, out_after),
        ("in", inbox, _last, said(5), in_before, in_after),
    ):
        rows, more, stopped = await scan(fetch, key, keep, limit, before, after)
        if after is not None:
            rows.reverse()
        older, newer = _cursors(rows, more, stopped, before, after, key)
        paging[side] = {"older": older, "newer": newer}
        pages.append(rows)
    out_rows, in_rows = pages
    settings = console.settings
    shown = await views.traffic(
        runtime, settings.deadlines, time.time_ns(), settings.clock_fault_s * 10**9,
        (out_rows, [row[:6] for row in in_rows]),
    )  # fmt: skip
    return {**shown, "paging": paging, "limit": limit}


def _last(row: Any) -> Any:
    return row[-1]
