"""The console's browser phone: WebRTC (DTLS-SRTP, Opus) between the page and its own station,
with aiortc at the station. The station joins the page's audio to the call as one participant,
exactly as the service API's media connection does; nothing of the browser's leaves the building
but through the station's link.

No STUN or TURN server, and host candidates on the console's own address only: the station
offers none other (aioice, which aiortc uses, has no setting for it, so its host-address lookup
is replaced, once, by the console's address), and keeps none of the browser's but those at the
address the page was loaded from.

aiortc holds each received audio packet until four more have come (its jitter buffer's
`prefetch`, fixed): 80 ms more on every word from the page, and no setting for it. On the
console's own network, where packets come in order, the station releases each as soon as the
next one starts (`_no_prefetch`); the call's own jitter buffer is on the link's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aioice.ice
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer as RtpJitterBuffer
from aiortc.mediastreams import MediaStreamError

from hotline.station.participants import Participant, Role

if TYPE_CHECKING:
    from hotline.station.calls import CallDesk

__all__ = ["BrowserLeg", "only_host_candidates"]

log = logging.getLogger("hotline.webrtc")
RATE = 48000
QUEUED = 10  # frames waiting for the browser; past that the oldest go (a slow page hears now)
_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ (?:udp|UDP) \d+ (\S+) \d+ typ host", re.MULTILINE)


def only_host_candidates(host: str) -> None:
    """Offer the browser one address for the station: the console's own."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [host]


def _no_prefetch(pc: RTCPeerConnection) -> None:
    """Release each audio packet from the page once the next one starts (see the docstring).
    The attribute is aiortc's private one: if a version renames it, nothing is changed, and the
    page's words come 80 ms later, as aiortc made them."""
    for receiver in pc.getReceivers():
        name = "_RTCRtpReceiver__jitter_buffer"
        if receiver.track.kind == "audio" and hasattr(receiver, name):
            setattr(receiver, name, RtpJitterBuffer(capacity=16, prefetch=0))
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


class _ToBrowser(MediaStreamTrack):
    """What the person should hear (the call's N-1 mix for them), one frame per frame period;
    silence while the call is not yet answered."""

    kind = "audio"

    def __init__(self, frame_samples: int) -> None:
        super().__init__()
        self.frame_samples = frame_samples
        self.queue: asyncio.Queue[np.ndarray] = asyncio.Queue(QUEUED)
        self._pts = 0
        self._silence = np.zeros(frame_samples, dtype=np.int16)

    def push(self, frame: np.ndarray) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(frame)

    async def recv(self) -> av.AudioFrame:
        period = self.frame_samples / RATE
        try:
            pcm = await asyncio.wait_for(self.queue.get(), 3 * period)
        except TimeoutError:
            pcm = self._silence  # ringing, or the call's clock paused: keep the stream going
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += len(pcm)
        return frame


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
        return str(self.pc.localDescription.sdp)

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
