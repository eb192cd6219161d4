"""Shared fixtures: vector files, a deterministic random source, fresh identities, a pair of
station processes, a browser."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from playwright.sync_api import Browser, sync_playwright

from hotline.crypto.identity import StationIdentity
from hotline.station.launch import StationProcess, make_pair
from tests.consoledriver import chromium

VECTORS = Path(__file__).parent / "vectors"
CACOPHONY = VECTORS / "noise" / "cacophony.txt"
HOTLINE_VECTORS = VECTORS / "hotline.json"

# The machine is shared: no per-example deadline, a fixed budget of examples.
settings.register_profile(
    "hotline", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("hotline")


def counter_rng(label: str) -> Callable[[int], bytes]:
    """A deterministic random source: SHAKE-256 of a label and a call counter."""
    calls = 0

    def rng(n: int) -> bytes:
        nonlocal calls
        calls += 1
        return hashlib.shake_256(f"{label}/{calls}".encode()).digest(n)

    return rng


@pytest.fixture
def make_identity() -> Callable[[], StationIdentity]:
    return lambda: StationIdentity.from_random(os.urandom(96))


@pytest.fixture
def stations(tmp_path: Path) -> Iterator[tuple[StationProcess, StationProcess]]:
    """Two paired stations, London and Moscow, not started; stopped after the test."""
    london, moscow = make_pair(tmp_path)
    try:
        yield london, moscow
    finally:
        try:
            london.close()
        finally:
            moscow.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, under Playwright: one per test module."""
    with sync_playwright() as playwright:
        browser = chromium(playwright)
        yield browser
        browser.close()
