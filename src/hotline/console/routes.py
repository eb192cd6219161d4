"""The console's JSON routes (docs/console.md lists them). Each names the permission it needs in
its signature and writes each person's act to the audit log."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, field_validator

from hotline.console import accounts, records, views
from hotline.console.accounts import me_json, signed_in_answer
from hotline.console.drafts import draft_json, send_draft, tell_author
from hotline.console.guard import DEVICE_COOKIE
from hotline.console.messages import check_link_language
from hotline.console.operators import release_hold
from hotline.console.security import (
    COOKIE,
    Acknowledger,
    ConsoleDep,
    Drafter,
    Notetaker,
    Releaser,
    SignedIn,
    Silencer,
    Viewer,
    check_origin,
)
from hotline.errors import ProtocolError
from hotline.protocol.envelope import MAX_ATTACHMENTS, MAX_TEXT_BYTES, Lane, MessageType
from hotline.protocol.textsafety import text_problem
from hotline.station.api import FileRef
from hotline.station.languages import valid_language_problem
from hotline.station.link_runtime import AlreadyAcknowledged
from hotline.store.people import Draft, ShiftNote

__all__ = ["router"]

router = APIRouter(prefix="/console")
LaneName = Literal["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"]
# The link test is the station's own (discipline.py): a person does not type one.
TypeName = Literal["principal", "service", "exercise"]
# An acknowledgement carries no field for a person: its text names them, so that both stations
# can show who acknowledged (issue 15, item 8), signed in the record like the rest.
_ACK_TEXT = {"en": "Acknowledged by {name}", "ru": "Получение подтверждено: {name}"}


def _ack_language(console_language: str, languages: tuple[str, ...]) -> str:
    """An acknowledgement's language, one of the link's (issue 15, item 10): the person's console
    language when the link carries it, else the first of the link's the console has words for,
    else the link's first."""
    primary = [tag.split("-")[0].lower() for tag in languages]
    if console_language in primary:
        return languages[primary.index(console_language)]
    return next(
        (t for t, p in zip(languages, primary, strict=True) if p in _ACK_TEXT), languages[0]
    )


_HELD = (
    "held for new devices after wrong codes: sign in where you signed in before, or ask an "
    "admin to reset the account"
)


REJECTED_SHOWN_NS = 7 * 24 * 3600 * 10**9  # an author's rejected drafts stay in their list a week
Number = Annotated[int, Path(ge=1, le=2**63 - 1)]  # what the store's integers hold


class Login(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    code: str = Field(max_length=16)


class LanguageChoice(BaseModel):
    language: Literal["en", "ru"]


class NewDraft(BaseModel):
    link: str
    lane: LaneName = "ROUTINE"
    type: TypeName = "principal"
    language: str = Field(default="en", min_length=1, max_length=35)
    text: str = Field(min_length=1, max_length=MAX_TEXT_BYTES)
    attachments: list[FileRef] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)

    @field_validator("text")
    @classmethod
    def _fits_an_envelope(cls, text: str) -> str:
        """Checked when drafted, not only when released: the limit is in UTF-8 bytes."""
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("the text is not valid Unicode (a lone surrogate)") from None
        if size > MAX_TEXT_BYTES:
            raise ValueError(f"the text is {size} bytes in UTF-8; at most {MAX_TEXT_BYTES}")
        if problem := text_problem(text):  # the envelope's rule, at once rather than at release
            raise ValueError(problem)
        return text

    @field_validator("language")
    @classmethod
    def _is_bcp47(cls, language: str) -> str:
        if problem := valid_language_problem(language):
            raise ValueError(problem)
        return language


class Rejection(BaseModel):
    reason: str = Field(max_length=1000)

    @field_validator("reason")
    @classmethod
    def _said(cls, reason: str) -> str:
        reason = reason.strip()
        if not reason:
            raise ValueError("say why the draft is rejected: the reason is shown to its author")
        return reason


class SilenceKind(BaseModel):
    kind: Literal["flash"]  # what one button must quiet at once (issue 13, item 8)


class ExerciseChoice(BaseModel):
    on: bool


class AckRequest(BaseModel):
    text: str | None = Field(default=None, min_length=1, max_length=1000)


class NewNote(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)
    handover: bool = False


# -- signing in and out ----------------------------------------------------------------------


@router.post("/login")
async def login(request: Request, credentials: Login, console: ConsoleDep) -> JSONResponse:
    check_origin(request)
    address = request.client.host if request.client else "?"
    device = request.cookies.get(DEVICE_COOKIE)
    name = credentials.name
    result, operator, known = await console.sign_in(
        address, device, name, credentials.password, credentials.code
    )
    where = "a known device" if known else "a new device"
    action = "login" if result.ok else "login refused"
    await console.audit(name, action, f"{result.reason} from {where}")
    if result.held:  # only one who gave the right password and code is told (auth.py)
        raise HTTPException(423, _HELD)
    if not result.ok or operator is None:
        raise HTTPException(401, "wrong name, password or code")
    return signed_in_answer(console, operator, device)


