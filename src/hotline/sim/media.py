"""The media of one answered call at one simulated station, as the station's call media does it
(station/callmedia.py) minus the codec: every frame period, one frame sealed with the call's real
keys and sent on every datagram route (and in a CallMedia frame on the carrier session until the
peer says it hears our datagrams); what comes in is opened by the real `MediaOpener` (its replay
window refuses a datagram seen before) and played through the station's real `JitterBuffer` (which
keeps the first copy of each frame, whichever path brought it).

The Opus packets are fakes, a few bytes naming their frame: b"\\x08" (a TOC byte), the frame's
seq (4 bytes), a flag saying whether it carries FEC for the frame before, one saying whether it
is "quiet" (which the buffer prefers to drop), and padding: all of one length, as the station's
packets are at a constant bit rate. So every frame played can be checked against the frame it
claims to be. The playout beat waits for a late packet as the station's does (GRACE_SHARE).
A talk spurt of a few hundred frames per side, then silence: enough to exercise loss, copies
and reordering without costing the run much.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from hotline.errors import MediaError
from hotline.protocol.callrecord import MediaFigures
from hotline.protocol.media import AudioFrame, MediaOpener, MediaSealer
from hotline.sim.network import Datagrams
from hotline.sim.world import MS, SECOND, World
from hotline.station.jitter import GRACE_SHARE, JitterBuffer, Playout

__all__ = ["TCP_PATH", "SimMedia", "fake_opus", "opus_seq"]

TCP_PATH = 255  # the `path` of a frame sent in a CallMedia frame (as station/callmedia.py)
UDP_QUIET_NS = 1 * SECOND  # no authentic datagram for this long: the peer should use TCP too
IDLE_NS = 1 * SECOND  # nothing pushed for this long: the playout clock rests until the next one


def fake_opus(seq: int, fec: bool, quiet: bool) -> bytes:
    """A stand-in Opus packet for frame `seq`."""
    return b"\x08" + seq.to_bytes(4, "big") + bytes([fec, quiet]) + bytes(24)


def opus_seq(opus: bytes) -> int:
    """The frame a fake packet stands for."""
    return int.from_bytes(opus[1:5], "big")


def _has_fec(opus: bytes) -> bool:
    return len(opus) > 5 and opus[5] == 1


def _is_quiet(opus: bytes) -> bool:
    return len(opus) > 6 and opus[6] == 1


@dataclass(slots=True)
class _Figures:
    frames_sent: int = 0
    forged: int = 0  # datagrams refused by the opener: replays (network copies), corrupted ones
    used: set[str] = field(default_factory=set)  # what carried the peer's audio: udp, tcp


class SimMedia:
    def __init__(
        self,
        world: World,
        me: str,
        keys: tuple[MediaSealer, MediaOpener],
        frame_ms: int,
        routes: list[Datagrams],
        send_tcp: Callable[[bytes], bool],
        on_play: Callable[[Playout], None],
        frames: int,
    ) -> None:
        self.world, self.me = world, me
        self.sealer, self.opener = keys
        self.frame_ns, self.frame_samples = frame_ms * MS, 48 * frame_ms
        self.routes, self.send_tcp, self.on_play = routes, send_tcp, on_play
        self.frames_to_send = frames
        self.buffer = JitterBuffer(frame_ms, has_fec=_has_fec, is_quiet=_is_quiet)
        # The station sends every frame on TCP too until the peer's first keepalive says our
        # datagrams reach it. Here the frames go on TCP only once the peer says they do not: the
        # simulated connections let messages overtake one another (which a TCP connection never
        # does, and which ends a session), so 50 frames a second on a session would break it at
        # every call's start and test the simulated network rather than the calls.
        self.peer_wants_tcp = False
        self.figures = _Figures()
        self.running = False
        self.last_udp_ns = self.last_push_ns = 0
        self._playing = False  # the playout clock is ticking
        self._beat_ns = 0  # when the beat now playing (or waiting) was due
        self._waiting = 0  # the wait under way (a number, so a stale end of one is ignored)
        self._waits = 0
        self._seq = 0

    def start(self) -> None:
        self.running = True
        self.world.after(self.world.rng.randint(0, self.frame_ns), self._send_next)

    def stop(self) -> None:
        self.running = False

    # -- sending ---------------------------------------------------------------------------------

    def _send_next(self) -> None:
        if not self.running or self._seq >= self.frames_to_send:
            return
        seq, rng = self._seq, self.world.rng
        self._seq += 1
        opus = fake_opus(seq, rng.random() < 0.5, rng.random() < 0.2)
        timestamp = (seq * self.frame_samples) & 0xFFFFFFFF
        self.figures.frames_sent += 1
        for route in self.routes:  # every path at once (the station's all_paths)
            index = route.path.index
            route.send(self.me, self.sealer.seal(AudioFrame(seq, timestamp, index, 0, opus)))
        if self.peer_wants_tcp:
            self.send_tcp(self.sealer.seal(AudioFrame(seq, timestamp, TCP_PATH, 0, opus)))
        self.world.after(self.frame_ns, self._send_next)

    # -- receiving -------------------------------------------------------------------------------

    def on_datagram(self, data: bytes) -> None:
        if self.running and self._open(data, "udp"):
            self.last_udp_ns = self.world.now

    def on_tcp(self, data: bytes) -> None:
        if self.running:
            self._open(data, "tcp")

    def _open(self, data: bytes, via: str) -> bool:
        try:
            payload = self.opener.open(data)[1]
        except MediaError:
            self.figures.forged += 1
            return False
        if not isinstance(payload, AudioFrame):
            return True
        now = self.world.now
        self.figures.used.add(via)
        self.buffer.push(payload.seq, payload.timestamp, payload.opus, now)
        self.last_push_ns = now
        if self._waiting and not self.buffer.awaiting_next():  # the late packet came
            self._beat()
        if not self._playing:
            self._playing = True
            self.world.after(self.frame_ns, self._play)
        return True

    def _play(self) -> None:
        """One frame period of playout; the clock rests once the peer has been silent a while
        (the buffer then plays nothing anyway) and starts again with the next frame. A beat
        whose packet is late but on its way waits for it up to GRACE_SHARE of a frame."""
        self._beat_ns = self.world.now
        if self.running and self.buffer.awaiting_next():
            self._waits += 1
            wait = self._waiting = self._waits
            self.world.after(int(GRACE_SHARE * self.frame_ns), lambda: self._grace_over(wait))
            return
        self._beat()

    def _grace_over(self, wait: int) -> None:
        if self._waiting == wait:
            self._beat()

    def _beat(self) -> None:
        self._waiting = 0
        if not self.running:
            self._playing = False
            return
        playout = self.buffer.pop(self.world.now)
        if playout is not None:
            self.on_play(playout)
        if self.world.now - self.last_push_ns >= IDLE_NS:
            self._playing = False
            return
        self.world.after(self._beat_ns + self.frame_ns - self.world.now, self._play)

    # -- what the call desk and the record see ---------------------------------------------------

    def udp_heard(self, now_ns: int) -> bool:
        return now_ns - self.last_udp_ns < UDP_QUIET_NS and self.last_udp_ns > 0

    def transport_used(self) -> Literal["udp", "tcp", "udp+tcp", "none"]:
        used = self.figures.used
        if len(used) == 2:
            return "udp+tcp"
        return "udp" if "udp" in used else "tcp" if "tcp" in used else "none"

    def record_figures(self) -> MediaFigures:
        got = self.buffer.figures()
        return MediaFigures(
            frames_sent=self.figures.frames_sent,
            frames_received=got["received"],
            lost=got["lost"],
            concealed=got["concealed"],
            late=got["late"],
            recovered_fec=got["recovered_fec"],
        )
