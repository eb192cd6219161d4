"""What a machine translation engine is to the station, its settings, and how one is loaded.

A machine draft only helps the human translator: it is labelled with the engine and the exact
model that wrote it, and the original text is always kept beside it. Two engines exist:

    ctranslate2      offline, in the station's process: an Argos Translate package (`.argosmodel`
                     file or its unpacked directory) run by CTranslate2 and SentencePiece
    libretranslate   a self-hosted LibreTranslate-compatible server, over HTTP(S)

No engine is a normal state (kind "none"): translators then work from the original alone. An
engine never downloads anything; models are files the organisation copied onto the machine.
Engines log sizes and statuses only, never a message's text.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, cast, get_args
from urllib.parse import urlsplit

from hotline.errors import ConfigError, HotlineError
from hotline.translate.glossary import Glossary, protect, restore

__all__ = [
    "Engine",
    "EngineKind",
    "EngineSettings",
    "MachineTranslation",
    "TranslationError",
    "load_engine",
    "translate_with_glossary",
]

log = logging.getLogger("hotline.translate")

EngineKind = Literal["none", "ctranslate2", "libretranslate"]
_KINDS: tuple[str, ...] = get_args(EngineKind)
_KEYS = {"kind", "model", "url", "api_key_file", "ca_file", "timeout_s"}
_USED_BY: dict[str, set[str]] = {
    "ctranslate2": {"kind", "model"},
    "libretranslate": {"kind", "url", "api_key_file", "ca_file", "timeout_s"},
}
MAX_TIMEOUT_S = 600.0


class TranslationError(HotlineError):
    """No machine translation could be made: the engine does not have the language pair, is
    unreachable, timed out, refused, or answered something that is not a translation. The
    message says which, never the text that was to be translated."""


@dataclass(frozen=True, slots=True)
class MachineTranslation:
    """A machine draft and what wrote it.

    `model` names exactly what produced the text (package name and version, or the server's
    address and the pair), so a reader of the record knows which machine wrote the draft.
    `glossary_missed` lists the glossary terms found in the original that this draft does not
    render by the glossary, because the engine did not carry their placeholders through: the
    translator should check those names by hand."""

    text: str
    engine: str
    model: str
    glossary_missed: tuple[str, ...] = ()


class Engine(Protocol):
    """A machine translation engine. Every method may be called from the station's event loop;
    slow work happens in a thread or over the network, never on the loop."""

    name: str

    def describe(self) -> str:
        """One line for the console: the engine, its model or server, its state."""
        ...

    def pairs(self) -> list[tuple[str, str]]:
        """The (source, target) language pairs it can translate, as lower-case codes."""
        ...

    async def start(self) -> None:
        """Get ready after loading: the HTTP engine asks its server for the languages. Never
        raises; a server that is down is noted in `describe` and tried again at each use."""
        ...

    async def translate(
        self, text: str, source: str, target: str, glossary: Glossary
    ) -> MachineTranslation:
        """Translate `text`, following `glossary`; raises `TranslationError`."""
        ...

    async def close(self) -> None:
        """Release the model or the connections; the engine is not used afterwards."""
        ...


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """The `[translate]` table of `station.toml`. Relative paths are relative to the data
    directory. The API key is read from `api_key_file`, never written in the configuration;
    `ca_file` names the authority (PEM) behind an HTTPS server's certificate when it is the
    organisation's own rather than a public one."""

    kind: EngineKind = "none"
    model: Path | None = None
    url: str | None = None
    api_key_file: Path | None = None
    timeout_s: float = 20.0
    ca_file: Path | None = None

    @classmethod
    def from_toml(cls, table: Mapping[str, object], base: Path | None = None) -> EngineSettings:
        """Check the table and build the settings; with `base` (the data directory), also check
        that the files it names exist. Raises `ConfigError` naming the key at fault."""
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise ConfigError(f"[translate]: unknown key {unknown[0]!r} (known: {_known()})")
        kind = table.get("kind", "none")
        if kind not in _KINDS:
            raise ConfigError(f"[translate] kind must be one of {', '.join(_KINDS)}, not {kind!r}")
        if kind != "none":
            unused = sorted(set(table) - _USED_BY[str(kind)])
            if unused:
                raise ConfigError(f"[translate] {unused[0]} is not used by kind = {kind!r}")
        settings = cls(
            kind=cast(EngineKind, kind),  # checked against _KINDS above
            model=_path(table, "model"),
            url=_string(table, "url"),
            api_key_file=_path(table, "api_key_file"),
            timeout_s=_timeout(table),
            ca_file=_path(table, "ca_file"),
        )
        if settings.url is not None:
            _check_url(settings.url)
        if kind == "ctranslate2" and settings.model is None:
            raise ConfigError(
                "[translate] kind = 'ctranslate2' needs model = a package file or dir"
            )
        if kind == "libretranslate" and settings.url is None:
            raise ConfigError(
                "[translate] kind = 'libretranslate' needs url = the server's address"
            )
        if base is not None and kind != "none":
            settings.check_files(base)
        return settings

    def check_files(self, base: Path) -> None:
        """Raise `ConfigError` when a file this kind needs is not there."""
        if self.kind == "ctranslate2" and self.model is not None:
            model = _under(base, self.model)
            if not (model.is_file() or model.is_dir()):
                raise ConfigError(f"[translate] model: no file or directory at {model}")
        if self.kind == "libretranslate":
            for key, path in (("api_key_file", self.api_key_file), ("ca_file", self.ca_file)):
                if path is not None and not _under(base, path).is_file():
                    raise ConfigError(f"[translate] {key}: no file at {_under(base, path)}")


