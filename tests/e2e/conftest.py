"""Fixtures of the end-to-end tests.

- `browser`: a headless Chromium driven by Playwright, one per test module. Chromium is
  Debian's (`make test` installs it where missing; `CHROMIUM_BIN` overrides the path), without
  Playwright's own browser download.

The browser is not shared across modules: while Playwright's sync API is started, it marks its
event loop as running on the thread, and `asyncio.run()` in a later module's test would fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

# What the machine's Chromium needs headless, as root, on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium")
    if not found:
        pytest.fail("Chromium is not installed: run `make test` (it installs Debian's chromium)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()
