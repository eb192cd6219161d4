"""The links a station has paired, as files in its data directory:

    <data dir>/links/<name>/peer.card    the peer's card, as received and verified
    <data dir>/links/<name>/link.toml    how this side uses it: the paths to dial, the languages

A peer side that runs on several machines (docs/operations.md, "One side on two machines") lists
its other nodes' addresses on its card (version 2), one list per node; `other_nodes` in link.toml
adds nodes by hand, merged with the card's. Every address is dialled, and only the peer's active
node answers. When the peer's side changes its nodes it sends a new card, which `update_link`
puts in place of the old one: the same keys, a later date.

`name` is the peer station's name in lower case (letters, digits and dashes), the name operators
use on the command line. A link exists only once both files are written, the card first.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from hotline.crypto.card import SignedCard, parse_card, validate_path
from hotline.crypto.identity import StationIdentity
from hotline.crypto.pairing import card_pairing_keys, psk_sealing_key
from hotline.crypto.session import LinkKeys
from hotline.errors import CardError, ConfigError
from hotline.protocol.state import LinkConfig
from hotline.station.datadir import DataDir, write_atomically
from hotline.station.languages import DEFAULT_LANGUAGES, valid_language_problem

__all__ = ["Link", "add_link", "link_name", "load_links", "update_link"]


class _LinkSection(msgspec.Struct, forbid_unknown_fields=True):
    peer_fingerprint: str
    dial: list[str] = msgspec.field(default_factory=list)
    paired_at: int = 0
    method: str = "sas"
    record_calls: bool | None = None  # None: as station.toml's [calls] record says
    # The peer's media (UDP) address per path, where it differs from its card's paths (a relay
    # or a NAT between the stations); empty: the card's paths.
    media: list[str] = msgspec.field(default_factory=list)
    # The peer's other nodes, when its side runs on several machines: each node's addresses,
    # written by hand, dialled besides those its card lists (merged: `_merge_nodes`).
    other_nodes: list[list[str]] = msgspec.field(default_factory=list)
    # The languages people write in on this link, as BCP 47 tags (hotline.station.languages).
    languages: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_LANGUAGES))


class _LinkFile(msgspec.Struct, forbid_unknown_fields=True):
    link: _LinkSection


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    peer_card: SignedCard
    config: LinkConfig
    keys: LinkKeys
    dial: list[str]  # the peer's addresses we dial; empty when the peer dials us
    record_calls: bool | None = None  # this link's own choice, if link.toml makes one
    media: tuple[str, ...] = ()  # the peer's UDP address per path, if not its card's paths
    # The peer's other nodes' addresses, each: its card's, then link.toml's own
    other_nodes: tuple[tuple[str, ...], ...] = ()
    languages: tuple[str, ...] = DEFAULT_LANGUAGES  # what people write in on it (link.toml)

    @property
    def dial_all(self) -> list[str]:
        """Every address we dial: the peer's (first) node's, then its other nodes'."""
        return [*self.dial, *(a for node in self.other_nodes for a in node)]

    @property
    def peer_nodes(self) -> list[list[str]]:
        """The addresses we dial, node by node; empty when the peer is one node."""
        return [list(self.dial), *map(list, self.other_nodes)] if self.other_nodes else []

    @property
    def dials(self) -> bool:
        """One side dials, the other listens: the side of direction 0 dials."""
        return self.config.direction == 0


def link_name(card: SignedCard) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", card.body.name.lower()).strip("-")
    return name or card.fingerprint.hex()[:12]


