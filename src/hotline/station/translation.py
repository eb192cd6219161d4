"""The translation desk: how a received message gets its translations, and the rules for them.

Every annotation is signed by this station and names the person who made it (hotline.protocol.
annotation). The workflow, as on a real hotline:

    machine draft   anyone who may translate asks the configured engine (if any) for a draft;
                    it is labelled as a machine's, with the engine and model
    translation     a translator writes the translation (perhaps starting from the draft)
    review          a second person checks one translation: never its own translator, nor
                    one who has certified it
    certification   a supervisor certifies one reviewed translation: never its own translator,
                    nor one who reviewed it (so a review and a certification are two people's
                    acts besides the translator's), and once per person
    withdrawal      a translation in the wrong language (or wrong at all) is taken back by its
                    translator or a supervisor, saying why: a signed annotation beside it, so the
                    record keeps both; a withdrawn translation is no longer reviewed or certified

The rules are checked and the annotation stored as one step (one at a time per desk), so two
requests at the same instant cannot both pass a check that only one of them may.

No engine configured is a normal state: people translate from the original alone.

The records of conversation of this station's calls follow the same workflow at their own desk
(memcon.py, `TranslationDesk.memcons`); their annotations share the store's table, so this desk
reads only those about the peer's envelopes.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from hotline.errors import LocalError
from hotline.protocol.annotation import Annotation, Kind, check_problem, withdrawal_problem
from hotline.protocol.envelope import Envelope, MessageType, decode_envelope
from hotline.protocol.statements import Signed
from hotline.station.annotations import sign_annotation
from hotline.station.memcon import MemconDesk
from hotline.translate import Engine, EngineSettings, Glossary, GlossaryEntry, load_engine

if TYPE_CHECKING:
    from hotline.station.link_runtime import LinkRuntime

__all__ = ["TranslationDesk", "TranslationRefused"]

log = logging.getLogger("hotline.translation")


class TranslationRefused(LocalError):
    """An annotation the rules do not allow, or about a message that is not here."""


class TranslationDesk:
    def __init__(self, settings: EngineSettings, base: Path) -> None:
        self.settings = settings
        self.base = base
        self.engine: Engine | None = None
        self._checking = asyncio.Lock()  # a check and the annotation it allows: one at a time
        self.memcons = MemconDesk()  # the records of conversation of our calls

    async def start(self) -> None:
        """Load the engine (a model can take seconds): off the event loop."""
        self.engine = await asyncio.to_thread(load_engine, self.settings, self.base)
        if self.engine is not None:
            await self.engine.start()
            log.info("machine translation: %s", self.engine.describe())

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.close()

    def describe(self) -> str:
        return self.engine.describe() if self.engine is not None else ""

    # -- reading ---------------------------------------------------------------------------------

    async def received(self, runtime: LinkRuntime, lane: int, seq: int) -> Envelope:
        link_id, peer = runtime.link.config.link_id, runtime.link.config.peer
        data = await runtime.store.call(lambda s: s.inbound(link_id, lane, seq))
        if data is None:
            raise TranslationRefused(f"no message {lane}/{seq} received on {runtime.link.name}")
        return decode_envelope(data, peer)

    async def annotations(self, runtime: LinkRuntime, lane: int, seq: int) -> list[Annotation]:
        """The annotations of the peer's envelope (lane, seq), in the order made (not those of
        ours at the same place: a memcon of our call record)."""
        config = runtime.link.config
        link_id, me, peer = config.link_id, config.identity.public, config.peer_direction
        rows = await runtime.store.call(lambda s: s.annotations_of(link_id, lane, seq))
        # Stored: kept from before the rules for words, perhaps (Annotation.decode).
        found = [Annotation.verify(Signed.from_bytes(row), me, words=False) for row in rows]
        return [a for a in found if a.body.direction == peer]

    async def glossary(self, runtime: LinkRuntime) -> Glossary:
        name = runtime.link.name
        rows = await runtime.store.call(lambda s: s.glossary(name))
        return Glossary(
            tuple(
                GlossaryEntry(r.source_language, r.source, r.target_language, r.target, r.note)
                for r in rows
            )
        )

    # -- annotating ------------------------------------------------------------------------------

    async def machine_draft(
        self, runtime: LinkRuntime, lane: int, seq: int, target: str, person: str, role: str
    ) -> Annotation:
        if self.engine is None:
            raise TranslationRefused("no machine translation engine is configured")
        envelope = await self._translatable(runtime, lane, seq)
        glossary = await self.glossary(runtime)
        draft = await self.engine.translate(
            envelope.body.text, envelope.body.language, target, glossary
        )
        engine = f"{draft.engine}: {draft.model}"
        return await sign_annotation(
            runtime, envelope, Kind.MACHINE, target, draft.text, person, role, engine=engine
        )

    async def translate(
        self, runtime: LinkRuntime, lane: int, seq: int, language: str, text: str,
        person: str, role: str,
    ) -> Annotation:  # fmt: skip
        envelope = await self._translatable(runtime, lane, seq)
        if not text.strip():
            raise TranslationRefused("a translation needs a text")
        return await sign_annotation(
            runtime, envelope, Kind.TRANSLATION, language, text, person, role
        )

    async def check(
        self, kind: Kind, runtime: LinkRuntime, lane: int, seq: int, refers: bytes,
        remark: str, person: str, role: str,
    ) -> Annotation:  # fmt: skip
        """A review or a certification of one translation: never by its translator; a
        certification only of a translation someone else has reviewed, once per person; and
        never a review and a certification of one translation by the same person."""
        if kind not in (Kind.REVIEW, Kind.CERTIFICATION):
            raise ValueError(f"{kind!r} does not check a translation")
        async with self._checking:
            envelope = await self._translatable(runtime, lane, seq)
            annotations = await self.annotations(runtime, lane, seq)
            translation = self._translation(annotations, refers)
            if problem := check_problem(kind, translation, annotations, person):
                raise TranslationRefused(problem)
            return await sign_annotation(
                runtime, envelope, kind, translation.body.language, remark, person, role,
                refers=refers,
            )  # fmt: skip

    async def withdraw(
        self, runtime: LinkRuntime, lane: int, seq: int, refers: bytes, reason: str,
        person: str, role: str,
    ) -> Annotation:  # fmt: skip
        """Withdraw one translation, saying why: by its translator or a supervisor, once."""
        if not reason.strip():
            raise TranslationRefused("say why the translation is withdrawn")
        async with self._checking:
            envelope = await self._translatable(runtime, lane, seq)
            annotations = await self.annotations(runtime, lane, seq)
            translation = self._translation(annotations, refers)
            if problem := withdrawal_problem(translation, annotations, person, role):
                raise TranslationRefused(problem)
            return await sign_annotation(
                runtime, envelope, Kind.WITHDRAWAL, translation.body.language, reason, person,
                role, refers=refers,
            )  # fmt: skip

    # -- helpers ---------------------------------------------------------------------------------

    async def _translatable(self, runtime: LinkRuntime, lane: int, seq: int) -> Envelope:
        envelope = await self.received(runtime, lane, seq)
        if envelope.body.type == MessageType.ACKNOWLEDGEMENT:
            raise TranslationRefused("an acknowledgement is not translated")
        return envelope

    @staticmethod
    def _translation(annotations: list[Annotation], refers: bytes) -> Annotation:
        found = next((a for a in annotations if a.hash == refers), None)
        if found is None or found.kind != Kind.TRANSLATION:
            raise TranslationRefused("no such translation of this message")
        return found
