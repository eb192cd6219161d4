"""Calls between two consoles in Debian's chromium: how long from "call" clicked at London to the
ring shown at Moscow, and browser-to-browser mouth to ear.

    .venv/bin/python bench/console_call.py [--quick] [--frame-ms 10]

Two real stations (`make_pair`, loopback only, in a temporary directory), each with its console,
and one chromium per station under Playwright. Prints `name: value` lines:

  call_to_ring_p50_ms / _max_ms: from the click on the link board's call button in London's
      page (the click event's time) to the moment Moscow's page shows the ringing overlay (a
      MutationObserver's time), over several calls, each declined and the next placed.
  mouth_to_ear_p50_ms / _p99_ms (and _min_ms): 2 s after the answer, then again 12 s after it
      (mouth_to_ear_settled_*), over three calls: 1 kHz tone bursts (100 ms, one every 600 ms
      plus a random 0-20 ms) made in London's page by WebAudio in place of its microphone (a
      gain switched on at a known `performance` time, then sent by the page's own WebRTC
      connection as a microphone would be), each burst's onset found in what Moscow's page
      hands to its audio output: a MediaStreamTrackProcessor on the remote track takes its
      chunks as the browser's renderer pulls them for the output (the first sample above 40% of
      the tone's peak, timed at the chunk's arrival plus its place in the chunk). Both times
      are the machine's one clock (`performance.timeOrigin + performance.now()` in each page).
      It holds both WebRTC legs (browser to its station: Opus, DTLS-SRTP, the browser's jitter
      buffer), both stations and the link's media; not the sound card's buffer, which the
      browser reports apart (_output_ms: the delay of the audio output it plays into, 30 ms
      for headless chromium's fake device).
  mouth_to_ear_webaudio_*: the same onsets found by an AudioWorklet on a
      MediaStreamAudioSourceNode in a second AudioContext, as this script did before: that
      node's FIFO and the context's render quanta add 5-10 ms that nobody hears.
  mouth_to_ear_jitter_buffer_ms: Moscow's WebRTC jitter buffer (NetEQ), its
      jitterBufferDelay per sample played while the bursts were heard (getStats).

    --frame-ms 10 sets both stations' `[calls] frame_ms` (10 ms frames on the link and to and
    from the pages).

The pages load an init script (Playwright's, with the pages' CSP bypassed for the worklet's blob
URL): it replaces getUserMedia and watches the ring overlay. Nothing of the console changes.

Not a test: it asserts nothing. Every wait is bounded and an alarm stops the whole run.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

from hotline.station.launch import StationProcess, make_pair

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the console tests' driver
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers of bench/e2e.py
from tests.consoledriver import chromium_path, open_console, staff, wait_up

from e2e import emit, percentile

TIMEOUT_MS = 20_000

# In London's page: a microphone that is a WebAudio tone behind a gain, and `__burst(ms)` that
# opens the gain for `ms` and returns when it did (performance time). In Moscow's: every remote
# track the page plays goes through a worklet that reports each onset; and the ring overlay's
# first showing is timed. The click on a call button is timed in both.
INIT_SCRIPT = r"""
(() => {
  const now = () => performance.timeOrigin + performance.now();
  window.__clicks = []; window.__rings = []; window.__onsets = [];
  document.addEventListener("click", (e) => {
    if (e.target.closest && e.target.closest(".call-place")) window.__clicks.push(now());
  }, true);
  const watchRing = () => {
    const box = document.querySelector("#call-ring");
    if (!box) return setTimeout(watchRing, 50);
    let shown = !box.hidden && getComputedStyle(box).display !== "none";
    new MutationObserver(() => {
      const visible = !box.hidden && getComputedStyle(box).display !== "none";
      if (visible && !shown) window.__rings.push(now());
      shown = visible;
    }).observe(box, { attributes: true, attributeFilter: ["hidden", "class", "style"] });
  };
  document.addEventListener("DOMContentLoaded", watchRing);

  const ctx = new AudioContext({ sampleRate: 48000 });
  const tone = ctx.createOscillator(); tone.frequency.value = 1000;
  const gain = ctx.createGain(); gain.gain.value = 0;
  const out = ctx.createMediaStreamDestination();
  tone.connect(gain).connect(out); tone.start();
  // A clone each time: the page stops its tracks when a call ends.
  navigator.mediaDevices.getUserMedia = async () => {
    await ctx.resume();
    return out.stream.clone();
  };
  window.__burst = (ms) => {
    gain.gain.setValueAtTime(0.5, ctx.currentTime);
    const at = now();
    setTimeout(() => gain.gain.setValueAtTime(0, ctx.currentTime), ms);
    return at;
  };

  const worklet = `
    class Onsets extends AudioWorkletProcessor {
      constructor() { super(); this.quiet = 0; }
      process(inputs) {
        const x = inputs[0] && inputs[0][0];
        if (!x) return true;
        for (let i = 0; i < x.length; i++) {
          if (Math.abs(x[i]) > 0.2) {
            if (this.quiet > 9600) this.port.postMessage({ frame: currentFrame + i });
            this.quiet = 0;
          } else this.quiet++;
        }
        return true;
      }
    }
    registerProcessor("onsets", Onsets);`;
  // What is handed to the audio output: the remote track's chunks as the browser's renderer
  // pulls them (a MediaStreamTrackProcessor is a sink of the track, as the output is), each
  // onset timed at its sample: the chunk's arrival plus its place in the chunk.
  window.__heard = [];
  const handed = (track) => {
    const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
    let quiet = 0;
    const next = async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const at = now(), n = value.numberOfFrames, x = new Float32Array(n);
        value.copyTo(x, { planeIndex: 0, format: "f32-planar" });
        const rate = value.sampleRate / 1000;
        value.close();
        for (let i = 0; i < n; i++) {
          if (Math.abs(x[i]) > 0.2) {
            if (quiet > 9600) window.__heard.push(at + i / rate);
            quiet = 0;
          } else quiet++;
        }
      }
    };
    next();
  };
  const listen = async (stream) => {
    const actx = new AudioContext({ sampleRate: 48000 });
    const code = new Blob([worklet], { type: "text/javascript" });
    await actx.audioWorklet.addModule(URL.createObjectURL(code));
    const node = new AudioWorkletNode(actx, "onsets");
    node.port.onmessage = (m) => {
      // The onset was `currentFrame - frame` samples before the end of the quantum just done.
      const late = (actx.currentTime * 48000 - m.data.frame) / 48;
      window.__onsets.push(now() - Math.max(0, late));
    };
    actx.createMediaStreamSource(stream).connect(node);
    await actx.resume();
  };
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__pcs = [...(window.__pcs || []), pc];
    pc.addEventListener("track", (e) => {
      handed(e.track);
      listen(e.streams[0] || new MediaStream([e.track]));
    });
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  // The receiving browser's own figures: its jitter buffer (NetEQ) per sample played, and the
  // output's delay it reports (media-playout: the sound device's buffer, not in the figures).
  window.__received = async () => {
    const pc = window.__pcs.filter((p) => p.connectionState !== "closed").at(-1);
    const out = {};
    if (!pc) return out;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") Object.assign(out, {
        jb: s.jitterBufferDelay, emitted: s.jitterBufferEmittedCount });
      if (s.type === "media-playout") Object.assign(out, {
        playout: s.totalPlayoutDelay, samples: s.totalSamplesCount });
    });
    return out;
  };
})();
"""


def launch(playwright: Any) -> Browser:
    return playwright.chromium.launch(  # type: ignore[no-any-return]
        executable_path=chromium_path(),
        headless=True,
        args=[
            "--use-fake-ui-for-media-stream",
            "--allow-loopback-in-peer-connection",
            "--autoplay-policy=no-user-gesture-required",
        ],
    )


def wait_for(page: Page, expression: str, timeout_ms: int = TIMEOUT_MS) -> None:
    page.wait_for_function(expression, timeout=timeout_ms)


def ended(station: StationProcess) -> bool:
    calls = station.call("GET", "/api/v1/calls")["calls"]
    return not calls or calls[0]["state"] == "ended"


def wait_idle(london: StationProcess, moscow: StationProcess) -> None:
    deadline = time.monotonic() + 20
    while not (ended(london) and ended(moscow)):
        if time.monotonic() > deadline:
            raise RuntimeError("a call did not end")
        time.sleep(0.1)


def call_to_ring(page_l: Page, page_m: Page, stations: tuple[StationProcess, ...], n: int) -> None:
    delays = []
    for k in range(n):
        page_l.select_option('[data-link="moscow"] .call-precedence', "ROUTINE")
        page_l.click('[data-link="moscow"] .call-place')
        wait_for(page_m, f"window.__rings.length > {k}")
        clicked = page_l.evaluate("window.__clicks.at(-1)")
        rung = page_m.evaluate("window.__rings.at(-1)")
        delays.append(rung - clicked)
        page_m.click("#call-decline")
        wait_idle(*stations)
        time.sleep(0.3)
    emit("call_to_ring_p50_ms", f"{statistics.median(delays):.1f}")
    emit("call_to_ring_max_ms", f"{max(delays):.1f}")
    emit("call_to_ring_calls", len(delays))


# Where each page keeps the onsets it heard: handed to the audio output (the figure), and on a
# WebAudio graph (MediaStreamAudioSourceNode and an AudioWorklet in a second AudioContext: its
# FIFO and render quanta add delay nobody hears; kept to compare with earlier runs).
HEARD = {"": "__heard", "_webaudio": "__onsets"}


def bursts_heard(page_l: Page, page_m: Page, bursts: int, seed: int) -> dict[str, list[float]]:
    """Tone bursts made at London, each timed to its onset heard at Moscow (ms), for each way
    of hearing; and Moscow's jitter buffer (`_jitter_buffer`: NetEQ's delay per sample played
    meanwhile) and the output delay its browser reports (`_output`: not in the onsets)."""
    start = {way: page_m.evaluate(f"window.{name}.length") for way, name in HEARD.items()}
    before = page_m.evaluate("window.__received()")
    sent = []
    for k in range(bursts):
        sent.append(page_l.evaluate("window.__burst(100)"))
        time.sleep(0.6 + (seed * 7919 + k * 104729) % 20 / 1000)
    time.sleep(1.0)
    after = page_m.evaluate("window.__received()")
    result: dict[str, list[float]] = {}
    for way, name in HEARD.items():
        heard = page_m.evaluate(f"window.{name}.slice({start[way]})")
        # Each burst's onset is the first one heard after it was made, and before the next.
        delays = []
        for k, at in enumerate(sent):
            until = sent[k + 1] if k + 1 < len(sent) else at + 2000
            found = [h for h in heard if at <= h < until]
            if found:
                delays.append(found[0] - at)
        if len(delays) < len(sent):
            missed = len(sent) - len(delays)
            print(
                f"# {missed} of {len(sent)} bursts not heard ({way or 'handed'})", file=sys.stderr
            )
        result[way] = delays
    for way, total, count in (
        ("_jitter_buffer", "jb", "emitted"),
        ("_output", "playout", "samples"),
    ):
        if all(key in stats for stats in (before, after) for key in (total, count)):
            done = after[count] - before[count]
            if done > 0:
                result[way] = [1000 * (after[total] - before[total]) / done]
    return result


def mouth_to_ear(
    page_l: Page, page_m: Page, bursts: int, seed: int
) -> tuple[dict[str, list[float]], ...]:
    """One call: bursts 2 s after the answer, and again once the browsers' buffers have had
    10 s more to settle (a WebRTC receiver may start with a cautious buffer, and come down)."""
    page_l.select_option('[data-link="moscow"] .call-precedence', "FLASH")
    page_l.click('[data-link="moscow"] .call-place')
    page_m.wait_for_selector("#call-ring", state="visible")
    page_m.click("#call-answer")
    page_m.wait_for_selector("#call-panel", state="visible")
    page_l.wait_for_function("document.querySelector('#call-state').textContent === 'in call'")
    time.sleep(2.0)
    early = bursts_heard(page_l, page_m, bursts, seed)
    time.sleep(max(0.0, 12.0 - 2.0 - bursts * 0.61 - 1.0))
    settled = bursts_heard(page_l, page_m, bursts, seed + 1)
    page_l.click("#call-end")
    page_m.wait_for_selector("#call-panel", state="hidden")
    return early, settled


def set_frame_ms(station: StationProcess, frame_ms: int) -> None:
    """The station's `[calls] frame_ms` (its configuration file, before it starts)."""
    path = station.data.config_file
    lines = path.read_text().splitlines()
    lines = [f"frame_ms = {frame_ms}" if line.startswith("frame_ms =") else line for line in lines]
    path.write_text("\n".join(lines) + "\n")


