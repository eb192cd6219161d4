"""The console's phone in Debian's chromium, with fake microphones playing known signals: London's
operator calls Moscow from the link board, Moscow's console rings (a FLASH call takes the whole
screen, and a signed-out console says a call rings), Moscow answers, each side's voice reaches
the other (checked in the stations' recordings, by cross-correlation with what each microphone
played), a page reloaded mid-call rejoins it, and the one who hangs up ends it at both ends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from hotline.station.launch import StationProcess
from hotline.station.recording import WavWriter
from tests.consoledriver import chromium_path, open_console, show, staff, wait_up
from tests.test_call_station import _set_calls, similarity, speech_like


def _launch(playwright: Any, microphone: Path) -> Browser:
    """A chromium whose microphone plays `microphone` (looped), granted without asking."""
    return playwright.chromium.launch(  # type: ignore[no-any-return]
        executable_path=chromium_path(),
        headless=True,
        args=[
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}",
            "--allow-loopback-in-peer-connection",
            "--autoplay-policy=no-user-gesture-required",
        ],
    )


def chirps(seconds: float, seed: int) -> np.ndarray:
    """Gliding tones, a few a second: as unlike speech_like's harmonics as a voice can be, so
    each side's microphone is told apart from the other's in what was heard."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(48000 * seconds))
    t = np.arange(7200) / 48000
    for start in range(0, len(out) - 7200, 9600):
        f0, f1 = rng.uniform(500, 1500), rng.uniform(500, 1500)
        out[start : start + 7200] = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))
        out[start : start + 7200] *= np.hanning(7200)
    return np.asarray(out * 9000, dtype=np.int16)


def _heard(station: StationProcess) -> np.ndarray:
    """What a station received in its (one) recorded call, decoded."""
    (path,) = (station.data.path / "recordings").glob("*-received.opus")
    with av.open(str(path)) as container:
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
    return np.asarray(np.concatenate(frames) * 32767, dtype=np.int16)


def _audit(station: StationProcess) -> list[tuple[Any, ...]]:
    """The station's audit log as its store holds it: (at, actor, action, detail)."""
    from hotline.store.sqlite import SqliteStore  # noqa: PLC0415

    store = SqliteStore(station.data.store_file)
    try:
        return [tuple(row) for row in store._rows("SELECT at_ns, actor, action, detail FROM audit")]
    finally:
        store.close()


def _found_in(heard: np.ndarray, spoken: np.ndarray) -> float:
    """How well the best two seconds of what was heard match somewhere in what was spoken (the
    fake microphone loops its file, from wherever it was when the call began; a page reloaded
    mid-call leaves a gap)."""
    looped, step = np.tile(spoken, 3), 24000
    windows = [heard[i : i + 96000] for i in range(0, len(heard) - 96000, step)]
    return max((similarity(looped, w) for w in windows), default=0.0)


@pytest.fixture
def phones(
    stations: tuple[StationProcess, StationProcess], tmp_path: Path
) -> Iterator[tuple[Page, Page, StationProcess, StationProcess, np.ndarray, np.ndarray]]:
    london, moscow = stations
    _set_calls(london, record=True)  # the caller's setting: both stations record the call
    london.start()
    moscow.start()
    wait_up(london)
    wait_up(moscow)
    olga = staff(london, [("olga", "operator")])["olga"]
    ivan = staff(moscow, [("ivan", "operator")])["ivan"]
    spoken = {"london": speech_like(6.0, seed=21), "moscow": chirps(6.0, seed=22)}
    for name, signal in spoken.items():
        with WavWriter(tmp_path / f"{name}.wav") as writer:
            writer.write(signal)
    with sync_playwright() as playwright:
        at_london = _launch(playwright, tmp_path / "london.wav")
        at_moscow = _launch(playwright, tmp_path / "moscow.wav")
        try:
            yield (open_console(at_london, olga), open_console(at_moscow, ivan), london, moscow,
                   spoken["london"], spoken["moscow"])  # fmt: skip
        finally:
            at_london.close()
            at_moscow.close()


