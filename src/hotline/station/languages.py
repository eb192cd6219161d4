"""The languages a person may write in on a link (issue 15, item 10).

A message's or a translation's language is a BCP 47 tag, signed into its envelope or annotation
and never changed. The wire's rule is only the tag's form (hotline.protocol.textsafety): a peer's
record is held whatever it says. At this station's own doors (the service API, the console and
so the CLI) a tag must also be *valid*, each subtag one the IANA language subtag registry knows
("english" and "russian" are well-formed, five to eight letters, but name no language), and be
one of the link's languages: the two that link.toml's `languages` gives (default English and
Russian), or a narrower tag of one of them ("en-GB" on an "en" link; RFC 4647's basic filter).

The registry's check is langcodes' `tag_is_valid`: a small, dependency-free, well-kept package
that carries the registry, so the check needs no network and follows the registry's updates.
"""

from __future__ import annotations

import langcodes

from hotline.protocol.textsafety import language_problem

__all__ = ["DEFAULT_LANGUAGES", "link_language_problem", "valid_language_problem"]

DEFAULT_LANGUAGES = ("en", "ru")


def valid_language_problem(tag: str) -> str | None:
    """Why `tag` is not a valid BCP 47 tag (its form, then its subtags), or None."""
    if problem := language_problem(tag):
        return problem
    if not langcodes.tag_is_valid(tag):
        return f"{tag[:40]!r} is not a BCP 47 language tag (say en, ru, en-GB...)"
    return None


def link_language_problem(tag: str, languages: tuple[str, ...], link: str) -> str | None:
    """Why a person may not write in `tag` on `link`, whose languages are `languages`; or None."""
    if problem := valid_language_problem(tag):
        return problem
    lower = tag.lower()
    if any(lower == lang.lower() or lower.startswith(lang.lower() + "-") for lang in languages):
        return None
    return f"{tag!r} is not a language of link {link}: {' or '.join(languages)}"
