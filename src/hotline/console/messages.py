"""The console's routes for one message and what hangs on it: its files (upload, download,
how far each has come) and, for a received message, its translations (a machine draft, a
translator's translation, a review, a certification) and the link's glossary.

Received files are the peer's bytes: served as downloads, never inline, except a few image
types that cannot carry a script (the preview)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import FileResponse
from pydantic import AfterValidator, BaseModel, Field

from hotline.console.auth import Session
from hotline.console.security import (
    Certifier,
    ConsoleDep,
    Drafter,
    Reviewer,
    Translator,
    Viewer,
)
from hotline.console.views import acknowledgement
from hotline.errors import ProtocolError
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.envelope import MAX_TEXT_BYTES, Lane, decode_envelope
from hotline.protocol.textsafety import text_problem
from hotline.station.api import Uploaded, download_file, upload_file, with_file_states
from hotline.station.events import envelope_json
from hotline.station.languages import link_language_problem, valid_language_problem
from hotline.station.translation import TranslationRefused
from hotline.translate import TranslationError

if TYPE_CHECKING:
    from hotline.station.link_runtime import LinkRuntime

__all__ = ["router"]

router = APIRouter(prefix="/console")
LaneName = Literal["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"]
Side = Literal["in", "out"]
Number = Annotated[int, Path(ge=1, le=2**63 - 1)]
Hash = Annotated[str, Path(pattern="^[0-9a-f]{64}$")]


def _checked(problem: Callable[[str], str | None]) -> AfterValidator:
    """A pydantic check by one of textsafety's rules: a 422 naming the problem, not a 500 when
    the annotation refuses it."""

    def check(value: str) -> str:
        if found := problem(value):
            raise ValueError(found)
        return value

    return AfterValidator(check)


Language = Annotated[
    str,
    Field(min_length=2, max_length=35, pattern="^[A-Za-z0-9-]+$"),
    _checked(valid_language_problem),
]
Words = _checked(text_problem)


class MachineRequest(BaseModel):
    target: Language


class NewTranslation(BaseModel):
    language: Language
    text: Annotated[str, Words] = Field(min_length=1, max_length=MAX_TEXT_BYTES)


class Remark(BaseModel):
    remark: Annotated[str, Words] = Field(default="", max_length=2000)


class Withdrawal(BaseModel):
    reason: Annotated[str, Words] = Field(min_length=1, max_length=2000)


class NewTerm(BaseModel):
    source_language: Language
    source: str = Field(min_length=1, max_length=200)
    target_language: Language
    target: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=500)


def annotation_json(a: Annotation) -> dict[str, Any]:
    b = a.body
    return {
        "hash": a.hash.hex(),
        "kind": a.kind.name.lower(),
        "language": b.language,
        "text": b.text,
        "person": b.person,
        "role": b.role,
        "engine": b.engine,
        "refers": b.refers.hex() or None,
        "made_ns": b.made_ns,
    }


# -- one message -------------------------------------------------------------------------------


@router.get("/messages/{name}/{side}/{lane}/{seq}")
async def message(
    name: str, side: Side, lane: LaneName, seq: Number, _: Viewer, console: ConsoleDep
) -> dict[str, Any]:
    """A message with its files and, if received, its translations."""
    runtime = console.link(name)
    config = runtime.link.config
    link_id, signer = config.link_id, config.peer if side == "in" else config.identity.public
    number = int(Lane[lane])
    data = await console.store(
        lambda s: (
            s.inbound(link_id, number, seq) if side == "in" else s.outbound(link_id, number, seq)
        )
    )
    if data is None:
        raise HTTPException(404, f"no message {lane} {seq} ({side}) on {name!r}")
    shown = {**envelope_json(decode_envelope(data, signer)), "direction": side, "link": name}
    [shown] = await with_file_states(runtime, side, [shown])
    desk = console.station.translation
    annotations = (
        [annotation_json(a) for a in await desk.annotations(runtime, int(Lane[lane]), seq)]
        if side == "in"
        else []
    )
    bound = console.settings.clock_fault_s * 10**9
    acked = await acknowledgement(runtime, side, number, seq, bound)
    # Ours: who drafted it and who released it, if it was drafted here (issue 15, item 8).
    draft = (
        await console.store(lambda s: s.released_as(runtime.link.name, number, seq))
        if side == "out"
        else None
    )
    drafted = (
        {"id": draft.id, "drafted_by": draft.drafted_by, "drafted_ns": draft.drafted_ns,
         "decided_by": draft.decided_by, "decided_ns": draft.decided_ns}
        if draft else None
    )  # fmt: skip
    return {**shown, "annotations": annotations, "engine": desk.describe(),
            "acknowledgement": acked, "draft": drafted}  # fmt: skip


# -- translations ------------------------------------------------------------------------------


async def _annotated(
    console: ConsoleDep, work: Any, what: str, person: str, link: str
) -> dict[str, Any]:
    try:
        annotation: Annotation = await work
    except TranslationRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except TranslationError as exc:
        raise HTTPException(502, f"the translation engine failed: {exc}") from None
    except ProtocolError as exc:  # an engine's draft the annotation's rules refuse (textsafety)
        raise HTTPException(422, str(exc)) from None
    await console.audit(person, what, f"{annotation.body.lane}/{annotation.body.seq}", link)
    return annotation_json(annotation)


@router.post("/messages/{name}/in/{lane}/{seq}/machine", status_code=201)
async def machine_draft(
    name: str, lane: LaneName, seq: Number, ask: MachineRequest, session: Translator,
    console: ConsoleDep,
) -> dict[str, Any]:  # fmt: skip
    desk, runtime = console.station.translation, console.link(name)
    check_link_language(runtime, ask.target)
    work = desk.machine_draft(runtime, Lane[lane], seq, ask.target, session.operator, session.role)
    return await _annotated(console, work, "machine draft", session.operator, name)


@router.post("/messages/{name}/in/{lane}/{seq}/translations", status_code=201)
async def translate(
    name: str, lane: LaneName, seq: Number, new: NewTranslation, session: Translator,
    console: ConsoleDep,
) -> dict[str, Any]:  # fmt: skip
    desk, runtime = console.station.translation, console.link(name)
    check_link_language(runtime, new.language)
    work = desk.translate(
        runtime, Lane[lane], seq, new.language, new.text, session.operator, session.role
    )
    return await _annotated(console, work, "translated", session.operator, name)


@router.post("/messages/{name}/in/{lane}/{seq}/translations/{ref}/review", status_code=201)
async def review(
    name: str, lane: LaneName, seq: Number, ref: Hash, remark: Remark, session: Reviewer,
    console: ConsoleDep,
) -> dict[str, Any]:  # fmt: skip
    return await _check(console, Kind.REVIEW, name, lane, seq, ref, remark, session)


@router.post("/messages/{name}/in/{lane}/{seq}/translations/{ref}/certify", status_code=201)
async def certify(
    name: str, lane: LaneName, seq: Number, ref: Hash, remark: Remark, session: Certifier,
    console: ConsoleDep,
) -> dict[str, Any]:  # fmt: skip
    return await _check(console, Kind.CERTIFICATION, name, lane, seq, ref, remark, session)


@router.post("/messages/{name}/in/{lane}/{seq}/translations/{ref}/withdraw", status_code=201)
async def withdraw(
    name: str, lane: LaneName, seq: Number, ref: Hash, why: Withdrawal, session: Translator,
    console: ConsoleDep,
) -> dict[str, Any]:  # fmt: skip
    """Withdraw a translation (in the wrong language, say), saying why: its translator or a
    supervisor. A signed annotation, kept with it; the translation is shown as withdrawn."""
    work = console.station.translation.withdraw(
        console.link(name), Lane[lane], seq, bytes.fromhex(ref), why.reason, session.operator,
        session.role,
    )  # fmt: skip
    return await _annotated(console, work, "withdrawn", session.operator, name)


def check_link_language(runtime: LinkRuntime, language: str) -> None:
    """A 422 for a language that is not one of the link's (hotline.station.languages)."""
    link = runtime.link
    if problem := link_language_problem(language, link.languages, link.name):
        raise HTTPException(422, problem)


