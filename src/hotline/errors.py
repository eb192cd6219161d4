"""Every error Hotline raises on purpose, in one tree.

The split follows who is at fault, because that decides what the caller does:

    HotlineError
    ├── RemoteError            the other side (a peer, a file, a card) sent something we refuse:
    │   │                      close or reject with a logged reason, keep our state unharmed
    │   ├── HandshakeError     a session handshake that must not complete
    │   ├── TransportError     a transport message that does not decrypt or is out of order
    │   ├── CardError          a station card that is altered, truncated or of an unknown version
    │   ├── RotationError      a key-rotation statement that does not prove what it claims
    │   └── ProtocolError      a link frame, envelope, receipt or checkpoint we refuse: the session
    │                          closes with the reason; no link state changes
    ├── LocalError             we were asked to do something wrong: a bug or a bad argument
    │   ├── UnsupportedError   a protocol name, pattern or function this build does not implement
    │   ├── NoiseStateError    a Noise object used out of turn (write when it must read, ...)
    │   └── ConfigError        a configuration or data directory that cannot be used
    ├── KeystoreError          the keystore cannot be opened: wrong passphrase, damage, version
    └── StoreError             the store cannot do what was asked (I/O, a full disk)
        └── StoreCorruptError  the store found rows that do not verify: it refuses to go on

Anything else that escapes is a bug in Hotline. Messages are written for the person who will read
them: they say what was refused and why, never the secret material involved.
"""

from __future__ import annotations


class HotlineError(Exception):
    """Base of every error Hotline raises on purpose."""


class RemoteError(HotlineError):
    """Input from outside (a peer, a file, a card) was refused."""


class HandshakeError(RemoteError):
    """A session handshake failed; no session state was kept."""


class TransportError(RemoteError):
    """A transport message was rejected; the receiving state did not change."""


class CardError(RemoteError):
    """A station card was rejected."""


class RotationError(RemoteError):
    """A key-rotation statement was rejected."""


class ProtocolError(RemoteError):
    """A link frame, envelope, receipt or checkpoint was refused; the link state did not change."""


class LocalError(HotlineError):
    """We were asked to do something that cannot be done."""


class UnsupportedError(LocalError):
    """A protocol name, pattern or crypto function that this build does not implement."""


class NoiseStateError(LocalError):
    """A Noise object was used out of turn."""


class ConfigError(LocalError):
    """A configuration or data directory that cannot be used."""


class KeystoreError(HotlineError):
    """The keystore cannot be opened or written; the file on disk was left as it was."""


class StoreError(HotlineError):
    """The store could not do what was asked; the transaction was rolled back."""


class StoreCorruptError(StoreError):
    """The store holds rows that do not verify (a broken chain, a bad signature, a missing row)."""
