"""The console's routes for the record of conversation (memcon) of a call: written after the call
by a note-taker, reviewed by another person, certified by a supervisor (hotline.station.memcon
keeps the rules; docs/console.md lists the routes). Each is an annotation on the call record
this station wrote, signed by the station, and each act goes to the audit log, as a
translation's do. Who may: `memcon` writes one, `review` reviews, `certify` certifies (auth.py)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from hotline.console.auth import Session
from hotline.console.messages import (
    Hash,
    Language,
    Number,
    Remark,
    Words,
    annotation_json,
    check_link_language,
)
from hotline.console.security import Certifier, ConsoleDep, Reviewer, allowed
from hotline.errors import ProtocolError
from hotline.protocol.annotation import Annotation, Kind
from hotline.protocol.envelope import MAX_TEXT_BYTES
from hotline.station.memcon import MemconRefused, NoCallRecord

__all__ = ["router"]

router = APIRouter(prefix="/console")
Memconist = Annotated[Session, Depends(allowed("memcon"))]
MAX_MEMCON = 2 * MAX_TEXT_BYTES  # an annotation's text: 64 KiB of UTF-8 (docs/link.md §7)


class NewMemcon(BaseModel):
    language: Language
    text: Annotated[str, Words] = Field(min_length=1, max_length=MAX_MEMCON)


@router.post("/call-records/{name}/{seq}/memcon", status_code=201)
async def write(
    name: str, seq: Number, new: NewMemcon, session: Memconist, console: ConsoleDep
) -> dict[str, Any]:
    """A record of conversation of the call our record at ROUTINE `seq` tells of."""
    check_link_language(console.link(name), new.language)
    work = console.station.translation.memcons.write(
        console.link(name), seq, new.language, new.text, session.operator, session.role
    )
    return await _signed(console, work, "memcon written", name, seq, session)


@router.post("/call-records/{name}/{seq}/memcon/{ref}/review", status_code=201)
async def review(
    name: str, seq: Number, ref: Hash, remark: Remark, session: Reviewer, console: ConsoleDep
) -> dict[str, Any]:
    return await _check(console, Kind.REVIEW, name, seq, ref, remark, session)


@router.post("/call-records/{name}/{seq}/memcon/{ref}/certify", status_code=201)
async def certify(
    name: str, seq: Number, ref: Hash, remark: Remark, session: Certifier, console: ConsoleDep
) -> dict[str, Any]:
    return await _check(console, Kind.CERTIFICATION, name, seq, ref, remark, session)


async def _check(
    console: ConsoleDep, kind: Kind, name: str, seq: int, ref: str, remark: Remark,
    session: Session,
) -> dict[str, Any]:  # fmt: skip
    work = console.station.translation.memcons.check(
        kind, console.link(name), seq, bytes.fromhex(ref), remark.remark, session.operator,
        session.role,
    )  # fmt: skip
    what = "memcon reviewed" if kind == Kind.REVIEW else "memcon certified"
    return await _signed(console, work, what, name, seq, session)


async def _signed(
    console: ConsoleDep, work: Awaitable[Annotation], what: str, name: str, seq: int,
    session: Session,
) -> dict[str, Any]:  # fmt: skip
    """The annotation the desk signed, audited; 404 for no such call record of ours, 409 for
    what the rules refuse, 422 for words the annotation's rules refuse."""
    try:
        annotation = await work
    except NoCallRecord as exc:
        raise HTTPException(404, str(exc)) from None
    except MemconRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except ProtocolError as exc:
        raise HTTPException(422, str(exc)) from None
    refers = annotation.body.refers.hex()[:16]
    detail = f"{name} call record {seq}" + (f": memcon {refers}" if refers else "")
    await console.audit(session.operator, what, detail, name)
    return annotation_json(annotation)
