"""The voice of a call: the Opus codec, the jitter buffer and the N-1 mixer.

Audio is 48 kHz mono signed 16-bit PCM, one numpy int16 array per frame: 20 ms (960 samples) by
default, 10 ms (480) as an option. Encoding goes through PyAV's libopus encoder (voip mode, in-band
FEC on). Decoding goes to libopus itself through a small ctypes binding, because FFmpeg's decoder
API has no way to ask for packet-loss concealment or for in-band FEC (an empty packet there means
"drain"); PyAV's wheel ships libopus as a shared library, so no other package is needed.

The jitter buffer is pure: time (`now_ns`, `arrival_ns`) is a parameter and it decodes nothing; it
says what to play for each frame period, and the station renders that with its `OpusDecoder`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import statistics
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import numpy.typing as npt

from hotline.errors import LocalError, RemoteError

__all__ = [
    "RATE",
    "SILENCE_DBFS",
    "JitterBuffer",
    "OpusDecoder",
    "OpusEncoder",
    "Pcm",
    "Playout",
    "frame_samples",
    "level_dbfs",
    "mix",
    "mix_minus",
    "packet_has_fec",
    "packet_samples",
]

RATE = 48_000
SILENCE_DBFS = -100.0  # what level_dbfs says of digital silence (a number, unlike -inf, for JSON)
Pcm = npt.NDArray[np.int16]
_I16P = ctypes.POINTER(ctypes.c_int16)


def frame_samples(frame_ms: int) -> int:
    """Samples in one frame of `frame_ms` (10 or 20) at 48 kHz."""
    if frame_ms not in (10, 20):
        raise ValueError(f"frames are 10 or 20 ms, not {frame_ms}")
    return RATE // 1000 * frame_ms


_C = ctypes
_SIGNATURES: dict[str, tuple[list[Any], Any]] = {  # name: (argument types, result type)
    "opus_decoder_create": ([_C.c_int32, _C.c_int, _C.POINTER(_C.c_int)], _C.c_void_p),
    "opus_decode": ([_C.c_void_p, _C.c_char_p, _C.c_int32, _I16P, _C.c_int, _C.c_int], _C.c_int),
    "opus_decoder_destroy": ([_C.c_void_p], None),
    "opus_strerror": ([_C.c_int], _C.c_char_p),
    "opus_packet_get_nb_samples": ([_C.c_char_p, _C.c_int32, _C.c_int32], _C.c_int),
    "opus_packet_has_lbrr": ([_C.c_char_p, _C.c_int32], _C.c_int),
}


@functools.cache
def _libopus() -> ctypes.CDLL:
    # The copy PyAV bundles (auditwheel's av.libs, delocate's av/.dylibs), else the system's.
    av_dir = Path(av.__file__).parent
    bundled = sorted(
        [
            *(av_dir.parent / "av.libs").glob("libopus*.so*"),
            *(av_dir / ".dylibs").glob("libopus*.dylib"),
        ]
    )
    name = str(bundled[0]) if bundled else ctypes.util.find_library("opus")
    if name is None:
        raise LocalError("libopus not found: neither in PyAV's wheel nor on the system")
    lib = ctypes.CDLL(name)
    for fn, (args, result) in _SIGNATURES.items():
        if hasattr(lib, fn):  # opus_packet_has_lbrr came with libopus 1.5
            getattr(lib, fn).argtypes, getattr(lib, fn).restype = args, result
    return lib


def _opus_error(code: int) -> str:
    return (_libopus().opus_strerror(code) or b"unknown error").decode()


def packet_samples(opus: bytes) -> int:
    """Samples at 48 kHz in an Opus packet (RFC 6716 §3.1); RemoteError if it is malformed."""
    n = _libopus().opus_packet_get_nb_samples(opus, len(opus), RATE) if opus else -4
    if n < 0:
        raise RemoteError(f"an Opus packet that does not parse: {_opus_error(n)}")
    return int(n)


def packet_has_fec(opus: bytes) -> bool:
    """Whether a packet carries in-band FEC (SILK LBRR) for the frame before it."""
    lib = _libopus()
    if not opus or not hasattr(lib, "opus_packet_has_lbrr"):
        return bool(opus)  # an older libopus cannot tell; recovery then falls back to PLC
    return bool(lib.opus_packet_has_lbrr(opus, len(opus)) > 0)


class OpusEncoder:
    """One frame of PCM in, one Opus packet out (PyAV's libopus, voip, in-band FEC)."""

    def __init__(self, frame_ms: int = 20, bitrate: int = 32000, expected_loss: int = 10) -> None:
        self.frame_samples = frame_samples(frame_ms)
        ctx = av.CodecContext.create("libopus", "w")
        ctx.sample_rate, ctx.layout, ctx.format, ctx.bit_rate = RATE, "mono", "s16", bitrate
        # FEC is only spent when the expected loss is not zero (libopus: OPUS_SET_PACKET_LOSS_PERC).
        # This FFmpeg's wrapper has no DTX option: silence costs about 7 kb/s, and every frame goes.
        ctx.options = {
            "application": "voip",
            "frame_duration": str(frame_ms),
            "fec": "1" if expected_loss else "0",
            "packet_loss": str(expected_loss),
        }
        ctx.open()
        if ctx.options:  # FFmpeg hands back the options it did not consume
            raise LocalError(f"the libopus encoder ignored options {sorted(ctx.options)}")
        self._ctx = ctx
        self._pts = 0

    @property
    def pre_skip(self) -> int:
        """Samples the decoder drops at the start (the OpusHead field, RFC 7845 §5.1)."""
        return int.from_bytes(self._ctx.extradata[10:12], "little") if self._ctx.extradata else 0

    def encode(self, pcm: Pcm) -> bytes:
        if (
            not isinstance(pcm, np.ndarray)
            or pcm.dtype != np.int16
            or pcm.shape != (self.frame_samples,)
        ):
            raise ValueError(f"a frame is a 1-D int16 array of {self.frame_samples} samples")
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = RATE, self._pts
        self._pts += self.frame_samples
        packets = self._ctx.encode(frame)
        if len(packets) != 1:
            raise LocalError(f"libopus gave {len(packets)} packets for one frame")
        return bytes(packets[0])


class OpusDecoder:
    """libopus's decoder: packets, concealment of a lost one, and its recovery from the next."""

    def __init__(self, frame_ms: int = 20) -> None:
        self.frame_samples = frame_samples(frame_ms)
        lib, err = _libopus(), ctypes.c_int(0)
        state = lib.opus_decoder_create(RATE, 1, ctypes.byref(err))
        if err.value != 0 or not state:
            raise LocalError(f"opus_decoder_create: {_opus_error(err.value)}")
        self._state: int = state
        self._free = weakref.finalize(self, lib.opus_decoder_destroy, state)

    def decode(self, packet: bytes) -> Pcm:
        """One packet's frame; RemoteError (state untouched) if malformed or of another size."""
        return self._run(packet, fec=False)

    def conceal(self) -> Pcm:
        """A frame for a packet that never came (PLC), continuing what was playing."""
        return self._run(None, fec=False)

    def recover(self, next_packet: bytes) -> Pcm:
        """The lost frame before `next_packet`, from its FEC (libopus conceals if it has none)."""
        return self._run(next_packet, fec=True)

    def play(self, playout: Playout) -> Pcm:
        """The frame a jitter buffer's `Playout` stands for."""
        if playout.opus is None:
            return self.conceal()
        return self.decode(playout.opus) if playout.kind == "packet" else self.recover(playout.opus)

    def close(self) -> None:
        self._free()

    def _run(self, packet: bytes | None, fec: bool) -> Pcm:
        if not self._free.alive:
            raise LocalError("this Opus decoder is closed")
        # Checked before decoding, so a refused packet leaves the decoder's state as it was.
        if packet is not None and (n := packet_samples(packet)) != self.frame_samples:
            raise RemoteError(f"an Opus packet of {n} samples, expected {self.frame_samples}")
        pcm = np.zeros(self.frame_samples, np.int16)
        size = len(packet) if packet is not None else 0
        n = _libopus().opus_decode(
            self._state, packet, size, pcm.ctypes.data_as(_I16P), self.frame_samples, int(fec)
        )
        if n != self.frame_samples:
            raise RemoteError(f"opus_decode: {_opus_error(n) if n < 0 else f'{n} samples'}")
        return pcm


@dataclass(frozen=True, slots=True)
class Playout:
    """What to play for one frame period: a packet, an FEC recovery from the next packet (`opus`
    is then that next packet), or concealment (`opus` is None). `seq` is the frame's sequence
    number (for concealment, the one expected). `OpusDecoder.play` renders it."""

    kind: Literal["packet", "fec", "plc"]
    seq: int
    opus: bytes | None = None


@dataclass(slots=True)
class _Entry:
    seq: int
    opus: bytes


_WINDOW_MS = 2000  # the delays the target follows: long enough for a percentile, short to recover
_QUANTILE = 0.95  # cover 95% of recent delays; rarer stragglers are concealed, then refused late
_HOLD_NS = 500_000_000  # an excess must last this long before a (quiet) frame is dropped
_FORCE_NS = 1_000_000_000  # and then, if no frame was quiet (speech pauses often), any frame
_HORIZON_MS = 1000  # beyond the playout point by more than max delay + this: refused as "early"
_PAUSE_NS = 60_000_000  # nothing for the target delay and this long: a pause, played as silence
_SEEN = 1024  # sequence numbers remembered to tell a duplicate from a late packet


class JitterBuffer:
    """Reorders packets by timestamp (48 kHz samples) and plays one frame per `pop`.

    The target delay is the 95th percentile of recent transit times above the fastest
    (clamped to [min, max]). It grows by itself: a frame whose packet is not there yet is
    concealed without moving on (the delay grows by a frame); it shrinks by dropping a frame
    once the buffer has held more than target + one frame for `_HOLD_NS`: a quiet one (a packet
    half the median size or less), or any after `_FORCE_NS`. So clock drift between stations
    never grows the delay without bound. Counters: `received` (accepted), `late`, `duplicate`,
    `early`, `played`, `lost` (never there in time, FEC-recovered ones included), `concealed`,
    `recovered_fec`, `dropped`.
    """

    def __init__(
        self,
        frame_ms: int = 20,
        min_delay_ms: int = 20,
        max_delay_ms: int = 200,
        has_fec: Callable[[bytes], bool] = packet_has_fec,
    ) -> None:
        if not 0 <= min_delay_ms <= max_delay_ms:
            raise ValueError("need 0 <= min_delay_ms <= max_delay_ms")
        self.frame_ms, self.min_delay_ms, self.max_delay_ms = frame_ms, min_delay_ms, max_delay_ms
        self._frame = frame_samples(frame_ms)
        self._has_fec = has_fec
        self._buf: dict[int, _Entry] = {}
        self._next_ts: int | None = None  # the slot to play next; older packets are late
        self._playing = False
        self._start_ns = 0  # when buffering began (first arrival after silence)
        self._last_seq: int | None = None
        self._dry = 0  # frames concealed in a row while waiting for the next packet
        self._excess_since: int | None = None
        self._seen: set[int] = set()
        self._newest_seq: int | None = None
        self._newest_ts: int | None = None
        self._transits: deque[int] = deque(maxlen=_WINDOW_MS // frame_ms)
        self._sizes: deque[int] = deque(maxlen=_WINDOW_MS // frame_ms)  # of recent packets
        self._target_ns = min_delay_ms * 1_000_000
        self._jitter_ns = 0.0
        self._delay_ns = 0
        self.received = self.late = self.duplicate = self.early = self.played = 0
        self.lost = self.concealed = self.recovered_fec = self.dropped = 0

    @property
    def target_delay_ms(self) -> float:
        return self._target_ns / 1e6

    @property
    def delay_ms(self) -> float:
        """The delay the buffer adds: when the last frame played, after the fastest transit."""
        return self._delay_ns / 1e6

    @property
    def jitter_ms(self) -> float:
        """The interarrival jitter of RFC 3550 §6.4.1, a figure for the call record."""
        return self._jitter_ns / 1e6

    def figures(self) -> dict[str, int]:
        """The counters and delays (ms), for the station's status and the call record."""
        counters = ("received", "played", "lost", "concealed", "recovered_fec", "late")
        more = ("duplicate", "early", "dropped")
        delays = {"delay_ms": self._delay_ns, "target_delay_ms": self._target_ns}
        return {
            **{name: getattr(self, name) for name in counters + more},
            **{name: round(ns / 1e6) for name, ns in delays.items()},
            "jitter_ms": round(self._jitter_ns / 1e6),
        }

    def push(self, seq: int, timestamp: int, opus: bytes, arrival_ns: int) -> str:
        """Offer a packet: "accepted", "duplicate", "late" (its time has passed) or "early".
        A 32-bit timestamp on the wire wraps after 24.8 hours: it is unwrapped here."""
        if self._newest_ts is not None:  # the nearest value congruent modulo 2**32
            timestamp = self._newest_ts + (timestamp - self._newest_ts + 2**31) % 2**32 - 2**31
        if seq in self._seen or timestamp in self._buf:
            self.duplicate += 1
            return "duplicate"
        newest = seq if self._newest_seq is None else max(self._newest_seq, seq)
        if (self._next_ts is not None and timestamp < self._next_ts) or seq < newest - _SEEN:
            self._observe(timestamp, arrival_ns)  # the stragglers are what the target must cover
            self.late += 1
            return "late"
        ref = self._next_ts if self._playing else None
        ref = min(self._buf, default=timestamp) if ref is None else ref
        horizon = (self.max_delay_ms + _HORIZON_MS) * RATE // 1000
        if timestamp - ref > horizon or len(self._buf) >= horizon // self._frame:
            self.early += 1
            return "early"
        self._observe(timestamp, arrival_ns)
        if not self._buf and not self._playing:
            self._start_ns = arrival_ns
        self._buf[timestamp] = _Entry(seq, opus)
        self._sizes.append(len(opus))
        self._seen.add(seq)
        self._newest_seq = newest
        self._newest_ts = max(timestamp, self._newest_ts or timestamp)
        if len(self._seen) > 2 * _SEEN:
            self._seen = {s for s in self._seen if s > newest - _SEEN}
        self.received += 1
        return "accepted"

    def pop(self, now_ns: int) -> Playout | None:
        """What to play for the next frame period; None means silence (nothing yet, or a pause)."""
        if not self._playing:
            if not self._buf or now_ns - self._start_ns < self._target_ns:
                return None
            self._playing, self._next_ts, self._dry = True, min(self._buf), 0
        assert self._next_ts is not None
        self._maybe_drop(now_ns)
        ts = self._next_ts
        self._delay_ns = now_ns - ts * 1_000_000_000 // RATE - min(self._transits)
        head = self._buf.pop(ts, None)
        if head is None:
            # Missing: while less than the target is buffered behind it, it is probably on its
            # way, so conceal in place (the delay grows a frame); past that, it is lost. With
            # nothing buffered for the target and _PAUSE_NS more, the other side has paused.
            waited_ns = self._dry * self.frame_ms * 1_000_000
            if self._ahead_ns() < self._target_ns and waited_ns < self._target_ns + _PAUSE_NS:
                self._dry += 1
                self.concealed += 1
                return Playout("plc", (self._last_seq or 0) + 1)
            if not self._buf:
                self._playing = False
                return None
        self._next_ts = ts + self._frame
        for stale in [t for t in self._buf if t < self._next_ts]:  # misaligned timestamps
            del self._buf[stale]
        self._dry = 0
        if head is not None:
            self.played += 1
            return Playout("packet", self._advance(head.seq), head.opus)
        nxt = self._buf.get(self._next_ts)
        if nxt is not None and self._has_fec(nxt.opus):
            self.recovered_fec += 1
            self.lost += 1
            return Playout("fec", self._advance(nxt.seq - 1), nxt.opus)
        self.concealed += 1
        return Playout("plc", (self._last_seq or 0) + 1)

    def _advance(self, seq: int) -> int:
        """Count the frames skipped since the last one played as lost (a pause has no gap)."""
        if self._last_seq is not None and seq > self._last_seq:
            self.lost += seq - self._last_seq - 1
        self._last_seq = seq
        return seq

    def _ahead_ns(self) -> int:
        """How far the newest buffered packet is beyond the one to play next (-1: none)."""
        if not self._buf or self._next_ts is None:
            return -1
        return (max(self._buf) - self._next_ts) * 1_000_000_000 // RATE

    def _maybe_drop(self, now_ns: int) -> None:
        assert self._next_ts is not None
        if self._ahead_ns() < self._target_ns + self.frame_ms * 1_000_000:
            self._excess_since = None
            return
        if self._excess_since is None:
            self._excess_since = now_ns
        waited = now_ns - self._excess_since
        head = self._buf.get(self._next_ts)
        if head is None or waited < _HOLD_NS:
            return
        # Opus spends far fewer bytes on near-silence (17 against 60-90 for voice at 32 kb/s).
        quiet = 2 * len(head.opus) <= statistics.median(self._sizes)
        if quiet or waited >= _FORCE_NS:
            del self._buf[self._next_ts]
            self._last_seq = head.seq  # dropped on purpose: not a loss
            self._next_ts += self._frame
            self.dropped += 1
            self._excess_since = now_ns

    def _observe(self, timestamp: int, arrival_ns: int) -> None:
        transit = arrival_ns - timestamp * 1_000_000_000 // RATE
        if self._transits:  # RFC 3550 §6.4.1: J += (|D| - J) / 16
            self._jitter_ns += (abs(transit - self._transits[-1]) - self._jitter_ns) / 16
        self._transits.append(transit)
        ordered = sorted(self._transits)
        spread = ordered[int(_QUANTILE * (len(ordered) - 1))] - ordered[0]
        self._target_ns = min(
            max(spread, self.min_delay_ms * 1_000_000), self.max_delay_ms * 1_000_000
        )


def _saturate(acc: npt.NDArray[np.int32]) -> Pcm:
    return np.clip(acc, -32768, 32767).astype(np.int16)


def _sum(frames: Sequence[Pcm], samples: int) -> npt.NDArray[np.int32]:
    acc = np.zeros(samples, np.int32)  # int32: thousands of full-scale voices before overflow
    for frame in frames:
        if frame.shape != (samples,):
            raise ValueError(f"frames of {frame.shape} and ({samples},) cannot be mixed")
        acc += frame
    return acc


def mix(frames: Sequence[Pcm], samples: int | None = None) -> Pcm:
    """The sum of `frames`, saturated to int16 (silence of `samples` if there are none)."""
    n = samples if samples is not None else (len(frames[0]) if frames else None)
    if n is None:
        raise ValueError("mixing no frames needs their length")
    return _saturate(_sum(frames, n))


def mix_minus(
    local: Mapping[str, Pcm], peer: Pcm | None, listeners: Sequence[str], samples: int | None = None
) -> tuple[Pcm, dict[str, Pcm]]:
    """N-1 mixing: (what goes to the peer: the local speakers, what each listener hears: the peer
    and every local speaker but themselves). Sums stay in int32 until each output is saturated."""
    frames = [*local.values(), *([] if peer is None else [peer])]
    n = samples if samples is not None else (len(frames[0]) if frames else None)
    if n is None:
        raise ValueError("mixing no frames needs their length")
    speakers = _sum(list(local.values()), n)
    everyone = speakers + _sum([] if peer is None else [peer], n)
    heard = {
        who: _saturate(everyone - local[who] if who in local else everyone) for who in listeners
    }
    return _saturate(speakers), heard


def level_dbfs(frame: Pcm) -> float:
    """RMS level in dB below full scale (a full-scale square wave is 0, a sine -3.01)."""
    rms = math.sqrt(float(np.mean(np.square(frame, dtype=np.float64)))) if frame.size else 0.0
    return max(20 * math.log10(rms / 32768), SILENCE_DBFS) if rms > 0 else SILENCE_DBFS
