"""The readable transcript in a bundle: every message of the link in the order it was sent,
with its lane, type, language and original text, and who acknowledged what. A rendering for
people, not evidence: `hotline verify` checks the signed records beside it, not this page.

One self-contained HTML file (its style inline, no script, nothing fetched), so it opens years
later in whatever browser there is. Every text from a message is escaped."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime

from hotline.crypto.card import SignedCard
from hotline.protocol.envelope import Envelope, Lane, MessageType

__all__ = ["TranscriptLine", "render"]

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #111; }
table { border-collapse: collapse; width: 100%; } td, th { border-top: 1px solid #ccc;
  padding: .4em .5em; vertical-align: top; text-align: left; }
.text { white-space: pre-wrap; } .meta { color: #555; font-size: 90%; white-space: nowrap; }
.FLASH { color: #a00; font-weight: 700; } .exercise { background: #fff6c8; }
"""


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One message, already rendered: only its row and its time are kept while exporting."""

    sent_ns: int
    row: str

    @classmethod
    def of(cls, sender: str, envelope: Envelope) -> TranscriptLine:
        return cls(envelope.body.sent_ns, _row(sender, envelope))


def render(link_id: bytes, cards: list[SignedCard], lines: list[TranscriptLine]) -> str:
    names = " and ".join(html.escape(c.body.name) for c in cards)
    rows = [line.row for line in sorted(lines, key=lambda x: x.sent_ns)]
    stations = "".join(
        f"<li>{html.escape(c.body.name)}: <code>{c.fingerprint.hex()}</code></li>" for c in cards
    )
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>Hotline transcript: {names}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Hotline transcript: {names}</h1>"
        f"<p>Link <code>{link_id.hex()}</code>. Stations:</p><ul>{stations}</ul>"
        f"<p>{len(lines)} envelopes, in the order they were sent. This page is a rendering; the "
        "signed records in this bundle are the evidence: check them with "
        "<code>hotline verify</code>. Translations: none recorded yet.</p>"
        "<table><tr><th>Sent (UTC)</th><th>From</th><th>Lane, seq</th><th>Type, language</th>"
        f"<th>Original text</th></tr>{''.join(rows)}</table></body></html>\n"
    )


def _row(sender: str, envelope: Envelope) -> str:
    body = envelope.body
    lane, kind = Lane(body.lane).name, MessageType(body.type).name.lower()
    when = datetime.fromtimestamp(body.sent_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
    text = html.escape(body.text)
    if body.ref is not None:
        text = f"<em>acknowledges {Lane(body.ref.lane).name} {body.ref.seq}:</em> {text}"
    return (
        f"<tr class='{kind}'><td class='meta'>{when}</td><td>{html.escape(sender)}</td>"
        f"<td class='meta {lane}'>{lane} {body.seq}</td>"
        f"<td class='meta'>{kind}, <span lang='{html.escape(body.language)}'>"
        f"{html.escape(body.language)}</span></td>"
        f"<td class='text' lang='{html.escape(body.language)}'>{text}</td></tr>"
    )
