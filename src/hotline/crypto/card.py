"""Station cards: the public part of a station, self-signed, in a versioned text format.

A card file looks like this (docs/protocol.md, "Station card", gives every byte):

    -----BEGIN HOTLINE STATION CARD-----
    Name: London
    Fingerprint: 3F2A 9C01 ...

    <base64 of the signed card, 64 characters a line>
    -----END HOTLINE STATION CARD-----

The base64 holds a MessagePack array [body, signature]. `body` is the exact byte string that was
signed and is kept as such (never re-encoded); the signature is the station's hybrid signature
over it for purpose "card". The header lines are for people; they are checked against the signed
body, so an edited header is refused like an edited body.

A side that runs on several machines (docs/operations.md, "One side on two machines") lists its
other nodes' paths too, one list per node: that is version 2 of the body, one field more. A card
with no other nodes is written as version 1, which every build reads; both versions are read.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

import msgspec

from hotline.crypto.identity import PublicIdentity, StationIdentity, format_fingerprint
from hotline.crypto.signed import decode_signed, encode_signed
from hotline.errors import CardError

__all__ = [
    "CARD_VERSION",
    "CardBody",
    "SignedCard",
    "card_from_bytes",
    "encode_body",
    "make_card",
    "parse_card",
    "validate_nodes",
]

CARD_VERSION = 2  # the newest version this build reads and writes
_FIELDS = {1: 7, 2: 8}  # each version's number of fields in the body
_BEGIN, _END = "-----BEGIN HOTLINE STATION CARD-----", "-----END HOTLINE STATION CARD-----"
MAX_NAME_LEN = 64
MAX_PATHS = 16
MAX_HOST_LEN = 253
MAX_OTHER_NODES = 8  # a side of at most 9 nodes
_PATH_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$")


class CardBody(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    """What a card says. Encoded as a MessagePack array in this field order."""

    version: int
    name: str
    created: int  # seconds since the Unix epoch
    dh: bytes  # X25519 public key
    ed25519: bytes
    mldsa65: bytes
    paths: list[str]  # where this station (the node the card was made on) listens, "host:port"
    # Version 2: where the side's other nodes listen, one list of paths per node. Version 1 has
    # no such field, and reads as none.
    nodes: list[list[str]] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SignedCard:
    """A card whose signature has been verified. `body_bytes` are the exact signed bytes."""

    body: CardBody
    body_bytes: bytes
    signature: bytes

    @property
    def identity(self) -> PublicIdentity:
        return PublicIdentity(self.body.dh, self.body.ed25519, self.body.mldsa65)

    @property
    def fingerprint(self) -> bytes:
        return self.identity.fingerprint

    def to_bytes(self) -> bytes:
        return encode_signed(self.body_bytes, self.signature)

    def armored(self) -> str:
        text = base64.b64encode(self.to_bytes()).decode("ascii")
        lines = [text[i : i + 64] for i in range(0, len(text), 64)]
        header = [f"Name: {self.body.name}", f"Fingerprint: {format_fingerprint(self.fingerprint)}"]
        return "\n".join([_BEGIN, *header, "", *lines, _END]) + "\n"


def validate_name(name: str) -> str:
    if (
        not name.strip()
        or name != name.strip()
        or len(name) > MAX_NAME_LEN
        or not name.isprintable()
    ):
        raise ValueError(
            f"a station name is 1 to {MAX_NAME_LEN} printable characters, "
            "without spaces at either end"
        )
    return name


def validate_paths(paths: list[str]) -> None:
    if len(paths) > MAX_PATHS:
        raise ValueError(f"a card lists at most {MAX_PATHS} paths")
    for path in paths:
        validate_path(path)


def validate_nodes(paths: list[str], nodes: list[list[str]]) -> None:
    """The other nodes of a side: at most MAX_OTHER_NODES, each with 1 to MAX_PATHS paths, and no
    address twice on the card (on two nodes, or on one)."""
    if len(nodes) > MAX_OTHER_NODES:
        raise ValueError(f"a card lists at most {MAX_OTHER_NODES} other nodes")
    for node in nodes:
        if not node:
            raise ValueError("each other node on a card has at least one path")
        validate_paths(node)
    every = [*paths, *(a for node in nodes for a in node)]
    if nodes and len(set(every)) != len(every):  # (version 1 cards were never checked so)
        twice = sorted({a for a in every if every.count(a) > 1})
        raise ValueError(f"an address is on the card twice: {', '.join(twice)}")


def validate_path(path: str) -> str:
    match = _PATH_RE.fullmatch(path)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"a path is host:port with a port from 1 to 65535, not {path!r:.80}")
    host = match.group(1)
    # A name the resolver could look up (RFC 1035 §2.3.4): a card is read before anyone trusts
    # it, and an address of any length would be carried into logs, status and the console.
    if len(host) > MAX_HOST_LEN or any(len(label) > 63 for label in host.split(".")):
        raise ValueError(
            f"a path's host is at most {MAX_HOST_LEN} characters, in labels of at most 63, "
            f"not {host[:40]!r}... ({len(host)} characters)"
        )
    return path


def make_card(
    identity: StationIdentity,
    name: str,
    paths: list[str],
    created: int,
    nodes: list[list[str]] | None = None,
) -> SignedCard:
    """Make and sign a card for our own station: `paths` are this node's, `nodes` the side's
    other nodes' (version 2), if it runs on several; else a version 1 card."""
    nodes = [list(node) for node in nodes or []]
    validate_name(name)
    validate_paths(paths)
    validate_nodes(paths, nodes)
    public = identity.public
    version = 2 if nodes else 1
    body = CardBody(version, name, created, public.dh, public.ed25519, public.mldsa65, paths, nodes)
    body_bytes = encode_body(body)
    return SignedCard(body, body_bytes, identity.sign("card", body_bytes))


def encode_body(body: CardBody) -> bytes:
    """The body's MessagePack array, with the fields of its version (version 1: no `nodes`)."""
    fields = msgspec.structs.astuple(body)
    return msgspec.msgpack.encode(fields[: _FIELDS.get(body.version, len(fields))])


def parse_card(text: str) -> SignedCard:
    """Read a card file and verify it.

    Raises:
        CardError: the text is not a card, is truncated or altered, or is of another version.
    """
    lines = [line.strip() for line in text.strip().splitlines()]
    if _BEGIN not in lines:
        raise CardError("not a Hotline station card: no BEGIN line")
    lines = lines[lines.index(_BEGIN) + 1 :]
    if _END not in lines:
        raise CardError("station card is truncated: no END line")
    lines = lines[: lines.index(_END)]
    header = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ":" in ln)}
    blob_text = "".join(ln for ln in lines if ln and ":" not in ln)
    try:
        blob = base64.b64decode(blob_text, validate=True)
    except (binascii.Error, ValueError):
        raise CardError("station card is corrupted: its base64 does not decode") from None
    card = card_from_bytes(blob)
    _check_header(header, card)
    return card


def card_from_bytes(blob: bytes) -> SignedCard:
    """Decode and verify the binary form of a card (what `SignedCard.to_bytes` gives)."""
    try:
        envelope = decode_signed(blob)
    except ValueError:
        raise CardError("station card is truncated or corrupted: it does not decode") from None
    body = _decode_body(envelope.body)
    try:
        identity = PublicIdentity(body.dh, body.ed25519, body.mldsa65)
    except ValueError:
        raise CardError("station card is corrupted: its keys are malformed") from None
    if not identity.verify("card", envelope.body, envelope.signature):
        raise CardError("station card signature does not verify: the card was altered")
    try:
        validate_name(body.name)
        validate_paths(body.paths)
        validate_nodes(body.paths, body.nodes)
    except ValueError as exc:
        raise CardError(f"station card is invalid: {exc}") from None
    return SignedCard(body, envelope.body, envelope.signature)


def _decode_body(body_bytes: bytes) -> CardBody:
    try:
        fields = msgspec.msgpack.decode(body_bytes, type=list[msgspec.Raw])
        version: int | None = msgspec.msgpack.decode(fields[0], type=int)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, IndexError):
        version, fields = None, []  # not even a versioned array: reported below as corruption
    if version is not None and version not in _FIELDS:
        raise CardError(
            f"station card format version {version} is not supported (this build reads "
            f"versions {' and '.join(map(str, _FIELDS))})"
        )
    if version is not None and len(fields) != _FIELDS[version]:
        raise CardError(
            f"station card is corrupted: a version {version} body has {_FIELDS[version]} "
            f"fields, not {len(fields)}"
        )
    try:
        body = msgspec.msgpack.decode(body_bytes, type=CardBody)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise CardError(f"station card is corrupted: {exc}") from None
    if body.version == 2 and not body.nodes:  # one meaning, one encoding: that is version 1
        raise CardError("station card is corrupted: a version 2 card lists no other node")
    return body


def _check_header(header: dict[str, str], card: SignedCard) -> None:
    if "Name" in header and header["Name"] != card.body.name:
        raise CardError("station card header names another station than its signed content")
    if "Fingerprint" in header and header["Fingerprint"] != format_fingerprint(card.fingerprint):
        raise CardError("station card header shows another fingerprint than its signed content")
