"""Dialling a path that is down (hotline.station.redial, issue 16): promptly for the first minute,
never more than a few seconds apart after it, and a connection found as soon as the peer answers.
"""

from __future__ import annotations

import asyncio
import socket

from hotline.station.redial import CAP_S, PROMPT_CAP_S, PROMPT_FOR_S, STABLE_S, Backoff, connect


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _longest(low: float, high: float) -> float:
    return high  # the jitter at its longest


def test_a_path_down_is_dialled_within_half_a_second_for_a_minute_then_within_five() -> None:
    clock = Clock()
    backoff = Backoff(uniform=_longest, clock=clock)
    first = [backoff.pause() for _ in range(5)]
    assert first[0] <= 0.05  # at once, nearly
    assert first == sorted(first)
    prompt = [backoff.pause() for _ in range(200)]
    assert max(prompt) == PROMPT_CAP_S
    clock.now += PROMPT_FOR_S
    later = [backoff.pause() for _ in range(50)]
    assert max(later) == CAP_S  # a configured path: never more than a few seconds apart


def test_pauses_are_jittered_between_half_and_all_of_their_length() -> None:
    drawn: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        drawn.append((low, high))
        return low

    backoff = Backoff(uniform=uniform, clock=Clock())
    for _ in range(20):
        backoff.pause()
    assert set(drawn) == {(0.5, 1.0)}
    assert backoff.pause() == PROMPT_CAP_S / 2


def test_a_session_that_lived_starts_the_prompt_pauses_afresh_one_that_died_at_once_does_not() -> (
    None
):
    clock = Clock()
    backoff = Backoff(uniform=_longest, clock=clock)
    clock.now += 2 * PROMPT_FOR_S  # down for long: pauses of up to CAP_S
    for _ in range(20):
        backoff.pause()
    assert backoff.session_ended(STABLE_S - 1) == CAP_S  # a flap counts as one more failure
    assert backoff.session_ended(STABLE_S) == 0.0  # up for a while: dial again at once
    assert backoff.pause() <= 0.05


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connect_tries_again_until_the_peer_listens_and_returns_its_connection() -> None:
    async def scenario() -> tuple[int, bool]:
        port = _refused_port()
        failures: list[BaseException] = []
        dial = asyncio.ensure_future(
            connect("127.0.0.1", port, Backoff(), failures.append, lambda: False)
        )
        await asyncio.sleep(0.3)  # refused meanwhile, several times, each after a pause
        assert not dial.done()
        accepted = asyncio.Event()

        def on_accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()
            accepted.set()

        server = await asyncio.start_server(on_accept, "127.0.0.1", port)
        async with server:
            connected = await asyncio.wait_for(dial, 5)
            assert connected is not None
            await asyncio.wait_for(accepted.wait(), 5)
            connected[1].close()
            await connected[1].wait_closed()
        return len(failures), all(isinstance(f, ConnectionRefusedError) for f in failures)

    refused, all_refusals = asyncio.run(scenario())
    assert 2 <= refused <= 20  # tried again and again, but not in a busy loop
    assert all_refusals


def test_connect_gives_up_when_the_station_stops() -> None:
    async def scenario() -> object:
        stopping = False

        def stop_soon() -> bool:
            return stopping

        dial = asyncio.ensure_future(
            connect("127.0.0.1", _refused_port(), Backoff(), lambda exc: None, stop_soon)
        )
        await asyncio.sleep(0.1)
        stopping = True
        return await asyncio.wait_for(dial, 5)

    assert asyncio.run(scenario()) is None
