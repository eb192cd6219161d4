"""A person in a call at this station, as the media loop sees them: the frames their microphone
sends (a short queue, so a client whose clock runs fast cannot build up delay), and where the
frames they should hear go. Principal, interpreter and listener differ only in who may speak:
a listener is muted and cannot unmute (DESIGN: participant)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["MAX_QUEUED_FRAMES", "Participant", "Role"]

Role = Literal["principal", "interpreter", "listener"]
ROLES: tuple[Role, ...] = ("principal", "interpreter", "listener")
# At most this many microphone frames wait: past it the oldest go (a client's clock may run a
# little fast; its audio must not fall further and further behind).
MAX_QUEUED_FRAMES = 4


@dataclass(slots=True)
class Participant:
    id: str
    person: str
    role: Role
    sink: Callable[[np.ndarray], None]  # where the frames this person hears go
    joined_ns: int = field(default_factory=time.time_ns)
    left_ns: int | None = None
    speaking: bool = False
    dropped: int = 0  # microphone frames dropped because too many waited
    _mic: deque[np.ndarray] = field(default_factory=deque)
    self_muted: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    last_mic_ns: int = 0  # when their microphone last sent a frame
    # The call's media sends as soon as every speaker's frame is in, rather than on a tick
    # (which would add up to a frame of delay); it sets this hook when the audio starts.
    on_mic: Callable[[], None] = lambda: None
    # A client that decodes Opus itself (the browser phone) and hears the peer alone is handed
    # the peer's packets the moment they come, with their timestamps (48 kHz), rather than the
    # frames the station plays: its own jitter buffer and decoder take them (docs/calls.md §6).
    packet_sink: Callable[[bytes, int], None] | None = None

    @property
    def muted(self) -> bool:
        return self.role == "listener" or self.self_muted

    def mic(self, frame: np.ndarray) -> None:
        """A frame from this person's microphone."""
        self._mic.append(frame)
        self.last_mic_ns = time.monotonic_ns()
        while len(self._mic) > MAX_QUEUED_FRAMES:
            self._mic.popleft()
            self.dropped += 1
        self.on_mic()

    def clear_mic(self) -> None:
        """Forget the frames waiting: said before the call's audio started (while it rang)."""
        self._mic.clear()

    @property
    def queued(self) -> int:
        return len(self._mic)

    def feeding(self, now_ns: int, within_ns: int) -> bool:
        """Whether their microphone sent a frame lately (`now_ns` on the monotonic clock)."""
        return now_ns - self.last_mic_ns < within_ns

    def take_frame(self, samples: int) -> np.ndarray:
        """The next microphone frame, or silence if none came in time."""
        if self._mic:
            return self._mic.popleft()
        return np.zeros(samples, dtype=np.int16)

    def deliver(self, frame: np.ndarray) -> None:
        self.sink(frame)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "person": self.person,
            "role": self.role,
            "muted": self.muted,
            "speaking": self.speaking,
            "mic_dropped": self.dropped,
            "joined_ns": self.joined_ns,
            "left_ns": self.left_ns,
        }
