"""Browser-test fixtures: Playwright's sync API driving Debian's Chromium.

Use them from a test module with

    from tests.browser_support import BrowserPage, browser_page, chromium_path, screenshot

(`browser_page` and `chromium_path` are fixtures: importing them makes pytest see them;
add `# noqa: F401` to that import, and `# noqa: F811` where a test takes one as an
argument, if ruff complains).

Only the system Chromium (`apt-get install chromium`) is used, never a browser that
Playwright downloads. Without it the browser tests skip, except under CI (CI=true),
where they fail: CI must run them (.ci/run installs Chromium).

Browser tests are plain `def test_...` functions. The sync API cannot run inside a
running asyncio loop, and while a sync Playwright instance is alive it marks its own
loop as the thread's running loop, which breaks `asyncio.run()` and pytest-asyncio's
async tests. So each test starts and stops its own Playwright driver and browser; none
is kept for the session.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page, sync_playwright

REPO_ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT_DIR = REPO_ROOT / "artifacts" / "screenshots"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Playwright's default of 30 s per action makes a broken page slow to fail.
DEFAULT_TIMEOUT_MS = 10_000


@dataclass
class BrowserPage:
    """A page in a fresh headless Chromium, and the JS errors seen so far.

    `errors` collects console messages of type "error" (this includes Chromium's
    "Failed to load resource" for a 404 or a refused request, except the one for the
    /favicon.ico that the browser requests by itself) and uncaught exceptions
    ("pageerror"), from every page of the context, as readable strings.
    """

    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)

    def assert_no_errors(self) -> None:
        assert not self.errors, "JavaScript errors in the browser:\n" + "\n".join(self.errors)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of the system Chromium; skips without one (fails under CI)."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium not installed (CI must run the browser tests)")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    return path


def _watch(page: Page, errors: list[str]) -> None:
    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            where = msg.location
            url = where.get("url") or page.url
            if urlsplit(url).path == "/favicon.ico":
                return  # the browser asks for it on its own; not the page's doing
            errors.append(f"console.error at {url}:{where.get('lineNumber', '?')}: {msg.text}")

    def on_page_error(exc: Error) -> None:
        errors.append(f"uncaught {exc.name or 'Error'} on {page.url}: {exc.message}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)


@pytest.fixture
def browser_page(chromium_path: str) -> Iterator[BrowserPage]:
    """A fresh headless Chromium (own profile dir) with one page, closed after the test."""
    with (
        tempfile.TemporaryDirectory(
            prefix="clanpulse-chromium-", ignore_cleanup_errors=True
        ) as profile,
        sync_playwright() as pw,
    ):
        context = pw.chromium.launch_persistent_context(
            user_data_dir=profile,
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            context.set_default_timeout(DEFAULT_TIMEOUT_MS)
            errors: list[str] = []
            context.on("page", lambda p: _watch(p, errors))
            page = context.pages[0] if context.pages else context.new_page()
            for p in context.pages:
                _watch(p, errors)
            yield BrowserPage(page=page, context=context, errors=errors)
        finally:
            context.close()


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG as artifacts/screenshots/<name>.png; return its path."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"screenshot name must be a plain file name, got {name!r}")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
