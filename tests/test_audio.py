"""The call's audio: Opus through PyAV and libopus, the jitter buffer, the mixer, recordings."""

from __future__ import annotations

import hashlib
import math
import random
import wave
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.errors import RemoteError
from hotline.station.audio import (
    COMPLEXITY,
    RATE,
    SILENCE_DBFS,
    OpusDecoder,
    OpusEncoder,
    Pcm,
    frame_samples,
    level_dbfs,
    mix,
    mix_heard,
    mix_minus,
    packet_has_fec,
)
from hotline.station.jitter import JitterBuffer, Playout
from hotline.station.recording import OggOpusRecorder, WavWriter, read_wav

MS = 1_000_000  # nanoseconds


def tone(seconds: float = 2.0, hz: float = 440.0, amplitude: float = 8000.0) -> Pcm:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * hz * t) * amplitude).astype(np.int16)


def speech_like(seconds: float = 2.0) -> Pcm:
    """A voiced sound: a 220 Hz pitch with vibrato, ten falling harmonics, syllables at 3 Hz."""
    t = np.arange(int(RATE * seconds)) / RATE
    phase = 2 * np.pi * np.cumsum(220 * (1 + 0.15 * np.sin(2 * np.pi * 3 * t))) / RATE
    voice = np.zeros_like(t)
    for k in range(1, 11):
        voice += np.sin(k * phase) / k**1.2
    voice *= 0.55 + 0.45 * np.sin(2 * np.pi * 3 * t)
    peak = float(np.abs(voice).max())
    return (voice / peak * 8000).astype(np.int16)


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a.astype(np.float64), b.astype(np.float64)
    return float(x @ y / np.sqrt((x @ x) * (y @ y) + 1e-9))


def aligned_ncc(original: Pcm, decoded: Pcm, delay: int, skip: int = 4800) -> float:
    """The best correlation within a few samples of the codec's delay (the decoder's output lags
    the input by about the pre-skip; SILK's filters move it by a few samples)."""
    end = len(original) - 1000
    return max(
        ncc(original[skip:end], decoded[skip + lag : end + lag])
        for lag in range(delay - 24, delay + 9)
    )


def encode_all(signal: Pcm, frame_ms: int = 20) -> tuple[OpusEncoder, list[bytes]]:
    encoder = OpusEncoder(frame_ms)
    n = encoder.frame_samples
    return encoder, [encoder.encode(signal[i : i + n]) for i in range(0, len(signal), n)]


# --- the codec -----------------------------------------------------------------------------


@pytest.mark.parametrize("frame_ms", [20, 10])
@pytest.mark.parametrize("make", [tone, speech_like])
def test_opus_round_trip_keeps_the_waveform(make: Callable[[], Pcm], frame_ms: int) -> None:
    signal = make()
    encoder, packets = encode_all(signal, frame_ms)
    assert len(packets) == len(signal) // encoder.frame_samples  # one packet per frame
    decoder = OpusDecoder(frame_ms)
    decoded = np.concatenate([decoder.decode(p) for p in packets])
    assert decoded.dtype == np.int16
    assert len(decoded) == len(signal)
    assert encoder.pre_skip == 312
    assert aligned_ncc(signal, decoded, encoder.pre_skip) > 0.9


