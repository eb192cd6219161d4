"""Station cards: self-signed and versioned; altered, truncated or foreign cards are refused."""

from __future__ import annotations

import base64
from collections.abc import Callable

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.crypto.card import (
    CARD_VERSION,
    CardBody,
    SignedCard,
    card_from_bytes,
    encode_body,
    make_card,
    parse_card,
)
from hotline.crypto.identity import StationIdentity
from hotline.crypto.signed import encode_signed
from hotline.errors import CardError

Make = Callable[[], StationIdentity]
IDENTITY = StationIdentity.from_random(bytes(range(96)))
CARD = make_card(IDENTITY, "Лондон / London", ["127.0.0.1:7001", "[::1]:7002", "h.example:1"], 17)
ARMORED = CARD.armored()


def _body_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and ":" not in ln and not ln.startswith("-----")]


def test_card_round_trip() -> None:
    card = parse_card(ARMORED)
    assert card.body == CARD.body
    assert card.body_bytes == CARD.body_bytes
    assert card.fingerprint == IDENTITY.public.fingerprint
    assert card.identity == IDENTITY.public
    assert ARMORED.startswith("-----BEGIN HOTLINE STATION CARD-----\nName: Лондон / London\n")


def test_card_survives_surrounding_text_and_rewrapping() -> None:
    lines = _body_lines(ARMORED)
    rewrapped = ARMORED.replace(
        "\n".join(lines),
        "\n".join("".join(lines)[i : i + 40] for i in range(0, len("".join(lines)), 40)),
    )
    assert (
        parse_card("From the London duty officer:\n\n" + rewrapped + "\n-- \nEnd").body == CARD.body
    )


def _resign_with_body(card: SignedCard, body: CardBody, identity: StationIdentity | None) -> str:
    """A card whose body was changed; signed by `identity`, or keeping the old signature."""
    body_bytes = encode_body(body)
    signature = identity.sign("card", body_bytes) if identity else card.signature
    return (
        SignedCard(card.body, body_bytes, signature)
        .armored()
        .replace(f"Name: {card.body.name}", f"Name: {body.name}")
    )


@pytest.mark.parametrize(
    "change",
    [
        {"name": "Moscow"},
        {"paths": ["10.0.0.1:7001"]},
        {"created": 18},
    ],
)
def test_altered_card_is_refused(change: dict[str, object]) -> None:
    altered = msgspec.structs.replace(CARD.body, **change)
    with pytest.raises(CardError, match="signature does not verify: the card was altered"):
        parse_card(_resign_with_body(CARD, altered, None))


def test_card_with_swapped_keys_is_refused(make_identity: Make) -> None:
    attacker = make_identity()
    body = msgspec.structs.replace(CARD.body, dh=attacker.public.dh)
    with pytest.raises(CardError, match="signature does not verify"):
        parse_card(_resign_with_body(CARD, body, None))


def test_card_of_another_version_is_refused_by_name() -> None:
    future = msgspec.structs.replace(CARD.body, version=CARD_VERSION + 1)
    with pytest.raises(CardError, match=r"format version 3 is not supported .*versions 1 and 2"):
        parse_card(_resign_with_body(CARD, future, IDENTITY))


def test_edited_header_is_refused() -> None:
    with pytest.raises(CardError, match="header names another station"):
        parse_card(ARMORED.replace("Name: Лондон / London", "Name: Moscow"))
    with pytest.raises(CardError, match="header shows another fingerprint"):
        parse_card(ARMORED.replace("Fingerprint: ", "Fingerprint: 0"))


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_truncated_card_is_refused(keep: float) -> None:
    cut = "\n".join(ARMORED.splitlines()[: max(1, int(len(ARMORED.splitlines()) * keep))])
    with pytest.raises(CardError, match=r"truncated|corrupted|does not"):
        parse_card(cut)
    lines = ARMORED.splitlines()
    data_lines = [i for i, ln in enumerate(lines) if ln in _body_lines(ARMORED)]
    dropped = int(len(data_lines) * keep)  # the END line is kept; data lines go missing
    shortened = [ln for i, ln in enumerate(lines) if i not in data_lines[dropped:][:5]]
    with pytest.raises(CardError, match=r"corrupted|does not"):
        parse_card("\n".join(shortened))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a Hotline station card"),
        ("hello\n", "not a Hotline station card"),
        ("-----BEGIN HOTLINE STATION CARD-----\nAAAA\n", "truncated: no END line"),
        (
            "-----BEGIN HOTLINE STATION CARD-----\n!!!!\n-----END HOTLINE STATION CARD-----",
            "base64",
        ),
        (
            "-----BEGIN HOTLINE STATION CARD-----\nkqA=\n-----END HOTLINE STATION CARD-----",
            "corrupted",
        ),
    ],
)
def test_garbage_is_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(CardError, match=message):
        parse_card(text)


