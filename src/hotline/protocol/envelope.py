"""Envelopes: the signed, hash-chained form of a message, as stored and as sent.

An envelope is a MessagePack array [body, signature]. `body` is the exact byte string that was
signed (Ed25519, purpose "envelope") and is never re-encoded; its SHA-256 is the envelope's hash.
The body is a MessagePack array, in this order:

    [version, link_id, direction, lane, seq, sent_ns, type, language, text,
     prev_hash, peer_head, ref, attachments?]

`prev_hash` names the previous envelope in the same direction and lane (or that lane's genesis
hash), so each lane is a hash chain; `peer_head` names the last envelope this station had received
from the peer when it wrote this one, which ties the two directions together; `ref` is an
envelope of the peer's that this one answers (an acknowledgement names the message acknowledged).
`attachments`, present only when the message has any, lists its files as [name, media_type,
size, sha256]: the signature covers each file's hash, and the files themselves travel beside the
chain (hotline.protocol.transfer), so a message's proof does not grow with its maps.

A call record (type CALL_RECORD) is the station's statement about a call, carried like a message:
its text is the record's canonical JSON (hotline.protocol.callrecord), its language "zxx"; it
names no envelope, carries no files, and is never acknowledged.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import msgspec
from cryptography.hazmat.primitives import hashes

from hotline.crypto.identity import PublicIdentity, StationIdentity
from hotline.crypto.signed import decode_signed, encode_signed
from hotline.errors import ProtocolError
from hotline.protocol.callrecord import CALL_RECORD_LANGUAGE, decode_record
from hotline.protocol.textsafety import language_problem, text_problem

__all__ = [
    "ENVELOPE_VERSION",
    "LANES",
    "MAX_ATTACHMENTS",
    "MAX_TEXT_BYTES",
    "Attachment",
    "Envelope",
    "EnvelopeBody",
    "Lane",
    "MessageType",
    "Ref",
    "decode_envelope",
    "encode_body",
    "genesis_hash",
    "sha256",
]

ENVELOPE_VERSION = 1
MAX_TEXT_BYTES = 32 * 1024
MAX_LANGUAGE_LEN = 35  # the longest BCP 47 tag worth supporting
HASH_LEN = 32
MAX_ATTACHMENTS = 16
MAX_FILE_NAME_BYTES = 255
MAX_MEDIA_TYPE_LEN = 127


class Lane(enum.IntEnum):
    """Precedence: a lane of its own each, so FLASH never waits behind ROUTINE."""

    FLASH = 0
    IMMEDIATE = 1
    PRIORITY = 2
    ROUTINE = 3


LANES = tuple(Lane)


class MessageType(enum.IntEnum):
    PRINCIPAL = 0
    SERVICE = 1
    TEST = 2
    ACKNOWLEDGEMENT = 3  # a person on this side acknowledged `ref`; carried like any message
    EXERCISE = 4  # a principal message of an exercise: handled as one, marked EXERCISE everywhere
    CALL_RECORD = 5  # a station's record of a call: canonical JSON (hotline.protocol.callrecord)


class Ref(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    lane: int
    seq: int
    hash: bytes


class Attachment(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    """A file sent with a message, named by its SHA-256: the file is held when its bytes hash
    to `sha256`, whatever path or session they came by."""

    name: str
    media_type: str
    size: int
    sha256: bytes


class EnvelopeBody(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    version: int
    link_id: bytes
    direction: int
    lane: int
    seq: int
    sent_ns: int
    type: int
    language: str
    text: str
    prev_hash: bytes
    peer_head: bytes
    ref: Ref | None
    # Last, and left out of the encoding when empty (encode_body): an envelope without files
    # is the 12-element array it always was. Decoding a 12-element array leaves it empty.
    attachments: tuple[Attachment, ...] = ()


_FIXARRAY_12, _FIXARRAY_13, _EMPTY_ARRAY = 0x9C, 0x9D, 0x90


def encode_body(body: EnvelopeBody) -> bytes:
    """The canonical bytes of a body: 12 elements without attachments, 13 with."""
    data = msgspec.msgpack.encode(body)
    if not body.attachments:  # [..., ref, []]: drop the empty list, and say 12, not 13
        assert data[0] == _FIXARRAY_13
        assert data[-1] == _EMPTY_ARRAY
        data = bytes([_FIXARRAY_12]) + data[1:-1]
    return data


def sha256(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()


def genesis_hash(link_id: bytes, direction: int, lane: int) -> bytes:
    """The `prev_hash` of a lane's first envelope: distinct for every link, direction and lane."""
    return sha256(b"hotline-chain-genesis-v1" + link_id + bytes([direction, lane]))


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded envelope together with its exact signed bytes."""

    body: EnvelopeBody
    body_bytes: bytes
    signature: bytes
    hash: bytes

    @property
    def lane(self) -> Lane:
        return Lane(self.body.lane)

    @property
    def seq(self) -> int:
        return self.body.seq

    def to_bytes(self) -> bytes:
        return encode_signed(self.body_bytes, self.signature)

    @classmethod
    def create(cls, body: EnvelopeBody, identity: StationIdentity) -> Envelope:
        """Sign a new envelope. The body is checked first, so a bad one is never signed."""
        _check_body(body)
        body_bytes = encode_body(body)
        return cls(
            body, body_bytes, identity.sign_ed25519("envelope", body_bytes), sha256(body_bytes)
        )

    @classmethod
    def from_parts(
        cls,
        body_bytes: bytes,
        signature: bytes,
        signer: PublicIdentity | None,
        *,
        words: bool = True,
    ) -> Envelope:
        """Decode and verify an envelope's signed bytes. `words=False` skips the rules for the
        words (language tag and controls, hotline.protocol.textsafety) and keeps every other.

        Raises:
            ProtocolError: the body does not decode, is out of bounds, or the signature fails.
        """
        try:
            body = msgspec.msgpack.decode(body_bytes, type=EnvelopeBody)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"envelope does not decode: {exc}") from None
        _check_body(body, words=words)
        if not body.attachments and body_bytes[:1] == bytes([_FIXARRAY_13]):
            raise ProtocolError(f"envelope {body.lane}/{body.seq}: an empty file list is left out")
        if signer is not None and not signer.verify_ed25519("envelope", body_bytes, signature):
            raise ProtocolError(f"envelope {body.lane}/{body.seq} has a bad signature")
        return cls(body, body_bytes, signature, sha256(body_bytes))


def decode_envelope(data: bytes, signer: PublicIdentity | None, *, words: bool = False) -> Envelope:
    """Decode the stored form [body, signature]; verify the signature when a signer is given
    (a store walking its own chains checks hashes and links, which is cheaper).

    The rules for the words (textsafety) hold for every envelope made and every one that
    arrives; an envelope a store kept from before they came may break them, and must still
    load (it is shown with its characters named), so they apply here only with `words=True`,
    as the archive verifier asks."""
    try:
        wire = decode_signed(data)
    except ValueError as exc:
        raise ProtocolError(f"envelope does not decode: {exc}") from None
    return Envelope.from_parts(wire.body, wire.signature, signer, words=words)


def _check_body(body: EnvelopeBody, *, words: bool = True) -> None:
    """Refuse, before signing or after decoding, any body that is out of bounds or that
    MessagePack could not carry faithfully (a bool for an int, a lone surrogate, a huge int)."""
    problem = _problem(body, words)
    if problem:
        raise ProtocolError(f"envelope {body.lane}/{body.seq} refused: {problem}")


_TYPES = frozenset(MessageType)
_U64 = 2**64


def _is_u64(*values: object) -> bool:
    """A real integer (a bool is not one, though Python says so) that fits 64 bits unsigned."""
    for value in values:  # a plain loop: this runs for every envelope sent and received
        if value.__class__ is bool or not isinstance(value, int) or not 0 <= value < _U64:
            return False
    return True


def _utf8_len(text: str) -> int | None:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def _problem(body: EnvelopeBody, words: bool = True) -> str | None:  # noqa: PLR0911 - one return per rule, in order
    ref = body.ref
    if not (_is_u64(body.version) and body.version == ENVELOPE_VERSION):
        return f"version {body.version!r} is not supported"
    if not (len(body.link_id) == HASH_LEN and _is_u64(body.direction) and body.direction < 2):
        return "bad link id or direction"
    if not (_is_u64(body.lane, body.seq, body.sent_ns) and body.lane < 4 and body.seq >= 1):
        return "bad lane, sequence number or time"
    if not (_is_u64(body.type) and body.type in _TYPES):
        return f"unknown message type {body.type!r}"
    text_len, language_len = _utf8_len(body.text), _utf8_len(body.language)
    if not (
        language_len is not None
        and 0 < len(body.language) <= MAX_LANGUAGE_LEN
        and text_len is not None
        and text_len <= MAX_TEXT_BYTES
    ):
        return "language tag or text out of bounds (or not UTF-8)"
    if words and (problem := language_problem(body.language) or text_problem(body.text)):
        return problem  # a well-formed BCP 47 tag; no control but newline and tab (textsafety)
    if len(body.prev_hash) != HASH_LEN or len(body.peer_head) != HASH_LEN:
        return "bad chain hash"
    if (body.type == MessageType.ACKNOWLEDGEMENT) != (ref is not None):
        return "an acknowledgement, and only one, names the envelope it acknowledges"
    if ref is not None and not (
        _is_u64(ref.lane, ref.seq) and ref.lane < 4 and ref.seq >= 1 and len(ref.hash) == HASH_LEN
    ):
        return "bad reference"
    if body.type == MessageType.CALL_RECORD:
        return _call_record_problem(body)
    return _attachments_problem(body.attachments)


def _call_record_problem(body: EnvelopeBody) -> str | None:
    """A call record is data, not prose: language "zxx", no files, a text decode_record accepts
    (its ref is None by the rule above: only an acknowledgement names an envelope)."""
    if body.language != CALL_RECORD_LANGUAGE or body.attachments:
        return f'a call record has the language "{CALL_RECORD_LANGUAGE}" and no attachments'
    try:
        decode_record(body.text)
    except ProtocolError as exc:
        return str(exc)
    return None


_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


def _attachments_problem(attachments: tuple[Attachment, ...]) -> str | None:
    if len(attachments) > MAX_ATTACHMENTS:
        return f"more than {MAX_ATTACHMENTS} attachments"
    for a in attachments:
        name_len = _utf8_len(a.name)
        if not (
            name_len is not None
            and 0 < name_len <= MAX_FILE_NAME_BYTES
            and a.name not in (".", "..")
            and a.name.isprintable()  # no control character to fool a header or a terminal
            and "/" not in a.name
            and "\\" not in a.name
        ):
            return "an attachment's name is empty, too long, or holds a path"
        if len(a.media_type) > MAX_MEDIA_TYPE_LEN or not _MEDIA_TYPE.fullmatch(a.media_type):
            return f"an attachment's media type {a.media_type[:40]!r} is malformed"
        if not _is_u64(a.size) or len(a.sha256) != HASH_LEN:
            return "an attachment's size or hash is malformed"
    return None