@router.post("/logout", status_code=204)
async def logout(request: Request, session: SignedIn, console: ConsoleDep) -> Response:
    console.sessions.close(request.cookies.get(COOKIE))
    await console.audit(session.operator, "logout", "")
    answer = Response(status_code=204)
    answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=console.tls)
    return answer


@router.get("/alarm")
async def alarm(console: ConsoleDep) -> dict[str, int]:
    """Without signing in: whether a FLASH waits, and how many alarms stand (never what they
    say), so that a console nobody is signed in to still sounds. Anyone who can reach the
    console learns only that."""
    alarms = console.station.discipline.alarms.values()
    return {"flash": sum(1 for a in alarms if a.kind == "flash"), "alarms": len(alarms)}


@router.get("/me")
async def me(session: SignedIn) -> dict[str, Any]:
    return me_json(session)


@router.put("/me/language")
async def language(
    choice: LanguageChoice, session: SignedIn, console: ConsoleDep
) -> dict[str, Any]:
    await console.store(lambda s: s.update_operator(session.operator, language=choice.language))
    session.language = choice.language
    return me_json(session)


# -- looking -----------------------------------------------------------------------------------


@router.get("/board")
async def board(_: Viewer, console: ConsoleDep) -> dict[str, Any]:
    return views.board(console.station)


# -- drafting and releasing --------------------------------------------------------------------


@router.get("/drafts")
async def drafts(session: Viewer, console: ConsoleDep) -> list[dict[str, Any]]:
    """The drafts waiting for release, and after them the caller's own drafts rejected in the
    last REJECTED_SHOWN_NS, each with who rejected it and why (issue 15, item 16)."""
    since = time.time_ns() - REJECTED_SHOWN_NS
    waiting = await console.store(lambda s: s.drafts(("draft",)))
    turned_down = await console.store(
        lambda s: s.drafts_decided(session.operator, "rejected", since)
    )
    return [draft_json(d) for d in [*waiting, *turned_down]]


@router.post("/drafts", status_code=201)
async def draft(new: NewDraft, session: Drafter, console: ConsoleDep) -> dict[str, Any]:
    runtime = console.link(new.link)
    check_link_language(runtime, new.language)  # one of the link's (issue 15, item 10)
    # An exercise message is released like a principal one (the exercise practises the rule),
    # and so is anything in the FLASH lane: it takes over the screens at the other end.
    needs_release = console.settings.two_person_rule and (
        new.type in ("principal", "exercise") or new.lane == "FLASH"
    )
    now = time.time_ns()
    decided_by, decided_ns = (None, None) if needs_release else (session.operator, now)
    record = Draft(
        0, new.link, Lane[new.lane], MessageType[new.type.upper()], new.language, new.text,
        session.operator, now, "draft" if needs_release else "releasing", decided_by,
        decided_ns, None, json.dumps([f.model_dump() for f in new.attachments]),
    )  # fmt: skip
    record.id = await console.store(lambda s: s.add_draft(record))
    if not needs_release:
        return await send_draft(console, runtime, record, session.operator, "sent")
    await console.audit(session.operator, "drafted", f"draft {record.id}: {new.link} {new.lane}")
    console.station.hub.publish({"type": "drafts"})
    return draft_json(record)


@router.post("/drafts/{draft_id}/release")
async def release(draft_id: Number, session: Releaser, console: ConsoleDep) -> dict[str, Any]:
    record = await console.store(lambda s: s.draft(draft_id))
    if record is None or record.state != "draft":
        raise HTTPException(404, f"no draft {draft_id} waiting for release")
    if record.drafted_by == session.operator:
        raise HTTPException(403, "two-person rule: another supervisor must release this")
    runtime = console.link(record.link)
    now = time.time_ns()
    releaser = await console.store(lambda s: s.operator(session.operator))
    held = release_hold(releaser, console.settings.new_account_hold_h, now)  # issue 13, item 10
    if held:
        raise HTTPException(403, held)
    if not await console.store(
        lambda s: s.decide_draft(draft_id, "draft", "releasing", session.operator, now)
    ):
        raise HTTPException(409, f"draft {draft_id} was decided by someone else just now")
    record.state, record.decided_by, record.decided_ns = "releasing", session.operator, now
    return await send_draft(console, runtime, record, session.operator, "released")


@router.post("/drafts/{draft_id}/reject")
async def reject(
    draft_id: Number, why: Rejection, session: Releaser, console: ConsoleDep
) -> dict[str, Any]:
    """Reject a waiting draft, saying why: the reason is kept with it, audited, and shown to
    its author (their drafts list, and a notice on their open console)."""
    now, reason = time.time_ns(), why.reason
    if not await console.store(
        lambda s: s.decide_draft(draft_id, "draft", "rejected", session.operator, now, reason)
    ):
        raise HTTPException(404, f"no draft {draft_id} waiting for release")
    record: Draft = await console.store(lambda s: s.draft(draft_id))
    await console.audit(
        session.operator, "rejected", f"draft {draft_id} by {record.drafted_by}: {reason}"
    )
    tell_author(console, record)
    return draft_json(record)