def add_link(
    data: DataDir,
    identity: StationIdentity,
    peer: SignedCard,
    now_s: int,
    psk: bytes | None = None,
) -> Link:
    """Record a confirmed pairing: by card files and the short authentication string (no `psk`:
    it is derived from the keys), or by a one-time code (the PAKE's `psk`, kept sealed).

    Raises:
        ConfigError: the card is our own, or a link with that name or peer already exists.
    """
    if peer.fingerprint == identity.public.fingerprint:
        raise ConfigError("that is this station's own card")
    for existing in load_links(data, identity):
        if existing.peer_card.fingerprint == peer.fingerprint:
            raise ConfigError(f"already paired with this station, as link {existing.name!r}")
    name = link_name(peer)
    directory = data.path / "links" / name
    if directory.exists():
        raise ConfigError(f"a link named {name!r} already exists; remove {directory} first")
    directory.mkdir(parents=True, mode=0o700)
    write_atomically(directory / "peer.card", peer.armored().encode("utf-8"))
    if psk is not None:
        link_id = card_pairing_keys(identity, peer.identity).link_id
        nonce = secrets.token_bytes(12)
        sealed = ChaCha20Poly1305(psk_sealing_key(identity, link_id)).encrypt(nonce, psk, link_id)
        write_atomically(directory / "psk.sealed", nonce + sealed, mode=0o600)
    dial = ", ".join(msgspec.json.encode(p).decode() for p in peer.body.paths)
    write_atomically(
        directory / "link.toml",
        (
            "# A paired link, written by `hotline pair`.\n[link]\n"
            f'peer_fingerprint = "{peer.fingerprint.hex()}"\n'
            f"dial = [{dial}]\npaired_at = {now_s}\n"
            f'method = "{"code" if psk is not None else "sas"}"\n'
            "# The peer's other nodes, if its side runs on several, are on its card (peer.card)\n"
            "# and dialled too; other_nodes = [[...], ...] here adds nodes by hand.\n"
            "# What people write in on this link, as BCP 47 tags; the first when none is said.\n"
            f"languages = {msgspec.json.encode(list(DEFAULT_LANGUAGES)).decode()}\n"
        ).encode(),
    )
    return _load_one(directory, identity)


def load_links(data: DataDir, identity: StationIdentity) -> list[Link]:
    return [_load_one(d, identity) for d in _link_dirs(data)]


def update_link(data: DataDir, peer: SignedCard) -> tuple[str, list[str]]:
    """Put a newer card of a paired peer in place of the one held: the same keys (the pinned
    fingerprint), the same name, a later `created`. The card is signed by the pinned keys, so it
    needs no ceremony: whoever carried it could not have changed it. `dial` in link.toml follows
    the card's paths if it was the old card's (as `add_link` wrote it); hand-written, it stays.
    Returns the link's name and what was changed, for people; it takes effect at the next start.

    Raises:
        ConfigError: no link has this peer, or the card is not newer or names another station.
    """
    for directory in _link_dirs(data):
        old, section = _read(directory)
        if old.fingerprint == peer.fingerprint:
            break
    else:
        raise ConfigError(
            "no link is paired with the station of this card (its fingerprint): pair with it "
            "first (hotline pair)"
        )
    if peer.body_bytes == old.body_bytes:
        return directory.name, []
    if peer.body.name != old.body.name:
        raise ConfigError(
            f"the card names the station {peer.body.name!r}, the link {directory.name!r} was "
            f"paired with {old.body.name!r}: not updated"
        )
    if peer.body.created <= old.body.created:
        raise ConfigError(
            f"the card was made at {peer.body.created}, not after the one the link "
            f"{directory.name!r} holds ({old.body.created}): not updated"
        )
    changes = [f"paths {_shown(old.body.paths)} -> {_shown(peer.body.paths)}"]
    changes.append(f"other nodes {_shown_nodes(old.body.nodes)} -> {_shown_nodes(peer.body.nodes)}")
    link_file = directory / "link.toml"
    text = link_file.read_text(encoding="utf-8")
    if section.dial == old.body.paths and section.dial != peer.body.paths:
        dial = ", ".join(msgspec.json.encode(p).decode() for p in peer.body.paths)
        text, count = re.subn(r"(?m)^dial = \[[^\]\n]*\]$", f"dial = [{dial}]", text)
        if count != 1 or tomllib.loads(text)["link"]["dial"] != peer.body.paths:
            raise ConfigError(f"link {directory.name}: cannot rewrite dial in {link_file}")
    elif section.dial != peer.body.paths:
        changes.append(f"dial in {link_file} was written by hand: left as it is")
    write_atomically(directory / "peer.card", peer.armored().encode("utf-8"))
    write_atomically(link_file, text.encode("utf-8"), mode=link_file.stat().st_mode & 0o777)
    return directory.name, changes


