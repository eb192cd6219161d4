"""Voice calls between two real `hotline serve` processes on loopback: delay, quality, loss,
set-up time and how many calls two CPUs carry.

    .venv/bin/python bench/call.py [--quick]

Each station pair is made by `make_pair` in a fresh temporary directory (the system's, never the
working directory). People take part through `Softphone` (the service API's media WebSocket):
London's softphone speaks in real time, Moscow's hears. Speech is English from espeak-ng (about
10 s; 3 s with --quick), made at run time and converted to 48 kHz by sox. Quality is ITU-T
P.862.2 (PESQ wide band, the `pesq` package) at 16 kHz: the heard audio is aligned to the source
by cross-correlation, and both are resampled by sox. Prints `name: value` lines:

  pesq_wb_codec_only_<bitrate>: the speech through libopus alone (`OpusEncoder` with the call's
      settings, `OpusDecoder`; 20 ms frames) at 32, 48, 56 and 64 kbit/s, constant bit rate
      (_variable_<bitrate>: at a variable one, whose packet lengths follow the speech, as the
      station does with `constant_bitrate = false`); pesq_wb_codec_only is the
      one at the station's default bit rate, and pesq_wb_codec_only_10ms the same in 10 ms
      frames. pesq_wb_codec_loss10_ideal: 10% of the packets lost at random, each recovered
      from the next packet's FEC when that one came, else concealed, as a receiver with a
      perfect buffer would (median of 5 seeds; _range: the lowest and highest).
  pesq_wb_clean, pesq_wb_clean_10ms: the speech through a call with no loss (20 and 10 ms frames).
      jitter_buffer_<case>: Moscow's jitter buffer counters at the end of that call (and
      `waited`, `waited_in_vain`: playout beats that waited for a late packet, and those whose
      packet did not come in time; docs/calls.md §6).
  mouth_to_ear_p50_ms / _p99_ms (and _10ms with `frame_ms = 10` in both stations): tone bursts
      (100 ms of 1 kHz, one every 500 ms plus a random 0-20 ms, so that onsets fall anywhere in
      a frame) spoken at London; each burst's onset is found in what Moscow heard by the first
      sample above 40% of the tone's peak (the same detector finds it in the source). A source
      sample is "spoken" when a microphone would have captured it: its frame was handed to the
      station at `spoke_at_ns`, its last sample just before. A heard sample is "played" when its
      frame arrived (`arrived_ns`) plus its place in the frame. Both are this machine's
      monotonic clock. The figure holds one frame (a sample waits for the rest of its frame to
      be captured, then for the samples before it to be played: one frame in all, wherever it
      falls), Opus's 6.5 ms look-ahead, sealing, UDP, the jitter buffer and the playout clock,
      the mixing and both WebSockets; not a sound card's buffers. Several calls (3 of 10
      bursts): each call starts the stations' clocks anew. The p99 of 30 samples is their
      largest. _call_p50s_ms: each call's median; _jitter_buffer_delay_ms: Moscow's buffer
      delay at the end of each call.
  call_setup_p50_ms / _max_ms: from the POST that places the call at London to the `call` event
      with event=ringing on Moscow's event stream (GET /api/v1/events), 10 calls.
  answer_to_audio_p50_ms / _max_ms: Moscow's softphone joins the ringing call and speaks a tone
      without pause; from the answer POST at Moscow to the arrival of the first frame above
      -40 dBFS at London's softphone.
  pesq_wb_loss20_one_path, pesq_wb_loss10_both_paths: through a UDP relay (tests/udprelay.py)
      between the stations' media sockets (link.toml `media`), dropping 20% of path 0's
      datagrams (path 1 clean), or 10% on each path independently; every frame goes on both
      paths (`all_paths = true`, the default). relay_dropped_<case>: datagrams dropped per path
      (both directions); datagrams_per_path_<case>: what London sent on each.
  pesq_wb_loss10_single_path: 10% on each path, with `all_paths = false` in both stations'
      station.toml [calls]: each frame goes on one path.
  frames_lost_path_cut: path 0 cut (every datagram dropped, both ways) 3 s into the speech:
      Moscow's jitter buffer `lost` at the end of the call, frames never played
      (frames_lost_before_cut: the same at the moment of the cut); frames_concealed_path_cut:
      its `concealed`, which also counts a frame concealed in its turn because it came late and
      then played (a clean call on a busy machine has a few); pesq_wb_path_cut: that call's PESQ.
      _single_path: the same with `all_paths = false`, cutting the path London was sending on.
  concurrent_*_n<N>: N station pairs (2N processes), one call on each, both softphones of every
      call speaking the speech; each call's two softphones run in a process of their own (as
      each person has a machine of their own: in this one process, 20 softphones already sent
      frames up to 100 ms late). cpu_pct_per_call: both stations' user + system time (from
      /proc/<pid>/stat) over the speech, divided by its length and by N (100 = one CPU busy);
      phones_cpu_pct_per_call: the same for the softphone processes; idle_station_cpu_pct: each
      station before the calls; machine_cpus_busy: stations and softphones together, in CPUs;
      load_average: the machine's before the round (other work counts too); send_late_p99_ms /
      _max_ms: how late London's softphones sent their frames against their own schedule; and
      the lowest and the median PESQ of the N calls (London to Moscow); jitter_buffers: Moscow's
      jitter buffer counters summed over the calls, and jitter_buffer_worst: those of the call
      with the lowest PESQ, with the microphone frames London dropped (what the load cost).
      concurrent_calls: the largest N whose every call stayed within 0.1 of pesq_wb_codec_only.
      Once a round keeps 75% of the CPUs busy, or its median call falls 0.5 below, the larger N
      are skipped (concurrent_skipped_n<N> says why): they would only thrash the machine.
      concurrent_calls_cpu_bound: how many calls the CPUs would hold at the first round's cost
      per call (stations and softphones; and _stations_only, as if the people's machines were
      elsewhere). concurrent_calls_median: the largest N whose median call stayed within 0.1
      (one frame dropped by a jitter buffer costs a 10 s utterance about 0.2, on an idle
      machine too, so the strict figure is often 0 or 2).

Not a test: it asserts nothing. Every wait is bounded and an alarm stops the whole run (20 min,
4 with --quick; the full run takes about 6 min); stations, relays and temporary files are
removed in `finally`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import multiprocessing
import multiprocessing.process
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
from pesq import pesq  # type: ignore[import-untyped]

from hotline.cli.softphone import Softphone
from hotline.station.audio import OpusDecoder, OpusEncoder, level_dbfs
from hotline.station.datadir import CallsSection
from hotline.station.launch import StationProcess, make_pair

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the relay the call tests use
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers of bench/e2e.py
from tests.udprelay import UdpRelay

from e2e import cpu_seconds, emit, percentile, wait_for

RATE = 48_000
BITRATE = CallsSection().bitrate  # the station's default: what a call carries
Pcm = npt.NDArray[np.int16]
SPEECH_FULL = (
    "The line between the two capitals is tested every hour. Please confirm that you can hear "
    "me clearly, then read back these numbers: four, seven, nine, two."
)  # about 9.5 s
SPEECH_QUICK = "Please confirm that you can hear me clearly."  # about 2.5 s
FRAME_S = CallsSection().frame_ms / 1000
TONE_AMPLITUDE = 9830  # -10.4 dBFS peak
BURST_MS, BURST_EVERY_MS = 100, 500
AUDIBLE_DBFS = -40.0
PARTS = ("codec", "direct", "loss", "concurrent")


@dataclass(frozen=True, slots=True)
class Plan:
    speech: str
    bursts: int  # per call
    m2e_calls: int
    setups: int
    cut_after_s: float
    concurrency: tuple[int, ...]
    alarm_s: int


FULL = Plan(SPEECH_FULL, 10, 3, 10, 3.0, (2, 5, 10, 20), 1200)
QUICK = Plan(SPEECH_QUICK, 4, 1, 2, 1.0, (2,), 240)


# -- sound: speech, resampling, PESQ --------------------------------------------------------------


def write_wav(path: Path, pcm: Pcm, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.astype("<i2").tobytes())


def read_wav(path: Path) -> Pcm:
    with wave.open(str(path), "rb") as source:
        if source.getnchannels() != 1 or source.getsampwidth() != 2:
            raise RuntimeError(f"{path}: not 16-bit mono")
        return np.frombuffer(source.readframes(source.getnframes()), "<i2").astype(np.int16)


def sox(source: Path, target: Path, rate: int) -> None:
    """Resample with sox (its default, high-quality rate effect; no dither: repeatable)."""
    subprocess.run(
        ["sox", "-D", str(source), "-r", str(rate), "-c", "1", "-b", "16", str(target)],
        check=True, timeout=60, capture_output=True,
    )  # fmt: skip


def make_speech(text: str, tmp: Path) -> Pcm:
    """English from espeak-ng (22.05 kHz), at 48 kHz, with 0.3 s of silence each side."""
    raw, converted = tmp / "espeak.wav", tmp / "speech48.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(raw), text], check=True, timeout=60)
    sox(raw, converted, RATE)
    pad = np.zeros(int(0.3 * RATE), np.int16)
    return np.concatenate([pad, read_wav(converted), pad])


def align(heard: Pcm, source: Pcm) -> Pcm:
    """The stretch of `heard` that best matches `source` (by FFT cross-correlation), as long as
    `source` (padded with silence if the call's audio ends first)."""
    h, s = heard.astype(np.float64), source.astype(np.float64)
    size = 1 << (len(h) + len(s)).bit_length()
    corr = np.fft.irfft(np.fft.rfft(h, size) * np.conj(np.fft.rfft(s, size)), size)
    lag = int(np.argmax(corr[: max(1, len(h) - len(s) // 2)]))
    segment = heard[lag : lag + len(source)]
    return np.concatenate([segment, np.zeros(len(source) - len(segment), np.int16)])


class Judge:
    """PESQ wide band (P.862.2) at 16 kHz of audio heard against the source, both at 48 kHz."""

    def __init__(self, source: Pcm, tmp: Path) -> None:
        self.source, self.tmp = source, tmp
        self.reference = self._to_16k(source, "reference")

    def _to_16k(self, pcm: Pcm, name: str) -> Pcm:
        wide, narrow = self.tmp / f"{name}48.wav", self.tmp / f"{name}16.wav"
        write_wav(wide, pcm, RATE)
        sox(wide, narrow, 16_000)
        return read_wav(narrow)

    def score(self, heard: Pcm) -> float:
        degraded = self._to_16k(align(heard, self.source), "degraded")
        n = min(len(self.reference), len(degraded))
        try:
            return float(pesq(16_000, self.reference[:n], degraded[:n], "wb"))
        except Exception as exc:  # the pesq package raises its own errors (no utterance, ...)
            print(f"# pesq failed: {exc}", file=sys.stderr)
            return float("nan")


def codec_only(
    speech: Pcm,
    bitrate: int,
    judge: Judge,
    frame_ms: int = 20,
    loss: float = 0.0,
    seed: int = 0,
    constant: bool = True,
) -> float:
    """The speech through the call's Opus encoder settings and libopus's decoder, nothing else.
    With `loss`, that share of packets (at random) is lost and decoded as a receiver with a
    perfect buffer would: from the next packet's FEC if it came, else by concealment."""
    encoder = OpusEncoder(frame_ms, bitrate, constant_bitrate=constant)
    decoder = OpusDecoder(frame_ms)
    n = encoder.frame_samples
    frames = [speech[i : i + n] for i in range(0, len(speech) - n + 1, n)]
    packets = [encoder.encode(np.ascontiguousarray(f)) for f in frames]
    rng = random.Random(seed)
    came = [rng.random() >= loss for _ in packets] + [False]
    out = [decoder.decode(packet) if came[k]
           else decoder.recover(packets[k + 1]) if came[k + 1]
           else decoder.conceal()
           for k, packet in enumerate(packets)]  # fmt: skip
    return judge.score(np.concatenate(out))


def tone_bursts(count: int, seed: int = 7) -> tuple[Pcm, list[int]]:
    """1 kHz bursts, one every 500 ms plus 0-20 ms at random; and the sample each starts at."""
    rng = random.Random(seed)
    starts = [int((0.5 + b * BURST_EVERY_MS / 1000 + rng.uniform(0, 0.02)) * RATE)
              for b in range(count)]  # fmt: skip
    pcm = np.zeros(starts[-1] + RATE, np.int16)
    burst = int(BURST_MS * RATE / 1000)
    tone = (TONE_AMPLITUDE * np.sin(2 * np.pi * 1000 * np.arange(burst) / RATE)).astype(np.int16)
    for start in starts:
        pcm[start : start + burst] = tone
    return pcm, starts


def onsets(pcm: Pcm, gap_samples: int = RATE // 4) -> list[int]:
    """Where the signal first exceeds 40% of the tone's peak after at least `gap_samples` below."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 0.4 * TONE_AMPLITUDE)
    if len(loud) == 0:
        return []
    after_gap = loud[1:][np.diff(loud) > gap_samples]
    return [int(loud[0]), *(int(i) for i in after_gap)]


# -- stations --------------------------------------------------------------------------------------


def listen_addresses(station: StationProcess) -> list[tuple[str, int]]:
    return [(p.rpartition(":")[0], int(p.rpartition(":")[2]))
            for p in station.data.config().station.listen]  # fmt: skip


def set_calls(station: StationProcess, **settings: object) -> None:
    """Rewrite keys of station.toml's [calls] section (before the station starts)."""
    path = station.data.path / "station.toml"
    text = path.read_text()
    for key, value in settings.items():
        rendered = str(value).lower() if isinstance(value, bool) else str(value)
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {rendered}", text)
        if count != 1:
            raise RuntimeError(f"station.toml has no single [calls] {key}")
    path.write_text(text)


def set_media(station: StationProcess, addresses: list[str]) -> None:
    """Send the link's UDP media to `addresses` (one per path): link.toml [link] media."""
    path = next((station.data.path / "links").iterdir()) / "link.toml"
    lines = [line for line in path.read_text().splitlines() if not line.startswith("media =")]
    lines.append("media = [" + ", ".join(f'"{a}"' for a in addresses) + "]")
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Pair:
    london: StationProcess
    moscow: StationProcess
    relay: UdpRelay | None = None

    @property
    def stations(self) -> tuple[StationProcess, StationProcess]:
        return self.london, self.moscow

    def pids(self) -> list[int]:
        return [s.process.pid for s in self.stations if s.process is not None]

    def start(self) -> None:
        for station in self.stations:
            station.start(wait=False)
        self.start_wait()

    def start_wait(self) -> None:
        for station in self.stations:
            station.wait_ready()
        self.wait_up()

    def wait_up(self) -> None:
        def up() -> bool:
            return all(s.call("GET", "/api/v1/status")["links"][0]["state"] == "UP"
                       for s in self.stations)  # fmt: skip

        wait_for(up, "the link UP", 120)

    def restart(self, **calls: object) -> None:
        for station in self.stations:
            station.close()
            set_calls(station, **calls)
        self.start()

    def close(self) -> None:
        for station in self.stations:
            with contextlib.suppress(Exception):
                station.close()
        if self.relay is not None:
            self.relay.close()


def new_pair(root: Path, relay: bool = False, start: bool = True) -> Pair:
    london, moscow = make_pair(root)
    pair = Pair(london, moscow)
    if relay:
        pair.relay = UdpRelay(listen_addresses(london), listen_addresses(moscow))
        set_media(london, pair.relay.for_a())
        set_media(moscow, pair.relay.for_b())
    if start:
        pair.start()
    return pair


# -- a call ----------------------------------------------------------------------------------------


def phone(station: StationProcess, call_id: str, person: str) -> Softphone:
    api = station.data.config().api.listen
    return Softphone(api, station.data.api_token(), call_id, person, "principal")


def call_state(station: StationProcess, call_id: str) -> str | None:
    calls = station.call("GET", "/api/v1/calls")["calls"]
    return next((str(c["state"]) for c in calls if c["id"] == call_id), None)


def wait_state(station: StationProcess, call_id: str, state: str, timeout: float = 10) -> None:
    what = f"{state} at {station.name}"
    wait_for(lambda: call_state(station, call_id) == state, what, timeout)


def place(pair: Pair) -> str:
    body = {"precedence": "FLASH", "person": "Prime Minister", "role": "principal"}
    call_id = str(pair.london.call("POST", "/api/v1/links/moscow/calls", body)["id"])
    wait_state(pair.moscow, call_id, "ringing_in")
    return call_id


def answer(pair: Pair, call_id: str) -> None:
    body = {"person": "President", "role": "principal"}
    pair.moscow.call("POST", f"/api/v1/calls/{call_id}/answer", body)
    wait_state(pair.london, call_id, "active")


def hang_up(pair: Pair, call_id: str) -> None:
    with contextlib.suppress(httpx.HTTPError):
        pair.london.call("POST", f"/api/v1/calls/{call_id}/end", {"reason": "bench"})

    def ended() -> bool:
        return all(call_state(s, call_id) == "ended" for s in pair.stations)

    wait_for(ended, "the call's end at both stations", 15)


@dataclass
class Live:
    pair: Pair
    call_id: str
    london: Softphone
    moscow: Softphone

    def received(self) -> dict[str, Any]:
        return received(self.pair, self.call_id)

    def paths(self, station: StationProcess) -> list[dict[str, Any]]:
        return list(station.call("GET", f"/api/v1/calls/{self.call_id}")["media"]["paths"])


def received(pair: Pair, call_id: str) -> dict[str, Any]:
    """Moscow's jitter buffer counters for this call (London's audio)."""
    status = pair.moscow.call("GET", f"/api/v1/calls/{call_id}")
    return dict(status["media"]["received"])


@contextlib.contextmanager
def answered(pair: Pair) -> Iterator[str]:
    """A call placed at London and answered at Moscow; hung up at the end."""
    call_id = place(pair)
    try:
        answer(pair, call_id)
        yield call_id
    finally:
        try:
            hang_up(pair, call_id)
        except (RuntimeError, httpx.HTTPError) as exc:  # keep whatever went wrong before
            print(f"# hanging up {call_id[:8]}: {exc}", file=sys.stderr)


@contextlib.contextmanager
def in_call(pair: Pair) -> Iterator[Live]:
    """A call answered at Moscow, with a softphone joined at each end (not yet started)."""
    with answered(pair) as call_id:
        phones: list[Softphone] = []
        try:
            phones.append(phone(pair.london, call_id, "Prime Minister"))
            phones.append(phone(pair.moscow, call_id, "President"))
            yield Live(pair, call_id, *phones)
        finally:
            for softphone in phones:
                softphone.close()


def speak(
    speaker: Softphone,
    audio: Pcm,
    tail_s: float = 0.5,
    meanwhile: tuple[float, Callable[[], object]] | None = None,
) -> None:
    """Speak `audio` in real time and wait for it to be said, and heard for `tail_s` more;
    `meanwhile` is (seconds after the start, something to do then)."""
    done = threading.Event()
    speaker.start(audio, on_done=done.set)
    if meanwhile is not None:
        time.sleep(meanwhile[0])
        meanwhile[1]()
    if not done.wait(len(audio) / RATE + 10):
        raise RuntimeError("the softphone did not finish speaking")
    time.sleep(tail_s)


def heard(softphone: Softphone) -> tuple[Pcm, list[int]]:
    """A snapshot of what a softphone heard, and when each frame arrived."""
    count = min(len(softphone.heard.frames), len(softphone.heard.arrived_ns))
    frames = softphone.heard.frames[:count]
    pcm = np.concatenate(frames) if frames else np.zeros(0, np.int16)
    return pcm, softphone.heard.arrived_ns[:count]


@dataclass
class Spoken:
    """What one call of speech left: Moscow's audio, its jitter buffer counters, and London's
    media paths (datagrams sent on each), read before the call ended."""

    audio: Pcm
    received: dict[str, Any]
    paths: list[dict[str, Any]]
    before: dict[str, Any] | None = None  # Moscow's counters when `meanwhile` acted


def speech_call(
    pair: Pair, speech: Pcm, meanwhile: tuple[float, Callable[[], object]] | None = None
) -> Spoken:
    with in_call(pair) as live:
        live.moscow.start(None)
        before: list[dict[str, Any]] = []

        def act() -> None:
            before.append(live.received())
            if meanwhile is not None:
                meanwhile[1]()

        speak(live.london, speech, meanwhile=None if meanwhile is None else (meanwhile[0], act))
        received, paths = live.received(), live.paths(pair.london)
        return Spoken(heard(live.moscow)[0], received, paths, before[0] if before else None)


# -- the parts of the run --------------------------------------------------------------------------


def mouth_to_ear(pair: Pair, bursts: int) -> tuple[list[float], float]:
    """Per tone burst, from its first loud sample's capture at London to its playing at Moscow;
    and Moscow's jitter buffer delay (ms) at the end."""
    source, _ = tone_bursts(bursts)
    with in_call(pair) as live:
        live.moscow.start(None)
        speak(live.london, source)
        pcm, arrived = heard(live.moscow)
        spoke, n_out = list(live.london.spoke_at_ns), live.london.frame_samples
        n_in = live.moscow.frame_samples
        buffered = float(live.received()["delay_ms"])
    ns = 1e9 / RATE
    # Sample k of a frame handed over at t was captured at t - (n - k) samples' time.
    mouth = [spoke[s // n_out] - (n_out - s % n_out) * ns
             for s in onsets(source) if s // n_out < len(spoke)]  # fmt: skip
    ear = [arrived[h // n_in] + (h % n_in) * ns for h in onsets(pcm)]
    delays = []
    for played in ear:
        said = [m for m in mouth if m < played]
        if said and played - said[-1] < (BURST_EVERY_MS - BURST_MS) * 1e6:
            delays.append((played - said[-1]) / 1e6)
    if len(delays) < len(mouth):
        print(f"# {len(mouth) - len(delays)} of {len(mouth)} bursts not found", file=sys.stderr)
    return delays, buffered


def mouth_to_ear_calls(pair: Pair, plan: Plan, suffix: str) -> None:
    """`plan.m2e_calls` calls of `plan.bursts` bursts each: the stations' frame clocks start
    with each call, so their phases (which decide part of the delay) differ from call to call."""
    pooled, medians, buffered = [], [], []
    for _ in range(plan.m2e_calls):
        delays, delay_ms = mouth_to_ear(pair, plan.bursts)
        pooled += delays
        medians.append(f"{percentile(delays, 50):.1f}")
        buffered.append(f"{delay_ms:.0f}")
    emit(f"mouth_to_ear_p50_ms{suffix}", f"{percentile(pooled, 50):.1f}")
    emit(f"mouth_to_ear_p99_ms{suffix}", f"{percentile(pooled, 99):.1f}")
    emit(f"mouth_to_ear_min_ms{suffix}", f"{min(pooled):.1f}")
    emit(f"mouth_to_ear_bursts{suffix}", len(pooled))
    emit(f"mouth_to_ear_call_p50s_ms{suffix}", ", ".join(medians))
    emit(f"mouth_to_ear_jitter_buffer_delay_ms{suffix}", ", ".join(buffered))


class CallEvents:
    """A station's event stream, read on a thread: when each call event first arrived."""

    def __init__(self, station: StationProcess) -> None:
        self._url = f"{station.api}/api/v1/events"
        self._token = station.data.api_token()
        self._at: dict[tuple[str, str], int] = {}  # (call id, event) -> time.monotonic_ns()
        self._changed = threading.Condition()
        self._ready = threading.Event()
        self._socket: socket.socket | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the event stream of {station.name} did not open")

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"}
        with (
            contextlib.suppress(httpx.HTTPError, OSError),
            httpx.Client(headers=headers, timeout=httpx.Timeout(10, read=None)) as client,
            client.stream("GET", self._url) as response,
        ):
            stream = response.extensions.get("network_stream")
            if stream is not None:
                self._socket = stream.get_extra_info("socket")
            for line in response.iter_lines():
                self._ready.set()  # the first line comes once the station listens for us
                if self._stopping:
                    return
                if line.startswith("data:"):
                    self._on_event(json.loads(line[5:]), time.monotonic_ns())

    def _on_event(self, event: dict[str, Any], now: int) -> None:
        if event.get("type") == "call":
            with self._changed:
                self._at.setdefault((str(event["id"]), str(event["event"])), now)
                self._changed.notify_all()

    def wait(self, call_id: str, what: str, timeout: float) -> int:
        with self._changed:
            if not self._changed.wait_for(lambda: (call_id, what) in self._at, timeout):
                raise RuntimeError(f"no {what} event for call {call_id[:8]}")
            return self._at[(call_id, what)]

    def close(self) -> None:
        self._stopping = True
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading
        self._thread.join(5)


def first_audible(softphone: Softphone, timeout: float) -> int:
    """When the first frame above AUDIBLE_DBFS arrived (monotonic ns)."""
    deadline, checked = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        count = min(len(softphone.heard.frames), len(softphone.heard.arrived_ns))
        for index in range(checked, count):
            if level_dbfs(softphone.heard.frames[index]) > AUDIBLE_DBFS:
                return softphone.heard.arrived_ns[index]
        checked = count
        time.sleep(0.002)
    raise RuntimeError("London heard nothing after the answer")


def setup_and_answer(pair: Pair, count: int) -> tuple[list[float], list[float]]:
    """Place -> ringing at Moscow, and answer -> first audible frame at London, `count` times."""
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * np.arange(4 * RATE) / RATE)).astype(np.int16)
    events = CallEvents(pair.moscow)
    setups, answers = [], []
    body = {"precedence": "FLASH", "person": "Prime Minister", "role": "principal"}
    try:
        for _ in range(count):
            placed_at = time.monotonic_ns()
            call_id = str(pair.london.call("POST", "/api/v1/links/moscow/calls", body)["id"])
            setups.append((events.wait(call_id, "ringing", 10) - placed_at) / 1e6)
            phones: list[Softphone] = []
            try:
                wait_state(pair.moscow, call_id, "ringing_in")
                phones = [phone(pair.london, call_id, "Prime Minister"),
                          phone(pair.moscow, call_id, "President")]  # fmt: skip
                phones[0].start(None)
                phones[1].start(tone)  # speaking without pause from before the answer
                time.sleep(0.2)
                answered_at = time.monotonic_ns()
                body_answer = {"person": "President", "role": "principal"}
                pair.moscow.call("POST", f"/api/v1/calls/{call_id}/answer", body_answer)
                answers.append((first_audible(phones[0], 5) - answered_at) / 1e6)
            finally:
                for softphone in phones:
                    softphone.close()
                hang_up(pair, call_id)
    finally:
        events.close()
    return setups, answers


def part_codec(speech: Pcm, judge: Judge) -> None:
    for bitrate in (32_000, 48_000, 56_000, 64_000):
        emit(f"pesq_wb_codec_only_{bitrate}", f"{codec_only(speech, bitrate, judge):.3f}")
    for bitrate in (32_000, 48_000):  # what lengths that follow the speech would buy
        score = codec_only(speech, bitrate, judge, constant=False)
        emit(f"pesq_wb_codec_only_variable_{bitrate}", f"{score:.3f}")
    emit("pesq_wb_codec_only", f"{codec_only(speech, BITRATE, judge):.3f}")
    emit("pesq_wb_codec_only_10ms", f"{codec_only(speech, BITRATE, judge, 10):.3f}")
    ideal = [codec_only(speech, BITRATE, judge, loss=0.1, seed=seed) for seed in range(5)]
    emit("pesq_wb_codec_loss10_ideal", f"{percentile(ideal, 50):.3f}")
    emit("pesq_wb_codec_loss10_ideal_range", f"{min(ideal):.3f}-{max(ideal):.3f}")


def part_direct(plan: Plan, root: Path, speech: Pcm, judge: Judge) -> None:
    pair = new_pair(root)
    try:
        spoken = speech_call(pair, speech)
        emit("pesq_wb_clean", f"{judge.score(spoken.audio):.3f}")
        emit("jitter_buffer_clean", jitter_buffer(spoken.received))
        mouth_to_ear_calls(pair, plan, "")
        setups, answers = setup_and_answer(pair, plan.setups)
        emit("call_setup_p50_ms", f"{percentile(setups, 50):.1f}")
        emit("call_setup_max_ms", f"{max(setups):.1f}")
        emit("answer_to_audio_p50_ms", f"{percentile(answers, 50):.1f}")
        emit("answer_to_audio_max_ms", f"{max(answers):.1f}")
        pair.restart(frame_ms=10)
        mouth_to_ear_calls(pair, plan, "_10ms")
        spoken = speech_call(pair, speech)
        emit("pesq_wb_clean_10ms", f"{judge.score(spoken.audio):.3f}")
        emit("jitter_buffer_clean_10ms", jitter_buffer(spoken.received))
    finally:
        pair.close()


def jitter_buffer(figures: dict[str, Any]) -> str:
    names = (
        *("received", "lost", "concealed", "recovered_fec", "dropped", "late", "paused"),
        *("waited", "waited_in_vain", "delay_ms"),
    )
    return ", ".join(f"{name} {figures[name]}" for name in names)


def lossy_call(pair: Pair, speech: Pcm, judge: Judge, name: str, losses: list[float]) -> None:
    relay = pair.relay
    assert relay is not None
    for index, loss in enumerate(losses):
        relay.set_loss(index, loss)
    dropped = [p.dropped for p in relay.paths]
    spoken = speech_call(pair, speech)
    emit(f"pesq_wb_{name}", f"{judge.score(spoken.audio):.3f}")
    emit(
        f"relay_dropped_{name}", [p.dropped - d for p, d in zip(relay.paths, dropped, strict=True)]
    )
    emit(f"jitter_buffer_{name}", jitter_buffer(spoken.received))
    emit(f"datagrams_per_path_{name}", [p["sent"] for p in spoken.paths])


def path_cut(pair: Pair, speech: Pcm, judge: Judge, after_s: float, suffix: str) -> None:
    """Cut the path London's audio goes on (path 0 when every path carries it) `after_s` into
    the speech: Moscow's lost + concealed frames over the call, and the PESQ."""
    relay = pair.relay
    assert relay is not None
    for index in range(len(relay.paths)):
        relay.set_loss(index, 0.0)
    at_cut: list[list[int]] = []

    def cut() -> None:
        calls = pair.london.call("GET", "/api/v1/calls")["calls"]
        sent = [int(p["sent"]) for p in calls[0]["media"]["paths"]]
        at_cut.append(sent)
        relay.set_loss(sent.index(max(sent)), 1.0)  # with every path alike, index() gives 0

    spoken = speech_call(pair, speech, meanwhile=(after_s, cut))
    for index in range(len(relay.paths)):
        relay.set_loss(index, 0.0)
    counters, before = spoken.received, spoken.before or {"lost": 0, "concealed": 0}
    emit(f"frames_lost_path_cut{suffix}", int(counters["lost"]))
    emit(f"frames_concealed_path_cut{suffix}", int(counters["concealed"]))
    emit(f"frames_lost_before_cut{suffix}", int(before["lost"]))
    emit(f"pesq_wb_path_cut{suffix}", f"{judge.score(spoken.audio):.3f}")
    emit(f"jitter_buffer_path_cut{suffix}", jitter_buffer(counters))
    emit(f"datagrams_per_path_at_cut{suffix}", at_cut[0] if at_cut else "?")
    emit(f"datagrams_per_path_path_cut{suffix}", [p["sent"] for p in spoken.paths])


def part_loss(plan: Plan, root: Path, speech: Pcm, judge: Judge) -> None:
    pair = new_pair(root, relay=True)
    try:
        lossy_call(pair, speech, judge, "loss20_one_path", [0.2, 0.0])
        lossy_call(pair, speech, judge, "loss10_both_paths", [0.1, 0.1])
        path_cut(pair, speech, judge, plan.cut_after_s, "")
        pair.restart(all_paths=False)
        lossy_call(pair, speech, judge, "loss10_single_path", [0.1, 0.1])
        path_cut(pair, speech, judge, plan.cut_after_s, "_single_path")
    finally:
        pair.close()


Endpoint = tuple[str, str]  # a station's API address and token


def phone_worker(
    conn: Connection, ends: tuple[Endpoint, Endpoint], call_id: str, speech: Pcm
) -> None:
    """In a process of its own (one GIL per call, as each person has their own machine): both
    softphones of one call. Joins, says "ready", speaks on "go" at both ends (after the delay
    that comes with it), and sends back what Moscow heard, how late London's frames went, and
    this process's CPU seconds."""
    # Past what the CPUs hold, the client's WebSocket pings time out and log each at length;
    # what matters shows in the figures sent back.
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    people = ("Prime Minister", "President")
    phones = [Softphone(api, token, call_id, person, "principal")
              for (api, token), person in zip(ends, people, strict=True)]  # fmt: skip
    try:
        conn.send("ready")
        if conn.poll(120):
            _, delay_s = conn.recv()
            time.sleep(delay_s)
            cpu = time.process_time()
            done = threading.Event()
            phones[1].start(speech)  # both speak; Moscow's softphone listens from now
            phones[0].start(speech, on_done=done.set)
            done.wait(len(speech) / RATE + 30)
            cpu = time.process_time() - cpu
            time.sleep(0.5)
            conn.send((heard(phones[1])[0], send_lateness(phones[0]), cpu))
            conn.poll(30)  # still joined while the stations are asked how the call went
    finally:
        for softphone in phones:
            softphone.close()


def send_lateness(softphone: Softphone) -> list[float]:
    """How late (ms) each frame went, against the softphone's own schedule from its first."""
    spoke, period = softphone.spoke_at_ns, softphone.frame_samples * 1e9 / RATE
    return [(t - spoke[0] - i * period) / 1e6 for i, t in enumerate(spoke)]


def endpoint(station: StationProcess) -> Endpoint:
    return station.data.config().api.listen, station.data.api_token()


def concurrent_round(pairs: list[Pair], speech: Pcm, judge: Judge) -> dict[str, Any]:
    """One call on every pair, both ends speaking (each call's softphones in a process of
    their own); the stations' CPU over the speech, and each call's PESQ."""
    pids = [pid for pair in pairs for pid in pair.pids()]
    context = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        workers, call_ids = [], []
        for pair in pairs:
            call_id = stack.enter_context(answered(pair))
            call_ids.append(call_id)
            mine, theirs = context.Pipe()
            ends = (endpoint(pair.london), endpoint(pair.moscow))
            worker = context.Process(target=phone_worker, args=(theirs, ends, call_id, speech))
            worker.start()
            stack.callback(stop_worker, worker)
            workers.append(mine)
        for conn in workers:
            if not conn.poll(60) or conn.recv() != "ready":
                raise RuntimeError("a softphone process did not join its call")
        cpu_before, started = sum(map(cpu_seconds, pids)), time.monotonic()
        # Calls placed at different moments beat at different phases of the frame period: each
        # starts at a random point of one (all on the same beat, every station and softphone
        # would wake in the same millisecond, 50 times a second, as no set of real calls does).
        phases = random.Random(len(pairs))
        for conn in workers:
            conn.send(("go", phases.uniform(0, FRAME_S)))
        results = []
        for conn in workers:
            if not conn.poll(len(speech) / RATE + 60):
                raise RuntimeError("a softphone process did not finish")
            results.append(conn.recv())
        wall = time.monotonic() - started
        cpu = sum(map(cpu_seconds, pids)) - cpu_before
        buffers = [received(pair, call_id) for pair, call_id in zip(pairs, call_ids, strict=True)]
        senders = [pair.london.call("GET", f"/api/v1/calls/{call_id}")
                   for pair, call_id in zip(pairs, call_ids, strict=True)]  # fmt: skip
        for conn in workers:
            conn.send("done")
    phones_cpu = sum(r[2] for r in results)
    late = [lateness for r in results for lateness in r[1]]
    scores = [judge.score(r[0]) for r in results]
    worst = scores.index(min(scores))
    dropped = sum(int(p["mic_dropped"]) for p in senders[worst]["participants"])
    counters = ("concealed", "lost", "late", "dropped", "recovered_fec", "paused", "waited")
    return {
        "jitter_buffers": ",".join(f"{c}={sum(int(b[c]) for b in buffers)}" for c in counters),
        "jitter_buffer_worst": f"{jitter_buffer(buffers[worst])}, mic_dropped {dropped}",
        "send_late_p99_ms": percentile(late, 99),
        "send_late_max_ms": max(late),
        "cpu_pct_per_call": 100 * cpu / wall / len(pairs),
        "phones_cpu_pct_per_call": 100 * phones_cpu / wall / len(pairs),
        "machine_cpu_share": (cpu + phones_cpu) / wall,
        "pesq_min": min(scores),
        "pesq_median": percentile(scores, 50),
    }


def stop_worker(worker: multiprocessing.process.BaseProcess) -> None:
    worker.join(10)
    if worker.is_alive():
        worker.terminate()
        worker.join(5)


def pair_ports(pair: Pair) -> set[int]:
    config = [station.data.config() for station in pair.stations]
    addresses = [a for c in config for a in [*c.station.listen, c.api.listen, c.console.listen]]
    return {int(address.rpartition(":")[2]) for address in addresses}


def more_pairs(root: Path, pairs: list[Pair], count: int) -> None:
    """Add `count` started pairs to `pairs`. `make_pair` takes ports the kernel said were free a
    moment ago, so two pairs made before either starts can be given the same port: a pair that
    shares one with another is made again. They start two pairs at a time, so that none waits
    for its turn at the CPUs longer than the 30 s a station has to come up."""
    taken = set().union(*(pair_ports(pair) for pair in pairs))
    new: list[Pair] = []
    for attempt in range(3 * count):
        if len(new) == count:
            break
        pair = new_pair(root / f"pair{len(pairs)}-{attempt}", start=False)
        ports = pair_ports(pair)
        if ports & taken:
            continue
        taken |= ports
        new.append(pair)
        pairs.append(pair)
    for batch in (new[i : i + 2] for i in range(0, len(new), 2)):
        for pair in batch:
            for station in pair.stations:
                station.start(wait=False)
        for pair in batch:
            pair.start_wait()


def part_concurrency(plan: Plan, root: Path, speech: Pcm, judge: Judge, codec: float) -> None:
    pairs: list[Pair] = []
    held = held_median = 0
    cpus, bound = os.cpu_count() or 1, ""
    try:
        for n in plan.concurrency:
            if bound:  # the last round already filled the CPUs: more would only thrash
                emit(f"concurrent_skipped_n{n}", bound)
                continue
            try:
                more_pairs(root, pairs, n - len(pairs))
            except RuntimeError as exc:  # a machine too busy to start them in time
                print(f"# starting {n} pairs: {exc}", file=sys.stderr)
                emit(f"concurrent_start_failed_n{n}", str(exc).splitlines()[0])
                break
            time.sleep(1.0)  # let the new links settle (hellos, first receipts)
            pids = [pid for pair in pairs for pid in pair.pids()]
            before, started = sum(map(cpu_seconds, pids)), time.monotonic()
            time.sleep(3.0)
            idle = sum(map(cpu_seconds, pids)) - before
            emit(f"concurrent_idle_station_cpu_pct_n{n}",
                 f"{100 * idle / (time.monotonic() - started) / len(pids):.2f}")  # fmt: skip
            emit(f"concurrent_load_average_n{n}", f"{os.getloadavg()[0]:.2f}")
            figures = concurrent_round(pairs, speech, judge)
            emit(f"concurrent_cpu_pct_per_call_n{n}", f"{figures['cpu_pct_per_call']:.1f}")
            emit(f"concurrent_phones_cpu_pct_per_call_n{n}",
                 f"{figures['phones_cpu_pct_per_call']:.1f}")  # fmt: skip
            emit(f"concurrent_machine_cpus_busy_n{n}", f"{figures['machine_cpu_share']:.2f}")
            emit(f"pesq_wb_concurrent_min_n{n}", f"{figures['pesq_min']:.3f}")
            emit(f"pesq_wb_concurrent_median_n{n}", f"{figures['pesq_median']:.3f}")
            emit(f"concurrent_send_late_p99_ms_n{n}", f"{figures['send_late_p99_ms']:.1f}")
            emit(f"concurrent_send_late_max_ms_n{n}", f"{figures['send_late_max_ms']:.1f}")
            emit(f"concurrent_jitter_buffers_n{n}", figures["jitter_buffers"])
            emit(f"concurrent_jitter_buffer_worst_n{n}", figures["jitter_buffer_worst"])
            per_call = figures["cpu_pct_per_call"] + figures["phones_cpu_pct_per_call"]
            if n == plan.concurrency[0]:  # the least contended round: the cost of one call
                emit("concurrent_calls_cpu_bound", int(100 * cpus / per_call))
                emit("concurrent_calls_cpu_bound_stations_only",
                     int(100 * cpus / figures["cpu_pct_per_call"]))  # fmt: skip
            if figures["pesq_min"] >= codec - 0.1:
                held = n
            if figures["pesq_median"] >= codec - 0.1:
                held_median = n
            if figures["machine_cpu_share"] >= 0.75 * cpus:
                bound = f"{n} calls already kept {figures['machine_cpu_share']:.2f} CPUs busy"
            elif figures["pesq_median"] < codec - 0.5:
                bound = f"the median call of {n} already fell to {figures['pesq_median']:.2f}"
    finally:
        for pair in pairs:
            pair.close()
    emit("concurrent_calls", held)
    emit("concurrent_calls_median", held_median)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run, to check it works")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"which parts to run (of {', '.join(PARTS)})"
    )
    parser.add_argument(
        "--calls", help="the concurrency rounds, as numbers of calls (default 2,5,10,20; quick: 2)"
    )
    args = parser.parse_args()
    plan, parts = QUICK if args.quick else FULL, set(args.parts.split(","))
    if args.calls:
        try:
            rounds = tuple(int(n) for n in args.calls.split(","))
        except ValueError:
            parser.error(f"--calls takes numbers separated by commas, not {args.calls!r}")
        if not rounds or min(rounds) < 1 or max(rounds) > 40:
            parser.error("--calls takes numbers of calls from 1 to 40")
        plan = dataclasses.replace(plan, concurrency=rounds)
    if parts - set(PARTS):
        parser.error(f"unknown parts {sorted(parts - set(PARTS))}")

    def too_long(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"bench/call.py ran past its {plan.alarm_s} s bound")

    signal.signal(signal.SIGALRM, too_long)
    signal.alarm(plan.alarm_s)
    started = time.perf_counter()
    emit("python", sys.version.split()[0])
    emit("cpus", os.cpu_count())
    emit("mode", "quick" if plan is QUICK else "full")
    emit("call_bitrate", BITRATE)
    emit("load_average_1min_start", f"{os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="hotline-call-") as directory:
        tmp = Path(directory)
        speech = make_speech(plan.speech, tmp)
        judge = Judge(speech, tmp)
        emit("speech_s", f"{len(speech) / RATE:.2f}")
        codec = codec_only(speech, BITRATE, judge)  # what the concurrent calls are held to
        if "codec" in parts:
            part_codec(speech, judge)
        if "direct" in parts:
            part_direct(plan, tmp / "direct", speech, judge)
        if "loss" in parts:
            part_loss(plan, tmp / "loss", speech, judge)
        if "concurrent" in parts:
            part_concurrency(plan, tmp / "concurrent", speech, judge, codec)
    signal.alarm(0)
    emit("load_average_1min_end", f"{os.getloadavg()[0]:.2f}")
    emit("bench_runtime_s", f"{time.perf_counter() - started:.1f}")


if __name__ == "__main__":
    main()
