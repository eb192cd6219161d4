"""A station's data directory: its configuration, sealed keystore and public card.

    <data dir>/
      station.toml       configuration (name, listening paths, API address, store)
      keystore.hotline   private keys, sealed with the passphrase (mode 0600)
      card.hotline       this station's signed card, for exchange with a peer

This is the I/O side of the crypto core: the only place here that reads the clock, draws random
bytes and touches files. Every file is written atomically (temporary file, fsync, rename), so a
crash or a full disk leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import msgspec

from hotline.crypto.card import SignedCard, make_card, parse_card, validate_name, validate_path
from hotline.crypto.identity import SEED_LEN, StationIdentity
from hotline.crypto.keystore import NONCE_LEN, SALT_LEN, KdfParams, seal, unseal
from hotline.errors import CardError, ConfigError, KeystoreError

__all__ = ["CONFIG_FILE", "DataDir", "StationConfig", "write_atomically"]

CONFIG_FILE = "station.toml"
KEYSTORE_FILE = "keystore.hotline"
CARD_FILE = "card.hotline"
MIN_PASSPHRASE_LEN = 10
_DEFAULT_KDF = KdfParams()


DEFAULT_API = "127.0.0.1:8470"


class _StationSection(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    listen: list[str] = msgspec.field(default_factory=list)


class _ApiSection(msgspec.Struct, forbid_unknown_fields=True):
    listen: str = DEFAULT_API  # the local service API; loopback only


class _StoreSection(msgspec.Struct, forbid_unknown_fields=True):
    url: str = ""  # empty: SQLite in store.db here; or a postgresql:// URL


class StationConfig(msgspec.Struct, forbid_unknown_fields=True):
    """station.toml, decoded strictly: an unknown key is an error, not a silent no-op."""

    station: _StationSection
    api: _ApiSection = msgspec.field(default_factory=_ApiSection)
    store: _StoreSection = msgspec.field(default_factory=_StoreSection)

    def to_toml(self) -> str:
        listen = ", ".join(_toml_string(p) for p in self.station.listen)
        return (
            "# Hotline station configuration, written by `hotline init`.\n"
            "[station]\n"
            f"name = {_toml_string(self.station.name)}\n"
            f"listen = [{listen}]\n\n"
            "# The service API for the console and the CLI, on loopback.\n"
            "[api]\n"
            f"listen = {_toml_string(self.api.listen)}\n\n"
            "# Empty: SQLite in store.db in this directory. Or a postgresql:// URL.\n"
            "[store]\n"
            f"url = {_toml_string(self.store.url)}\n"
        )


def _toml_string(value: str) -> str:
    """A TOML basic string. JSON string escapes are a subset of TOML's."""
    return msgspec.json.encode(value).decode("utf-8")


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one, never a mix."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


@dataclass(frozen=True, slots=True)
class DataDir:
    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def keystore_file(self) -> Path:
        return self.path / KEYSTORE_FILE

    @property
    def card_file(self) -> Path:
        return self.path / CARD_FILE

    @property
    def token_file(self) -> Path:
        return self.path / "api.token"

    @property
    def store_file(self) -> Path:
        return self.path / "store.db"

    def api_token(self) -> str:
        """The service API's bearer token: made on first use, kept in a file only we can read."""
        try:
            return self.token_file.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            token = secrets.token_urlsafe(32)
            write_atomically(self.token_file, token.encode("ascii") + b"\n", mode=0o600)
            return token
        except OSError as exc:
            raise ConfigError(f"cannot read {self.token_file}: {exc.strerror}") from exc

    def init(
        self,
        name: str,
        passphrase: bytes,
        listen: list[str],
        kdf: KdfParams = _DEFAULT_KDF,
        api: str = DEFAULT_API,
    ) -> SignedCard:
        """Create a new station: identity, keystore, card and configuration.

        Raises:
            ConfigError: the directory already holds a station, or a value is not valid.
        """
        try:
            validate_name(name)
            for path in [*listen, api]:
                validate_path(path)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if len(passphrase.decode("utf-8", errors="replace")) < MIN_PASSPHRASE_LEN:
            raise ConfigError(f"the passphrase must be at least {MIN_PASSPHRASE_LEN} characters")
        existing = [f.name for f in (self.config_file, self.keystore_file) if f.exists()]
        if existing:
            raise ConfigError(
                f"{self.path} already holds a station ({', '.join(existing)}); "
                "refusing to overwrite it"
            )
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {self.path}: {exc.strerror or exc}") from exc
        identity = StationIdentity.from_random(secrets.token_bytes(3 * SEED_LEN))
        created = int(time.time())
        card = make_card(identity, name, listen, created)
        sealed = seal(
            identity,
            created,
            passphrase,
            salt=secrets.token_bytes(SALT_LEN),
            nonce=secrets.token_bytes(NONCE_LEN),
            params=kdf,
        )
        config = StationConfig(_StationSection(name, listen), _ApiSection(api))
        # The config last: a station counts as made once its config exists. If any write fails
        # (a full disk, say), the files this call wrote go again, so a retry starts clean.
        written: list[Path] = []
        try:
            for target, data, mode in (
                (self.keystore_file, sealed, 0o600),
                (self.card_file, card.armored().encode("utf-8"), 0o644),
                (self.config_file, config.to_toml().encode("utf-8"), 0o644),
            ):
                write_atomically(target, data, mode)
                written.append(target)
        except ConfigError:
            for target in written:
                target.unlink(missing_ok=True)
            raise
        return card

    def config(self) -> StationConfig:
        """Read station.toml strictly.

        Raises:
            ConfigError: the file is missing, is not TOML, or holds an unknown or wrong value.
        """
        try:
            raw = tomllib.loads(self.config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"no station in {self.path} (no {CONFIG_FILE}); create one with `hotline init`"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {self.config_file}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{self.config_file} is not valid TOML: {exc}") from None
        try:
            config = msgspec.convert(raw, StationConfig)
            validate_name(config.station.name)
            for path in [*config.station.listen, config.api.listen]:
                validate_path(path)
        except (msgspec.ValidationError, ValueError) as exc:
            raise ConfigError(f"{self.config_file}: {exc}") from None
        return config

    def card(self) -> SignedCard:
        """Our own card, verified."""
        self.config()
        try:
            return parse_card(self.card_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{self.card_file} is missing") from None
        except CardError as exc:
            raise ConfigError(f"{self.card_file}: {exc}") from None

    def open_keystore(self, passphrase: bytes) -> StationIdentity:
        """Unseal our identity and check that it matches our card.

        Raises:
            KeystoreError: the keystore is missing, damaged, or the passphrase is wrong.
        """
        try:
            blob = self.keystore_file.read_bytes()
        except FileNotFoundError:
            raise KeystoreError(f"{self.keystore_file} is missing") from None
        except OSError as exc:
            raise KeystoreError(f"cannot read {self.keystore_file}: {exc.strerror}") from exc
        identity, _created = unseal(blob, passphrase)
        if identity.public != self.card().identity:
            raise KeystoreError("the keystore holds another identity than this station's card")
        return identity