def _shown(paths: list[str]) -> str:
    return ", ".join(paths) or "(none)"


def _shown_nodes(nodes: list[list[str]]) -> str:
    return "; ".join(_shown(node) for node in nodes) or "(none)"


def _merge_nodes(
    dial: list[str], card: list[list[str]], by_hand: list[list[str]]
) -> tuple[tuple[str, ...], ...]:
    """The peer's other nodes: its card's, then those link.toml adds. An address already dialled
    is not dialled twice (a hand-written node the card now lists, say); a node left without
    addresses goes."""
    seen = set(dial)
    merged = []
    for node in [*card, *by_hand]:
        kept = tuple(a for a in node if a not in seen)
        seen.update(kept)
        if kept:
            merged.append(kept)
    return tuple(merged)


def _link_dirs(data: DataDir) -> list[Path]:
    root = data.path / "links"
    if not root.is_dir():
        return []
    return [d for d in sorted(root.iterdir()) if (d / "link.toml").exists()]


def _read(directory: Path) -> tuple[SignedCard, _LinkSection]:
    """A link's card and link.toml, each checked on its own.

    Raises:
        ConfigError: either is missing or not valid, naming the link.
    """
    try:
        card = parse_card((directory / "peer.card").read_text(encoding="utf-8"))
        raw = tomllib.loads((directory / "link.toml").read_text(encoding="utf-8"))
        section = msgspec.convert(raw, _LinkFile).link
        others = [a for node in section.other_nodes for a in node]
        for path in [*section.dial, *section.media, *others]:
            validate_path(path)
        if not section.languages:
            raise ValueError("languages names none")
        for tag in section.languages:
            if problem := valid_language_problem(tag):
                raise ValueError(f"languages: {problem}")
    except (
        OSError,
        CardError,
        tomllib.TOMLDecodeError,
        msgspec.ValidationError,
        ValueError,
    ) as exc:
        raise ConfigError(f"link {directory.name}: {exc}") from None
    if section.peer_fingerprint != card.fingerprint.hex():
        raise ConfigError(f"link {directory.name}: peer.card is not the card that was paired")
    return card, section


def _load_one(directory: Path, identity: StationIdentity) -> Link:
    card, section = _read(directory)
    keys = card_pairing_keys(identity, card.identity)
    if section.method == "code":
        keys = dataclasses.replace(keys, psk=_unseal_psk(directory, identity, keys.link_id))
    elif section.method != "sas":
        raise ConfigError(f"link {directory.name}: unknown pairing method {section.method!r}")
    config = LinkConfig(keys.link_id, identity, card.identity)
    return Link(
        directory.name,
        card,
        config,
        keys,
        section.dial,
        section.record_calls,
        tuple(section.media),
        _merge_nodes(section.dial, card.body.nodes, section.other_nodes),
        tuple(section.languages),
    )


def _unseal_psk(directory: Path, identity: StationIdentity, link_id: bytes) -> bytes:
    try:
        blob = (directory / "psk.sealed").read_bytes()
        return ChaCha20Poly1305(psk_sealing_key(identity, link_id)).decrypt(
            blob[:12], blob[12:], link_id
        )
    except (OSError, InvalidTag, ValueError):
        raise ConfigError(f"link {directory.name}: psk.sealed is missing or damaged") from None
