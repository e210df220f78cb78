"""Real headless Chromium for page tests (Debian's package, driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    path = os.environ.get("PHM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise RuntimeError("headless Chromium is needed for page tests: run `bash .ci/browser` (or set PHM_CHROMIUM)")
    return path


@dataclass
class Rendered:
    errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    title: str = ""
    text: str = ""
    height: int = 0


def render(url: str, screenshot: Path, width: int = 1200) -> Rendered:
    """Open `url`, save a full-page screenshot, and report console errors and failed requests."""
    from playwright.sync_api import sync_playwright

    out = Rendered()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: out.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: out.errors.append(str(e)))
            page.on("requestfailed", lambda r: out.failed_requests.append(r.url))
            page.goto(url, wait_until="load")
            page.screenshot(path=str(screenshot), full_page=True)
            out.title = page.title()
            out.text = page.inner_text("body")
            out.height = int(page.evaluate("document.body.scrollHeight"))
        finally:
            browser.close()
    return out
