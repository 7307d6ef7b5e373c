"""Headless Chromium for the console's browser tests: Debian's own build (no browser download), driven by
Playwright, one browser per test module and a fresh context (cookies, language, viewport) per test.

``axe`` checks a page with axe-core (bundled by axe-playwright-python) and fails on any violation of serious
or critical impact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

CHROMIUM = os.environ.get("AGENTBUS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


class Chromium:
    """The module's browser; ``page()`` opens a page in a new, empty context."""

    def __init__(self, context: BrowserContext) -> None:
        self._context = context

    async def page(self, lang: str = "en-US", viewport: dict[str, int] | None = None) -> Page:
        await self._context.clear_cookies()
        page = await self._context.new_page()
        await page.set_viewport_size(viewport or DESKTOP)
        await page.set_extra_http_headers({"accept-language": lang})
        return page


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Chromium]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="agentbus-chromium-")
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield Chromium(context)
        finally:
            await context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
async def page(chromium: Chromium) -> AsyncIterator[Page]:
    p = await chromium.page()
    try:
        yield p
    finally:
        await p.close()


async def shot(page: Page, name: str, full_page: bool = False) -> None:
    """A screenshot for docs/console.md, taken only by ``make console-screenshots`` (the folder in
    AGENTBUS_CONSOLE_SCREENSHOTS): the visible part of the page (small files) unless ``full_page``."""
    folder = os.environ.get("AGENTBUS_CONSOLE_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        await page.screenshot(path=os.path.join(folder, f"{name}.png"), animations="disabled", full_page=full_page)


async def axe(page: Page) -> list[dict[str, Any]]:
    """The serious and critical violations axe-core finds on the page as it is now."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]


__all__ = ["Browser", "Chromium", "DESKTOP", "PHONE", "axe", "chromium", "page", "shot"]
