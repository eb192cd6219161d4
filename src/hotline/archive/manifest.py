"""A bundle's container, manifest and members, read strictly (docs/archive.md: "The container",
"The manifest", steps 1 and 11).

The container is a ZIP file, and ZIP readers differ: Python's zipfile reads the *last* member of a
name, `unzip` may show the first. So a bundle whose names are not all distinct, or that holds a
member the format has no name for, is refused before anything in it is read, and so is a member
that is encrypted or compressed by any method but stored and deflate (all a second verifier needs
to read). The manifest is strict JSON (strict.py) with exactly its ten keys, each of its type,
and so is each line of a `.jsonl` member (`read_records`).
"""

from __future__ import annotations

import hashlib
import re
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from hotline.archive import ArchiveError
from hotline.archive.strict import BOOL, HEX64, U64, Field, exact, loads, read_line, u64

__all__ = [
    "COUNTS",
    "DAMAGE",
    "FILE",
    "FORMAT",
    "MEMCON_VERSION",
    "REQUIRED",
    "VERSION",
    "VERSIONS",
    "WITHDRAWAL_VERSION",
    "Manifest",
    "check_container",
    "check_members",
    "hash_member",
    "open_member",
    "read_manifest",
    "read_member",
    "read_records",
]

FORMAT = "hotline-archive"
VERSION = 3  # 3: call recordings (recordings/, counts.recordings, missing_recordings)
# 4: records of conversation (annotation kind 4, about the exporter's call records). A bundle
# that holds none is written as version 3, which a verifier of version 3 still reads.
MEMCON_VERSION = 4
# 5: withdrawals of translations (annotation kind 5). A bundle that holds none is written as
# version 3 or 4, as before.
WITHDRAWAL_VERSION = 5
VERSIONS = (VERSION, MEMCON_VERSION, WITHDRAWAL_VERSION)
COUNTS = ("envelopes", "receipts", "checkpoints", "annotations", "held", "files", "recordings")
# Every bundle holds these and its two cards; transcript.pdf, files/ and recordings/ are optional.
REQUIRED = (
    "envelopes.jsonl",
    "receipts.jsonl",
    "checkpoints.jsonl",
    "annotations.jsonl",
    "held.jsonl",
    "transcript.html",
)
FILE = re.compile("files/([0-9a-f]{64})")
_NAME = re.compile(
    r"manifest\.(?:json|sig)|cards/[0-9a-f]{64}\.card|files/[0-9a-f]{64}|transcript\.(?:html|pdf)"
    r"|(?:envelopes|receipts|checkpoints|annotations|held)\.jsonl|recordings/[^/\\]+"
)
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_ENCRYPTED = 0x1  # general purpose flag bit 0
# What reading a damaged ZIP member can raise.
DAMAGE = (OSError, ValueError, EOFError, NotImplementedError, zipfile.BadZipFile, zlib.error)


@dataclass(frozen=True, slots=True)
class Manifest:
    """manifest.json, every value of its type (docs/archive.md, "The manifest")."""

    data: bytes  # its exact bytes: what manifest.sig signs
    link_id: str
    exported_by: str
    exported_ns: int
    range: tuple[int | None, int | None] | None  # (since_ns, until_ns), both ends included
    counts: dict[str, int]
    transcript_pdf: bool
    missing_recordings: dict[str, str]
    members: dict[str, str]
    version: int = VERSION


def check_container(bundle: zipfile.ZipFile) -> None:
    """Each member's name is one the format gives and no other member's; each is stored or
    deflated, and none is encrypted."""
    seen: set[str] = set()
    for info in bundle.infolist():
        name = info.filename
        if name in seen:
            raise ArchiveError(f"the bundle holds two members named {name!r}")
        seen.add(name)
        if not _NAME.fullmatch(name) or name in ("recordings/.", "recordings/.."):
            raise ArchiveError(f"the bundle holds {name!r}, which is not a member of the format")
        if info.compress_type not in _METHODS:
            raise ArchiveError(f"{name} is compressed by method {info.compress_type}, "
                               "not stored (0) or deflated (8)")  # fmt: skip
        if info.flag_bits & _ENCRYPTED:
            raise ArchiveError(f"{name} is encrypted")


def _range(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, dict) or value.keys() != {"since_ns", "until_ns"}:
        return False
    since, until = value["since_ns"], value["until_ns"]
    if not all(v is None or u64(v) for v in (since, until)) or since is until is None:
        return False
    return since is None or until is None or since <= until


def _counts(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and sorted(value) == sorted(COUNTS)
        and all(u64(n) for n in value.values())
    )


def _missing(value: Any) -> bool:
    return isinstance(value, dict) and all(v in ("absent", "altered") for v in value.values())


def _members(value: Any) -> bool:
    return isinstance(value, dict) and all(HEX64.test(v) for v in value.values())


