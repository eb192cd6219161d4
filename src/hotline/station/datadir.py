"""A station's data directory: its configuration, sealed keystore and public card.

    <data dir>/
      station.toml       configuration (name, listening paths, API and console addresses, store)
      keystore.hotline   private keys, sealed with the passphrase
      card.hotline       this station's signed card, for exchange with a peer
      totp-seal.pub      the public key the operators' TOTP secrets are sealed to in the store

This is the I/O side of the crypto core: the only place here that reads the clock, draws random
bytes and touches files. Every file is written atomically (temporary file, fsync, rename), so a
crash or a full disk leaves either the old file or the new one, never half of one.

The directory is its owner's alone: 0700, and every file the station keeps in it 0600 (every
directory 0700), whatever was there before. `init` and every start make it so (`secure`): the
store holds every message and the operators' password hashes, `station.toml` may hold a
database password.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import stat
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from hotline.crypto.atrest import totp_key
from hotline.crypto.card import (
    SignedCard,
    make_card,
    parse_card,
    validate_name,
    validate_nodes,
    validate_path,
)
from hotline.crypto.identity import SEED_LEN, StationIdentity
from hotline.crypto.keystore import NONCE_LEN, SALT_LEN, KdfParams, seal, unseal
from hotline.durable import sync_dir
from hotline.errors import CardError, ConfigError, KeystoreError
from hotline.translate import EngineSettings

__all__ = [
    "CONFIG_FILE",
    "CallsSection",
    "ConsoleSection",
    "DataDir",
    "Deadlines",
    "NodeSection",
    "StationConfig",
    "card_problem",
    "is_loopback",
    "write_atomically",
]

CONFIG_FILE = "station.toml"
KEYSTORE_FILE = "keystore.hotline"
CARD_FILE = "card.hotline"
TOTP_KEY_FILE = "totp-seal.pub"
# What the station keeps in its directory, made private by `secure` (directories with all they
# hold). Anything else a person put there is theirs: the directory's own 0700 hides it.
_KEPT = (
    CONFIG_FILE, KEYSTORE_FILE, CARD_FILE, TOTP_KEY_FILE, "api.token", "station.lock",
    "store.db", "store.db-wal", "store.db-shm", "store.db-journal", "console-cert.pem",
    "console-key.pem", "links", "attachments", "recordings", "models",
)  # fmt: skip
MIN_PASSPHRASE_LEN = 10
_DEFAULT_KDF = KdfParams()


DEFAULT_API = "127.0.0.1:8470"
DEFAULT_CONSOLE = "127.0.0.1:8480"


class _StationSection(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    listen: list[str] = msgspec.field(default_factory=list)


class _ApiSection(msgspec.Struct, forbid_unknown_fields=True):
    listen: str = DEFAULT_API  # the local service API; loopback only
    # What the token may send alone (docs/security.md, "The API token"): "any" message, or only
    # "service" and test messages outside the FLASH lane, what the console sends without a release.
    sends: Literal["any", "service"] = "any"


class _StoreSection(msgspec.Struct, forbid_unknown_fields=True):
    url: str = ""  # empty: SQLite in store.db here; or a postgresql:// URL


class NodeSection(msgspec.Struct, forbid_unknown_fields=True):
    """One node of a side that runs on several machines with one PostgreSQL store (docs/
    operations.md, "One side on two machines"). Empty name: this station is its side's only node."""

    name: str = ""  # this node's name, unique within the side: letters, digits, dashes
    lease_ms: int = 4000  # how long the active node's lease runs without a renewal
    renew_ms: int = 1000  # how often the active node renews it
    poll_ms: int = 500  # how often a standby looks whether the lease has ended
    # Where people reach this node's console (a standby redirects there); empty: from
    # [console] listen.
    console_url: str = ""
    # The REST APIs of the Patronis that run the store's database servers (http://host:8008),
    # for `hotline node status` to show each server's role; empty: not shown.
    patroni: list[str] = msgspec.field(default_factory=list)
    # The side's other nodes' paths (their [station] listen), one list per node: this side's card
    # lists them, so that the peer dials every node (`hotline card --remake`).
    other_nodes: list[list[str]] = msgspec.field(default_factory=list)


class Deadlines(msgspec.Struct, forbid_unknown_fields=True):
    """Seconds within which a person on the other side should acknowledge, per precedence."""

    flash: int = 300
    immediate: int = 900
    priority: int = 3600
    routine: int = 14400

    def for_lane(self, lane_name: str) -> int:
        return int(getattr(self, lane_name.lower()))

    def due_ns(self, lane_name: str, accepted_ns: int) -> int:
        """When a person at the peer should have acknowledged a message accepted then."""
        return accepted_ns + self.for_lane(lane_name) * 1_000_000_000

    def due_in_ns(self, lane_name: str, sent_ns: int, received_ns: int, clock_fault_ns: int) -> int:
        """When a person here should have acknowledged the peer's message: its deadline counted
        from when it was sent (the sender counts from then too, so the receiver is never told
        later than the sender), unless its date is a clock fault or later than its arrival;
        then from its arrival."""
        believed = received_ns - clock_fault_ns <= sent_ns <= received_ns
        return self.due_ns(lane_name, sent_ns if believed else received_ns)


class ConsoleSection(msgspec.Struct, forbid_unknown_fields=True):
    listen: str = ""  # empty: no console
    tls_cert: str = ""  # PEM files; required when `listen` is not a loopback address
    tls_key: str = ""
    idle_timeout_s: int = 900
    two_person_rule: bool = True  # a principal message needs a supervisor's release
    test_interval_s: int = 3600  # the link test, both ways
    test_deadline_s: int = 60  # a test not receipted by then has failed
    escalate_after_s: int = 300  # an alarm nobody has dealt with by then goes to the webhook
    webhook: str = ""  # an http(s) URL: each alarm raised, escalated, cleared
    # A peer's envelope dated further than this from our clock on arrival is a clock fault:
    # held, but alarmed and marked (hotline.protocol.clock).
    clock_fault_s: int = 300
    # An account enrolled (made or reset, then taken up by its person) less than this many hours
    # ago cannot be the second person of a release (issue 13, item 10). 0: no hold.
    new_account_hold_h: int = 24
    deadlines: Deadlines = msgspec.field(default_factory=Deadlines)


class AttachmentsSection(msgspec.Struct, forbid_unknown_fields=True):
    max_size_mib: int = 100  # the largest file this station sends or fetches

    @property
    def max_size(self) -> int:
        return self.max_size_mib * 1024 * 1024


class CallsSection(msgspec.Struct, forbid_unknown_fields=True):
    """Voice calls (docs/calls.md): media on UDP beside each TCP path, Opus at 48 kHz."""

    ring_timeout_s: int = 45  # unanswered by then: a missed call (alarm here, "no answer" there)
    frame_ms: int = 20  # 20 or 10: shorter frames, less delay, more packets
    # Opus bits per second. With in-band FEC on, Opus spends part of them on the previous frame:
    # 64 kbit/s at a constant bit rate keeps espeak-ng speech at PESQ-WB 4.1 at the encoder's
    # complexity (audio.py), a trifle beside a link's paths.
    bitrate: int = 64000
    # Every packet of the same length, speech or silence: variable-bit-rate packet lengths, in
    # clear on the wire, give away what is said (RFC 6562). false: variable, 48 kbit/s suffices.
    constant_bitrate: bool = True
    record: bool = False  # record every call (a link's link.toml can say otherwise)
    udp: bool = True  # false: media over the TCP sessions only (where UDP is blocked)
    all_paths: bool = True  # every media frame on every live path; false: on the best one only
    # The least the jitter buffer holds a frame beyond the fastest transit; above it the buffer
    # follows the recent spread of arrivals by itself (docs/calls.md, "The jitter buffer").
    jitter_min_ms: int = 5


class StationConfig(msgspec.Struct, forbid_unknown_fields=True):
    """station.toml, decoded strictly: an unknown key is an error, not a silent no-op."""

    station: _StationSection
    api: _ApiSection = msgspec.field(default_factory=_ApiSection)
    store: _StoreSection = msgspec.field(default_factory=_StoreSection)
    console: ConsoleSection = msgspec.field(default_factory=ConsoleSection)
    attachments: AttachmentsSection = msgspec.field(default_factory=AttachmentsSection)
    calls: CallsSection = msgspec.field(default_factory=CallsSection)
    node: NodeSection = msgspec.field(default_factory=NodeSection)
    # Machine translation: checked by hotline.translate.EngineSettings.from_toml.
    translate: dict[str, Any] = msgspec.field(default_factory=dict)

    def to_toml(self) -> str:
        listen = ", ".join(_toml_string(p) for p in self.station.listen)
        return (
            "# Hotline station configuration, written by `hotline init`.\n"
            "[station]\n"
            f"name = {_toml_string(self.station.name)}\n"
            f"listen = [{listen}]\n\n"
            "# The service API for the console and the CLI, on loopback.\n"
            "[api]\n"
            f"listen = {_toml_string(self.api.listen)}\n"
            '# What the API token may send alone: "any", or "service" (service and test\n'
            "# messages outside the FLASH lane). See docs/security.md, The API token.\n"
            f"sends = {_toml_string(self.api.sends)}\n\n"
            "# Empty: SQLite in store.db in this directory. Or a postgresql:// URL.\n"
            "[store]\n"
            f"url = {_toml_string(self.store.url)}\n\n"
            "# The operators' console: on loopback plain HTTP; on any other address TLS, with\n"
            "# tls_cert and tls_key (PEM files). Empty listen: no console.\n"
            "[console]\n"
            f"listen = {_toml_string(self.console.listen)}\n"
            f"tls_cert = {_toml_string(self.console.tls_cert)}\n"
            f"tls_key = {_toml_string(self.console.tls_key)}\n"
            f"idle_timeout_s = {self.console.idle_timeout_s}\n"
            f"two_person_rule = {'true' if self.console.two_person_rule else 'false'}\n"
            f"test_interval_s = {self.console.test_interval_s}\n"
            f"test_deadline_s = {self.console.test_deadline_s}\n"
            f"escalate_after_s = {self.console.escalate_after_s}\n"
            f"webhook = {_toml_string(self.console.webhook)}\n"
            "# A peer's message dated further than this from our clock: a clock fault (alarm).\n"
            f"clock_fault_s = {self.console.clock_fault_s}\n"
            "# Hours after an account is enrolled before it may release another's draft.\n"
            f"new_account_hold_h = {self.console.new_account_hold_h}\n\n"
            "# Seconds for a person at the peer to acknowledge, per precedence.\n"
            "[console.deadlines]\n"
            f"flash = {self.console.deadlines.flash}\n"
            f"immediate = {self.console.deadlines.immediate}\n"
            f"priority = {self.console.deadlines.priority}\n"
            f"routine = {self.console.deadlines.routine}\n\n"
            "# Files sent with messages: the largest this station sends or fetches, in MiB.\n"
            "[attachments]\n"
            f"max_size_mib = {self.attachments.max_size_mib}\n\n"
            "# Voice calls: media on UDP on the same addresses as the paths. See docs/calls.md.\n"
            "[calls]\n"
            f"ring_timeout_s = {self.calls.ring_timeout_s}\n"
            f"frame_ms = {self.calls.frame_ms}\n"
            f"bitrate = {self.calls.bitrate}\n"
            f"constant_bitrate = {'true' if self.calls.constant_bitrate else 'false'}\n"
            f"record = {'true' if self.calls.record else 'false'}\n"
            f"udp = {'true' if self.calls.udp else 'false'}\n"
            f"all_paths = {'true' if self.calls.all_paths else 'false'}\n"
            f"jitter_min_ms = {self.calls.jitter_min_ms}\n\n"
            "# One side on several machines sharing one PostgreSQL store: this node's name\n"
            "# (empty: the side's only node) and the lease's timing. See docs/operations.md.\n"
            "[node]\n"
            f"name = {_toml_string(self.node.name)}\n"
            f"lease_ms = {self.node.lease_ms}\n"
            f"renew_ms = {self.node.renew_ms}\n"
            f"poll_ms = {self.node.poll_ms}\n"
            f"console_url = {_toml_string(self.node.console_url)}\n"
            "# Patroni's REST API on each database server, for `hotline node status`.\n"
            f"patroni = [{', '.join(_toml_string(url) for url in self.node.patroni)}]\n"
            "# The other nodes' [station] listen, one list per node, for the side's card.\n"
            f"other_nodes = {_toml_nodes(self.node.other_nodes)}\n\n"
            '# Machine drafts for the translators: kind = "none", "ctranslate2" (model = an\n'
            '# .argosmodel file) or "libretranslate" (url = a server you run). See\n'
            "# docs/operations.md, Translation engines.\n"
            "[translate]\n"
            'kind = "none"\n'
        )


def card_problem(config: StationConfig, card: SignedCard) -> str | None:
    """What the card says of where the side listens that station.toml does not, if anything:
    the card lists every node's paths ([station] listen and [node] other_nodes), in any order of
    nodes (each node's card begins with its own), each node's paths in their order."""
    ours = [tuple(config.station.listen), *map(tuple, config.node.other_nodes)]
    listed = [tuple(card.body.paths), *map(tuple, card.body.nodes)]
    if sorted(ours) == sorted(listed):
        return None
    if tuple(config.station.listen) not in listed:
        told = "does not list this node's paths ([station] listen)"
    else:
        told = "lists other nodes than [node] other_nodes"
    return (
        f"the station card {told}, so the peer does not dial where this side listens: make it "
        "again (hotline card --remake) and send it to the peer (hotline pair --update CARD)"
    )


def is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _check_console(console: ConsoleSection) -> None:
    if console.clock_fault_s < 1:  # the link's, whether or not a console is served
        raise ValueError("console.clock_fault_s must be at least 1 s")
    if not 0 <= console.new_account_hold_h <= 24 * 365:
        raise ValueError("console.new_account_hold_h must be between 0 and 8760 hours")
    if not console.listen:
        return
    validate_path(console.listen)
    if not is_loopback(console.listen) and not (console.tls_cert and console.tls_key):
        raise ValueError(
            f"console.listen {console.listen} is not a loopback address: tls_cert and tls_key "
            "are required"
        )
    if bool(console.tls_cert) != bool(console.tls_key):
        raise ValueError("console: give both tls_cert and tls_key, or neither")
    numbers = (console.idle_timeout_s, console.test_interval_s, console.test_deadline_s)
    if min(numbers) < 1 or min(msgspec.structs.astuple(console.deadlines)) < 1:
        raise ValueError("console: timeouts, intervals and deadlines must be at least 1 s")
    if console.webhook and not console.webhook.startswith(("http://", "https://")):
        raise ValueError("console.webhook must be an http:// or https:// URL")


OLD_DEFAULT_BITRATE = 48000  # what `hotline init` wrote before calls went at a constant rate


def _upgraded(raw: dict[str, Any]) -> dict[str, Any]:
    """A station.toml written before calls went at a constant bit rate says `bitrate = 48000`,
    the default then, and nothing of `constant_bitrate`: at a constant rate 48 kbit/s sounds
    worse than it did (PESQ 3.71 against 4.10), so it is read as today's default, which sounds
    as it did. A rate chosen by hand, or any file that names `constant_bitrate`, is kept."""
    calls = raw.get("calls")
    if (
        isinstance(calls, dict)
        and "constant_bitrate" not in calls
        and calls.get("bitrate") == OLD_DEFAULT_BITRATE
    ):
        return {**raw, "calls": {**calls, "bitrate": CallsSection().bitrate}}
    return raw


def _check_calls(calls: CallsSection) -> None:
    if calls.frame_ms not in (10, 20):
        raise ValueError("calls.frame_ms must be 10 or 20")
    if not 6000 <= calls.bitrate <= 128000:
        raise ValueError("calls.bitrate must be between 6000 and 128000 bits per second")
    if not 0 <= calls.jitter_min_ms <= 200:
        raise ValueError("calls.jitter_min_ms must be between 0 and 200 ms")
    if not 5 <= calls.ring_timeout_s <= 600:
        raise ValueError("calls.ring_timeout_s must be between 5 and 600 s")


def _check_node(node: NodeSection, store_url: str, listen: list[str]) -> None:
    for url in node.patroni:
        if not re.fullmatch(r"https?://[^\s/]+", url):
            raise ValueError(f"node.patroni: {url!r} is not http(s)://host:port, nothing after")
    if node.patroni and not store_url.startswith(("postgresql://", "postgres://")):
        raise ValueError("node.patroni is set: Patroni runs a PostgreSQL store.url")
    if node.other_nodes and not node.name:
        raise ValueError("node.other_nodes is set: name this node too (node.name)")
    try:
        validate_nodes(listen, node.other_nodes)
    except ValueError as exc:
        raise ValueError(f"node.other_nodes: {exc}") from None
    if not node.name:
        return
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", node.name):
        raise ValueError("node.name: 1 to 32 lower-case letters, digits and dashes")
    if not store_url.startswith(("postgresql://", "postgres://")):
        raise ValueError("node.name is set: the nodes of a side share a PostgreSQL store.url")
    if min(node.poll_ms, node.renew_ms) < 100 or node.lease_ms < 3 * node.renew_ms:
        raise ValueError(
            "node: poll_ms and renew_ms at least 100, and lease_ms at least 3 renew_ms"
        )
    if node.console_url and not re.fullmatch(r"https?://[^\s/]+", node.console_url):
        raise ValueError("node.console_url: http(s)://host:port, nothing after")


def _tighten(path: Path, tightened: list[str]) -> None:
    """Take every group and other bit from one path (a directory becomes 0700)."""
    try:
        status = path.lstat()
        if stat.S_ISLNK(status.st_mode):
            return
        mode = stat.S_IMODE(status.st_mode)
        private = 0o700 if stat.S_ISDIR(status.st_mode) else mode & 0o700
        if mode != private:
            path.chmod(private)
            tightened.append(f"{path}: {mode:04o} -> {private:04o}")
    except FileNotFoundError:
        return  # gone meanwhile (a partial file renamed into place): nothing left to hide
    except OSError as exc:
        raise ConfigError(f"cannot make {path} private: {exc.strerror or exc}") from exc


def _toml_string(value: str) -> str:
    """A TOML basic string. JSON string escapes are a subset of TOML's."""
    return msgspec.json.encode(value).decode("utf-8")


