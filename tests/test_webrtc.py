"""The station's side of the console's browser phone (hotline.station.webrtc), with aiortc's own
objects: what the station does with the page's packets, what it asks of the page, and what it
sends it. The whole phone, in chromium between two stations, is in test_console_phone_browser."""

from __future__ import annotations

import asyncio
from typing import Any

import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket

from hotline.station.audio import OpusDecoder, OpusEncoder, packet_samples
from hotline.station.webrtc import _no_prefetch, _ToBrowser, with_ptime

FRAME = 960  # 20 ms at 48 kHz, the calls' default frame


def _page_packet(seq: int) -> RtpPacket:
    """An Opus packet from the page as aiortc's receiver hands it to its jitter buffer."""
    packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * FRAME)
    packet.payload = bytes([0xF8, seq & 0xFF])
    packet._data = packet.payload  # type: ignore[attr-defined]  # depayloaded, as aiortc does
    return packet


def _receiving_buffer() -> object:
    """The audio jitter buffer of a station that took a page's offer, as BrowserLeg does."""

    async def make() -> object:
        page, station = RTCPeerConnection(), RTCPeerConnection()
        page.addTransceiver("audio")
        await page.setLocalDescription(await page.createOffer())
        await station.setRemoteDescription(page.localDescription)
        _no_prefetch(station)
        (receiver,) = station.getReceivers()
        for pc in (page, station):
            await pc.close()
        return receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]

    return asyncio.run(make())


def test_each_packet_from_the_page_is_released_the_moment_it_comes() -> None:
    # aiortc released a packet only once the next one had come: 20 ms on every word.
    buffer = _receiving_buffer()
    for seq in (65534, 65535, 0, 1):  # across the sequence number's wrap
        _, frame = buffer.add(_page_packet(seq))  # type: ignore[attr-defined]
        assert frame is not None
        assert frame.data == bytes([0xF8, seq & 0xFF])
        assert frame.timestamp == seq * FRAME


def test_a_late_or_repeated_packet_from_the_page_is_dropped() -> None:
    buffer = _receiving_buffer()
    for seq in (10, 12):
        assert buffer.add(_page_packet(seq))[1] is not None  # type: ignore[attr-defined]
    assert buffer.add(_page_packet(12))[1] is None  # type: ignore[attr-defined]
    assert buffer.add(_page_packet(11))[1] is None  # type: ignore[attr-defined]
    assert buffer.add(_page_packet(13))[1] is not None  # type: ignore[attr-defined]


def test_the_answer_asks_the_page_for_packets_of_the_calls_frame() -> None:
    async def negotiate() -> tuple[str, str]:
        page, station = RTCPeerConnection(), RTCPeerConnection()
        page.addTransceiver("audio")
        station.addTransceiver("audio")
        await page.setLocalDescription(await page.createOffer())
        await station.setRemoteDescription(page.localDescription)
        await station.setLocalDescription(await station.createAnswer())
        answer = with_ptime(with_ptime(station.localDescription.sdp, 20), 10)
        await page.setRemoteDescription(RTCSessionDescription(answer, "answer"))  # it parses
        for pc in (page, station):
            await pc.close()
        return station.localDescription.sdp, answer

    plain, answer = asyncio.run(negotiate())
    assert "a=ptime" not in plain
    audio = answer[answer.index("m=audio") :]
    assert [line for line in answer.splitlines() if line.startswith("a=ptime")] == ["a=ptime:10"]
    assert "a=ptime:10" in audio


def _tone(amplitude: int, samples: int = FRAME) -> np.ndarray:
    t = np.arange(samples) / 48000
    return np.asarray(amplitude * np.sin(2 * np.pi * 1000 * t), dtype=np.int16)


def _sent(track: _ToBrowser, count: int) -> list[av.Packet[Any]]:
    async def take() -> list[av.Packet[Any]]:
        return [await track.recv() for _ in range(count)]

    return asyncio.run(take())


def test_the_page_gets_opus_packets_of_the_calls_frame_with_little_look_ahead() -> None:
    track = _ToBrowser(FRAME)
    decoder, heard = OpusDecoder(20), []
    for k in range(10):
        track.push(_tone(12000))
        (packet,) = _sent(track, 1)
        assert isinstance(packet, av.Packet)  # encoded here, not by aiortc's encoder
        assert packet.pts == k * FRAME
        assert packet_samples(bytes(packet)) == FRAME
        heard.append(decoder.decode(bytes(packet)))
    # libopus's restricted low-delay mode: 2.5 ms of look-ahead (voip, aiortc's: 6.5 ms).
    assert track.encoder.look_ahead == 120
    level = np.abs(np.concatenate(heard)[FRAME:].astype(float)).max()
    assert 9000 < level < 15000  # the tone, barely touched


def test_what_waited_before_the_page_was_connected_is_not_sent_late() -> None:
    # Sent all at once when the connection came up, the page's jitter buffer would start that
    # far behind; the first packet is the newest frame.
    track = _ToBrowser(FRAME)
    for amplitude in (0, 0, 16000):
        track.push(_tone(amplitude))
    first, second = _sent(track, 2)
    decoder = OpusDecoder(20)
    assert np.abs(decoder.decode(bytes(first))[200:].astype(float)).max() > 8000
    assert np.abs(decoder.decode(bytes(second))[240:].astype(float)).max() < 8000  # silence


