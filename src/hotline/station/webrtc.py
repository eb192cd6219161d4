"""The console's browser phone: WebRTC (DTLS-SRTP, Opus) between the page and its own station,
with aiortc at the station. The station joins the page's audio to the call as one participant,
exactly as the service API's media connection does; nothing of the browser's leaves the building
but through the station's link.

No STUN or TURN server, and host candidates on the console's own address only: the station
offers none other (aioice, which aiortc uses, has no setting for it, so its host-address lookup
is replaced, once, by the console's address), and keeps none of the browser's but those at the
address the page was loaded from.

aiortc holds each received audio packet until four more have come (its jitter buffer's
`prefetch`, fixed), and even without prefetch until the next one starts (a video frame may take
several packets): 80 ms, then 20 ms more on every word from the page, and no setting for it. An
Opus packet is a whole frame (RFC 7587), so the station takes each the moment it comes
(`_EachPacket`); the call's own jitter buffer is on the link's side.

Towards the page, a person who hears the peer alone (one person at each end, the usual call)
is sent the peer's Opus packets the moment they come over the link (`_ToBrowser.push_packet`),
placed in the stream by the peer's timestamps: the page's jitter buffer is then the only one on
the way (not the call's and then the page's), and the page decodes the call's Opus itself (48
kHz mono, the call's frame, in-band FEC, which any Opus decoder plays). A frame lost on the way
leaves its gap, which the page's decoder conceals, or rebuilds from the next packet's FEC, as
for any loss. Whoever hears more than the peer (an interpreter at this station) is sent their
mix at the call's playout beat, encoded here in libopus's restricted low-delay mode (2.5 ms of
look-ahead, where aiortc's own encoder uses `voip`: 6.5 ms) at 64 kb/s, as bitrate costs
nothing on the console's own network. Packets are the call's frames: split into 10 ms packets
that come in pairs, Chrome's jitter buffer held 20 ms more, not less. The answer asks the page
for packets of the call's frame too (`a=ptime`; Chrome sends 20 ms by default).
The mix sent to the page keeps to the time that passes: when the call's playout beat has sent a
frame more (it catches up after its jitter buffer concealed a late frame), a quiet frame is
passed over, else Chrome's jitter buffer keeps that frame as delay for the rest of the call.
Measured in docs/benchmarks.md ("Calls from the console").
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import re
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aioice.ice
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer as RtpJitterBuffer
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_gt

from hotline.station.participants import Participant, Role

if TYPE_CHECKING:
    from hotline.station.calls import CallDesk

__all__ = ["BrowserLeg", "only_host_candidates"]

log = logging.getLogger("hotline.webrtc")
RATE = 48000
QUEUED = 3  # frames waiting for the browser; past that the oldest go (a slow page hears now)
QUIET = 330  # a frame whose peak is under -40 dBFS may be passed over (see `_ToBrowser._ahead`)
TO_BROWSER_BITRATE = 64000  # on the console's own network: the call's audio, barely touched
_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ (?:udp|UDP) \d+ (\S+) \d+ typ host", re.MULTILINE)


def only_host_candidates(host: str) -> None:
    """Offer the browser one address for the station: the console's own."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [host]


class _EachPacket(RtpJitterBuffer):
    """aiortc's jitter buffer for the page's audio: each packet is released the moment it
    comes; one not newer than the last released (late, or a duplicate) is dropped."""

    def __init__(self) -> None:
        super().__init__(capacity=16)
        self._last: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._last is not None and not uint16_gt(seq, self._last):
            return False, None
        self._last = seq
        data = getattr(packet, "_data", packet.payload)  # aiortc's receiver depayloads into it
        return False, JitterFrame(data=data, timestamp=packet.timestamp)


def _no_prefetch(pc: RTCPeerConnection) -> None:
    """Release each audio packet from the page the moment it comes (see the docstring). The
    attribute is aiortc's private one: if a version renames it, nothing is changed, and the
    page's words come 100 ms later, as aiortc made them."""
    for receiver in pc.getReceivers():
        name = "_RTCRtpReceiver__jitter_buffer"
        if receiver.track.kind == "audio" and hasattr(receiver, name):
            setattr(receiver, name, _EachPacket())
        elif receiver.track.kind == "audio":
            log.warning("aiortc keeps its audio prefetch: its receiver has changed")


def keep_candidates(sdp: str, allowed: str) -> str:
    """The browser's offer with its candidates cut to those at `allowed` (UDP host candidates:
    no server reflexive, relay or TCP ones), so the station sends to nothing else."""
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            match = _CANDIDATE.match(line)
            if match is None or match.group(1) != allowed:
                continue
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def with_ptime(sdp: str, ms: int) -> str:
    """The station's answer asking the page for Opus packets of `ms` (`a=ptime`, RFC 4566 §6)
    in its audio section."""
    lines = [line for line in sdp.splitlines() if not line.startswith("a=ptime:")]
    at = next((i for i, line in enumerate(lines) if line.startswith("m=audio")), None)
    if at is None:
        return sdp
    end = next((i for i in range(at + 1, len(lines)) if lines[i].startswith("m=")), len(lines))
    lines.insert(end, f"a=ptime:{ms}")
    return "\r\n".join(lines) + "\r\n"


