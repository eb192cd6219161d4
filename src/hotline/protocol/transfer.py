"""Attachments on the wire: how a file named in an envelope goes from the sender's station to
the receiver's, and the receiver's signed word that it holds it. Pure: no files, no clock.

The receiver pulls. When it holds an envelope that names a file it lacks, it asks the sender
for the bytes from where it stands (Want: sha256, offset, end) on one session; the sender answers
with Chunks, in order, up to `end`; the receiver asks for more as it writes, so no more than
WINDOW bytes are ever in flight (flow control: the sender never buffers a file, the receiver
never holds more than a window in memory). Resuming after a crash or on another path is the same
act: the receiver asks again from the bytes it holds durably. A chunk that is not the next byte
the receiver wants (a late one from a lost session, a repeat) is dropped, so the file is written
strictly in order and nothing is written twice.

When the bytes hash to the envelope's SHA-256, the receiver signs a Held statement for that
message's file (Ed25519, purpose "attachment") and sends it; the sender keeps it as proof, and
counts the message delivered only when it holds one for every file. A Held that is lost on the
way is asked for again (Ask: lane, seq), and the receiver answers with what it has signed.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from hotline.crypto.identity import PublicIdentity, StationIdentity
from hotline.errors import ProtocolError
from hotline.protocol.envelope import HASH_LEN, Envelope
from hotline.protocol.frames import Chunk, Want
from hotline.protocol.statements import Signed

__all__ = ["WINDOW", "Fetch", "Held", "HeldBody"]

WINDOW = 4 * 1024 * 1024  # bytes a receiver lets be in flight for one file
HELD_VERSION = 1


class HeldBody(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    version: int
    link_id: bytes
    direction: int  # the direction of the envelope that names the file
    lane: int
    seq: int
    envelope_hash: bytes
    index: int  # the file's place in the envelope's list
    sha256: bytes
    size: int
    held_ns: int


@dataclass(frozen=True, slots=True)
class Held:
    """The receiver's signed statement: "I hold file `index` of your envelope, whole"."""

    body: HeldBody
    signed: Signed

    @classmethod
    def create(cls, identity: StationIdentity, envelope: Envelope, index: int, now_ns: int) -> Held:
        attachment = envelope.body.attachments[index]
        body = HeldBody(
            HELD_VERSION,
            envelope.body.link_id,
            envelope.body.direction,
            envelope.body.lane,
            envelope.seq,
            envelope.hash,
            index,
            attachment.sha256,
            attachment.size,
            now_ns,
        )
        body_bytes = msgspec.msgpack.encode(body)
        return cls(body, Signed(body_bytes, identity.sign_ed25519("attachment", body_bytes)))

    @classmethod
    def verify(cls, signed: Signed, signer: PublicIdentity) -> Held:
        return cls.decode(signed).check_signature(signer)

    def check_signature(self, signer: PublicIdentity) -> Held:
        if not signer.verify_ed25519("attachment", self.signed.body_bytes, self.signed.signature):
            raise ProtocolError("held statement has a bad signature")
        return self

    @classmethod
    def decode(cls, signed: Signed) -> Held:
        """Decode and check the form, not the signature: `check_signature` is the next step,
        once the body has said which station (the receiver of its envelope) signed it."""
        try:
            body = msgspec.msgpack.decode(signed.body_bytes, type=HeldBody)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"held statement does not decode: {exc}") from None
        if body.version != HELD_VERSION:
            raise ProtocolError("held statement version is not supported")
        if len(body.envelope_hash) != HASH_LEN or len(body.sha256) != HASH_LEN:
            raise ProtocolError("held statement has a malformed hash")
        return cls(body, signed)

    def covers(self, envelope: Envelope, index: int) -> bool:
        """Whether this statement is about exactly that file of exactly that envelope."""
        body = self.body
        if not 0 <= index < len(envelope.body.attachments):
            return False
        attachment = envelope.body.attachments[index]
        return (
            body.link_id == envelope.body.link_id
            and body.direction == envelope.body.direction
            and (body.lane, body.seq, body.envelope_hash)
            == (envelope.body.lane, envelope.seq, envelope.hash)
            and body.index == index
            and (body.sha256, body.size) == (attachment.sha256, attachment.size)
        )


@dataclass(slots=True)
class Fetch:
    """The receiver's side of one file: how much it holds, how much it has asked for, and on
    which session. The driver writes each accepted chunk at `held` before calling `advance`."""

    sha256: bytes
    size: int
    held: int = 0  # bytes written, in order, from the start
    granted: int = 0  # the end of what was asked for on `sid`
    sid: int | None = None

    @property
    def complete(self) -> bool:
        return self.held >= self.size

    def start(self, sid: int, durable: int) -> Want | None:
        """Ask on `sid` from the bytes held durably (after a crash or a lost session, whatever
        was in flight is forgotten: it may never come)."""
        self.held = durable
        self.sid = sid
        if self.complete:
            return None
        self.granted = min(self.size, self.held + WINDOW)
        return Want(self.sha256, self.held, self.granted)

    def accepts(self, sid: int, chunk: Chunk) -> bool:
        """Whether `chunk` is the next bytes wanted, on the session they were asked on."""
        return (
            sid == self.sid
            and chunk.offset == self.held
            and self.held + len(chunk.data) <= self.granted
        )

    def advance(self, written: int) -> Want | None:
        """`written` more bytes are on disk: ask for more once half the window has come."""
        self.held += written
        if self.sid is None or self.granted >= self.size:
            return None
        if self.granted - self.held > WINDOW // 2:
            return None
        end = min(self.size, self.held + WINDOW)
        want = Want(self.sha256, self.granted, end)
        self.granted = end
        return want

    def lost(self, sid: int) -> None:
        if self.sid == sid:
            self.sid = None
