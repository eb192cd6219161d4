"""The media of one answered call at this station: every frame period, mix the local speakers,
encode, seal and send on every live path (and on TCP when the peer hears no UDP); play what came
first from the peer through the jitter buffer, and give each local participant the peer plus the
other local speakers (N-1); or, to one whose client decodes Opus itself (the browser phone) and
who hears the peer alone, the peer's packets the moment they come.

The peer's datagrams arrive on any path, in any order, twice or more: the opener's replay window
refuses a datagram seen before, and the jitter buffer keeps the first copy of each frame and counts
which path delivered it first. Nothing here decides the call's fate; the call desk does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hotline.errors import MediaError, RemoteError
from hotline.protocol.media import AudioFrame, MediaOpener, MediaSealer, Probe, ProbeReply
from hotline.station.audio import (
    OpusDecoder,
    OpusEncoder,
    level_dbfs,
    mix,
    mix_heard,
    packet_samples,
)
from hotline.station.jitter import GRACE_SHARE, JitterBuffer
from hotline.station.participants import MAX_QUEUED_FRAMES, Participant
from hotline.station.pathstats import PathStats
from hotline.station.recording import OggOpusRecorder
from hotline.station.udp import MediaSockets

__all__ = ["CallMedia", "MediaSettings"]

log = logging.getLogger("hotline.media")
MS = 1_000_000
PROBE_EVERY_NS = 500 * MS
# With every frame on one path, a cut must be noticed within a few frames' worth of probes: the
# path is left once three probes in a row went unanswered.
SINGLE_PATH_PROBE_EVERY_NS = 60 * MS
PROBES_MISSED = 3
PROBE_GRACE_NS = 20 * MS  # and the round trip of the last one
ECHO_NS = 2000 * MS  # a probe's answer later than this is not a round trip worth counting
UDP_QUIET_NS = 1000 * MS  # no authentic datagram for this long: the peer should use TCP too
TCP_PATH = 255  # the `path` of a frame that went over a TCP session
SPEAKING_DBFS = -45.0
QUIET_DBFS = -50.0  # a frame the jitter buffer may drop unheard to shorten its delay
FEEDING_FRAMES = 3  # a speaker whose microphone is silent this long no longer holds frames back
ALIGN_SLACK_NS = MS // 2  # play this long after a packet is due, so the buffer counts it due


def _nothing() -> None:
    pass


@dataclass(frozen=True, slots=True)
class MediaSettings:
    frame_ms: int
    bitrate: int
    udp: bool
    all_paths: bool
    jitter_min_ms: int
    record_dir: Path | None  # where to write the recordings, or None: not recorded
    constant_bitrate: bool = True  # every packet of one length (docs/calls.md §6)


@dataclass(slots=True)
class _Figures:
    frames_sent: int = 0
    datagrams_sent: int = 0
    tcp_frames_sent: int = 0
    forged: int = 0  # datagrams that failed authentication (or were replays)
    tcp_frames_received: int = 0
    waited: int = 0  # beats that waited for a late packet (`GRACE_SHARE`)
    waited_in_vain: int = 0  # of those, the ones whose packet did not come in time


class CallMedia:
    def __init__(
        self,
        call_id: bytes,
        settings: MediaSettings,
        keys: tuple[MediaSealer, MediaOpener],
        sockets: MediaSockets,
        peer_addresses: list[tuple[Any, ...]],
        send_tcp: Callable[[bytes], bool],
        participants: dict[str, Participant],
    ) -> None:
        self.call_id = call_id
        self.settings = settings
        self.sealer, self.opener = keys
        self.sockets = sockets
        self.peer_addresses = peer_addresses  # per path; authentic datagrams move them (NAT)
        self.send_tcp = send_tcp  # a sealed datagram on the link's carrier session
        self.participants = participants
        # Until the peer's keepalive says it hears our UDP, the frames go on TCP too: where UDP
        # is blocked, the call's first words are not lost to the wait for that keepalive.
        self.peer_wants_tcp = True
        self.paths = [PathStats(i) for i in range(len(peer_addresses))]
        self.figures = _Figures()
        self.last_udp_ns = self.last_tcp_ns = 0
        self.used: set[str] = set()  # "udp", "tcp": what has carried the peer's audio
        self.recordings: list[dict[str, Any]] = []
        self._send_timer: asyncio.TimerHandle | None = None
        self._play_timer: asyncio.TimerHandle | None = None
        self._send_at = self._play_at = 0.0
        self._grace_until: float | None = None  # the beat waits for a late packet until then
        # The local speakers' last frames, for the others at this station to hear (N-1): kept
        # from sending until the next playout beat, at most two, as the two clocks may drift.
        self._local: deque[dict[str, np.ndarray]] = deque(maxlen=2)
        self._probe_id = self._probe_ns = 0
        self._probe_every_ns = PROBE_EVERY_NS if settings.all_paths else SINGLE_PATH_PROBE_EVERY_NS
        frame_ms = settings.frame_ms
        self.frame_ns = frame_ms * MS
        self.encoder = OpusEncoder(
            frame_ms, settings.bitrate, constant_bitrate=settings.constant_bitrate
        )
        self.decoder = OpusDecoder(frame_ms)
        # At a constant bit rate a packet's length says nothing of its loudness: the buffer asks
        # a decoder of its own whether a frame it may drop is quiet.
        self._level_decoder = OpusDecoder(frame_ms)
        quiet = self._quiet_packet if settings.constant_bitrate else None  # None: by length
        self.buffer = JitterBuffer(frame_ms, min_delay_ms=settings.jitter_min_ms, is_quiet=quiet)
        self.frame_samples = 48 * frame_ms
        self.seq = 0
        self.sent_rec: OggOpusRecorder | None = None
        self.received_rec: OggOpusRecorder | None = None
        if settings.record_dir is not None:
            settings.record_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            stem = settings.record_dir / call_id.hex()
            self.sent_rec = OggOpusRecorder(stem.with_name(f"{stem.name}-sent.opus"), frame_ms)
            self.received_rec = OggOpusRecorder(
                stem.with_name(f"{stem.name}-received.opus"), frame_ms
            )

    def _quiet_packet(self, opus: bytes) -> bool:
        try:
            return level_dbfs(self._level_decoder.decode(opus)) <= QUIET_DBFS
        except RemoteError:  # a packet that does not decode is no loss to drop
            return True

    # -- the clocks of the call ------------------------------------------------------------------
    # Two clocks, so that neither adds a frame of waiting. Sending follows the speakers: a frame
    # goes out as soon as every live speaker's is in (a timer sends silence when nobody feeds).
    # Playing follows the peer: the playout clock starts its beat when the jitter buffer's first
    # packet is due, so the buffer's target delay is all it adds, not up to a frame more.

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for participant in self.participants.values():
            self.attach(participant)
        now = self._loop.time()
        self._send_at = self._play_at = now + self.frame_ns / 1e9
        self._send_timer = self._loop.call_at(self._send_at, self._on_send_timer)
        self._play_timer = self._loop.call_at(self._play_at, self._on_play_timer)

    def attach(self, participant: Participant) -> None:
        """A participant whose microphone frames should be sent as soon as they come (and not
        what they said while the call rang: sent at once, it would only add delay)."""
        participant.clear_mic()
        participant.on_mic = self._on_mic

    async def stop(self) -> list[dict[str, Any]]:
        """Stop sending and playing; seal the recordings: their names, hashes and sizes."""
        for timer in (self._send_timer, self._play_timer):
            if timer is not None:
                timer.cancel()
        self._send_timer = self._play_timer = self._grace_until = None
        for participant in self.participants.values():
            participant.on_mic = _nothing
        for name, recorder in (("sent", self.sent_rec), ("received", self.received_rec)):
            if recorder is not None:
                sha, size = await asyncio.to_thread(recorder.close)
                self.recordings.append({"name": name, "sha256": sha, "size": size})
        self.sent_rec = self.received_rec = None
        return self.recordings

    def _on_mic(self) -> None:
        """A microphone frame came: send every frame for which all live speakers' are in."""
        if self._send_timer is None:
            return
        live = self._feeding(time.monotonic_ns())
        sent = 0
        while live and all(p.queued for p in live) and sent < MAX_QUEUED_FRAMES:
            self._guarded(self._send_frame)
            sent += 1

    def _on_send_timer(self) -> None:
        """Each frame period: a frame of silence if no speaker's microphone feeds the call. A
        speaker whose frame is late is waited for, never filled in: a frame of silence there
        would be heard, and would put the stream a frame ahead of the speaker for good."""
        if not self._feeding(time.monotonic_ns()):
            self._guarded(self._send_frame)
        self._send_at = self._next_beat(self._send_at)
        self._send_timer = self._loop.call_at(self._send_at, self._on_send_timer)

    def _feeding(self, now_ns: int) -> list[Participant]:
        """The speakers (not muted) whose microphones sent a frame lately."""
        within = FEEDING_FRAMES * self.frame_ns
        return [p for p in self.participants.values() if not p.muted and p.feeding(now_ns, within)]

    def _on_play_timer(self) -> None:
        """A beat: play the next frame; or, if its packet is late but probably on its way, wait
        for it a little (`_on_late_packet` plays it as it comes). Concealing at once would put
        a frame of concealment in the middle of speech whenever a busy machine delays one
        packet a few ms past the buffer's target; waiting hands the listener that frame late
        by as much, and the next beat keeps its time."""
        until = self._play_at + GRACE_SHARE * self.frame_ns / 1e9
        # A beat that came too late to wait (a busy loop) plays as it would have then.
        if self.buffer.awaiting_next() and self._loop.time() < until:
            self.figures.waited += 1
            self._grace_until = until
            self._play_timer = self._loop.call_at(until, self._on_grace_over)
            return
        self._beat()

    def _on_grace_over(self) -> None:
        self.figures.waited_in_vain += 1
        self._beat()

    def _on_late_packet(self) -> None:
        if self._grace_until is not None and not self.buffer.awaiting_next():
            if self._play_timer is not None:
                self._play_timer.cancel()
            self._beat()

    def _beat(self) -> None:
        self._grace_until = None
        self._guarded(self._play_frame)
        self._play_at = self._next_beat(self._play_at, self._play_due())
        self._play_timer = self._loop.call_at(self._play_at, self._on_play_timer)

    def _next_beat(self, at: float, due: float | None = None) -> float:
        """The beat after `at`: a frame later, moved towards `due` by at most 5% of a frame, so
        that a listener's device, which follows the beat, hears no jump."""
        period = self.frame_ns / 1e9
        at += period
        if due is not None:
            at = min(max(due, at - period / 20), at + period / 20)
        now = self._loop.time()
        if now - at > 10 * period:  # the loop was stalled: beat again from now
            at = now + period
        return at

    def _play_due(self) -> float | None:
        """When, on the loop's clock, the jitter buffer's next frame is due."""
        due_ns = self.buffer.due_ns()
        if due_ns is None:
            return None
        return self._loop.time() + (due_ns - time.time_ns() + ALIGN_SLACK_NS) / 1e9

    def _align_playout(self) -> None:
        """While the buffer waits to start, put the playout beat where its first packet is due:
        a jump is heard by nobody yet."""
        at = self._play_due()
        if at is None or self._play_timer is None:
            return
        if abs(at - self._play_at) > ALIGN_SLACK_NS / 1e9:
            self._play_timer.cancel()
            self._play_at = at
            self._play_timer = self._loop.call_at(at, self._on_play_timer)

    def _guarded(self, work: Callable[[int], None]) -> None:
        try:
            work(time.time_ns())
        except Exception:  # a bad frame must not end the call's audio
            log.exception("call %s: a media frame failed", self.call_id.hex()[:8])

    def _send_frame(self, now_ns: int) -> None:
        frames = {pid: p.take_frame(self.frame_samples) for pid, p in self.participants.items()}
        speaking = {pid: f for pid, f in frames.items() if not self.participants[pid].muted}
        for pid, participant in self.participants.items():
            participant.speaking = pid in speaking and level_dbfs(frames[pid]) > SPEAKING_DBFS
        self._local.append(speaking)
        outgoing = mix(list(speaking.values()), self.frame_samples)
        self._send_audio(self.encoder.encode(outgoing), now_ns)
        if now_ns - self._probe_ns >= self._probe_every_ns:
            self._probe(now_ns)

    def _play_frame(self, now_ns: int) -> None:
        """What each participant hears for one frame: the peer and the other local speakers."""
        playout = self.buffer.pop(now_ns)
        peer = None if playout is None else self.decoder.play(playout)
        local = self._local.popleft() if self._local else {}
        heard = mix_heard(local, peer, list(self.participants), self.frame_samples)
        forwarded = self._forwarded_to()
        for pid, participant in self.participants.items():
            if pid not in forwarded:  # those were handed the peer's packets as they came
                participant.deliver(heard[pid])

    def _forwarded_to(self) -> list[str]:
        """Who is handed the peer's packets as they come rather than the frames played here:
        those whose client decodes Opus itself and who hear the peer alone (no other local
        speaker, even one silent for now)."""
        speakers = [pid for pid, p in self.participants.items() if not p.muted]
        return [
            pid
            for pid, p in self.participants.items()
            if p.packet_sink is not None and speakers in ([], [pid])
        ]

    def _forward(self, frame: AudioFrame) -> None:
        """The peer's packet, the moment it comes, to whoever takes packets (`_forwarded_to`):
        their own jitter buffer stands for the station's (one buffer on the way, not two in a
        row), and their decoder conceals a frame lost on the way, or rebuilds it from the next
        packet's FEC, as for any loss. Nothing is decoded and encoded again for them."""
        forwarded = self._forwarded_to()
        try:
            if not forwarded or packet_samples(frame.opus) != self.frame_samples:
                return
        except RemoteError:  # a packet that does not parse goes to nobody's decoder
            return
        for pid in forwarded:
            sink = self.participants[pid].packet_sink
            if sink is not None:
                sink(frame.opus, frame.timestamp)

    # -- sending ---------------------------------------------------------------------------------

    def _send_audio(self, opus: bytes, now_ns: int) -> None:
        seq, timestamp = self.seq, (self.seq * self.frame_samples) & 0xFFFFFFFF
        self.seq += 1
        self.figures.frames_sent += 1
        if self.sent_rec is not None:
            self.sent_rec.write(opus, seq * self.frame_samples)
        for index in self._udp_paths(now_ns):
            datagram = self.sealer.seal(AudioFrame(seq, timestamp, index, 0, opus))
            if self.sockets.send(index, datagram, self.peer_addresses[index]):
                self.paths[index].sent += 1
                self.figures.datagrams_sent += 1
        if self.peer_wants_tcp or not self.settings.udp:
            datagram = self.sealer.seal(AudioFrame(seq, timestamp, TCP_PATH, 0, opus))
            if self.send_tcp(datagram):
                self.figures.tcp_frames_sent += 1

    def _udp_paths(self, now_ns: int) -> list[int]:
        if not self.settings.udp:
            return []
        if self.settings.all_paths:
            return list(range(len(self.paths)))
        dead_after_ns = PROBES_MISSED * self._probe_every_ns + PROBE_GRACE_NS
        return [min(self.paths, key=lambda p: p.rank(now_ns, dead_after_ns)).index]

    def _probe(self, now_ns: int) -> None:
        self._probe_ns = now_ns
        self._probe_id = (self._probe_id + 1) & 0xFFFFFFFF
        for index in range(len(self.paths)):  # every path, used or not: a round trip for each
            datagram = self.sealer.seal(Probe(index, self._probe_id, now_ns))
            self.sockets.send(index, datagram, self.peer_addresses[index])

    # -- receiving -------------------------------------------------------------------------------

    def on_datagram(self, index: int, data: bytes, addr: tuple[Any, ...]) -> None:
        """A UDP datagram on path `index` that names this call."""
        now_ns = time.time_ns()
        payload = self._open(data)
        if payload is None or index >= len(self.paths):
            return
        self.last_udp_ns = now_ns
        if addr != self.peer_addresses[index]:  # the peer moved (NAT rebinding): follow it
            log.info("call %s path %d: peer now at %s", self.call_id.hex()[:8], index, addr)
            self.peer_addresses[index] = addr
        self._on_payload(payload, index, now_ns)

    def on_tcp(self, data: bytes) -> None:
        """A sealed datagram that came inside a CallMedia frame on a TCP session."""
        payload = self._open(data)
        if payload is not None:
            self.last_tcp_ns = time.time_ns()
            self.figures.tcp_frames_received += 1
            self._on_payload(payload, TCP_PATH, self.last_tcp_ns)

    def _open(self, data: bytes) -> AudioFrame | Probe | ProbeReply | None:
        try:
            return self.opener.open(data)[1]
        except MediaError:
            self.figures.forged += 1
            return None

    def _on_payload(
        self, payload: AudioFrame | Probe | ProbeReply, index: int, now_ns: int
    ) -> None:
        match payload:
            case AudioFrame():
                outcome = self.buffer.push(payload.seq, payload.timestamp, payload.opus, now_ns)
                if outcome in ("accepted", "late"):  # late here, perhaps not for their buffer
                    self._forward(payload)
                if outcome == "accepted" and not self.buffer.playing:
                    self._align_playout()
                elif outcome == "accepted":
                    self._on_late_packet()
                self.used.add("tcp" if index == TCP_PATH else "udp")
                if index != TCP_PATH:
                    first = outcome == "accepted"
                    self.paths[index].audio(
                        payload.seq, now_ns, first=first, frame_ns=self.frame_ns
                    )
                if outcome == "accepted" and self.received_rec is not None:
                    self.received_rec.write(payload.opus, payload.seq * self.frame_samples)
            case Probe() if index != TCP_PATH:
                reply = self.sealer.seal(ProbeReply(index, payload.probe_id, payload.sent_ns))
                self.sockets.send(index, reply, self.peer_addresses[index])
            # Any recent probe's answer counts (a round trip may be longer than the probes'
            # interval); the time it echoes is ours, sealed, so it cannot be forged.
            case ProbeReply() if index != TCP_PATH and 0 <= now_ns - payload.echo_ns < ECHO_NS:
                self.paths[index].rtt(now_ns - payload.echo_ns, now_ns)

    # -- what people and the record see ----------------------------------------------------------

    def udp_heard(self, now_ns: int) -> bool:
        return now_ns - self.last_udp_ns < UDP_QUIET_NS

    def transport(self, now_ns: int) -> str:
        udp = self.udp_heard(now_ns)
        tcp = now_ns - self.last_tcp_ns < UDP_QUIET_NS
        return "udp+tcp" if udp and tcp else "udp" if udp else "tcp" if tcp else "none"

    def transport_used(self) -> Literal["udp", "tcp", "udp+tcp", "none"]:
        """What carried the peer's audio over the whole call, for the record."""
        if len(self.used) == 2:
            return "udp+tcp"
        return "udp" if "udp" in self.used else "tcp" if "tcp" in self.used else "none"

    def received_figures(self) -> dict[str, int]:
        return self.buffer.figures()

    def status(self, now_ns: int) -> dict[str, Any]:
        return {
            "transport": self.transport(now_ns),
            "sent": {
                "frames": self.figures.frames_sent,
                "datagrams": self.figures.datagrams_sent,
                "tcp_frames": self.figures.tcp_frames_sent,
            },
            "received": {
                **self.received_figures(),
                "forged": self.figures.forged,
                "waited": self.figures.waited,
                "waited_in_vain": self.figures.waited_in_vain,
            },
            "paths": [p.to_json(now_ns) for p in self.paths],
        }