def test_a_call_from_the_board_rings_is_answered_and_carries_voice_both_ways(phones: Any) -> None:
    page_l, page_m, london, moscow, spoken_l, spoken_m = phones
    show(page_m, "traffic")  # Moscow's operator is busy with something else
    page_l.select_option('[data-link="moscow"] .call-precedence', "FLASH")
    page_l.click('[data-link="moscow"] .call-place')
    ring = page_m.wait_for_selector("#call-ring", state="visible")
    assert ring is not None
    text = page_m.inner_text("#call-ring")
    assert "FLASH" in text
    assert "olga" in text
    assert "This call is recorded" in text
    assert "flash" in (ring.get_attribute("class") or "")  # a FLASH call takes the whole screen
    covered = page_m.evaluate(
        """() => [[0.05, 0.05], [0.5, 0.5], [0.95, 0.95]].every(([x, y]) => document
            .elementFromPoint(innerWidth * x, innerHeight * y)?.closest('#call-ring') !== null)"""
    )
    assert covered  # over the view the operator was in, corner to corner
    signed_out = httpx.get(f"{moscow.console}/console/ringing").json()
    assert signed_out == {"ringing": 1, "flash": True}  # says that a call rings, never who

    page_m.click("#call-answer")
    page_m.wait_for_selector("#call-panel", state="visible")
    page_l.wait_for_function("document.querySelector('#call-state').textContent === 'in call'")
    time.sleep(3)
    page_m.reload()  # the page rejoins the call it was in
    page_m.wait_for_selector("#call-panel", state="visible", timeout=20_000)
    time.sleep(3)
    page_l.wait_for_selector("#call-transport:text('udp')")
    page_l.click("#call-end")
    page_m.wait_for_selector("#call-panel", state="hidden", timeout=20_000)

    def ended(station: StationProcess) -> bool:
        calls = station.call("GET", "/api/v1/calls")["calls"]
        return bool(calls) and calls[0]["state"] == "ended" and "record" in calls[0]

    deadline = time.monotonic() + 20
    while not (ended(london) and ended(moscow)) and time.monotonic() < deadline:
        time.sleep(0.2)
    heard_at_moscow, heard_at_london = _heard(moscow), _heard(london)
    assert len(heard_at_moscow) > 4 * 48000
    assert _found_in(heard_at_moscow, spoken_l) > 0.5  # London's microphone, heard in Moscow
    assert _found_in(heard_at_london, spoken_m) > 0.5  # and Moscow's in London
    assert _found_in(heard_at_moscow, spoken_m) < 0.4  # not Moscow's own voice back


def test_an_interpreter_is_heard_at_the_peer_and_a_listener_is_not(
    stations: tuple[StationProcess, StationProcess], tmp_path: Path
) -> None:
    london, moscow = stations
    _set_calls(london, record=True)
    london.start()
    moscow.start()
    wait_up(london)
    wait_up(moscow)
    olga = staff(london, [("olga", "operator")])["olga"]
    people = staff(moscow, [("ivan", "operator"), ("vera", "translator"), ("lev", "operator")])
    voices = {"olga": speech_like(6.0, seed=31), "ivan": chirps(6.0, seed=32),
              "vera": speech_like(6.0, seed=33), "lev": chirps(6.0, seed=34)}  # fmt: skip
    for name, signal in voices.items():
        with WavWriter(tmp_path / f"{name}.wav") as writer:
            writer.write(signal)
    with sync_playwright() as playwright:
        browsers = {name: _launch(playwright, tmp_path / f"{name}.wav") for name in voices}
        try:
            page_l = open_console(browsers["olga"], olga)
            pages = {name: open_console(browsers[name], people[name]) for name in people}
            page_l.click('[data-link="moscow"] .call-place')
            pages["ivan"].wait_for_selector("#call-ring", state="visible")
            pages["ivan"].click("#call-answer")
            pages["ivan"].wait_for_selector("#call-panel", state="visible")
            pages["ivan"].click("#call-mute")  # Moscow's principal listens to the interpreter
            assert pages["vera"].is_hidden("#call-join-listener") is False
            pages["vera"].click("#call-join-interpreter")
            pages["lev"].click("#call-join-listener")
            for name in ("vera", "lev"):
                pages[name].wait_for_selector("#call-panel", state="visible")
            assert pages["lev"].is_disabled("#call-mute")  # a listener cannot unmute
            assert pages["vera"].inner_text("#call-end") == "Leave the call"
            time.sleep(6)
            status = moscow.call("GET", "/api/v1/calls")["calls"][0]
            roles = sorted((p["person"], p["role"]) for p in status["participants"])
            assert roles == [("ivan", "principal"), ("lev", "listener"), ("vera", "interpreter")]
            page_l.click("#call-end")
            pages["vera"].wait_for_selector("#call-panel", state="hidden", timeout=20_000)
        finally:
            for browser in browsers.values():
                browser.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not list((london.data.path / "recordings").glob("*")):
        time.sleep(0.2)
    time.sleep(2)
    heard_at_london = _heard(london)
    assert _found_in(heard_at_london, voices["vera"]) > 0.5  # the interpreter is heard
    assert _found_in(heard_at_london, voices["lev"]) < 0.4  # the listener never is
    audit = [row[2] for row in _audit(moscow)]
    assert "call joined" in audit
