"""Messages on a TCP path: each is a 4-byte big-endian length, then that many bytes (a Noise
handshake message, or a transport message). A length over the limit closes the connection: a
peer cannot make the station buffer more than one message's worth."""

from __future__ import annotations

import asyncio
import struct

from hotline.crypto.session import HEADER_LEN, MAX_NOISE_MESSAGE
from hotline.errors import ProtocolError

__all__ = ["MAX_WIRE_MESSAGE", "read_message", "write_message"]

MAX_WIRE_MESSAGE = HEADER_LEN + MAX_NOISE_MESSAGE
_LENGTH = struct.Struct(">I")


async def read_message(reader: asyncio.StreamReader) -> bytes:
    """Read one message.

    Raises:
        asyncio.IncompleteReadError: the connection closed (cleanly between messages, or not).
        ProtocolError: the announced length is zero or over the limit.
    """
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if not 0 < length <= MAX_WIRE_MESSAGE:
        raise ProtocolError(f"message length {length} is outside 1..{MAX_WIRE_MESSAGE}")
    return await reader.readexactly(length)


def write_message(writer: asyncio.StreamWriter, message: bytes) -> None:
    writer.write(_LENGTH.pack(len(message)) + message)