def report(rounds: dict[str, dict[str, list[float]]]) -> None:
    for name, ways in rounds.items():
        for way in HEARD:
            delays = ways.get(way, [])
            if delays:
                emit(f"{name}{way}_p50_ms", f"{statistics.median(delays):.1f}")
                emit(f"{name}{way}_p99_ms", f"{percentile(delays, 99):.1f}")
                emit(f"{name}{way}_min_ms", f"{min(delays):.1f}")
                emit(f"{name}{way}_bursts", len(delays))
        for way in ("_jitter_buffer", "_output"):
            if ways.get(way):
                emit(f"{name}{way}_ms", f"{statistics.median(ways[way]):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run, to check it works")
    frames = "the stations' [calls] frame_ms (default as configured: 20)"
    parser.add_argument("--frame-ms", type=int, choices=(10, 20), default=None, help=frames)
    args = parser.parse_args()
    rings, calls, bursts = (3, 1, 6) if args.quick else (10, 3, 10)

    def too_long(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("bench/console_call.py ran past its bound")

    signal.signal(signal.SIGALRM, too_long)
    signal.alarm(300 if args.quick else 900)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hotline-console-call-") as directory:
        london, moscow = make_pair(Path(directory))
        try:
            for station in (london, moscow):
                if args.frame_ms is not None:
                    set_frame_ms(station, args.frame_ms)
                station.start()
            wait_up(london)
            wait_up(moscow)
            olga = staff(london, [("olga", "operator")])["olga"]
            ivan = staff(moscow, [("ivan", "operator")])["ivan"]
            with sync_playwright() as playwright:
                browsers = [launch(playwright), launch(playwright)]
                try:
                    page_l = open_console(browsers[0], olga, INIT_SCRIPT)
                    page_m = open_console(browsers[1], ivan, INIT_SCRIPT)
                    call_to_ring(page_l, page_m, (london, moscow), rings)
                    rounds: dict[str, dict[str, list[float]]] = {
                        "mouth_to_ear": {}, "mouth_to_ear_settled": {}}  # fmt: skip
                    for k in range(calls):
                        wait_idle(london, moscow)
                        for name, got in zip(rounds, mouth_to_ear(page_l, page_m, bursts, seed=k),
                                             strict=True):  # fmt: skip
                            emit(f"{name}_call{k + 1}_p50_ms", f"{statistics.median(got['']):.1f}")
                            for way, values in got.items():
                                rounds[name].setdefault(way, []).extend(values)
                    report(rounds)
                finally:
                    for browser in browsers:
                        browser.close()
        finally:
            london.close()
            moscow.close()
    signal.alarm(0)
    emit("bench_runtime_s", f"{time.perf_counter() - started:.1f}")


if __name__ == "__main__":
    main()
