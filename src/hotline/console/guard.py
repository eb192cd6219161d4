"""Who may try to sign in to the console, and how often (issue 13, item 11).

What must hold: a duty officer with the right password and code signs in, whatever an attack on
sign-in does meanwhile. A loopback console is one address for everyone, and a name is no secret,
so neither an address nor a name can tell the officer from the attacker. What can:

- The officer's browser. A device that has signed in as a name is *known* for that name: the
  browser keeps the cookie `hotline_device` (HttpOnly, SameSite=Strict, Path=/console/login, a
  year): a random device id and, for each name signed in there (the last DEVICE_NAMES), a tag,
  HMAC-SHA256 over the id and the name under a key the station derives from its keystore, so no
  one can make one. A known device is never refused for failures from elsewhere. Its own count:
  DEVICE_FAILURES failures in a row, and it is a new device for that name until it signs in as
  one (a copied cookie buys that many tries).
- The password. A hold (auth.py) follows failed second factors only, the right password with a
  wrong code, and keeps out new devices only: a stranger cannot cause one.

From new devices, failures (not sign-ins) are counted per address: past FAILURES_PER_MINUTE in a
minute, the address is answered 429 before any check, so a flood's Argon2 work and audit rows
stay bounded, and the officer's known browser at that address still signs in.

The device key: HKDF-SHA256(ikm = the identity's X25519 seed, salt = "", info = "hotline console
devices v1", length = 32); a station's cookies stay good across restarts, and only its keystore
makes them.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections import deque

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hotline.crypto.identity import StationIdentity

__all__ = [
    "DEVICE_COOKIE",
    "DEVICE_COOKIE_S",
    "AddressFailures",
    "DeviceBook",
    "device_key",
]

DEVICE_COOKIE = "hotline_device"
DEVICE_COOKIE_S = 365 * 86_400
DEVICE_NAMES = 8  # names one browser is known for: a shared console's shift
DEVICE_FAILURES = 5
FAILURES_PER_MINUTE = 20  # from one address, from new devices
MAX_TRACKED = 1000  # addresses or devices remembered before the idle are forgotten
_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # a device id, and a tag: 16 bytes in base64url


def device_key(identity: StationIdentity) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"", info=b"hotline console devices v1"
    ).derive(identity.dh_seed)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class DeviceBook:
    """The browsers that have signed in, by their cookie; and the failures of each since."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._failures: dict[tuple[str, str], int] = {}

    def _tag(self, device: str, name: str) -> str:
        mac = hmac.HMAC(self._key, hashes.SHA256())
        mac.update(b"hotline device v1\x00" + device.encode() + b"\x00" + name.encode())
        return _b64(mac.finalize()[:16])

    @staticmethod
    def _parse(cookie: str | None) -> tuple[str | None, list[str]]:
        device, *tags = (cookie or "").split(".")
        if not _ID.fullmatch(device):
            return None, []
        return device, tags[:DEVICE_NAMES]

    def known(self, cookie: str | None, name: str) -> str | None:
        """The device id, if the cookie says this browser signed in as `name` and it has not
        failed DEVICE_FAILURES times in a row since; else None (a new device)."""
        device, tags = self._parse(cookie)
        if device is None:
            return None
        tag = self._tag(device, name).encode()
        if not any(secrets.compare_digest(tag, t.encode()) for t in tags):
            return None
        return device if self._failures.get((name, device), 0) < DEVICE_FAILURES else None

    def failed(self, device: str, name: str) -> None:
        if len(self._failures) > MAX_TRACKED:  # only signed-in browsers get here: a few
            self._failures.clear()
        self._failures[(name, device)] = self._failures.get((name, device), 0) + 1

    def signed_in(self, cookie: str | None, name: str) -> str:
        """The cookie to set after `name` signed in: the same device id (a new one if there
        was none), this name's tag first, then the others it had."""
        device, tags = self._parse(cookie)
        if device is None:
            device, tags = secrets.token_urlsafe(16), []
        self._failures.pop((name, device), None)
        tag = self._tag(device, name)
        kept = [t for t in tags if t != tag and _ID.fullmatch(t)][: DEVICE_NAMES - 1]
        return ".".join([device, tag, *kept])


class AddressFailures:
    """Failed sign-ins from new devices, per address, over the last minute."""

    def __init__(self, per_minute: int = FAILURES_PER_MINUTE) -> None:
        self.per_minute = per_minute
        self._times: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        if len(self._times) > MAX_TRACKED:
            for idle in [
                a for a, times in self._times.items() if not times or now - times[-1] > 60
            ]:
                del self._times[idle]
        times = self._times.setdefault(address, deque())
        while times and now - times[0] > 60:
            times.popleft()
        return times

    def over(self, address: str) -> bool:
        return len(self._recent(address, time.monotonic())) >= self.per_minute

    def failed(self, address: str) -> None:
        self._recent(address, time.monotonic()).append(time.monotonic())
