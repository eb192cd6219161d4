"""Call recordings: Ogg Opus files holding the packets exactly as they travelled, and WAV files.

A recording is not re-encoded: the Opus packets that crossed the link are muxed as they are into
Ogg (RFC 7845) with PyAV, so the file is what was heard, and its SHA-256, taken after fsync, can be
sealed into the call record. Packets may come out of order (they wait a little for stragglers);
a gap in their timestamps (a lost packet, a pause) is filled with packets that ask the player for
concealment (RFC 7845 §4.1), so the file keeps the call's time.
WAV files (stdlib `wave`) carry plain PCM in and out, for tests, benchmarks and prompts.
"""

from __future__ import annotations

import hashlib
import os
import struct
import wave
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from hotline.durable import sync_dir
from hotline.errors import RemoteError
from hotline.station.audio import RATE, Pcm, frame_samples, packet_samples

__all__ = ["OPUS_PRE_SKIP", "OggOpusRecorder", "WavWriter", "read_wav"]

OPUS_PRE_SKIP = 312  # libopus's look-ahead at 48 kHz in voip mode (2.5 ms + 4 ms)
_TIME_BASE = Fraction(1, RATE)
_MAX_GAP = 3600 * RATE  # a timestamp jump of more than an hour is not a pause: refused


def _opus_head(pre_skip: int) -> bytes:
    """The identification header (RFC 7845 §5.1): version 1, mono, pre-skip, 48 kHz, no gain,
    channel mapping family 0."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, RATE, 0, 0)


class OggOpusRecorder:
    """Writes one direction of a call to an Ogg Opus file, packet by packet."""

    def __init__(
        self,
        path: Path,
        frame_ms: int = 20,
        pre_skip: int = OPUS_PRE_SKIP,
        reorder_ms: int = 200,
    ) -> None:
        self.path = path
        self.frame_samples = frame_samples(frame_ms)
        self.packets = 0  # packets written as received
        self.filled = 0  # concealment packets written for gaps
        # Bit-exact: a fixed stream serial number and no version string, so the file (and the
        # hash sealed into the call record) is a function of the packets alone. Pages of half a
        # second, each written out at once: a station killed mid-call keeps all but the last
        # moments of what it recorded, and names that in the record it writes on restart.
        options = {"fflags": "+bitexact", "flush_packets": "1", "page_duration": "500000"}
        self._container = av.open(str(path), "w", format="ogg", container_options=options)
        self._stream = self._container.add_stream("libopus", rate=RATE)
        ctx = self._stream.codec_context
        ctx.layout, ctx.format = "mono", "s16"
        # PyAV opens a stream's encoder when muxing starts and writes the encoder's own OpusHead;
        # opening it here first lets the header below (ours, naming the pre-skip) be the one used.
        ctx.open()
        ctx.extradata = _opus_head(pre_skip)
        self._origin: int | None = None  # timestamp of the first packet in the file
        self._next = 0  # timestamp expected next in the file
        self._toc = 0  # the last packet's first byte (RFC 6716 §3.1)
        self._hold = reorder_ms * RATE // 1000  # packets wait this long for stragglers
        self._pending: dict[int, bytes] = {}
        self._result: tuple[str, int] | None = None

    def write(self, opus: bytes, timestamp_samples: int) -> bool:
        """Add a packet, in any order within `reorder_ms`; False if it came too late for the file
        (Ogg cannot go back) or twice. RemoteError, and nothing kept, if it is malformed or not
        one frame long."""
        if self._result is not None:
            raise ValueError("this recording is closed")
        if (n := packet_samples(opus)) != self.frame_samples:
            raise RemoteError(f"an Opus packet of {n} samples in a {self.frame_samples} recording")
        if timestamp_samples in self._pending or (
            self._origin is not None and timestamp_samples < self._next
        ):
            return False
        if timestamp_samples - min(self._pending, default=self._next) > _MAX_GAP:
            raise RemoteError("a timestamp more than an hour ahead of the recording")
        self._pending[timestamp_samples] = opus
        self._flush(max(self._pending) - self._hold)
        while len(self._pending) * self.frame_samples > self._hold:  # misaligned timestamps
            self._flush(min(self._pending))
        return True

    def _flush(self, upto: int) -> None:
        for timestamp in sorted(t for t in self._pending if t <= upto):
            opus = self._pending.pop(timestamp)
            if self._origin is None:  # the file starts with the earliest packet
                self._origin = self._next = timestamp
            # RFC 7845 §4.1: the previous packet's configuration, code 0, one frame of 0 bytes.
            while self._next + self.frame_samples <= timestamp:
                self._mux(bytes([self._toc & 0xFC]))
                self.filled += 1
            self._mux(opus)
            self._toc = opus[0]
            self.packets += 1

    def _mux(self, data: bytes) -> None:
        assert self._origin is not None
        packet = av.Packet(data)
        packet.stream = self._stream
        packet.pts = packet.dts = self._next - self._origin
        packet.duration = self.frame_samples
        packet.time_base = _TIME_BASE
        self._container.mux(packet)
        self._next += self.frame_samples

    def close(self) -> tuple[str, int]:
        """Finish the file, make it durable, and return its (SHA-256 hex, size in bytes)."""
        if self._result is None:
            self._flush(max(self._pending, default=0))
            self._container.start_encoding()  # the headers, even of a file with no packet
            self._container.close()
            digest = hashlib.sha256()
            with self.path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
                os.fsync(f.fileno())
                size = f.tell()
            sync_dir(self.path.parent)
            self._result = (digest.hexdigest(), size)
        return self._result

    def __enter__(self) -> OggOpusRecorder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_wav(path: Path) -> Pcm:
    """Any audio file av reads (WAV above all) as 48 kHz mono int16, resampled and downmixed."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise RemoteError(f"{path.name} holds no audio")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            chunks = [
                out.to_ndarray().reshape(-1)
                for frame in [*container.decode(container.streams.audio[0]), None]
                for out in resampler.resample(frame)
            ]
    except av.FFmpegError as e:
        raise RemoteError(f"{path.name} cannot be read as audio: {e}") from e
    return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)


class WavWriter:
    """A 48 kHz mono 16-bit WAV file, written a frame at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wav = wave.open(str(path), "wb")  # noqa: SIM115 - closed by close()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(RATE)

    def write(self, frame: Pcm) -> None:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.int16 or frame.ndim != 1:
            raise ValueError("a frame is a 1-D int16 array")
        self._wav.writeframes(frame.astype("<i2").tobytes())

    def close(self) -> None:
        self._wav.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