class _LowDelayEncoder:
    """One frame of PCM in, one Opus packet out: PyAV's libopus in its restricted low-delay
    mode (2.5 ms of look-ahead, against 6.5 in `voip`), for the page (see the docstring)."""

    def __init__(self, frame_samples: int, bitrate: int = TO_BROWSER_BITRATE) -> None:
        ctx = av.CodecContext.create("libopus", "w")
        ctx.sample_rate, ctx.layout, ctx.format, ctx.bit_rate = RATE, "mono", "s16", bitrate
        ctx.options = {
            "application": "lowdelay",
            "frame_duration": str(frame_samples * 1000 // RATE),
        }
        ctx.open()
        self._ctx, self.frame_samples, self._pts = ctx, frame_samples, 0

    @property
    def look_ahead(self) -> int:
        """Samples of look-ahead (the OpusHead's pre-skip, RFC 7845 §5.1)."""
        return int.from_bytes((self._ctx.extradata or b"")[10:12], "little")

    def encode(self, pcm: np.ndarray) -> bytes:
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = RATE, self._pts
        self._pts += self.frame_samples
        return b"".join(bytes(packet) for packet in self._ctx.encode(frame))


class _ToBrowser(MediaStreamTrack):
    """What the person should hear as Opus packets, one per frame of the call: the peer's own
    packets as they come when they hear the peer alone, else the call's N-1 mix for them
    encoded here (see the docstring); silence at the frame rate while the call is not yet
    answered, or its clock has paused."""

    kind = "audio"

    def __init__(self, frame_samples: int) -> None:
        super().__init__()
        self.frame_samples = frame_samples
        # Frames of the mix to encode, or the peer's packets with their timestamps.
        self.queue: asyncio.Queue[np.ndarray | tuple[bytes, int]] = asyncio.Queue(QUEUED)
        self.encoder = _LowDelayEncoder(frame_samples)
        self.forwarded = 0  # the peer's packets sent as they came
        self._pts = 0  # the stream's next sample
        self._peer: tuple[int, int] | None = None  # (peer's timestamp, pts) of the last forwarded
        self._anchor: float | None = None  # the loop's time of the stream's sample 0
        self._recent: deque[tuple[float, float]] = deque()  # (time, offset): the last second
        self._pace: float | None = None  # the offset the stream keeps to (see `_ahead`)
        self._ahead_since: float | None = None
        self.passed_over = 0
        self._silence = np.zeros(frame_samples, dtype=np.int16)

    def push(self, frame: np.ndarray) -> None:
        """A frame of the mix, to encode here and send at the call's playout beat."""
        self._put(frame)

    def push_packet(self, opus: bytes, timestamp: int) -> None:
        """The peer's Opus packet, to send as it came; `timestamp` (the peer's, 48 kHz) places
        it in the stream, so a frame lost on the way leaves its gap, for the page's decoder to
        conceal or rebuild from the next packet's FEC, and one that came out of order goes
        back to its place in the page's jitter buffer."""
        self._put((opus, timestamp))

    def _put(self, item: np.ndarray | tuple[bytes, int]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(item)

    async def recv(self) -> av.Packet[Any]:
        item = await self._next_frame()
        if isinstance(item, tuple):
            opus, pts = item[0], self._place(item[1])
            self.forwarded += 1
        else:
            opus, pts = self.encoder.encode(item), self._pts
            self._pts += self.frame_samples
            self._peer = None  # the next packet of the peer's goes on from here
        packet = av.Packet(opus)
        packet.pts, packet.time_base = pts, fractions.Fraction(1, RATE)
        return packet

    def _place(self, timestamp: int) -> int:
        """Where in the stream a packet of the peer's goes: as far from the last one as the
        peer's timestamps say (32 bits, wrapping); the first one after frames encoded here
        goes on from those."""
        pts = self._pts
        if self._peer is not None:
            last_ts, last_pts = self._peer
            step = (timestamp - last_ts + 2**31) % 2**32 - 2**31
            if abs(step) < 10 * RATE:  # else the peer's clock jumped: go on from here
                pts = last_pts + step
        if self._peer is None or pts > self._peer[1]:
            self._peer = (timestamp, pts)
        self._pts = max(self._pts, pts + self.frame_samples)
        return pts

    async def _next_frame(self) -> np.ndarray | tuple[bytes, int]:
        """The next frame to send: of the mix, or silence if none came two frames after it was
        due; a frame is passed over while the stream runs ahead (`_ahead`); or a packet of the
        peer's, sent as it came."""
        while True:
            item = await self._next_mixed()
            if isinstance(item, tuple):
                self._recent.clear()  # the pace is the peer's: `_ahead` begins again after
                self._pace = self._ahead_since = None
                return item
            if item is self._silence or not self._ahead(item):
                return item

    async def _next_mixed(self) -> np.ndarray | tuple[bytes, int]:
        """The next frame of the mix or packet of the peer's; silence if no frame came two
        frames after it was due (never while the peer's packets come: those keep their own
        time, and the page's jitter buffer fills a gap). The first is the newest waiting: what
        came before the page's connection was up would be sent at once, and the page's jitter
        buffer would start that much behind."""
        loop = asyncio.get_running_loop()
        if self._anchor is None:
            while self.queue.qsize() > 1:
                self.queue.get_nowait()
            self._anchor = loop.time()
        due = self._anchor + (self._pts + 2 * self.frame_samples) / RATE
        try:
            if not self.queue.empty():  # however late: never passed over for silence
                got = self.queue.get_nowait()
            elif self._peer is not None:
                got = await self.queue.get()
            else:
                got = await asyncio.wait_for(self.queue.get(), max(0.0, due - loop.time()))
        except TimeoutError:
            return self._silence
        self._anchor = loop.time() - self._pts / RATE  # the stream follows the call's clock
        return got

    def _ahead(self, pcm: np.ndarray) -> bool:
        """Whether to pass this frame over: the stream runs half a frame or more ahead of its
        pace (the earliest it ran in the last second, which moves later when the whole second
        ran later, never earlier), and the frame is quiet, or a second went by without a quiet
        one. The call's playout beat runs fast for a while after its jitter buffer concealed a
        late frame in place, and a frame of silence through a stall is a frame more too: sent
        on, the page gets more audio than the time that passed, and Chrome's jitter buffer
        keeps it as delay for the rest of the call (it only shortens what is far over its
        target). When the beat runs slow Chrome stretches what it has; what follows is ahead."""
        now = asyncio.get_running_loop().time()
        offset = now - self._pts / RATE  # the loop's time of the stream's sample 0, by this frame
        self._recent.append((now, offset))
        while now - self._recent[0][0] > 1.0:
            self._recent.popleft()
        earliest = min(o for _, o in self._recent)
        if self._pace is None or now - self._recent[0][0] < 0.9:  # the first second: settle
            self._pace = earliest if self._pace is None else min(self._pace, earliest)
            return False
        self._pace = max(self._pace, earliest)
        if self._pace - offset < self.frame_samples / 2 / RATE:
            self._ahead_since = None
            return False
        if self._ahead_since is None:
            self._ahead_since = now
        quiet = int(np.abs(pcm.astype(np.int32)).max(initial=0)) < QUIET
        if quiet or now - self._ahead_since >= 1.0:
            self._ahead_since = None
            self.passed_over += 1
            return True
        return False


class BrowserLeg:
    """One console page taking part in a call through WebRTC."""

    def __init__(
        self, desk: CallDesk, call_id: bytes, person: str, role: Role, frame_samples: int
    ) -> None:
        self.desk, self.call_id = desk, call_id
        self.frame_samples = frame_samples
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.out = _ToBrowser(frame_samples)
        self.participant: Participant = desk.join(call_id, person, role, self.out.push)
        self.participant.packet_sink = self.out.push_packet
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_close: Callable[[], None] = lambda: None
        self.pc.addTrack(self.out)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        self._spawn(self._watch_call())

    async def answer(self, offer: str, browser_host: str) -> str:
        """Take the page's offer (its candidates gathered), return the station's answer."""
        await self.pc.setRemoteDescription(
            RTCSessionDescription(keep_candidates(offer, browser_host), "offer")
        )
        _no_prefetch(self.pc)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return with_ptime(str(self.pc.localDescription.sdp), self.frame_samples * 1000 // RATE)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._spawn(self._from_browser(track))

    async def _from_browser(self, track: MediaStreamTrack) -> None:
        """The browser's microphone, as 48 kHz mono frames of the call's size."""
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        pending = np.zeros(0, dtype=np.int16)
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                for out in resampler.resample(frame):
                    pending = np.concatenate([pending, out.to_ndarray().reshape(-1)])
                n = self.frame_samples
                while len(pending) >= n:
                    self.participant.mic(pending[:n].astype(np.int16))
                    pending = pending[n:]

    async def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            await self.close()

    async def _watch_call(self) -> None:
        await self.participant.changed.wait()  # the call ended
        await self.close()

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self.participant.left_ns is None:
            self.desk.leave(self.call_id, self.participant)
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        await self.pc.close()
        self.on_close()
