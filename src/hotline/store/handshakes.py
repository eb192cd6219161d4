"""The handshake replay record, per link (docs/protocol.md §3.6, check 8): the first messages this
station accepted from the peer that are still inside the freshness window, by ephemeral key, and
the floor, the greatest timestamp it has forgotten. A mixin of SqlStore.

A first message is accepted for good only by `accept_handshake`, in one transaction: forget what
left the window (raising the floor), refuse a key already there or a timestamp at or below the
floor, record the key. So a message 1 opens at most one session, ever, and the order in which
genuine ones arrive on different paths does not matter. The floor lives in
`peer_state.newest_handshake_ns`: a store from before the record kept the newest timestamp
accepted there, which is a sound floor to start from.
"""

from __future__ import annotations

from hotline.store.backend import SqlBackend

__all__ = ["HandshakeRecords"]


class HandshakeRecords(SqlBackend):
    def handshake_floor_ns(self, link_id: bytes) -> int:
        """No first message with a timestamp at or below this is accepted (check 5)."""
        rows = self._rows(
            "SELECT newest_handshake_ns FROM peer_state WHERE link_id = ?", (link_id,)
        )
        return int(rows[0][0]) if rows else 0

    def accept_handshake(
        self, link_id: bytes, ephemeral: bytes, peer_ns: int, now_ns: int, window_ns: int
    ) -> bool:
        """Accept a first message for good, or say it was accepted before (False).

        `ephemeral` is its ephemeral key, `peer_ns` its timestamp, `window_ns` the allowed skew:
        entries whose timestamp is more than `window_ns` before `now_ns` are forgotten first,
        and the floor rises to the greatest of them. A refusal adds nothing.
        """
        cutoff = now_ns - window_ns
        with self.transaction():
            forgotten = self._rows(
                "SELECT MAX(peer_ns) FROM handshakes_accepted WHERE link_id = ? AND peer_ns < ?",
                (link_id, cutoff),
            )[0][0]
            if forgotten is not None:
                self._execute(
                    "DELETE FROM handshakes_accepted WHERE link_id = ? AND peer_ns < ?",
                    (link_id, cutoff),
                )
                self._raise_floor(link_id, int(forgotten))
            if peer_ns <= self.handshake_floor_ns(link_id):
                return False
            added = self._rows(
                "INSERT INTO handshakes_accepted (link_id, ephemeral, peer_ns, accepted_ns) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (link_id, ephemeral) DO NOTHING RETURNING 1",
                (link_id, ephemeral, peer_ns, now_ns),
            )
            return bool(added)

    def newest_handshake_ns(self, link_id: bytes) -> int:
        """The floor, under the name the simulator's driver still uses."""
        return self.handshake_floor_ns(link_id)

    def record_handshake(self, link_id: bytes, peer_ns: int) -> None:
        """Raise the floor to `peer_ns`: the guard before the replay record (the newest timestamp
        accepted), which the simulator's driver still keeps. A station uses `accept_handshake`."""
        with self.transaction():
            self._raise_floor(link_id, peer_ns)

    def _raise_floor(self, link_id: bytes, floor_ns: int) -> None:
        self._execute(
            "INSERT INTO peer_state (link_id, newest_handshake_ns) VALUES (?, ?) "
            "ON CONFLICT (link_id) DO UPDATE SET newest_handshake_ns = "
            "excluded.newest_handshake_ns WHERE excluded.newest_handshake_ns > "
            "peer_state.newest_handshake_ns",
            (link_id, floor_ns),
        )