def _toml_nodes(nodes: list[list[str]]) -> str:
    """A TOML array of arrays of strings, as JSON writes it (a subset of TOML's)."""
    return ", ".join(msgspec.json.encode(node).decode("utf-8") for node in nodes).join("[]")


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
        sync_dir(path.parent)
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

    @property
    def console_cert_file(self) -> Path:
        return self.path / "console-cert.pem"

    @property
    def console_key_file(self) -> Path:
        return self.path / "console-key.pem"

    @property
    def totp_key_file(self) -> Path:
        return self.path / TOTP_KEY_FILE

    def secure(self) -> list[str]:
        """Make the directory its owner's alone (0700) and all the station keeps in it private
        (files lose every group and other bit, directories become 0700); symbolic links are left
        as they are. Returns one line per path it tightened, to be told.

        Raises:
            ConfigError: a path that cannot be changed (another user owns it, say).
        """
        tightened: list[str] = []
        if not self.path.is_dir():
            return tightened
        _tighten(self.path.resolve(), tightened)  # the directory itself, even through a link
        for name in _KEPT:
            top = self.path / name
            if top.is_dir() and not top.is_symlink():
                for root, dirs, files in os.walk(top):
                    for entry in [root, *(os.path.join(root, f) for f in [*dirs, *files])]:
                        _tighten(Path(entry), tightened)
            elif top.exists():
                _tighten(top, tightened)
        return tightened

    def totp_public_key(self) -> bytes | None:
        """The public key the TOTP secrets are sealed to; None before `init` or a start made one.

        Raises:
            ConfigError: the file is there but does not hold a key.
        """
        try:
            text = self.totp_key_file.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {self.totp_key_file}: {exc}") from exc
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ConfigError(f"{self.totp_key_file} does not hold a 32-byte key in hex")
        return key

    def publish_totp_key(self, public: bytes) -> None:
        """Keep the TOTP key's public half where tools that write the store find it."""
        with contextlib.suppress(ConfigError):
            if self.totp_public_key() == public:
                return
        write_atomically(self.totp_key_file, public.hex().encode("ascii") + b"\n", mode=0o600)

    def link_names(self) -> list[str]:
        """The links paired here, by name (their directories under links/)."""
        root = self.path / "links"
        if not root.is_dir():
            return []
        return sorted(d.name for d in root.iterdir() if (d / "link.toml").exists())

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
        console: str = DEFAULT_CONSOLE,
    ) -> SignedCard:
        """Create a new station: identity, keystore, card and configuration.

        Raises:
            ConfigError: the directory already holds a station, or a value is not valid.
        """
        try:
            validate_name(name)
            for path in [*listen, api, *([console] if console else [])]:
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
        self.secure()  # a directory that existed before is made private before anything goes in
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
        console_section = ConsoleSection(console)
        # The config last: a station counts as made once its config exists. If any write fails
        # (a full disk, say), the files this call wrote go again, so a retry starts clean.
        written: list[Path] = []
        try:
            if console and not is_loopback(console):  # off loopback, only over TLS
                from hotline.station.tls import make_self_signed  # noqa: PLC0415 - rarely needed

                host = console.rpartition(":")[0].strip("[]")
                if host in ("0.0.0.0", "::"):  # noqa: S104 - recognising it, not binding it
                    raise ConfigError(
                        f"the console at {console}: give the address people will use (its "
                        "certificate names it), not a wildcard"
                    )
                written += [self.console_cert_file, self.console_key_file]
                make_self_signed(name, host, self.console_cert_file, self.console_key_file)
                console_section = ConsoleSection(
                    console, str(self.console_cert_file), str(self.console_key_file)
                )
            config = StationConfig(
                _StationSection(name, listen), _ApiSection(api), console=console_section
            )
            totp_public = totp_key(identity)[1].hex().encode("ascii") + b"\n"
            for target, data, mode in (
                (self.keystore_file, sealed, 0o600),
                (self.card_file, card.armored().encode("utf-8"), 0o600),
                (self.totp_key_file, totp_public, 0o600),
                (self.config_file, config.to_toml().encode("utf-8"), 0o600),
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
            config = msgspec.convert(_upgraded(raw), StationConfig)
            validate_name(config.station.name)
            for path in [*config.station.listen, config.api.listen]:
                validate_path(path)
            _check_console(config.console)
            if not 0 < config.attachments.max_size_mib <= 1024 * 1024:
                raise ValueError("attachments.max_size_mib must be between 1 and 1048576")
            _check_calls(config.calls)
            _check_node(config.node, config.store.url, config.station.listen)
            EngineSettings.from_toml(config.translate, self.path)
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

    def remake_card(self, identity: StationIdentity) -> SignedCard:
        """Make and sign the card again from station.toml: this node's `[station] listen` and the
        side's `[node] other_nodes`; the same name and keys, a later `created` than the card it
        replaces (a peer takes a card only over an older one: `links.update_link`)."""
        config, old = self.config(), self.card()
        created = max(int(time.time()), old.body.created + 1)
        try:
            card = make_card(
                identity, old.body.name, config.station.listen, created, config.node.other_nodes
            )
        except ValueError as exc:
            raise ConfigError(f"{self.config_file}: {exc}") from None
        write_atomically(self.card_file, card.armored().encode("utf-8"), mode=0o600)
        return card

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
