"""The offline engine: an Argos Translate package run by CTranslate2 in the station's process.

A package is what Argos Translate publishes: a zip file (`.argosmodel`) holding one directory with

    metadata.json        from_code, to_code, package_version, name or code, target_prefix
    model/               a CTranslate2 model (model.bin, config.json, its vocabulary)
    sentencepiece.model  the SentencePiece model that splits text into the model's pieces

The station reads that layout itself (the `argostranslate` library would bring in PyTorch). A
package file is unpacked once, into `models/<its SHA-256>/` under the data directory, refusing
members that would land outside it (absolute paths, `..`, links), and the directory appears only
when complete (unpacked beside it, then renamed). The same layout unpacked by hand works too.

Translation is CPU work: it runs in a thread, one call at a time, on one translator loaded once.
The text is split into lines and sentences (long sentences into pieces the model can take),
blank lines and indentation are kept, and all of it goes to the model as one batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from hotline.durable import sync_dir
from hotline.errors import ConfigError
from hotline.translate.engine import MachineTranslation, TranslationError, translate_with_glossary
from hotline.translate.glossary import Glossary

__all__ = ["OfflineEngine", "PackageInfo", "read_package", "unpack_package"]

MAX_MEMBERS = 10_000
MAX_UNPACKED = 4 << 30  # the largest Argos packages are a few hundred MB
MAX_TOKENS = 200  # pieces per input: Argos models are trained on sentences
MAX_DECODE = 512
BEAM_SIZE = 4  # what Argos Translate uses

# What a damaged zip raises, besides BadZipFile (a bad CRC): a truncated or garbled stream.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error)
_LINE = re.compile(r"(\r?\n)")
_EDGES = re.compile(r"(\s*)(.*?)(\s*)", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?…。\uFF01\uFF1F])(\s+)")  # and the fullwidth ! and ?


@dataclass(frozen=True, slots=True)
class PackageInfo:
    """What a package's metadata.json says, and where its parts are."""

    root: Path
    source: str
    target: str
    name: str
    version: str
    target_prefix: str

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def sentencepiece(self) -> Path:
        return self.root / "sentencepiece.model"