def test_a_frame_waiting_is_sent_however_late_the_stream_is() -> None:
    # The stream's clock says the next frame was due long ago (the loop stalled): the frame
    # that waits is sent, not silence in its place.
    track = _ToBrowser(FRAME)
    track.push(_tone(0))
    _sent(track, 1)

    async def late() -> av.Packet[Any]:
        track._anchor = asyncio.get_running_loop().time() - 10.0
        track.push(_tone(16000))
        return await track.recv()

    packet = asyncio.run(late())
    decoder = OpusDecoder(20)
    assert np.abs(decoder.decode(bytes(packet)).astype(float)).max() > 8000


def test_a_frame_more_than_the_time_that_passed_is_taken_back_at_a_quiet_one() -> None:
    # The call's beat catches up after its jitter buffer concealed a late frame: the page is
    # sent a frame more than the time that passed. Chrome's jitter buffer would keep it as delay
    # for the rest of the call; the stream passes over the next quiet frame instead.
    track = _ToBrowser(FRAME)
    pushed: list[np.ndarray] = []

    async def speak() -> list[av.Packet[Any]]:
        loop = asyncio.get_running_loop()
        sent: list[av.Packet[Any]] = []

        async def send() -> None:
            while True:
                sent.append(await track.recv())

        sender = loop.create_task(send())
        start = loop.time()
        for k in range(80):  # 1.6 s of frames on the call's clock, and one more at 1.2 s
            await asyncio.sleep(max(0.0, start + k * FRAME / 48000 - loop.time()))
            extra = [_tone(12000)] if k == 60 else []
            for frame in [*extra, _tone(0 if k in (66, 75) else 12000)]:
                pushed.append(frame)
                track.push(frame)
        await asyncio.sleep(0.03)
        sender.cancel()
        return sent

    sent = asyncio.run(speak())
    assert track.passed_over == 1
    assert len(sent) == len(pushed) - 1
    decoder = OpusDecoder(20)
    loud = sum(np.abs(decoder.decode(bytes(p))[240:].astype(float)).max() > 6000 for p in sent)
    assert loud == sum(1 for f in pushed if f.any())  # every loud frame went; a quiet one did not


def test_the_peers_packets_go_to_the_page_as_they_came_in_one_stream() -> None:
    # Whoever hears the peer alone is sent the peer's packets themselves, as they come: no
    # second jitter buffer in front of the page's, no encoding again (2.5 ms of look-ahead).
    # A frame lost on the way leaves its gap in the timestamps, for the page's decoder to
    # conceal from its own state, as for any loss; one out of order goes back to its place.
    call_encoder, station_decoder = OpusEncoder(20, 40000), OpusDecoder(20)
    track = _ToBrowser(FRAME)
    base = 2**32 - 3 * FRAME  # the peer's timestamps wrap on the way
    peers = {k: call_encoder.encode(_tone(12000)) for k in range(12)}
    sent: list[av.Packet[Any]] = []
    for k in (0, 1, 2, 3, 4, 5, 8, 7, 9, 10, 11):  # 6 lost, 8 before 7
        track.push_packet(peers[k], (base + k * FRAME) % 2**32)
        sent += _sent(track, 1)
    assert track.forwarded == 11
    assert [bytes(p) for p in sent] == [peers[k] for k in (0, 1, 2, 3, 4, 5, 8, 7, 9, 10, 11)]
    assert [p.pts for p in sent] == [k * FRAME for k in (0, 1, 2, 3, 4, 5, 8, 7, 9, 10, 11)]
    # The page's decoder, in timestamp order, plays what the station's own decoder would.
    page, at_station = OpusDecoder(20), []
    for k in range(12):
        at_station.append(station_decoder.conceal() if k == 6 else station_decoder.decode(peers[k]))
    by_pts = {(p.pts or 0) // FRAME: bytes(p) for p in sent}
    heard = [page.conceal() if k not in by_pts else page.decode(by_pts[k]) for k in range(12)]
    assert all(np.array_equal(a, b) for a, b in zip(heard, at_station, strict=True))
    assert all(8000 < np.abs(f.astype(float)).max() < 16000 for f in heard[1:7])  # the tone


def test_a_frame_of_the_mix_between_forwarded_packets_is_encoded_in_the_same_stream() -> None:
    # An interpreter joined: the mix is encoded here, and the stream goes on a frame apart;
    # the peer's packets after it go on from there, whatever their timestamps.
    call_encoder, station_decoder = OpusEncoder(20, 40000), OpusDecoder(20)
    track = _ToBrowser(FRAME)
    sent: list[av.Packet[Any]] = []
    for k in range(8):
        packet = call_encoder.encode(_tone(12000))
        if k == 5:
            track.push(station_decoder.decode(packet))
        else:
            track.push_packet(packet, 5000 + k * FRAME + (7 * FRAME if k > 5 else 0))
        sent += _sent(track, 1)
    assert track.forwarded == 7
    assert [p.pts for p in sent] == [k * FRAME for k in range(8)]
    page = OpusDecoder(20)
    levels = [np.abs(page.decode(bytes(p)).astype(float)).max() for p in sent]
    assert 8000 < levels[5] < 16000


def test_a_pause_in_the_peers_packets_is_not_filled_with_silence() -> None:
    # Silence sent into the gap would take the time of the packets that come late, and the
    # page would play silence in their place; its own jitter buffer fills the gap instead.
    track = _ToBrowser(FRAME)
    encoder = OpusEncoder(20, 40000)
    packets = [encoder.encode(_tone(12000)) for _ in range(2)]

    async def pause() -> list[av.Packet[Any]]:
        track.push_packet(packets[0], 0)
        first = await track.recv()
        asyncio.get_running_loop().call_later(0.1, track.push_packet, packets[1], FRAME)
        return [first, await track.recv()]

    sent = asyncio.run(pause())
    assert [bytes(p) for p in sent] == packets
    assert [p.pts for p in sent] == [0, FRAME]
