"""Debian's Chromium, driven by playwright: people's pages are tested in a real browser, never a form walker.

Browser downloads are blocked here, so playwright is pointed at the system's Chromium (`/usr/bin/chromium`, from
Debian's `chromium` package; `.ci/run` installs it) and `playwright install` is never run. Where it is missing the
tests skip, saying so; on CI they fail. Each test gets a fresh profile, so no cookie carries over.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright

from tests.servers.optional import unavailable

CHROMIUM = Path(os.environ.get("MUSTER_TEST_CHROMIUM", "/usr/bin/chromium"))
# Headless as root in a sandboxed machine, and quiet: no network of its own beyond the pages we open.
ARGUMENTS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium; skipped (or failed on CI) when this machine has none."""
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium); browser tests need it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGUMENTS)
        try:
            yield browser
        finally:
            browser.close()


def accessibility_violations(page: Page) -> list[str]:
    """axe-core's WCAG findings on the page as it is now, one line each (empty: none)."""
    results = Axe().run(page)
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(str(node["target"]) for node in violation["nodes"])
        for violation in results.response["violations"]
    ]
