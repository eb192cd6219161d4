"""Call recordings in a bundle (docs/archive.md, "Recordings"): the exporter's own, beside the call
records that seal their hashes.

A station records a call in Ogg Opus files under `<data dir>/recordings/` and names each in its
call record, with its SHA-256 and size (docs/calls.md §4). Only the station that wrote a record
holds the files it names: the peer's record names the peer's files (under the same names, since
both are named after the call), which this station never had. So a bundle carries, for each call
record of the *exporter's* chain in it, the recordings that record names, as members
`recordings/<name>`; and a recording the exporter cannot produce as recorded is listed in the
manifest's `missing_recordings`, with why: "absent" (not in the data directory) or "altered" (its
size or hash is not the record's). The verifier holds every carried file to its record and every
name to a member or to that list: a bundle cannot quietly leave a recording out, nor carry one
whose bytes differ.
"""

from __future__ import annotations

import functools
import hashlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hotline.archive import ArchiveError
from hotline.archive.manifest import DAMAGE
from hotline.archive.transcript import Sink
from hotline.errors import ConfigError, LocalError
from hotline.protocol.callrecord import CallRecord, Recording

__all__ = [
    "MEMBER_PREFIX",
    "MISSING_REASONS",
    "Claim",
    "RecordingsOut",
    "check_recordings",
]

MEMBER_PREFIX = "recordings/"
MISSING_REASONS = ("absent", "altered")
_BLOCK = 1 << 20


# -- export ----------------------------------------------------------------------------------------


class RecordingsOut:
    """The recordings our call records name: which the data directory holds as recorded (carried),
    which not (missing, with why). Decided when the record is read, written after the files."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory  # <data dir>/recordings, or None: none to carry
        self.carried: dict[str, Recording] = {}
        self.missing: dict[str, str] = {}

    def add(self, record: CallRecord) -> dict[str, str]:
        """Take one of our records; return, per recording it names, a note for the transcript."""
        for rec in record.recordings:
            if rec.name in self.missing:
                continue
            if rec.name in self.carried:
                if self.carried[rec.name] != rec:  # two records, two hashes: no file is both
                    del self.carried[rec.name]
                    self.missing[rec.name] = "altered"
                continue
            why = self._problem(rec)
            if why is None:
                self.carried[rec.name] = rec
            else:
                self.missing[rec.name] = why
        return {rec.name: self.note(rec.name) for rec in record.recordings}

    def note(self, name: str) -> str:
        if name in self.carried:
            return f"in this bundle as {MEMBER_PREFIX}{name}"
        if self.missing.get(name) == "absent":
            return "NOT IN THIS BUNDLE: not found at the station when exported"
        return "NOT IN THIS BUNDLE: the station's file differs from this record"

    def _problem(self, rec: Recording) -> str | None:
        """
        Raises:
            ConfigError: the file is there but cannot be read (fix that, rather than leave a
                recording out).
        """
        path = self.directory / rec.name if self.directory is not None else None
        if path is None or not path.is_file():
            return "absent"
        try:
            if path.stat().st_size != rec.size or _sha256_file(path) != rec.sha256:
                return "altered"
        except OSError as exc:
            raise ConfigError(f"cannot read the recording {path}: {exc}") from None
        return None

    def write(self, member: Callable[[zipfile.ZipInfo, Callable[[Sink], object]], str]) -> int:
        """Write each carried recording, stored as it is (Opus is compressed already), through
        `member(info, writer)`, which returns the member's SHA-256 hex; return how many.

        Raises:
            LocalError: a recording changed between its check and its copy.
            ConfigError: it could no longer be read.
        """
        for name, rec in sorted(self.carried.items()):
            path = self.directory / name if self.directory is not None else Path(name)
            info = zipfile.ZipInfo(f"{MEMBER_PREFIX}{name}")
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = rec.size  # so that zipfile writes ZIP64 sizes for a huge one
            if member(info, functools.partial(_copy, path)) != rec.sha256:
                raise LocalError(f"{path} changed while it was exported; export again")
        return len(self.carried)


def _copy(path: Path, out: Sink) -> None:
    """Copy a recording into its member; a failure to read it is the data directory's, one to
    write the bundle's (an OSError, as it is)."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read the recording {path}: {exc}") from None
    with f:
        while True:
            try:
                block = f.read(_BLOCK)
            except OSError as exc:
                raise ConfigError(f"cannot read the recording {path}: {exc}") from None
            if not block:
                return
            out.write(block)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


# -- verify ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """A recording as one of the exporter's call records names it, and where that record is."""

    recording: Recording
    where: str  # "envelope 0/ROUTINE 7"


def check_recordings(
    bundle: zipfile.ZipFile,
    claims: dict[str, list[Claim]],
    missing: dict[str, str],
    digests: dict[str, str],
) -> int:
    """Every `recordings/` member is named by the exporter's call records and is, byte for byte,
    what each of them names; every name they give is a member or listed missing, not both; the
    list names nothing else. Returns how many were carried; each member's SHA-256 goes into
    `digests`, for the manifest's check of members.

    Raises:
        ArchiveError: the first problem, naming the member or the record.
    """
    carried = 0
    for name in sorted(n for n in bundle.namelist() if n.startswith(MEMBER_PREFIX)):
        short = name[len(MEMBER_PREFIX) :]
        if short not in claims:
            raise ArchiveError(f"{name}: no call record of the exporter's in the bundle names it")
        if short in missing:
            raise ArchiveError(f"{name}: in the bundle, yet the manifest lists it as missing")
        sha256, size = _measure(bundle, name)
        for claim in claims[short]:
            named = claim.recording
            if size != named.size:
                raise ArchiveError(
                    f"{name}: {size:,} bytes, where {claim.where} names {named.size:,}"
                )
            if sha256 != named.sha256:
                raise ArchiveError(f"{name}: not the bytes whose SHA-256 {claim.where} names")
        digests[name] = sha256
        carried += 1
    present = {n[len(MEMBER_PREFIX) :] for n in bundle.namelist() if n.startswith(MEMBER_PREFIX)}
    for short, found in sorted(claims.items()):
        if short not in present and short not in missing:
            raise ArchiveError(
                f"{MEMBER_PREFIX}{short}: named by {found[0].where}, neither in the bundle nor "
                "listed as missing"
            )
    for short in sorted(missing):
        if short not in claims:
            raise ArchiveError(
                f"the manifest lists {short!r} as a missing recording; no call record of the "
                "exporter's in the bundle names it"
            )
    return carried


def _measure(bundle: zipfile.ZipFile, name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    try:
        with bundle.open(name) as member:
            while block := member.read(_BLOCK):
                digest.update(block)
                size += len(block)
    except DAMAGE as exc:
        raise ArchiveError(f"{name} is damaged: {exc}") from None
    return digest.hexdigest(), size