@pytest.mark.parametrize("frame_ms", [20, 10])
def test_at_a_constant_bit_rate_speech_and_silence_make_packets_of_one_length(
    frame_ms: int,
) -> None:
    """A packet's length travels in clear: at a variable bit rate it follows the speech, and
    gives away what is said (RFC 6562). A station encodes at a constant one unless told not to."""
    signal = np.concatenate([speech_like(1.0), np.zeros(RATE, np.int16), speech_like(1.0)])
    n = frame_samples(frame_ms)

    def lengths(encoder: OpusEncoder) -> set[int]:
        return {len(encoder.encode(signal[i : i + n])) for i in range(0, len(signal), n)}

    assert lengths(OpusEncoder(frame_ms)) == {64000 * frame_ms // 8000}
    assert lengths(OpusEncoder(frame_ms, 48000)) == {48000 * frame_ms // 8000}
    assert len(lengths(OpusEncoder(frame_ms, constant_bitrate=False))) > 10


def test_encoder_refuses_anything_but_one_frame() -> None:
    encoder = OpusEncoder()
    wrongs: list[Any] = [np.zeros(959, np.int16), np.zeros(960, np.float32), np.zeros((1, 960))]
    for wrong in wrongs:
        with pytest.raises(ValueError, match="960"):
            encoder.encode(wrong)
    assert len(encoder.encode(np.zeros(960, np.int16))) > 0  # and still works


def test_decoder_refuses_bad_packets_and_keeps_its_state() -> None:
    _, packets = encode_all(speech_like(0.4))
    _, short = encode_all(speech_like(0.02), frame_ms=10)
    clean, hit = OpusDecoder(), OpusDecoder()
    for i, packet in enumerate(packets):
        if i == 5:
            for bad in (b"", b"\xff\xff", short[0]):  # empty, malformed, a 10 ms packet
                with pytest.raises(RemoteError):
                    hit.decode(bad)
        assert np.array_equal(clean.decode(packet), hit.decode(packet))


def test_concealment_continues_the_tone() -> None:
    signal = tone()
    _, packets = encode_all(signal)
    decoder = OpusDecoder()
    for packet in packets[:50]:
        decoder.decode(packet)
    concealed = decoder.conceal()
    assert level_dbfs(concealed) > level_dbfs(signal) - 20  # not silence
    spectrum = np.abs(np.fft.rfft(concealed.astype(np.float64), n=48000))  # 1 Hz bins
    assert abs(int(np.argmax(spectrum)) - 440) < 20  # the same pitch goes on


def test_fec_recovers_a_lost_packet_better_than_concealment() -> None:
    signal = speech_like()
    _, packets = encode_all(signal)
    delay = 306  # the measured lag of this voice through the codec (see aligned_ncc)
    carrying = [i for i in range(10, 95) if packet_has_fec(packets[i + 1])]
    assert len(carrying) > 40  # voiced speech carries FEC in most packets
    scores: dict[str, list[float]] = {"fec": [], "plc": []}
    for lost in carrying[::6]:
        for how, found in scores.items():
            decoder = OpusDecoder()
            for packet in packets[:lost]:
                decoder.decode(packet)
            frame = decoder.recover(packets[lost + 1]) if how == "fec" else decoder.conceal()
            start = lost * 960 - delay
            found.append(ncc(signal[start : start + 960], frame))
    assert np.mean(scores["fec"]) > 0.85
    assert np.mean(scores["fec"]) > np.mean(scores["plc"]) + 0.1


# --- the jitter buffer -----------------------------------------------------------------------

FRAME_NS = 20 * MS
Arrival = tuple[int, int, int]  # seq, timestamp (samples), arrival (ns)


def steady(count: int, transit_ms: float = 5, clock: float = 1.0) -> list[Arrival]:
    """Packets sent every 20 ms of the sender's clock (`clock` times real time)."""
    return [(s, s * 960, int(s * FRAME_NS / clock + transit_ms * MS)) for s in range(count)]


class Line:
    """Packets delivered at their arrival times to a buffer popped every 20 ms, as the station
    does; time is simulated."""

    def __init__(
        self,
        buffer: JitterBuffer,
        arrivals: Iterable[Arrival],
        payload: Callable[[int], bytes] = lambda seq: f"{seq}".encode(),
    ) -> None:
        self.buffer = buffer
        self.payload = payload
        self.pending = sorted(arrivals, key=lambda a: a[2])
        self.now = 0

    def run(self, until_ns: int) -> list[Playout | None]:
        out: list[Playout | None] = []
        while self.now < until_ns:
            while self.pending and self.pending[0][2] <= self.now:
                seq, ts, at = self.pending.pop(0)
                self.buffer.push(seq, ts, self.payload(seq), at)
            out.append(self.buffer.pop(self.now))
            self.now += FRAME_NS
        return out


def play(buffer: JitterBuffer, arrivals: Iterable[Arrival], until_ns: int) -> list[Playout | None]:
    return Line(buffer, arrivals).run(until_ns)


def played(out: list[Playout | None]) -> list[tuple[str, int]]:
    return [(p.kind, p.seq) for p in out if p is not None]


def test_nothing_plays_before_the_first_packet() -> None:
    buffer = JitterBuffer()
    assert [buffer.pop(t * FRAME_NS) for t in range(10)] == [None] * 10


def test_in_order_packets_play_in_order() -> None:
    buffer = JitterBuffer()
    out = play(buffer, steady(50), 52 * FRAME_NS)  # 5 ms transit, then the 20 ms minimum delay
    assert out[:2] == [None, None]
    assert played(out) == [("packet", s) for s in range(50)]
    assert (buffer.received, buffer.played, buffer.lost, buffer.concealed) == (50, 50, 0, 0)
    assert [p.opus for p in out[2:5] if p is not None] == [b"0", b"1", b"2"]
    assert buffer.delay_ms == pytest.approx(35)  # played 35 ms after it arrived: jitter is zero


def test_reordered_packets_play_in_order() -> None:
    arrivals = [(s, ts, at + (10 * MS if s % 2 == 0 else 0)) for s, ts, at in steady(50)]
    buffer = JitterBuffer()
    out = play(buffer, arrivals, 52 * FRAME_NS)
    assert played(out) == [("packet", s) for s in range(50)]
    assert buffer.lost == buffer.concealed == 0


def test_duplicates_are_refused_and_played_once() -> None:
    buffer = JitterBuffer()
    assert buffer.push(0, 0, b"0", 0) == "accepted"
    assert buffer.push(0, 0, b"0", MS) == "duplicate"
    out = play(buffer, steady(30)[1:] * 2, 31 * FRAME_NS)
    assert played(out) == [("packet", s) for s in range(30)]
    assert buffer.duplicate == 30
    assert buffer.push(5, 5 * 960, b"5", 33 * FRAME_NS) == "duplicate"  # even once played


def test_a_late_packet_is_refused_and_counted_lost() -> None:
    arrivals = [(s, ts, at + (300 * MS if s == 10 else 0)) for s, ts, at in steady(40)]
    buffer = JitterBuffer(has_fec=lambda _: False)
    out = play(buffer, arrivals, 42 * FRAME_NS)
    assert played(out) == [("packet", s) if s != 10 else ("plc", 10) for s in range(40)]
    assert (buffer.late, buffer.lost, buffer.concealed, buffer.played) == (1, 1, 1, 39)


def test_lost_packets_are_recovered_from_the_next_one() -> None:
    buffer = JitterBuffer(has_fec=lambda _: True)
    out = play(buffer, [a for a in steady(40) if a[0] not in (10, 20, 21)], 42 * FRAME_NS)
    assert played(out)[9:24] == [
        ("packet", 9),
        ("fec", 10),  # from packet 11
        *[("packet", s) for s in range(11, 20)],
        ("plc", 20),  # waiting: nothing buffered behind it yet
        ("plc", 20),  # lost: packet 22 is there, 21 is not
        ("fec", 21),  # from packet 22
        ("packet", 22),
    ]
    fec = next(p for p in out if p is not None and p.kind == "fec")
    assert fec.opus == b"11"  # the packet carrying the lost frame's redundancy
    assert (buffer.lost, buffer.recovered_fec, buffer.concealed) == (3, 2, 2)


def test_the_delay_follows_the_jitter_up_and_back_down() -> None:
    rng = random.Random(7)
    n = 500  # 10 s of packets
    jittery = [(s, ts, at + rng.randrange(0, 100) * MS) for s, ts, at in steady(n)]
    calm = [(s + n, ts + n * 960, at + n * FRAME_NS) for s, ts, at in steady(n)]
    buffer = JitterBuffer()
    line = Line(buffer, jittery + calm)
    line.run(n * FRAME_NS)
    assert buffer.target_delay_ms > 80  # most of the 100 ms spread
    assert buffer.delay_ms > buffer.target_delay_ms
    assert buffer.lost < 5  # out of 500, with up to 100 ms of jitter
    lost = buffer.lost
    line.run(2 * n * FRAME_NS)
    assert buffer.target_delay_ms == 20
    assert buffer.delay_ms <= 40
    assert buffer.dropped >= 3
    assert buffer.lost == lost


@pytest.mark.parametrize("clock", [1.001, 0.999])
def test_clock_drift_keeps_the_delay_bounded(clock: float) -> None:
    buffer = JitterBuffer()
    line = Line(buffer, steady(int(3000 * clock), clock=clock))  # 60 s, a clock 0.1% off
    delays = []
    while line.now < 60_000 * MS:
        line.run(line.now + FRAME_NS)
        delays.append(buffer.delay_ms)
    assert max(delays) <= 45  # without control, the fast clock would add 60 ms by the end
    assert buffer.lost == 0
    if clock > 1:
        assert buffer.dropped >= 2
    else:
        assert 1 <= buffer.concealed <= 4  # each slip is one frame concealed, nothing lost


def test_the_frames_dropped_are_quiet_ones() -> None:
    buffer = JitterBuffer()
    # Every tenth packet is small, as Opus packets of near-silence are.
    line = Line(buffer, steady(3003, clock=1.001), lambda s: b"q" if s % 10 == 5 else b"v" * 80)
    out = line.run(60_000 * MS)
    skipped = set(range(2990)) - {s for k, s in played(out) if k == "packet"}
    assert buffer.dropped == len(skipped) >= 2
    assert all(s % 10 == 5 for s in skipped)
    assert buffer.lost == 0


def test_at_a_constant_bit_rate_the_station_says_which_frames_are_quiet() -> None:
    """Every packet as long as the others: the buffer asks `is_quiet` (the station decodes)."""
    buffer = JitterBuffer(is_quiet=lambda opus: opus == b"quiet")
    packets = lambda s: b"quiet" if s % 10 == 5 else b"voice"  # noqa: E731
    out = Line(buffer, steady(3003, clock=1.001), packets).run(60_000 * MS)
    skipped = set(range(2990)) - {s for k, s in played(out) if k == "packet"}
    assert buffer.dropped == len(skipped) >= 2
    assert all(s % 10 == 5 for s in skipped)


def test_a_pause_plays_silence_and_is_not_loss() -> None:
    first = steady(20)
    resumed = [(s + 20, (s + 120) * 960, at + 120 * FRAME_NS) for s, _, at in steady(20)]
    buffer = JitterBuffer()
    out = play(buffer, first + resumed, 142 * FRAME_NS)
    assert out[30:120] == [None] * 90  # a 2 s pause: silence after a few concealed frames
    assert [s for k, s in played(out) if k == "packet"] == list(range(40))
    assert buffer.lost == 0
    assert buffer.concealed == 4
    assert buffer.paused == 1  # playing stopped once, for the pause
    assert buffer.figures()["paused"] == 1


def test_a_lossy_call_through_buffer_and_decoder() -> None:
    signal = speech_like()
    encoder, packets = encode_all(signal)
    rng = random.Random(11)
    lost = {s for s in range(5, 95) if rng.random() < 0.08}
    buffer, decoder = JitterBuffer(), OpusDecoder()
    line = Line(buffer, [a for a in steady(100) if a[0] not in lost], lambda s: packets[s])
    frames = [decoder.play(p) for p in line.run(102 * FRAME_NS) if p is not None]
    assert len(frames) == 100
    assert buffer.lost == len(lost)
    assert buffer.recovered_fec > len(lost) // 2
    assert aligned_ncc(signal, np.concatenate(frames), encoder.pre_skip) > 0.8


def test_timestamps_wrap_at_32_bits() -> None:
    start = 2**32 - 10 * 960  # the sender's 32-bit clock wraps after the tenth packet
    arrivals = [(s, (start + ts) % 2**32, at) for s, ts, at in steady(30)]
    buffer = JitterBuffer()
    out = play(buffer, arrivals, 32 * FRAME_NS)
    assert played(out) == [("packet", s) for s in range(30)]
    figures = buffer.figures()
    assert (figures["played"], figures["lost"], figures["late"], figures["delay_ms"]) == (
        30,
        0,
        0,
        35,
    )


@given(st.integers(1, 450), st.integers(-2, 2), st.integers(0, 2**32))
def test_the_target_is_the_spread_of_the_last_four_seconds_of_transits(
    count: int, drift_ms: int, seed: int
) -> None:
    """Against the definition, over more packets than the window holds: the 99th percentile of
    the last 200 transits (4 s of 20 ms frames) above their fastest, at least the floor (a frame
    for 10 s after a gap in the sequence), at most the ceiling."""
    rng = random.Random(seed)
    buffer = JitterBuffer(min_delay_ms=5, max_delay_ms=200)
    transits: list[int] = []
    seq, newest, gap_ns = 0, -1, None
    for _ in range(count):
        skip, pop = rng.choice((0, 0, 0, 1, 3)), rng.random() < 0.9
        jitter_ms = rng.randrange(rng.choice((5, 40, 150)))
        seq += skip  # frames that never come: a gap
        arrival = seq * FRAME_NS + jitter_ms * MS + seq // 10 * drift_ms * MS + 50 * MS
        outcome = buffer.push(seq, seq * 960, b"x", arrival)
        if outcome in ("accepted", "late"):
            transits.append(arrival - seq * FRAME_NS)
        if outcome == "accepted":
            gap_ns = arrival if seq > newest + 1 and newest >= 0 else gap_ns
            newest = max(newest, seq)
        window = sorted(transits[-200:])
        floor = 20 * MS if gap_ns is not None and arrival - gap_ns < 10_000 * MS else 5 * MS
        spread = window[int(0.99 * (len(window) - 1))] - window[0]
        assert round(buffer.target_delay_ms * MS) == min(max(spread, floor), 200 * MS)
        if pop:
            buffer.pop(arrival)
        seq += 1


def test_the_buffer_says_when_its_next_frame_is_due() -> None:
    """A playout clock beats where the buffer's frames are due, not at a tick of its own that
    would hold each frame up to a period longer."""
    buffer = JitterBuffer(min_delay_ms=5)
    assert buffer.due_ns() is None  # nothing to play
    buffer.push(0, 0, b"0", 5 * MS)  # 5 ms of transit
    assert buffer.due_ns() == 10 * MS  # its arrival and the 5 ms target
    assert buffer.pop(buffer.due_ns() or 0) == Playout("packet", 0, b"0")
    buffer.push(1, 960, b"1", 26 * MS)  # 1 ms slower than the fastest: within the 5 ms target
    assert buffer.due_ns() == 30 * MS  # its time (20 ms), the fastest transit and the target
    buffer.pop(30 * MS)
    assert buffer.delay_ms == buffer.target_delay_ms == 5
    for seq in range(2, 12):  # a spread of 12 ms in the transits: the target follows it
        buffer.push(seq, seq * 960, str(seq).encode(), seq * FRAME_NS + (17 if seq % 2 else 5) * MS)
    assert buffer.target_delay_ms == 12
    assert buffer.due_ns() == 40 * MS + 5 * MS + 12 * MS


def test_the_buffer_says_when_its_next_packet_is_probably_on_its_way() -> None:
    """What lets a playout clock wait a little for a late packet instead of concealing a frame
    of speech: only for the first missing frame, and only while less than the target is
    buffered behind it (with more, the packet is lost, not late)."""
    buffer = JitterBuffer(min_delay_ms=5)
    assert not buffer.awaiting_next()  # not playing yet
    for seq in range(3):
        buffer.push(seq, seq * 960, b"x", seq * FRAME_NS + 5 * MS)
    buffer.pop(10 * MS)
    assert not buffer.awaiting_next()  # the next packet is here
    buffer.pop(30 * MS)
    buffer.pop(50 * MS)
    assert buffer.awaiting_next()  # packet 3 is due and not here, nothing behind it
    assert buffer.pop(70 * MS) == Playout("plc", 3)  # concealed in its turn
    assert not buffer.awaiting_next()  # once concealed, it is not waited for again
    buffer.push(3, 3 * 960, b"x", 72 * MS)
    assert buffer.pop(90 * MS) == Playout("packet", 3, b"x")
    for seq in (5, 6):  # packet 4 missing, a frame and more buffered behind it: lost, not late
        buffer.push(seq, seq * 960, b"x", seq * FRAME_NS + 5 * MS)
    assert not buffer.awaiting_next()


def test_after_a_gap_the_target_holds_a_frame_so_fec_can_rebuild_the_next_loss() -> None:
    buffer = JitterBuffer(min_delay_ms=5, has_fec=lambda _: True)
    out = play(buffer, [a for a in steady(60) if a[0] not in (20, 40)], 62 * FRAME_NS)
    assert buffer.target_delay_ms == 20  # a frame: the one after a lost frame is there in time
    assert ("fec", 40) in played(out)  # the second loss, rebuilt from packet 41's FEC
    quiet = JitterBuffer(min_delay_ms=5)
    play(quiet, steady(60), 62 * FRAME_NS)
    assert quiet.target_delay_ms == 5  # no gap, no frame of delay added


def test_packets_far_ahead_are_refused() -> None:
    buffer = JitterBuffer()
    buffer.push(0, 0, b"0", 0)
    assert buffer.push(1, 10 * RATE, b"1", MS) == "early"
    assert buffer.early == 1


# --- the mixer -------------------------------------------------------------------------------


def test_mix_saturates_instead_of_wrapping() -> None:
    loud = np.full(960, 30000, np.int16)
    assert np.all(mix([loud, loud]) == 32767)
    assert np.all(mix([-loud, -loud, -loud]) == -32768)
    assert np.array_equal(mix([loud, -loud, loud]), loud)  # int32 sum: no wrap in between
    assert np.array_equal(mix([], samples=480), np.zeros(480, np.int16))


def test_mix_minus_never_returns_anyones_own_voice() -> None:
    rng = np.random.default_rng(3)
    voices = {who: rng.integers(-12000, 12000, 960).astype(np.int16) for who in "abc"}
    peer = rng.integers(-12000, 12000, 960).astype(np.int16)
    outgoing, heard = mix_minus(voices, peer, ["a", "b", "c", "listener"])
    assert np.array_equal(outgoing, mix(list(voices.values())))
    for who in "abc":
        others = [v for w, v in voices.items() if w != who]
        assert np.array_equal(heard[who], mix([peer, *others]))
    assert np.array_equal(heard["listener"], mix([peer, *voices.values()]))
    outgoing, heard = mix_minus({"a": voices["a"]}, None, ["a"])
    assert not heard["a"].any()
    assert np.array_equal(outgoing, voices["a"])


def test_each_hears_every_voice_but_their_own_in_every_make_up_of_a_call() -> None:
    """Whoever hears one voice gets it as it is; two or more are added up and saturated; nobody
    ever hears themselves, whether the peer speaks or not."""
    rng = np.random.default_rng(5)
    for speakers in range(4):
        for with_peer in (False, True):
            voices = {f"s{i}": rng.integers(-30000, 30000, 480).astype(np.int16)
                      for i in range(speakers)}  # fmt: skip
            peer = rng.integers(-30000, 30000, 480).astype(np.int16) if with_peer else None
            listeners = [*voices, "listener"]
            heard = mix_heard(voices, peer, listeners, 480)
            assert list(heard) == listeners
            for who in listeners:
                others = [v for w, v in voices.items() if w != who]
                others += [peer] if peer is not None else []
                assert np.array_equal(heard[who], mix(others, 480))
                assert heard[who].dtype == np.int16
                assert heard[who].shape == (480,)
    with pytest.raises(ValueError, match="cannot be mixed"):
        mix_heard({"a": np.zeros(480, np.int16)}, np.zeros(960, np.int16), ["a"], 480)


def test_level_dbfs_is_the_mean_square_of_the_samples() -> None:
    rng = np.random.default_rng(6)
    for frame in (rng.integers(-32768, 32767, 960).astype(np.int16), np.full(3, -32768, np.int16)):
        mean_square = float(np.mean(np.square(frame, dtype=np.float64)))
        assert level_dbfs(frame) == max(20 * math.log10(math.sqrt(mean_square) / 32768), -100.0)


def test_level_dbfs() -> None:
    assert level_dbfs(tone(0.02, 1000, 32767)) == pytest.approx(-3.01, abs=0.05)
    assert level_dbfs(tone(0.02, 1000, 3277)) == pytest.approx(-23.01, abs=0.05)
    assert level_dbfs(np.zeros(960, np.int16)) == SILENCE_DBFS


# --- recordings ------------------------------------------------------------------------------


def test_ogg_recording_decodes_back_and_its_hash_is_the_files(tmp_path: Path) -> None:
    signal = speech_like()
    encoder, packets = encode_all(signal)
    arrived = [i for i in range(100) if i not in (40, 41)]  # two lost on the way
    swapped = [arrived[i ^ 1] for i in range(len(arrived))]  # and every pair reordered
    results = []
    for name, order in (("in-order.opus", arrived), ("call.opus", swapped)):
        path = tmp_path / name
        with OggOpusRecorder(path) as recorder:
            for i in order:
                assert recorder.write(packets[i], 5000 + i * 960)
            assert not recorder.write(packets[3], 5000 + 3 * 960)  # too late for the file
        assert (recorder.packets, recorder.filled) == (98, 2)
        results.append(recorder.close())
        assert results[-1] == (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)
    assert results[0] == results[1]  # the same file, whatever the order of arrival
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.sample_rate) == ("opus", RATE)
        assert (stream.codec_context.extradata or b"")[:12] == b"OpusHead\x01\x01\x38\x01"
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(stream)]
    decoded = (np.concatenate(frames) * 32767).astype(np.int16)
    assert len(decoded) == len(signal) - encoder.pre_skip  # the gap kept its time
    # Pre-skip already removed by the player: what is left lags by the codec's residual delay.
    assert aligned_ncc(signal[: 38 * 960], decoded[: 38 * 960], 0) > 0.9