def load_engine(settings: EngineSettings, base: Path) -> Engine | None:
    """The engine the settings name, ready to use; None for kind "none". `base` is the station's
    data directory: relative paths start there, and unpacked packages go to `base/models/`.
    Raises `ConfigError` when the model or key cannot be used. Loading a real model takes
    seconds (its first start also unpacks it): call this before serving, or in a thread."""
    if settings.kind == "none":
        return None
    settings.check_files(base)
    if settings.kind == "ctranslate2":
        from hotline.translate.offline import OfflineEngine  # noqa: PLC0415  # an optional extra

        assert settings.model is not None
        return OfflineEngine.open(_under(base, settings.model), base / "models")
    from hotline.translate.libretranslate import LibreTranslateEngine  # noqa: PLC0415

    assert settings.url is not None
    key_file, ca_file = settings.api_key_file, settings.ca_file
    return LibreTranslateEngine(
        settings.url,
        api_key=_read_key(_under(base, key_file)) if key_file else None,
        timeout_s=settings.timeout_s,
        ca_file=_under(base, ca_file) if ca_file else None,
    )


async def translate_with_glossary(
    raw: Callable[[str], Awaitable[str]], text: str, glossary: Glossary, source: str, target: str
) -> tuple[str, tuple[str, ...]]:
    """Run `raw` (one engine call) on `text` with the glossary's terms protected; return the
    translation and the terms it could not render by the glossary. When the engine mangles a
    placeholder, the text is translated again as it is, so no placeholder reaches a person."""
    protected = protect(text, glossary, source, target)
    if not protected.slots:
        return await raw(text), ()
    restored = restore(protected, await raw(protected.text))
    if restored is not None:
        return restored, ()
    log.info(
        "engine lost glossary placeholders (%d terms); translated again without them",
        len(protected.terms),
    )
    return await raw(text), protected.terms


def _under(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else base / path


def _known() -> str:
    return ", ".join(sorted(_KEYS))


def _string(table: Mapping[str, object], key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"[translate] {key} must be a non-empty string")
    return value.strip()


def _path(table: Mapping[str, object], key: str) -> Path | None:
    value = _string(table, key)
    return None if value is None else Path(value)


def _timeout(table: Mapping[str, object]) -> float:
    value = table.get("timeout_s", 20.0)
    # bool is an int to Python, never a timeout to a person.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError("[translate] timeout_s must be a number of seconds")
    if not 0 < value <= MAX_TIMEOUT_S:
        raise ConfigError(f"[translate] timeout_s must be above 0 and at most {MAX_TIMEOUT_S:g}")
    return float(value)


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"[translate] url must be an http:// or https:// address, not {url!r}")
    if parts.username or parts.password:
        raise ConfigError("[translate] url must not hold a user or password: use api_key_file")
    if parts.query or parts.fragment:
        raise ConfigError("[translate] url must be the server's base address, without ?query")
    # Message text is confidential: in clear it may only travel inside this machine.
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError("[translate] url: plain http is only for this machine; use https")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _read_key(path: Path) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"[translate] api_key_file: cannot read {path}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"[translate] api_key_file: {path} is not UTF-8 text") from None
    if not key or len(key) > 1024 or any(c.isspace() for c in key):
        raise ConfigError(f"[translate] api_key_file: {path} must hold one key on one line")
    return key
