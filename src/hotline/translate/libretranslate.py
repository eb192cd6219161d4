"""The HTTP engine: a self-hosted LibreTranslate server, or anything speaking its API.

    GET  /languages   [{"code": "en", "name": "English", "targets": ["ru", ...]}, ...]
    POST /translate   {"q", "source", "target", "format": "text", "api_key"?} -> {"translatedText"}

The server is the organisation's own: the text of a message leaves the station only for it, over
HTTPS unless the server is on this machine (the settings refuse plain http elsewhere), and never
through a proxy named in the environment. Failures become a `TranslationError` that says what went
wrong (refused, timed out, an HTTP status, an answer that is not a translation). The log gets
sizes, statuses and times only; an error text from the server is quoted only when it does not
contain the message's text.
"""

from __future__ import annotations

import logging
import ssl
import time
from pathlib import Path
from typing import Any

import httpx

from hotline.errors import ConfigError
from hotline.translate.engine import MachineTranslation, TranslationError, translate_with_glossary
from hotline.translate.glossary import Glossary

__all__ = ["LibreTranslateEngine"]

log = logging.getLogger("hotline.translate")

MAX_ERROR_QUOTE = 160


class LibreTranslateEngine:
    """A LibreTranslate-compatible server at `url`, with an optional API key."""

    name = "libretranslate"

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 20.0,
        ca_file: Path | None = None,
    ) -> None:
        """Raises `ConfigError` when `ca_file` holds no usable certificate."""
        verify: ssl.SSLContext | bool = True  # the public authorities (certifi's list)
        if ca_file is not None:
            try:
                verify = ssl.create_default_context(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"[translate] ca_file: {ca_file} is not usable: {exc}") from None
        self.url = url.rstrip("/")
        self._api_key = api_key
        self._pairs: list[tuple[str, str]] | None = None
        self._codes: dict[str, str] = {}  # lower case -> as the server spells it ("zh-Hant")
        self._last_problem = ""
        self._client = httpx.AsyncClient(
            base_url=self.url,
            timeout=timeout_s,
            trust_env=False,  # no proxy or certificate override from the environment
            follow_redirects=False,  # the text goes to the configured server and no other
            headers={"Accept": "application/json"},
            verify=verify,
        )

    def describe(self) -> str:
        if self._pairs is not None:
            return f"LibreTranslate at {self.url}: {len(self._pairs)} language pairs"
        problem = f" ({self._last_problem})" if self._last_problem else ""
        return f"LibreTranslate at {self.url}: languages not known yet{problem}"

    def pairs(self) -> list[tuple[str, str]]:
        """The pairs the server listed at `start` (or at a later use); empty until then."""
        return list(self._pairs or [])

    async def start(self) -> None:
        try:
            await self._languages()
        except TranslationError as exc:
            self._last_problem = str(exc)
            log.warning("translation server not ready: %s", exc)

    async def translate(
        self, text: str, source: str, target: str, glossary: Glossary
    ) -> MachineTranslation:
        pair = (source.lower(), target.lower())
        if self._pairs is None:
            await self.start()  # learn the pairs if the server is back; go on either way
        if self._pairs is not None and pair not in self._pairs:
            raise TranslationError(f"the translation server does not offer {pair[0]}→{pair[1]}")

        spelled = (self._codes.get(pair[0], source), self._codes.get(pair[1], target))

        async def once(q: str) -> str:
            return await self._translate(q, *spelled)

        result, missed = await translate_with_glossary(once, text, glossary, *pair)
        return MachineTranslation(result, self.name, f"{self.url} {pair[0]}→{pair[1]}", missed)

    async def close(self) -> None:
        await self._client.aclose()

    async def _languages(self) -> None:
        body = await self._call("GET", "/languages", None, "")
        pairs: list[tuple[str, str]] = []
        codes: dict[str, str] = {}
        if not isinstance(body, list):
            raise TranslationError("the translation server's /languages is not a list")
        for language in body:
            code = language.get("code") if isinstance(language, dict) else None
            targets = language.get("targets", []) if isinstance(language, dict) else None
            if not isinstance(code, str) or not isinstance(targets, list):
                raise TranslationError("the translation server's /languages is malformed")
            codes[code.lower()] = code
            pairs += [
                (code.lower(), t.lower()) for t in targets if isinstance(t, str) and t != code
            ]
        self._pairs, self._codes = sorted(set(pairs)), codes
        self._last_problem = ""

    async def _translate(self, text: str, source: str, target: str) -> str:
        if not text.strip():
            return text
        request: dict[str, str] = {"q": text, "source": source, "target": target, "format": "text"}
        if self._api_key is not None:
            request["api_key"] = self._api_key
        body = await self._call("POST", "/translate", request, text)
        translated = body.get("translatedText") if isinstance(body, dict) else None
        if not isinstance(translated, str):
            raise TranslationError("the translation server's answer has no translatedText")
        return translated

    async def _call(self, method: str, path: str, request: dict[str, str] | None, text: str) -> Any:
        started = time.monotonic()
        try:
            response = await self._client.request(method, path, json=request)
        except httpx.TimeoutException:
            raise TranslationError(f"the translation server at {self.url} timed out") from None
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise TranslationError(
                    f"the translation server's certificate was not accepted ({self.url}): "
                    "set ca_file to the authority that signed it"
                ) from None
            raise TranslationError(
                f"cannot connect to the translation server at {self.url}"
            ) from None
        except httpx.HTTPError as exc:
            raise TranslationError(
                f"the translation server at {self.url} failed: {type(exc).__name__}"
            ) from None
        log.debug(
            "%s %s: %d, %d chars in, %d bytes out, %.2f s",
            method, path, response.status_code, len(text), len(response.content),
            time.monotonic() - started,
        )  # fmt: skip
        if not response.is_success:
            reason = _server_error(response, text)
            raise TranslationError(
                f"the translation server answered {response.status_code}"
                + (f": {reason}" if reason else "")
            )
        try:
            return response.json()
        except ValueError:
            raise TranslationError("the translation server's answer is not JSON") from None


def _server_error(response: httpx.Response, text: str) -> str:
    """The server's own error text, when it is short and does not quote the message."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(error, str):
        return ""
    error = " ".join(error.split())[:MAX_ERROR_QUOTE]
    quoted = any(line.strip() and line.strip() in error for line in text.splitlines())
    if quoted or any(word in error for word in text.split() if len(word) >= 5):
        return "(its error text quotes the message, not shown)"
    return error