def test_wav_round_trip_and_conversion(tmp_path: Path) -> None:
    signal = speech_like(0.5)
    with WavWriter(tmp_path / "a.wav") as writer:
        for i in range(0, len(signal), 960):
            writer.write(signal[i : i + 960])
    assert np.array_equal(read_wav(tmp_path / "a.wav"), signal)

    t = np.arange(16000) / 16000  # 1 s of 16 kHz stereo, a 500 Hz tone on both channels
    stereo = np.repeat((np.sin(2 * np.pi * 500 * t) * 8000).astype("<i2"), 2)
    with wave.open(str(tmp_path / "b.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(stereo.tobytes())
    converted = read_wav(tmp_path / "b.wav")
    assert abs(len(converted) - RATE) < 100
    spectrum = np.abs(np.fft.rfft(converted.astype(np.float64), n=RATE))
    assert abs(int(np.argmax(spectrum)) - 500) < 3
    assert level_dbfs(converted) == pytest.approx(level_dbfs(tone(1, 500, 8000)), abs=1)

    (tmp_path / "c.wav").write_bytes(b"RIFF not really")
    with pytest.raises(RemoteError):
        read_wav(tmp_path / "c.wav")


def test_the_encoder_works_at_the_complexity_it_is_given() -> None:
    """The station's encoder runs at COMPLEXITY (the cost of a call hangs on it): FFmpeg takes
    the setting, and another complexity gives other packets."""
    speech = [
        (np.sin(np.arange(960) * 0.03 * (i % 7 + 1)) * 9000).astype(np.int16) for i in range(50)
    ]

    def packets(encoder: OpusEncoder) -> list[bytes]:
        return [encoder.encode(frame) for frame in speech]

    assert packets(OpusEncoder()) == packets(OpusEncoder(complexity=COMPLEXITY))
    assert packets(OpusEncoder()) != packets(OpusEncoder(complexity=10))
