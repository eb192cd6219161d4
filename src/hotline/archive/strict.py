"""Strict JSON for a bundle: the manifest and every line of its `.jsonl` members are read so that
two verifiers written from docs/archive.md alone ("Strict JSON") accept exactly the same bundles.

Python's json module is lenient where another reader need not be: it keeps the last of two equal
keys, reads `NaN` and UTF-16, and in Python `true == 1` and `3.0 == 3`. Here the bytes are UTF-8,
a key appears once, a string holds no lone surrogate, a value has exactly the type the format
gives it (an integer is a JSON integer: never `3.0`, never `true`), and an object has exactly the
keys the format lists: a missing key, an extra one or a value of another type is refused, named.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hotline.archive import ArchiveError

__all__ = [
    "BOOL",
    "DIRECTION",
    "HEX64",
    "LANE",
    "SEQ",
    "U64",
    "Field",
    "exact",
    "loads",
    "read_line",
    "u64",
]

_U64 = 2**64
_HEX64 = re.compile("[0-9a-f]{64}")


def u64(value: object) -> bool:
    """A JSON integer (not a float, not a bool) from 0 to 2^64 - 1."""
    return type(value) is int and 0 <= value < _U64


@dataclass(frozen=True, slots=True)
class Field:
    """What one key's value must be, and how the refusal says it."""

    test: Callable[[Any], bool]
    says: str


U64 = Field(u64, "an integer from 0 to 2^64 - 1")
BOOL = Field(lambda v: type(v) is bool, "true or false")
HEX64 = Field(lambda v: type(v) is str and _HEX64.fullmatch(v) is not None, "64 lower-case hex")
DIRECTION = Field(lambda v: type(v) is int and v in (0, 1), "the integer 0 or 1")
LANE = Field(lambda v: type(v) is int and 0 <= v <= 3, "an integer from 0 to 3")
SEQ = Field(lambda v: u64(v) and v >= 1, "an integer from 1 to 2^64 - 1")
_SIGNED = Field(
    lambda v: type(v) is str and v != "" and _canonical(v),
    "canonical base64 (RFC 4648 section 4, padded, unused bits zero), not empty",
)


def _canonical(text: str) -> bool:
    try:
        return base64.b64encode(base64.b64decode(text, validate=True)).decode() == text
    except (binascii.Error, ValueError):
        return False


def loads(data: bytes, what: str) -> Any:
    """Parse `data` as strict JSON.

    Raises:
        ArchiveError: not UTF-8, not JSON, a key twice, a non-finite number, a lone surrogate,
            or arrays and objects nested deeper than Python's stack (the format nests two deep).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArchiveError(f"{what} is not UTF-8: {exc}") from None
    try:
        value = json.loads(text, object_pairs_hook=_unique, parse_constant=_no_constant)
        _no_surrogate(value)
    except ValueError as exc:  # json.JSONDecodeError is one, and so are ours
        raise ArchiveError(f"{what} is not strict JSON: {exc}") from None
    except RecursionError:  # `[[[[...` a thousand deep (found for issue 13, fuzzing)
        raise ArchiveError(f"{what} is not strict JSON: it nests too deeply") from None
    return value


def exact(value: Any, fields: Mapping[str, Field], what: str) -> dict[str, Any]:
    """`value` as an object with exactly `fields`' keys, each value as its field says.

    Raises:
        ArchiveError: not an object, a key missing or extra, or a value of another type.
    """
    if not isinstance(value, dict):
        raise ArchiveError(f"{what} is not a JSON object")
    missing, extra = sorted(fields.keys() - value.keys()), sorted(value.keys() - fields.keys())
    if missing:
        raise ArchiveError(f"{what} lacks the key(s) {', '.join(missing)}")
    if extra:
        raise ArchiveError(f"{what} has key(s) the format does not have: {', '.join(extra)}")
    for key, field in fields.items():
        if not field.test(value[key]):
            shown = json.dumps(value[key])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise ArchiveError(f"{what}: {key} is {shown}, not {field.says}")
    return value


def read_line(raw: bytes, fields: Mapping[str, Field], what: str) -> tuple[dict[str, Any], bytes]:
    """One line of a `.jsonl` member: an object with exactly `fields` and `signed`, ended by a
    newline; returns it and the bytes `signed` holds."""
    if not raw.endswith(b"\n"):
        raise ArchiveError(f"{what} does not end with a newline")
    record = exact(loads(raw[:-1], what), {**fields, "signed": _SIGNED}, what)
    return record, base64.b64decode(record["signed"])


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key!r} appears twice in one object")
        found[key] = value
    return found


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _no_surrogate(value: Any) -> None:
    """Strings encode to UTF-8: a `\\ud800` escape alone is no character."""
    if isinstance(value, str):
        value.encode("utf-8")  # UnicodeEncodeError is a ValueError
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode("utf-8")
            _no_surrogate(item)
    elif isinstance(value, list):
        for item in value:
            _no_surrogate(item)
