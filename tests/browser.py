"""Debian's Chromium, driven headless by Playwright, for the tests that look at pages as a person would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-screenshots"
"""Where browser tests save what a person should look at (git-ignored, never committed)."""
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
)
"""Skip a test when the browser is not installed (CI installs it; see .ci/run)."""

_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    # without these Chromium reaches for Google's hosts, which this closed network refuses
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def launch(playwright: Any) -> Any:
    """A headless Chromium from Debian's package (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=_FLAGS)


def watch_errors(page: Any) -> list[str]:
    """Console errors and uncaught page errors of ``page``, collected as they happen."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors
