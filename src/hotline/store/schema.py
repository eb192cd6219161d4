"""The store's schema, as numbered steps per dialect. A store records the step it reached in
`meta.schema_version`; opening it applies the missing steps in order, each in a transaction.

Tables (the same in both dialects):

    meta         key/value: schema_version
    links        one row per link: its id, our direction, the peer's fingerprint
    outbox       our envelopes, exactly as signed; when the peer's receipt covered each, and which
                 of the peer's envelopes acknowledged it
    inbox        the peer's envelopes, exactly as signed, in arrival order (`id`)
    receipts     the peer's newest signed receipt for our envelopes: our proof of delivery
    checkpoints  every checkpoint made or received, as signed
    peer_state   the floor of the handshake replay record (newest_handshake_ns: no first message
                 at or below it is accepted; before version 8, the newest one accepted)
    handshakes_accepted  the replay record: the peer's first messages accepted within the
                 freshness window, by ephemeral key (docs/protocol.md §3.6)
    audit        what people must find later: refusals, evidence, and operators' acts
    operators    the people at the console: role, password hash, TOTP secret, lockout, when
                 they last enrolled
    enrolments   an account's one-time enrolment code, waiting for its person: its hash only,
                 who made it and until when it holds
    drafts       messages drafted at the console, waiting for (or past) a supervisor's release;
                 a rejection's reason, a withdrawal by its author
    shift_log    the duty officers' notes and hand-overs
    attachments  the files named in envelopes, either way: how much of each is held, and the
                 receiver's signed statement once it holds the file whole
    annotations  translations of received messages, their reviews and certifications, as signed
    glossary     per link: how names, titles and terms are rendered, kept by the translators
    node_lease   the side's one lease when it runs on several nodes (PostgreSQL only: on SQLite
                 the table stays empty, the data directory's lock being the one-writer rule):
                 which node is active, its fencing epoch, until when (store/lease.py)
    send_keys    the keys of sends that can be retried, each with the message it made
    file_chunks, file_blobs  on a side of several nodes, the bytes of its attachment files and
                 call recordings, in chunks; a file is whole once its file_blobs row is
                 (store/fileblobs.py)
"""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

_COMMON_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE links (
    link_id {blob} PRIMARY KEY,
    direction INTEGER NOT NULL,
    peer_fingerprint {blob} NOT NULL,
    created_ns BIGINT NOT NULL
);
CREATE TABLE outbox (
    link_id {blob} NOT NULL REFERENCES links (link_id),
    lane INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    hash {blob} NOT NULL,
    envelope {blob} NOT NULL,
    type INTEGER NOT NULL,
    accepted_ns BIGINT NOT NULL,
    receipted_ns BIGINT,
    acknowledged_by {blob},
    PRIMARY KEY (link_id, lane, seq)
);
CREATE TABLE inbox (
    id {serial},
    link_id {blob} NOT NULL REFERENCES links (link_id),
    lane INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    hash {blob} NOT NULL,
    envelope {blob} NOT NULL,
    type INTEGER NOT NULL,
    received_ns BIGINT NOT NULL,
    UNIQUE (link_id, lane, seq)
);
CREATE TABLE receipts (
    link_id {blob} PRIMARY KEY REFERENCES links (link_id),
    statement {blob} NOT NULL,
    received_ns BIGINT NOT NULL
);
CREATE TABLE checkpoints (
    id {serial},
    link_id {blob} NOT NULL REFERENCES links (link_id),
    origin TEXT NOT NULL,
    hash {blob} NOT NULL,
    statement {blob} NOT NULL,
    stored_ns BIGINT NOT NULL,
    UNIQUE (link_id, hash)
);
CREATE TABLE peer_state (
    link_id {blob} PRIMARY KEY REFERENCES links (link_id),
    newest_handshake_ns BIGINT NOT NULL
);
CREATE TABLE audit (
    id {serial},
    link_id {blob},
    at_ns BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    evidence {blob}
);
"""

_DIALECTS = {
    "sqlite": {"blob": "BLOB", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgres": {"blob": "BYTEA", "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"},
}


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


# Version 2: an acknowledgement in the outbox names the inbox envelope it acknowledges, so the
# inbox can show what a person here has acknowledged.
_V2 = [
    "ALTER TABLE outbox ADD COLUMN ref_lane INTEGER",
    "ALTER TABLE outbox ADD COLUMN ref_seq BIGINT",
]

# Version 3: the envelopes still waiting for a receipt, indexed on their own. Each receipt marks
# the envelopes it newly covers; without this index that update walked the lane's whole history,
# so every receipt cost more than the one before.
_V3 = [
    "CREATE INDEX outbox_unreceipted ON outbox (link_id, lane, seq) WHERE receipted_ns IS NULL",
]

# Version 4: the people at the console. Operators and their credentials, drafts waiting for a
# supervisor's release (the two-person rule), the shift log; and the indexes behind what the
# station asks every second: has a person here acknowledged this incoming message, which of our
# principal messages wait for a person there, when did the last test go and come.
_V4 = """
CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    totp_secret TEXT NOT NULL,
    language TEXT NOT NULL,
    disabled INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    locked_until_ns BIGINT NOT NULL,
    last_totp_step BIGINT NOT NULL,
    created_ns BIGINT NOT NULL
);
CREATE TABLE drafts (
    id {serial},
    link TEXT NOT NULL,
    lane INTEGER NOT NULL,
    type INTEGER NOT NULL,
    language TEXT NOT NULL,
    text TEXT NOT NULL,
    drafted_by TEXT NOT NULL,
    drafted_ns BIGINT NOT NULL,
    state TEXT NOT NULL,
    decided_by TEXT,
    decided_ns BIGINT,
    seq BIGINT
);
CREATE TABLE shift_log (
    id {serial},
    at_ns BIGINT NOT NULL,
    author TEXT NOT NULL,
    text TEXT NOT NULL,
    handover INTEGER NOT NULL
);
CREATE INDEX outbox_acknowledgements ON outbox (link_id, ref_lane, ref_seq)
    WHERE ref_lane IS NOT NULL;