def unpack_package(archive: Path, models: Path) -> tuple[Path, str]:
    """Unpack an `.argosmodel` file under `models/` unless already there; return the directory
    and the file's SHA-256 (hex). Raises `ConfigError` for a damaged or unsafe file."""
    try:
        with archive.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        raise ConfigError(f"cannot read the model package {archive}: {exc}") from None
    final = models / digest
    if final.is_dir():
        return final, digest
    models.mkdir(parents=True, exist_ok=True)
    scratch = models / f".unpacking-{digest[:16]}-{secrets.token_hex(4)}"
    try:
        _extract(archive, scratch)
        sync_dir(scratch)
        try:
            scratch.rename(final)
        except OSError:
            if not final.is_dir():  # another process finished first: use its copy
                raise
        sync_dir(models)
    except _ZIP_ERRORS as exc:
        raise ConfigError(f"{archive} is not a readable model package (zip): {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot unpack {archive} into {models}: {exc}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final, digest


def _extract(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        if len(members) > MAX_MEMBERS:
            raise ConfigError(f"{archive}: more than {MAX_MEMBERS} files; not a model package")
        if sum(m.file_size for m in members) > MAX_UNPACKED:
            raise ConfigError(f"{archive}: unpacks to more than {MAX_UNPACKED >> 30} GiB")
        into.mkdir()
        for member in members:
            parts = _safe_parts(archive, member)
            if not parts:
                continue  # "./": the root itself
            target = into.joinpath(*parts)
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            # "xb": a name that appears twice in the zip is refused, not overwritten.
            with zf.open(member) as src, target.open("xb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())


def _safe_parts(archive: Path, member: zipfile.ZipInfo) -> tuple[str, ...]:
    name = member.filename
    parts = PurePosixPath(name).parts
    if not parts and member.is_dir():
        return ()
    unsafe = (
        not parts
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or ".." in parts
        or ":" in parts[0]
        or stat.S_ISLNK(member.external_attr >> 16)
    )
    if unsafe:
        raise ConfigError(f"{archive}: refusing member {name!r} (outside the package, or a link)")
    if member.flag_bits & 0x1:
        raise ConfigError(f"{archive}: member {name!r} is encrypted")
    return parts


def read_package(directory: Path) -> PackageInfo:
    """Find the package in `directory` (itself, or its one subdirectory, as Argos zips it) and
    read its metadata. Raises `ConfigError` naming what is missing."""
    root = directory
    if not (root / "metadata.json").is_file():
        inner = [p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if len(inner) != 1 or not (inner[0] / "metadata.json").is_file():
            raise ConfigError(f"{directory}: no metadata.json; not an Argos Translate package")
        root = inner[0]
    try:
        meta = json.loads((root / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{root}/metadata.json cannot be read: {exc}") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{root}/metadata.json is not a JSON object")
    source, target = _code(meta, "from_code", root), _code(meta, "to_code", root)
    info = PackageInfo(
        root=root,
        source=source,
        target=target,
        name=_text(meta, "name") or _text(meta, "code") or f"translate-{source}_{target}",
        version=_text(meta, "package_version") or "unversioned",
        target_prefix=_text(meta, "target_prefix"),
    )
    if not (info.model_dir / "model.bin").is_file():
        raise ConfigError(f"{root}: no model/model.bin (a CTranslate2 model)")
    if not info.sentencepiece.is_file():
        raise ConfigError(f"{root}: no sentencepiece.model (other tokenizers are not supported)")
    return info


def _code(meta: dict[str, Any], key: str, root: Path) -> str:
    value = meta.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{root}/metadata.json: {key} must name a language")
    return value.strip().lower()


def _text(meta: dict[str, Any], key: str) -> str:
    value = meta.get(key)
    return value.strip() if isinstance(value, str) else ""


class OfflineEngine:
    """One package, loaded once; translations run in a thread, one at a time."""

    name = "ctranslate2"

    def __init__(self, info: PackageInfo, model: str, translator: Any, tokenizer: Any) -> None:
        self.info = info
        self.model = model
        self._translator: Any = translator
        self._tokenizer: Any = tokenizer
        self._lock = asyncio.Lock()

    @classmethod
    def open(cls, path: Path, models: Path) -> OfflineEngine:
        """Load the package at `path` (an `.argosmodel` file or a package directory); unpacked
        packages are kept under `models`. Raises `ConfigError`."""
        try:
            import ctranslate2  # noqa: PLC0415  # the optional "translate" extra
            import sentencepiece  # noqa: PLC0415
        except ImportError:
            raise ConfigError(
                "kind = 'ctranslate2' needs CTranslate2 and SentencePiece: "
                "pip install 'hotline[translate]'"
            ) from None
        if path.is_file():
            directory, digest = unpack_package(path, models)
            info = read_package(directory)
            model = f"{info.name} {info.version} ({path.name}, sha256:{digest[:16]})"
        else:
            info = read_package(path)
            model = f"{info.name} {info.version} ({info.root.name})"
        # Half the cores, at most 4: the station's own event loop keeps the rest.
        threads = max(1, min(4, (os.cpu_count() or 2) // 2))
        try:
            translator = ctranslate2.Translator(
                str(info.model_dir), device="cpu", inter_threads=1, intra_threads=threads
            )
            tokenizer = sentencepiece.SentencePieceProcessor(model_file=str(info.sentencepiece))
        except (RuntimeError, ValueError, OSError) as exc:
            raise ConfigError(f"{info.root}: the model cannot be loaded: {exc}") from None
        return cls(info, model, translator, tokenizer)

    def describe(self) -> str:
        return f"CTranslate2, offline: {self.model}, {self.info.source}→{self.info.target}"

    def pairs(self) -> list[tuple[str, str]]:
        return [(self.info.source, self.info.target)]

    async def start(self) -> None:
        return None  # loaded by open()

    async def translate(
        self, text: str, source: str, target: str, glossary: Glossary
    ) -> MachineTranslation:
        pair = (source.lower(), target.lower())
        if pair not in self.pairs():
            raise TranslationError(
                f"the offline model translates {self.info.source}→{self.info.target}, "
                f"not {pair[0]}→{pair[1]}"
            )
        result, missed = await translate_with_glossary(self._locked, text, glossary, *pair)
        return MachineTranslation(result, self.name, self.model, missed)

    async def close(self) -> None:
        async with self._lock:
            if self._translator is not None:
                await asyncio.to_thread(self._translator.unload_model)
            self._translator = None

    async def _locked(self, text: str) -> str:
        layout, segments = split_text(text)
        if not segments:
            return text
        async with self._lock:
            if self._translator is None:
                raise TranslationError("the offline engine is closed")
            translated = await asyncio.to_thread(self._run, segments)
        return "".join(p if isinstance(p, str) else translated[p] for p in layout)

    def _run(self, segments: list[str]) -> list[str]:
        inputs: list[list[str]] = []
        owners: list[int] = []
        for i, segment in enumerate(segments):
            pieces: list[str] = self._tokenizer.encode(segment, out_type=str)
            for start in range(0, len(pieces), MAX_TOKENS):
                inputs.append(pieces[start : start + MAX_TOKENS])
                owners.append(i)
        if not inputs:
            return ["" for _ in segments]
        prefix = self.info.target_prefix
        longest = max(len(pieces) for pieces in inputs)
        try:
            results = self._translator.translate_batch(
                inputs,
                target_prefix=[[prefix]] * len(inputs) if prefix else None,
                beam_size=BEAM_SIZE,
                max_batch_size=32,
                max_decoding_length=min(MAX_DECODE, 2 * longest + 16),
                # An unknown piece in the output becomes the source piece it attends to.
                replace_unknowns=True,
            )
        except (RuntimeError, ValueError) as exc:
            # The library's message names shapes and devices, never the text.
            raise TranslationError(f"the offline model failed: {exc}") from None
        out: list[list[str]] = [[] for _ in segments]
        for owner, result in zip(owners, results, strict=True):
            hypothesis: list[str] = list(result.hypotheses[0])
            if prefix and hypothesis[:1] == [prefix]:
                hypothesis = hypothesis[1:]
            out[owner].append(str(self._tokenizer.decode_pieces(hypothesis)))
        return [" ".join(part for part in parts if part) for parts in out]


def split_text(text: str) -> tuple[list[str | int], list[str]]:
    """Split `text` into what the model translates (sentences) and what is kept as it is (line
    breaks, blank lines, indentation, the spaces between sentences). The layout lists the kept
    strings and, as ints, the index of each translated segment in its place."""
    layout: list[str | int] = []
    segments: list[str] = []
    for line in _LINE.split(text):
        match = _EDGES.fullmatch(line)
        assert match is not None  # the pattern matches any string
        lead, body, trail = match.groups()
        if not body:
            layout.append(line)
            continue
        layout.append(lead)
        for i, part in enumerate(_SENTENCE_END.split(body)):
            if i % 2:
                layout.append(part)
            else:
                layout.append(len(segments))
                segments.append(part)
        layout.append(trail)
    return layout, segments