async def _check(
    console: ConsoleDep, kind: Kind, name: str, lane: LaneName, seq: int, ref: str,
    remark: Remark, session: Session,
) -> dict[str, Any]:  # fmt: skip
    work = console.station.translation.check(
        kind, console.link(name), Lane[lane], seq, bytes.fromhex(ref), remark.remark,
        session.operator, session.role,
    )  # fmt: skip
    what = "reviewed" if kind == Kind.REVIEW else "certified"
    return await _annotated(console, work, what, session.operator, name)


# -- the glossary ------------------------------------------------------------------------------


@router.get("/glossary/{name}")
async def glossary(name: str, _: Viewer, console: ConsoleDep) -> list[dict[str, Any]]:
    link = console.link(name).link.name
    rows = await console.store(lambda s: s.glossary(link))
    return [
        {"id": r.id, "source_language": r.source_language, "source": r.source,
         "target_language": r.target_language, "target": r.target, "note": r.note,
         "author": r.author, "updated_ns": r.updated_ns}
        for r in rows
    ]  # fmt: skip


@router.post("/glossary/{name}", status_code=201)
async def put_term(name: str, term: NewTerm, session: Translator, console: ConsoleDep) -> None:
    link, now = console.link(name).link.name, time.time_ns()
    await console.store(
        lambda s: s.put_glossary(
            link, term.source_language.lower(), term.source, term.target_language.lower(),
            term.target, term.note, session.operator, now,
        )
    )  # fmt: skip
    await console.audit(
        session.operator, "glossary", f"{name}: {term.source} -> {term.target}", name
    )


@router.delete("/glossary/{name}/{entry_id}", status_code=204)
async def delete_term(
    name: str, entry_id: Number, session: Translator, console: ConsoleDep
) -> None:
    link = console.link(name).link.name
    if not await console.store(lambda s: s.delete_glossary(link, entry_id)):
        raise HTTPException(404, f"no glossary entry {entry_id}")
    await console.audit(session.operator, "glossary", f"{name}: removed entry {entry_id}", name)


# -- files -------------------------------------------------------------------------------------


@router.post("/files", status_code=201)
async def upload(request: Request, session: Drafter, console: ConsoleDep) -> Uploaded:
    uploaded = await upload_file(console.station.files, request)
    await console.audit(session.operator, "uploaded", f"{uploaded.sha256} ({uploaded.size} bytes)")
    return uploaded


@router.get("/files/{name}/{side}/{lane}/{seq}/{index}")
async def download(
    name: str, side: Side, lane: LaneName, seq: Number, index: int, _: Viewer,
    console: ConsoleDep,
) -> FileResponse:  # fmt: skip
    link_id = console.link(name).link.config.link_id
    rows = await console.store(lambda s: s.attachments_of(link_id, side, int(Lane[lane]), seq))
    row = next((r for r in rows if r.idx == index), None)
    if row is None or (side == "in" and not row.delivered):
        raise HTTPException(404, "no such file held here (yet)")
    return download_file(console.station.files, row.sha256.hex(), row.media_type, row.name)
