"""A headless softphone: one participant's audio to and from a station's call, over the service
API's media connection (docs/calls.md, "Taking part"). What it says comes from a WAV file (or
silence), paced in real time; what it hears is kept, frame by frame, with the time each came.

Used by `hotline call`, by the tests and by bench/call.py.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

__all__ = ["Heard", "Softphone"]


@dataclass(slots=True)
class Heard:
    """What a participant heard: the frames in order, and when each arrived (monotonic ns)."""

    frames: list[np.ndarray] = field(default_factory=list)
    arrived_ns: list[int] = field(default_factory=list)

    def audio(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, dtype=np.int16)


class Softphone:
    """Joins a call as one participant. `start()` begins speaking `speech` (48 kHz mono int16),
    one frame per frame period from `speak_at` on; `heard` fills as frames arrive."""

    def __init__(self, api: str, token: str, call_id: str, person: str, role: str) -> None:
        url = f"ws://{api}/api/v1/calls/{call_id}/media?person={quote(person)}&role={quote(role)}"
        self._stack = contextlib.ExitStack()  # the connection is a context: closed by close()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(
                url,
                additional_headers={"Authorization": f"Bearer {token}"},
                max_size=2**20,
                compression=None,  # raw PCM: deflating it costs CPU and saves little
            )
        )
        hello = json.loads(self.ws.recv(timeout=5))
        if hello.get("type") != "joined":
            raise ConnectionError(f"the station did not let us join: {hello}")
        self.frame_samples = int(hello["frame_samples"])
        self.participant: dict[str, Any] = hello["participant"]
        self.heard = Heard()
        self.ended = threading.Event()
        self.spoke_at_ns: list[int] = []  # when each frame was handed to the station
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def start(self, speech: np.ndarray | None, on_done: Callable[[], None] | None = None) -> None:
        listener = threading.Thread(target=self._listen, daemon=True)
        listener.start()
        self._threads.append(listener)
        if speech is not None:
            speaker = threading.Thread(target=self._speak, args=(speech, on_done), daemon=True)
            speaker.start()
            self._threads.append(speaker)

    def _speak(self, speech: np.ndarray, on_done: Callable[[], None] | None) -> None:
        n = self.frame_samples
        period_ns = n * 1_000_000_000 // 48000
        frames = [speech[i : i + n] for i in range(0, len(speech) - n + 1, n)]
        start = time.monotonic_ns()
        try:
            for index, frame in enumerate(frames):
                if self._stop.is_set() or self.ended.is_set():
                    return
                delay = start + index * period_ns - time.monotonic_ns()
                if delay > 0:
                    time.sleep(delay / 1e9)
                self.spoke_at_ns.append(time.monotonic_ns())
                self.ws.send(frame.astype("<i2").tobytes())
        except ConnectionClosed:
            return
        if on_done is not None:
            on_done()

    def _listen(self) -> None:
        try:
            for message in self.ws:
                if isinstance(message, bytes):
                    self.heard.arrived_ns.append(time.monotonic_ns())
                    self.heard.frames.append(np.frombuffer(message, dtype="<i2").astype(np.int16))
                elif json.loads(message).get("type") == "ended":
                    break
        except ConnectionClosed:
            pass
        self.ended.set()

    def mute(self, muted: bool = True) -> None:
        self.ws.send(json.dumps({"type": "mute" if muted else "unmute"}, separators=(",", ":")))

    def close(self) -> None:
        self._stop.set()
        self._stack.close()
        for thread in self._threads:
            thread.join(timeout=5)


def read_speech(path: Path) -> np.ndarray:
    from hotline.station.recording import read_wav  # noqa: PLC0415 - PyAV loads only when needed

    return read_wav(path)
