"""A real headless browser for tests: Chromium at /usr/bin/chromium, driven by playwright.

Where no Chromium is installed (a laptop) the tests that need it skip with a visible reason;
with ``OVERBLIK_REQUIRE_SERVICES=1`` (set by ``.ci/run``) that skip becomes a failure, as for
PostgreSQL in :mod:`tests.services`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("OVERBLIK_TEST_CHROMIUM", "/usr/bin/chromium"))


def require_chromium() -> Path:
    """The Chromium executable; skip (or, in CI, fail) when it or playwright is missing."""
    reason = None
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        reason = f"no Chromium executable at {CHROMIUM} (install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError as exc:
            reason = f"playwright is not installed ({exc})"
    if reason is not None:
        if os.environ.get("OVERBLIK_REQUIRE_SERVICES"):
            pytest.fail(reason + "; OVERBLIK_REQUIRE_SERVICES is set, so this is a failure")
        pytest.skip(reason)
    return CHROMIUM


@dataclass
class PageProblems:
    """Everything that went wrong while a page loaded and ran."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return [*(f"console error: {m}" for m in self.console_errors),
                *(f"page error: {m}" for m in self.page_errors),
                *(f"failed request: {m}" for m in self.failed_requests),
                *(f"request outside the file: {m}" for m in self.outside_requests)]


@contextmanager
def open_local_page(path: Path, *, width: int = 1280,
                    height: int = 900) -> Iterator[tuple[Any, PageProblems]]:
    """Open a local HTML file in headless Chromium; yield ``(page, problems)``.

    Any request that is not the file itself or a ``data:`` URI is recorded and aborted, so
    a page that would reach the network is caught even when the network is down.
    """
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    problems = PageProblems()
    url = path.resolve().as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: problems.console_errors.append(m.text)
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.page_errors.append(str(e)))
            page.on("requestfailed", lambda r: problems.failed_requests.append(r.url))

            def guard(route: Any) -> None:
                target = route.request.url
                if target == url or target.startswith("data:"):
                    route.continue_()
                else:
                    problems.outside_requests.append(target)
                    route.abort()

            page.route("**/*", guard)
            page.goto(url, wait_until="load")
            yield page, problems
        finally:
            browser.close()


def screenshot_is_blank(png: bytes) -> bool:
    """True when a PNG is (nearly) one colour: nothing rendered."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    return pixels.size == 0 or float(pixels.std()) < 5.0 or float((pixels < 128).mean()) < 0.002
