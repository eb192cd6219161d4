"""The voice of a call: the Opus codec and the N-1 mixer.

Audio is 48 kHz mono signed 16-bit PCM, one numpy int16 array per frame: 20 ms (960 samples) by
default, 10 ms (480) as an option. Encoding goes through PyAV's libopus encoder (voip mode, in-band
FEC on). Decoding goes to libopus itself through a small ctypes binding, because FFmpeg's decoder
API has no way to ask for packet-loss concealment or for in-band FEC (an empty packet there means
"drain"); PyAV's wheel ships libopus as a shared library, so no other package is needed.

The jitter buffer (hotline.station.jitter) says what to play for each frame period; the station
renders that with its `OpusDecoder`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import numpy.typing as npt

from hotline.errors import LocalError, RemoteError

if TYPE_CHECKING:
    from hotline.station.jitter import Playout

__all__ = [
    "COMPLEXITY",
    "RATE",
    "SILENCE_DBFS",
    "OpusDecoder",
    "OpusEncoder",
    "Pcm",
    "frame_samples",
    "level_dbfs",
    "mix",
    "mix_heard",
    "mix_minus",
    "packet_has_fec",
    "packet_samples",
]

RATE = 48_000
# The encoder's complexity (0-10). On espeak-ng speech (bench/call.py's), complexity 6 at
# 48 kbit/s (variable) scores PESQ 4.10 for 153 us a frame here, where complexity 10 at
# 40 kbit/s scored 4.02 for 192 us: the encoder is a quarter of a station's work in a call, so
# a cheaper setting at a few more bits buys calls. Below 6 the quality falls off (5: 3.89 at
# 48 kbit/s). At a constant bit rate, 64 kbit/s scores 4.12 (48: 3.71, 56: 4.05).
COMPLEXITY = 6
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
    """One frame of PCM in, one Opus packet out (PyAV's libopus, voip, in-band FEC).

    At a constant bit rate (the default) every packet has the same length, speech or silence:
    the lengths of variable-bit-rate packets, which travel in clear on the wire, give away what
    is said (RFC 6562). It costs bits: at the same quality, 64 kbit/s where 48 sufficed."""

    def __init__(
        self,
        frame_ms: int = 20,
        bitrate: int = 64000,
        expected_loss: int = 10,
        complexity: int = COMPLEXITY,
        constant_bitrate: bool = True,
    ) -> None:
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
            "compression_level": str(complexity),  # libopus: OPUS_SET_COMPLEXITY
            "vbr": "off" if constant_bitrate else "on",  # libopus: OPUS_SET_VBR
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
    if len(frames) == 1 and frames[0].shape == (n,):
        return frames[0]  # one voice, the usual case: nothing to add up
    return _saturate(_sum(frames, n))  # (which refuses frames of another length)


def mix_minus(
    local: Mapping[str, Pcm], peer: Pcm | None, listeners: Sequence[str], samples: int | None = None
) -> tuple[Pcm, dict[str, Pcm]]:
    """N-1 mixing: (what goes to the peer: the local speakers, what each listener hears: the peer
    and every local speaker but themselves). Sums stay in int32 until each output is saturated."""
    n = _length([*local.values(), *([] if peer is None else [peer])], samples)
    return mix(list(local.values()), n), mix_heard(local, peer, listeners, n)


def mix_heard(
    local: Mapping[str, Pcm], peer: Pcm | None, listeners: Sequence[str], samples: int | None = None
) -> dict[str, Pcm]:
    """What each listener hears (mix_minus's second half): the peer and every local speaker but
    themselves. Whoever hears a single voice gets that frame as it is, with nothing added up: a
    call between one person at each end mixes nothing at all."""
    names, voices = list(local), [*local.values(), *([] if peer is None else [peer])]
    n = _length(voices, samples)
    for voice in voices:
        if voice.shape != (n,):
            raise ValueError(f"frames of {voice.shape} and ({n},) cannot be mixed")
    silence: Pcm | None = None
    everyone: npt.NDArray[np.int32] | None = None
    heard: dict[str, Pcm] = {}
    for who in listeners:
        own = local.get(who)
        at = names.index(who) if own is not None else len(voices)
        others = voices[:at] + voices[at + 1 :]
        if not others:
            silence = np.zeros(n, np.int16) if silence is None else silence
            heard[who] = silence
        elif len(others) == 1:
            heard[who] = others[0]
        else:
            everyone = _sum(voices, n) if everyone is None else everyone
            heard[who] = _saturate(everyone if own is None else everyone - own)
    return heard


def _length(frames: Sequence[Pcm], samples: int | None) -> int:
    n = samples if samples is not None else (len(frames[0]) if frames else None)
    if n is None:
        raise ValueError("mixing no frames needs their length")
    return n


def level_dbfs(frame: Pcm) -> float:
    """RMS level in dB below full scale (a full-scale square wave is 0, a sine -3.01)."""
    # Each square is at most 2**30, so in float64 their sum is exact (for any frame shorter than
    # 2**23 samples) whatever the order of adding: a dot product gives the mean of squares's figure
    # in a third of its time.
    wide = frame.astype(np.float64)
    rms = math.sqrt(float(wide @ wide) / frame.size) if frame.size else 0.0
    return max(20 * math.log10(rms / 32768), SILENCE_DBFS) if rms > 0 else SILENCE_DBFS