CREATE INDEX outbox_unacknowledged ON outbox (link_id, lane, accepted_ns)
    WHERE acknowledged_by IS NULL AND type IN (0, 4);
CREATE INDEX outbox_by_type ON outbox (link_id, type, accepted_ns);
CREATE INDEX inbox_by_type ON inbox (link_id, type, received_ns)
"""

# Version 5: attachments. One row per file named in an envelope, sent ("out") or received ("in"),
# written in the same transaction as its envelope. `held` is how many bytes the receiver holds:
# on our "in" rows what is durably on our disk (where a fetch resumes), on "out" rows how far the
# peer has asked (progress, not proof). `statement` is the receiver's signed Held statement: the
# proof of delivery of that file (ours on "in" rows, the peer's on "out" rows).
_V5 = """
CREATE TABLE attachments (
    link_id {blob} NOT NULL REFERENCES links (link_id),
    side TEXT NOT NULL,
    lane INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    idx INTEGER NOT NULL,
    sha256 {blob} NOT NULL,
    size BIGINT NOT NULL,
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    held BIGINT NOT NULL,
    held_ns BIGINT,
    statement {blob},
    PRIMARY KEY (link_id, side, lane, seq, idx)
);
CREATE INDEX attachments_pending ON attachments (link_id, side) WHERE statement IS NULL;
CREATE INDEX attachments_by_hash ON attachments (sha256)
"""

# Version 6: translation. Annotations are kept as signed, one row each, found by the message
# they annotate; the glossary is the translators' list per link. A draft may name files.
_V6 = """
CREATE TABLE annotations (
    id {serial},
    link_id {blob} NOT NULL REFERENCES links (link_id),
    lane INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    kind INTEGER NOT NULL,
    hash {blob} NOT NULL UNIQUE,
    statement {blob} NOT NULL,
    made_ns BIGINT NOT NULL
);
CREATE INDEX annotations_by_message ON annotations (link_id, lane, seq);
CREATE TABLE glossary (
    id {serial},
    link TEXT NOT NULL,
    source_language TEXT NOT NULL,
    source TEXT NOT NULL,
    target_language TEXT NOT NULL,
    target TEXT NOT NULL,
    note TEXT NOT NULL,
    author TEXT NOT NULL,
    updated_ns BIGINT NOT NULL,
    UNIQUE (link, source_language, source, target_language)
);
ALTER TABLE drafts ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]'
"""

# Version 7: one acknowledgement per message, kept by the store itself: the index on what an
# acknowledgement names becomes unique, so a second one is refused in the transaction that would
# add it. A store written before may hold several for one message (issue 13, item 9): each stays
# in the outbox exactly as signed, and only the earliest keeps naming the message in these columns.
_V7 = [
    "UPDATE outbox SET ref_lane = NULL, ref_seq = NULL WHERE ref_lane IS NOT NULL AND EXISTS ("
    "SELECT 1 FROM outbox AS earlier WHERE earlier.link_id = outbox.link_id "
    "AND earlier.ref_lane = outbox.ref_lane AND earlier.ref_seq = outbox.ref_seq "
    "AND (earlier.lane < outbox.lane "
    "OR (earlier.lane = outbox.lane AND earlier.seq < outbox.seq)))",
    "DROP INDEX outbox_acknowledgements",
    "CREATE UNIQUE INDEX outbox_acknowledgements ON outbox (link_id, ref_lane, ref_seq) "
    "WHERE ref_lane IS NOT NULL",
]

# Version 8: the handshake replay record (docs/protocol.md §3.6, check 8). One newest timestamp
# per peer refused a genuine first message that a slower path delivered after a later one; the
# station now remembers each first message it accepted, by ephemeral key, while its timestamp is
# within the freshness window, and peer_state's newest timestamp becomes the floor below which it
# has forgotten (the value kept so far is a sound floor to start from).
_V8 = """
CREATE TABLE handshakes_accepted (
    link_id {blob} NOT NULL REFERENCES links (link_id),
    ephemeral {blob} NOT NULL,
    peer_ns BIGINT NOT NULL,
    accepted_ns BIGINT NOT NULL,
    PRIMARY KEY (link_id, ephemeral)
);
CREATE INDEX handshakes_accepted_by_time ON handshakes_accepted (link_id, peer_ns)
"""

# Version 9: enrolment (issue 13, item 10). A new or reset account gets no password and no TOTP
# secret that anyone else sees: a one-time code, kept here only as a hash until its person uses it
# (or it expires), with who made it. `enrolled_ns` is when the person last chose their password
# and took their TOTP secret: for a while after it, the account cannot be the second person of a
# release. Accounts from before count from when they were made.
_V9 = """
CREATE TABLE enrolments (
    name TEXT PRIMARY KEY REFERENCES operators (name),
    code_hash TEXT NOT NULL,
    made_by TEXT NOT NULL,
    made_ns BIGINT NOT NULL,
    expires_ns BIGINT NOT NULL
);
CREATE INDEX enrolments_by_expiry ON enrolments (expires_ns);
ALTER TABLE operators ADD COLUMN enrolled_ns BIGINT NOT NULL DEFAULT 0;
UPDATE operators SET enrolled_ns = created_ns
"""

# Version 10: one side on several nodes (issue 14). One row (id 1): the node that is active, its
# fencing epoch (raised by one at every change of node, so a node that lost the lease finds out in
# the transaction of its next commit), when the lease ends by the database server's clock (0: it
# was given up), where the node serves its API and console (for a standby's answers), and how it
# came to hold it: "first", "released" (handed over on a clean stop), "expired" (a failover).
_V10 = """
CREATE TABLE node_lease (
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_ns BIGINT NOT NULL,
    taken_ns BIGINT NOT NULL,
    renewed_ns BIGINT NOT NULL,
    api TEXT NOT NULL,
    console TEXT NOT NULL,
    previous_node TEXT NOT NULL,
    reason TEXT NOT NULL
)
"""

# Version 11: sends that can be retried (issue 16). A client names its send with a key of its own
# choosing; the key is stored with the message it made, in the same transaction, with a digest of
# what was asked, so a repeat of the request answers with that message instead of sending again.
_V11 = """
CREATE TABLE send_keys (
    link_id {blob} NOT NULL,
    key TEXT NOT NULL,
    request {blob} NOT NULL,
    lane INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    made_ns BIGINT NOT NULL,
    PRIMARY KEY (link_id, key)
)
"""

# Version 12: a draft's author may withdraw it, and a rejection says why (issue 15, item 16): the
# reason given, shown to the author with who rejected it (and, for a release the station refused,
# what it said).
_V12 = ["ALTER TABLE drafts ADD COLUMN reason TEXT"]

# Version 13: the files of the data directory that a side of several nodes keeps in its store
# (store/fileblobs.py): attachments and call recordings, by their place in the data directory. A
# file is in the store once its row in file_blobs is, its chunks written before it.
_V13 = """
CREATE TABLE file_chunks (
    name TEXT NOT NULL,
    idx INTEGER NOT NULL,
    data {blob} NOT NULL,
    PRIMARY KEY (name, idx)
);
CREATE TABLE file_blobs (
    name TEXT PRIMARY KEY,
    sha256 {blob} NOT NULL,
    size BIGINT NOT NULL,
    stored_ns BIGINT NOT NULL
)
"""

# MIGRATIONS[dialect][n] takes a store from schema version n to n + 1.
MIGRATIONS: dict[str, list[list[str]]] = {
    dialect: [
        _statements(_COMMON_V1.format(**types)),
        _V2,
        _V3,
        _statements(_V4.format(**types)),
        _statements(_V5.format(**types)),
        _statements(_V6.format(**types)),
        _V7,
        _statements(_V8.format(**types)),
        _statements(_V9),
        _statements(_V10),
        _statements(_V11.format(**types)),
        _V12,
        _statements(_V13.format(**types)),
    ]
    for dialect, types in _DIALECTS.items()
}