def test_make_card_checks_its_input() -> None:
    with pytest.raises(ValueError, match="station name"):
        make_card(IDENTITY, "", [], 0)
    with pytest.raises(ValueError, match="host:port"):
        make_card(IDENTITY, "London", ["127.0.0.1"], 0)
    with pytest.raises(ValueError, match="host:port"):
        make_card(IDENTITY, "London", ["127.0.0.1:70000"], 0)


@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_byte_change_in_the_signed_card_is_refused(position: int, xor: int) -> None:
    blob = bytearray(CARD.to_bytes())
    blob[position % len(blob)] ^= xor
    with pytest.raises(CardError):
        card_from_bytes(bytes(blob))


@given(st.text(max_size=300), st.integers(min_value=0, max_value=len(ARMORED)))
def test_arbitrary_text_only_ever_gives_a_card_error(noise: str, position: int) -> None:
    text = ARMORED[:position] + noise + ARMORED[position:]
    try:
        card = parse_card(text)
    except CardError:
        return
    assert card.body_bytes == CARD.body_bytes  # accepted only if the signed content is intact


def test_card_bytes_are_kept_exactly_as_signed() -> None:
    decoded = base64.b64decode("".join(_body_lines(ARMORED)))
    assert CARD.body_bytes in decoded


@pytest.mark.parametrize(
    "envelope",
    [[b"x", 5], [5, b"x"], [b"x"], [b"x", b"y", b"z"], {"body": b"x"}, "text", None],
)
def test_envelopes_of_the_wrong_shape_are_refused(envelope: object) -> None:
    with pytest.raises(CardError, match="truncated or corrupted"):
        card_from_bytes(msgspec.msgpack.encode(envelope))


@pytest.mark.parametrize("name", [" London", "London ", "Lon\ndon"])
def test_names_that_would_not_read_back_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="station name"):
        make_card(IDENTITY, name, [], 0)


def test_paths_are_checked_whole_and_counted_when_read() -> None:
    with pytest.raises(ValueError, match="host:port"):
        make_card(IDENTITY, "London", ["127.0.0.1:7001\n"], 0)
    body = msgspec.structs.replace(CARD.body, paths=[f"127.0.0.1:{7000 + i}" for i in range(17)])
    with pytest.raises(CardError, match="at most 16 paths"):
        parse_card(_resign_with_body(CARD, body, IDENTITY))


@pytest.mark.parametrize("host", ["a" * 64 + ".example", ".".join(["host"] * 51)])
def test_a_path_host_is_no_longer_than_a_resolver_takes(host: str) -> None:
    """A card's hosts are read before anyone trusts the card: one of any length would go on
    into logs, the status and the console. A label is at most 63 characters, a name 253."""
    with pytest.raises(ValueError, match="at most 253 characters"):
        make_card(IDENTITY, "London", [f"{host}:7001"], 0)
    body = msgspec.structs.replace(CARD.body, paths=[f"{host}:7001"])
    with pytest.raises(CardError, match="at most 253 characters"):
        parse_card(_resign_with_body(CARD, body, IDENTITY))
    assert make_card(IDENTITY, "London", [f"{'a' * 63}.{'b' * 63}.example:7001"], 0)


# A side on several machines (docs/operations.md, "One side on two machines"): version 2 lists the
# other nodes' paths too, one list per node. Version 1 stays what a one-node station writes.
NODES = [["127.0.0.2:7001", "127.0.0.2:7002"], ["[::2]:7001"]]
SIDE = make_card(IDENTITY, "London", ["127.0.0.1:7001", "127.0.0.1:7002"], 17, NODES)


