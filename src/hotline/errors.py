"""Every error Hotline raises on purpose, in one tree.

The split follows who is at fault, because that decides what the caller does:

    HotlineError
    ├── RemoteError            the other side (a peer, a file, a card) sent something we refuse:
    │   │                      close or reject with a logged reason, keep our state unharmed
    │   ├── HandshakeError     a session handshake that must not complete
    │   ├── TransportError     a transport message that does not decrypt or is out of order
    │   ├── CardError          a station card that is altered, truncated or of an unknown version
    │   ├── RotationError      a key-rotation statement that does not prove what it claims
    │   ├── MediaError         a call media datagram we refuse (malformed, forged, replayed, too
    │   │                      old): dropped with the reason; the replay window does not change
    │   ├── ProtocolError      a link frame, envelope, receipt or checkpoint we refuse: the session
    │   │                      closes with the reason; no link state changes
    │   └── CallError          a call frame that breaks a call's rules: logged, the call table and
    │                          the session stay as they were
    ├── LocalError             we were asked to do something wrong: a bug or a bad argument
    │   ├── UnsupportedError   a protocol name, pattern or function this build does not implement
    │   ├── NoiseStateError    a Noise object used out of turn (write when it must read, ...)
    │   ├── CallRefused        a call act not allowed now (a second call, answering an answered one)
    │   ├── MediaExhausted     a call's media sealer has used every counter: end the call
    │   └── ConfigError        a configuration or data directory that cannot be used
    ├── KeystoreError          the keystore cannot be opened: wrong passphrase, damage, version
    └── StoreError             the store cannot do what was asked (I/O, a full disk)
        ├── StoreCorruptError  the store found rows that do not verify: it refuses to go on
        └── LeaseLost          this node no longer holds its side's lease (another node took
                               it, or it could not renew it in time): nothing it writes is
                               committed, and it steps down to standby

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


class MediaError(RemoteError):
    """A call media datagram was refused; the receiver's replay window did not change."""


class ProtocolError(RemoteError):
    """A link frame, envelope, receipt or checkpoint was refused; the link state did not change."""


class CallError(RemoteError):
    """A call frame from the peer broke a call's rules; no call changed and the link's session
    stays open (a call's mistake is not the link's)."""


class LocalError(HotlineError):
    """We were asked to do something that cannot be done."""


class UnsupportedError(LocalError):
    """A protocol name, pattern or crypto function that this build does not implement."""


class NoiseStateError(LocalError):
    """A Noise object was used out of turn."""


class MediaExhausted(LocalError):
    """A media sealer reached its last counter; it never wraps, so the call must end."""


class CallRefused(LocalError):
    """A call act that is not allowed in the call's state, or a second call on a busy link."""


class ConfigError(LocalError):
    """A configuration or data directory that cannot be used."""


class KeystoreError(HotlineError):
    """The keystore cannot be opened or written; the file on disk was left as it was."""


class StoreError(HotlineError):
    """The store could not do what was asked; the transaction was rolled back."""


class StoreCorruptError(StoreError):
    """The store holds rows that do not verify (a broken chain, a bad signature, a missing row)."""


class LeaseLost(StoreError):
    """This node of a side no longer holds the side's lease: its epoch is not the store's (another
    node took over) or it could not renew the lease in time. The transaction that found it out was
    rolled back; the node must write nothing more and step down (docs/operations.md)."""
