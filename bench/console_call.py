"""Calls between two consoles in Debian's chromium: how long from "call" clicked at London to the
ring shown at Moscow, and browser-to-browser mouth to ear.

    .venv/bin/python bench/console_call.py [--quick]

Two real stations (`make_pair`, loopback only, in a temporary directory), each with its console,
and one chromium per station under Playwright. Prints `name: value` lines:

  call_to_ring_p50_ms / _max_ms: from the click on the link board's call button in London's
      page (the click event's time) to the moment Moscow's page shows the ringing overlay (a
      MutationObserver's time), over several calls, each declined and the next placed.
  mouth_to_ear_p50_ms / _p99_ms (and _min_ms): 2 s after the answer, then again 12 s after it
      (mouth_to_ear_settled_*: a WebRTC receiver starts with a cautious buffer and comes down):
      1 kHz tone bursts (100 ms, one every 600 ms
      plus a random 0-20 ms) made in London's page by WebAudio in place of its microphone (a
      gain switched on at a known `performance` time, then sent by the page's own WebRTC
      connection as a microphone would be); each burst's onset is found in Moscow's page by an
      AudioWorklet on the remote stream the console plays (the first sample above 40% of the
      tone's peak, timed from the render quantum it fell in). Both times are the machine's one
      clock (`performance.timeOrigin + performance.now()` in each page). It holds both WebRTC
      legs (browser to its station: Opus, DTLS-SRTP, the browser's jitter buffer), both
      stations and the link's media, and WebAudio's render quanta (2.7 ms) at both ends; not a
      sound card's buffers.

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
    pc.addEventListener("track", (e) => listen(e.streams[0] || new MediaStream([e.track])));
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
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


def bursts_heard(page_l: Page, page_m: Page, bursts: int, seed: int) -> list[float]:
    """Tone bursts made at London, each timed to its onset heard at Moscow (ms)."""
    start = page_m.evaluate("window.__onsets.length")
    sent = []
    for k in range(bursts):
        sent.append(page_l.evaluate("window.__burst(100)"))
        time.sleep(0.6 + (seed * 7919 + k * 104729) % 20 / 1000)
    time.sleep(1.0)
    heard = page_m.evaluate(f"window.__onsets.slice({start})")
    # Each burst's onset is the first one heard after it was made, and before the next.
    delays = []
    for k, at in enumerate(sent):
        until = sent[k + 1] if k + 1 < len(sent) else at + 2000
        found = [h for h in heard if at <= h < until]
        if found:
            delays.append(found[0] - at)
    if len(delays) < len(sent):
        print(f"# {len(sent) - len(delays)} of {len(sent)} bursts not heard", file=sys.stderr)
    return delays


def mouth_to_ear(page_l: Page, page_m: Page, bursts: int, seed: int) -> tuple[list[float], ...]:
    """One call: bursts 2 s after the answer, and again once the browsers' buffers have had
    10 s more to settle (a WebRTC receiver starts with a cautious buffer, and comes down)."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run, to check it works")
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
                    early: list[float] = []
                    settled: list[float] = []
                    for k in range(calls):
                        wait_idle(london, moscow)
                        first, then = mouth_to_ear(page_l, page_m, bursts, seed=k)
                        emit(f"mouth_to_ear_call{k + 1}_p50_ms", f"{statistics.median(first):.1f}")
                        emit(f"mouth_to_ear_settled_call{k + 1}_p50_ms",
                             f"{statistics.median(then):.1f}")  # fmt: skip
                        early += first
                        settled += then
                    rounds = {"mouth_to_ear": early, "mouth_to_ear_settled": settled}
                    for name, delays in rounds.items():
                        emit(f"{name}_p50_ms", f"{statistics.median(delays):.1f}")
                        emit(f"{name}_p99_ms", f"{percentile(delays, 99):.1f}")
                        emit(f"{name}_min_ms", f"{min(delays):.1f}")
                        emit(f"{name}_bursts", len(delays))
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