_RANGE = 'null, or {"since_ns": n or null, "until_ns": n or null}, not both null, since <= until'
_FIELDS = {
    "format": Field(lambda v: v == FORMAT, f'"{FORMAT}"'),
    "version": Field(lambda v: type(v) is int and v in VERSIONS, "3, 4 or 5"),
    "link_id": HEX64,
    "exported_by": HEX64,
    "exported_ns": U64,
    "range": Field(_range, _RANGE),
    "counts": Field(_counts, f"an object of the integers {', '.join(COUNTS)}"),
    "transcript_pdf": BOOL,
    "missing_recordings": Field(_missing, 'an object of names to "absent" or "altered"'),
    "members": Field(_members, "an object of member names to 64 lower-case hex"),
}


def read_manifest(bundle: zipfile.ZipFile) -> Manifest:
    """Step 1: manifest.json, strictly.

    Raises:
        ArchiveError: another format or version, or any key or value that is not as specified.
    """
    data = read_member(bundle, "manifest.json")
    value = loads(data, "manifest.json")
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise ArchiveError(f"manifest.json does not describe a {FORMAT} bundle")
    version = value.get("version")
    if type(version) is int and version not in VERSIONS:
        raise ArchiveError(f"bundle version {version}; this reads versions 3, 4 and 5")
    exact(value, _FIELDS, "manifest.json")
    since_until = value["range"]
    return Manifest(
        data,
        value["link_id"],
        value["exported_by"],
        value["exported_ns"],
        None if since_until is None else (since_until["since_ns"], since_until["until_ns"]),
        value["counts"],
        value["transcript_pdf"],
        value["missing_recordings"],
        value["members"],
        value["version"],
    )


def check_members(
    bundle: zipfile.ZipFile, manifest: Manifest, cards: list[str], read: dict[str, str]
) -> None:
    """Step 11: `members` lists exactly the members present but manifest.json, manifest.sig and
    the files (named by their hash already), the required ones among them, each with the hash of
    its bytes; `read` holds the hashes of the members already read whole."""
    listed = manifest.members
    for name in (*cards, *REQUIRED, *(["transcript.pdf"] if manifest.transcript_pdf else [])):
        if name not in listed:
            raise ArchiveError(f"the manifest does not list {name}")
    if "transcript.pdf" in listed and not manifest.transcript_pdf:
        raise ArchiveError("the manifest's transcript_pdf does not match its members")
    present = set(bundle.namelist())
    for name in sorted(present - set(listed) - {"manifest.json", "manifest.sig"}):
        if not FILE.fullmatch(name):
            raise ArchiveError(f"{name} is in the bundle but not in its signed manifest")
    for name, expected in sorted(listed.items()):
        if name in ("manifest.json", "manifest.sig") or FILE.fullmatch(name):
            raise ArchiveError(f"the manifest lists {name}, which its members never list")
        if name not in present:
            raise ArchiveError(f"the bundle has no {name}")
        if (read.get(name) or hash_member(bundle, name)) != expected:
            raise ArchiveError(f"{name} is not the member the manifest signed (its hash differs)")


def hash_member(bundle: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with open_member(bundle, name) as member:
        try:
            while block := member.read(1 << 20):
                digest.update(block)
        except DAMAGE as exc:
            raise ArchiveError(f"{name} is damaged: {exc}") from None
    return digest.hexdigest()


def open_member(bundle: zipfile.ZipFile, name: str) -> IO[bytes]:
    try:
        return bundle.open(name)
    except KeyError:
        raise ArchiveError(f"the bundle has no {name}") from None
    except DAMAGE as exc:
        raise ArchiveError(f"{name} is damaged: {exc}") from None


def read_member(bundle: zipfile.ZipFile, name: str) -> bytes:
    with open_member(bundle, name) as member:
        try:
            return member.read()
        except DAMAGE as exc:  # a flipped byte: a bad CRC, a broken stream
            raise ArchiveError(f"{name} is damaged: {exc}") from None


def read_records(
    bundle: zipfile.ZipFile, name: str, fields: Mapping[str, Field], digests: dict[str, str]
) -> Iterator[tuple[int, dict[str, Any], bytes]]:
    """A `.jsonl` member's lines, each read strictly with `fields` (and `signed`), one at a
    time: a record of millions is not read whole. Yields (line number, object, signed bytes).
    Read to its end, the member's SHA-256 goes into `digests`: step 11 need not read it again."""
    digest = hashlib.sha256()
    with open_member(bundle, name) as member:
        number = 0
        while True:
            try:
                raw = member.readline()
            except DAMAGE as exc:
                raise ArchiveError(f"{name} is damaged: {exc}") from None
            if not raw:
                digests[name] = digest.hexdigest()
                return
            digest.update(raw)
            number += 1
            record, signed = read_line(raw, fields, f"{name} line {number}")
            yield number, record, signed