@router.post("/drafts/{draft_id}/withdraw")
async def withdraw(draft_id: Number, session: SignedIn, console: ConsoleDep) -> dict[str, Any]:
    """The author takes back their own draft before it is released; nobody else can."""
    record = await console.store(lambda s: s.draft(draft_id))
    if record is None or record.state != "draft":
        raise HTTPException(404, f"no draft {draft_id} waiting for release")
    if record.drafted_by != session.operator:
        raise HTTPException(403, f"only its author ({record.drafted_by}) can withdraw a draft")
    now = time.time_ns()
    if not await console.store(
        lambda s: s.decide_draft(draft_id, "draft", "withdrawn", session.operator, now)
    ):
        raise HTTPException(409, f"draft {draft_id} was decided by someone else just now")
    record.state, record.decided_by, record.decided_ns = "withdrawn", session.operator, now
    await console.audit(session.operator, "withdrawn", f"draft {draft_id}: {record.link}")
    console.station.hub.publish({"type": "drafts"})
    return draft_json(record)


@router.post("/exercise")
async def exercise(
    choice: ExerciseChoice, session: Releaser, console: ConsoleDep
) -> dict[str, bool]:
    """Start or end exercise mode: the banner on every console of this station, and new
    messages composed as exercise messages (marked EXERCISE everywhere, at both stations)."""
    await console.store(lambda s: s.set_setting("exercise", "1" if choice.on else "0"))
    console.station.discipline.exercise = choice.on
    await console.audit(session.operator, "exercise started" if choice.on else "exercise ended", "")
    console.station.hub.publish({"type": "alarms"})  # every console redraws its board now
    return {"exercise": choice.on}


# -- acknowledging and silencing ---------------------------------------------------------------


@router.post("/inbox/{name}/{lane}/{seq}/ack", status_code=201)
async def acknowledge(
    name: str,
    lane: LaneName,
    seq: Number,
    session: Acknowledger,
    console: ConsoleDep,
    ack: AckRequest | None = None,
) -> dict[str, Any]:
    runtime = console.link(name)
    given, person = (ack.text if ack else None), session.operator
    language = _ack_language(session.language, runtime.link.languages)
    words = _ACK_TEXT.get(language.split("-")[0].lower(), _ACK_TEXT["en"]).format(name=person)
    text = f"{given}\n— {person}" if given else words
    try:  # exactly one acknowledgement: the check is made with the commit (link_runtime)
        envelope = await runtime.acknowledge(Lane[lane], seq, language, text)
    except AlreadyAcknowledged:
        raise HTTPException(409, f"{lane} {seq} from {name!r} is acknowledged already") from None
    except ProtocolError as exc:
        raise HTTPException(422, str(exc)) from None
    if envelope is None:
        raise HTTPException(404, f"no message {lane} {seq} from {name!r}")
    await console.audit(session.operator, "acknowledged", f"{name} {lane} {seq}")
    await console.station.discipline.review(time.time_ns())  # the alarm goes now, not in 1 s
    return {"link": name, "lane": lane, "seq": envelope.seq, "acknowledges": seq}


@router.post("/alarms/silence")
async def silence_kind(
    choice: SilenceKind, session: Silencer, console: ConsoleDep
) -> dict[str, int]:
    """Every standing alarm of a kind, at once: a flood of FLASH is quieted by one press."""
    quiet = console.station.discipline.silence_all(choice.kind, session.operator)
    if quiet:
        ids = [a.id for a in quiet]
        more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
        await console.audit(session.operator, "silenced", ", ".join(ids[:10]) + more)
    return {"silenced": len(quiet)}


@router.post("/alarms/{alarm_id}/silence", status_code=204)
async def silence(alarm_id: str, session: Silencer, console: ConsoleDep) -> Response:
    if console.station.discipline.silence(alarm_id, session.operator) is None:
        raise HTTPException(404, "no such alarm (it may have cleared)")
    await console.audit(session.operator, "silenced", alarm_id)
    return Response(status_code=204)


# -- shift log and audit log -----------------------------------------------------------------


@router.get("/shift-log")
async def shift_log(_: Viewer, console: ConsoleDep) -> list[dict[str, Any]]:
    notes = await console.store(lambda s: s.shift_notes())
    return [
        {"id": n.id, "at_ns": n.at_ns, "author": n.author, "text": n.text, "handover": n.handover}
        for n in notes
    ]


@router.post("/shift-log", status_code=201)
async def add_note(note: NewNote, session: Notetaker, console: ConsoleDep) -> dict[str, str]:
    record = ShiftNote(0, time.time_ns(), session.operator, note.text, note.handover)
    await console.store(lambda s: s.add_shift_note(record))
    await console.audit(session.operator, "hand-over" if note.handover else "shift note", "")
    return {"status": "written"}


# The traffic and the audit log, a page at a time, searched (records.py).
router.include_router(records.router)
router.include_router(accounts.router)  # the admin's accounts page and enrolment
