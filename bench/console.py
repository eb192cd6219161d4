"""The console in a real browser: how fast a FLASH reaches the other side's screen, and how heavy
the page is.

    .venv/bin/python bench/console.py [--runs 20] [--screenshots docs/screenshots]

Two station processes on loopback (SQLite, in the system's temporary directory), each with its
console; Debian's chromium, headless, under Playwright. Prints `name: value` lines:

  flash_release_to_alarm_ms_p50 / _max: a supervisor clicks "release" on a FLASH principal
      message in London's console; the figure is the time until Moscow's console shows the FLASH
      overlay (Playwright waits for it in the page). The way: the release request, the draft's
      two commits, the envelope to Moscow, its commit there, the station's alarm review (once a
      second: on average half a second of the figure), and the event stream to the page. Then
      an operator in Moscow acknowledges it, and the next run starts. Median over --runs.
  page_bytes_first_load: the bytes of every response on a first visit to the console (the
      page, its script, its stylesheet, uncompressed) until the sign-in form shows.
  page_requests_first_load: how many requests that took.

With --screenshots DIR, also writes the main views as PNG files there (the README shows them),
one of them a FLASH of London's with Moscow's acknowledgement on it (message.png), and Moscow's
traffic with an IMMEDIATE message it has not acknowledged, its deadline counting down
(deadline.png).
Not a test: it asserts nothing. Bounded: --runs at most 100, each wait at most 20 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, Response, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.consoledriver import (
    chromium,
    compose,
    hold_to_acknowledge,
    open_console,
    show,
    staff,
    wait_up,
)

from hotline.station.launch import make_pair


def emit(name: str, value: object) -> None:
    print(f"{name}: {value}", flush=True)


def page_weight(page: Page, url: str) -> tuple[int, int]:
    sizes: list[int] = []

    def seen(response: Response) -> None:
        sizes.append(len(response.body()))

    page.on("response", seen)
    page.goto(url)
    page.wait_for_selector("#login-name", state="visible")
    page.wait_for_load_state("networkidle")
    page.remove_listener("response", seen)
    return sum(sizes), len(sizes)


UNANSWERED = "Delegation lands at 16:40 UTC; please confirm the car. / Делегация прибывает в 16:40."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--screenshots", type=Path, default=None)
    args = parser.parse_args()
    runs = max(1, min(args.runs, 100))
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        london, moscow = make_pair(Path(tmp))
        desk_l = staff(london, [("olga", "operator"), ("sam", "supervisor")])
        desk_m = staff(moscow, [("ivan", "operator")])
        for station in (london, moscow):
            station.start()
        try:
            wait_up(london)
            with sync_playwright() as playwright:
                browser = chromium(playwright)
                weight, requests = page_weight(browser.new_page(), london.console)
                emit("page_bytes_first_load", weight)
                emit("page_requests_first_load", requests)
                drafter = open_console(browser, desk_l["olga"])
                releaser = open_console(browser, desk_l["sam"])
                receiver = open_console(browser, desk_m["ivan"])
                show(releaser, "drafts")
                times = []
                for run in range(runs):
                    text = f"FLASH {run + 1}: call now on line two. / Срочно: линия два."
                    compose(drafter, "FLASH", "principal", "en", text)
                    card = releaser.locator("[data-draft-id]").filter(has_text=f"FLASH {run + 1}:")
                    button = card.locator("button.release")
                    button.wait_for(state="visible")
                    start = time.perf_counter()
                    button.click()
                    receiver.wait_for_selector("#flash-alarm", state="visible", timeout=20_000)
                    times.append((time.perf_counter() - start) * 1000)
                    if args.screenshots and run == 0:
                        args.screenshots.mkdir(parents=True, exist_ok=True)
                        receiver.screenshot(path=str(args.screenshots / "flash.png"))
                    hold_to_acknowledge(receiver)
                    receiver.wait_for_selector("#flash-alarm", state="hidden", timeout=20_000)
                emit("flash_runs", runs)
                emit("flash_release_to_alarm_ms_p50", f"{statistics.median(times):.0f}")
                emit("flash_release_to_alarm_ms_max", f"{max(times):.0f}")
                if args.screenshots:
                    shoot(drafter, releaser, args.screenshots)
                    unanswered = {"lane": "IMMEDIATE", "text": UNANSWERED}
                    london.call("POST", "/api/v1/links/moscow/messages", unanswered)
                    shoot_deadline(receiver, args.screenshots)
                browser.close()
        finally:
            for station in (london, moscow):
                station.close()


def shoot_deadline(receiver: Page, directory: Path) -> None:
    """The receiving side: an IMMEDIATE message nobody here has acknowledged yet, its deadline
    counting down (deadline.png)."""
    show(receiver, "traffic")
    receiver.wait_for_selector('tr[data-direction="in"][data-lane="IMMEDIATE"]')
    receiver.screenshot(path=str(directory / "deadline.png"))


def shoot(operator: Page, supervisor: Page, directory: Path) -> None:
    show(operator, "board")
    operator.screenshot(path=str(directory / "board.png"))
    show(operator, "traffic")
    operator.wait_for_selector('tr[data-direction="out"]')
    operator.screenshot(path=str(directory / "traffic.png"))
    operator.locator('tr[data-direction="out"][data-lane="FLASH"]').first.click()
    operator.wait_for_selector("#message-body .acknowledgement")
    operator.screenshot(path=str(directory / "message.png"))
    compose(operator, "IMMEDIATE", "principal", "ru", "Просим подтвердить время связи: 14:00 UTC.")
    operator.wait_for_selector("#compose-result:not(:empty)")
    operator.screenshot(path=str(directory / "compose.png"))
    show(supervisor, "drafts")
    supervisor.wait_for_selector("[data-draft-id]")
    supervisor.screenshot(path=str(directory / "drafts.png"))


if __name__ == "__main__":
    main()