def _signed(fields: list[object]) -> bytes:
    """The binary form of a card whose body is exactly these fields, signed by IDENTITY (so only
    its content can be refused, never its signature)."""
    body_bytes = msgspec.msgpack.encode(fields)
    return encode_signed(body_bytes, IDENTITY.sign("card", body_bytes))


def _fields(version: int, paths: list[str], *nodes: object) -> list[object]:
    public = IDENTITY.public
    return [version, "London", 17, public.dh, public.ed25519, public.mldsa65, paths, *nodes]


def test_a_card_lists_the_other_nodes_of_its_side_and_reads_back() -> None:
    card = parse_card(SIDE.armored())
    assert (card.body.version, card.body.paths, card.body.nodes) == (
        2, ["127.0.0.1:7001", "127.0.0.1:7002"], NODES
    )  # fmt: skip
    assert card.body_bytes == SIDE.body_bytes
    assert card.fingerprint == CARD.fingerprint  # the same station, whatever its nodes
    assert msgspec.msgpack.decode(card.body_bytes)[7] == NODES  # field 7, after the paths
    altered = msgspec.structs.replace(SIDE.body, nodes=[["127.0.0.3:7001"]])
    with pytest.raises(CardError, match="signature does not verify"):
        parse_card(_resign_with_body(SIDE, altered, None))  # the nodes are signed too


def test_a_version_1_card_still_reads_and_is_what_one_node_writes() -> None:
    """A card made before version 2 (the 7-field array) reads as a side of one node; and a
    station of one node still writes exactly that, so builds that know only version 1 read it."""
    paths = ["127.0.0.1:7001", "[::1]:7002", "h.example:1"]
    old = card_from_bytes(_signed(_fields(1, paths)))
    assert (old.body.version, old.body.paths, old.body.nodes) == (1, paths, [])
    assert make_card(IDENTITY, "London", paths, 17).body_bytes == old.body_bytes
    assert CARD.body.version == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (_fields(1, ["127.0.0.1:1"], [["127.0.0.2:1"]]), "a version 1 body has 7 fields, not 8"),
        (_fields(2, ["127.0.0.1:1"]), "a version 2 body has 8 fields, not 7"),
        (_fields(2, ["127.0.0.1:1"], []), "a version 2 card lists no other node"),
        (_fields(2, ["127.0.0.1:1"], ["127.0.0.2:1"]), "corrupted"),
        (_fields(2, ["127.0.0.1:1"], [[7001]]), "corrupted"),
        (_fields(2, ["127.0.0.1:1"], [[]]), "each other node on a card has at least one path"),
        (_fields(2, ["127.0.0.1:1"], [["127.0.0.2"]]), "host:port"),
        (
            _fields(2, ["127.0.0.1:1"], [[f"127.0.0.2:{p}" for p in range(1, 18)]]),
            "at most 16 paths",
        ),
        (
            _fields(2, ["127.0.0.1:1"], [[f"127.0.1.{n}:1"] for n in range(9)]),
            "at most 8 other nodes",
        ),
        (_fields(2, ["127.0.0.1:1"], [["127.0.0.1:1"]]), "on the card twice: 127.0.0.1:1"),
        (_fields(2, [], [["127.0.0.2:1"], ["127.0.0.2:1"]]), "on the card twice: 127.0.0.2:1"),
    ],
)
def test_a_card_whose_nodes_are_malformed_is_refused_with_a_clear_message(
    fields: list[object], message: str
) -> None:
    with pytest.raises(CardError, match=message):
        card_from_bytes(_signed(fields))


def test_make_card_checks_the_other_nodes() -> None:
    with pytest.raises(ValueError, match="host:port"):
        make_card(IDENTITY, "London", ["127.0.0.1:1"], 0, [["127.0.0.2:0"]])
    with pytest.raises(ValueError, match="twice"):
        make_card(IDENTITY, "London", ["127.0.0.1:1"], 0, [["127.0.0.1:1"]])
    with pytest.raises(ValueError, match="at least one path"):
        make_card(IDENTITY, "London", ["127.0.0.1:1"], 0, [[]])
