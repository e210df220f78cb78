"""Real headless Chromium for page tests (Debian's package, driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


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


def artifacts_dir() -> Path:
    """Where page tests save screenshots (PHM_TEST_ARTIFACTS, default ./test-artifacts/pages)."""
    path = Path(os.environ.get("PHM_TEST_ARTIFACTS", "test-artifacts")) / "pages"
    path.mkdir(parents=True, exist_ok=True)
    return path


# every page's basic accessibility: a language, one h1, labelled controls, alt text, named links and buttons
A11Y_CHECK = """() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push('no lang on <html>');
  if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    const labelled = (el.id && document.querySelector(`label[for="${el.id}"]`)) || el.closest('label')
      || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
    if (!labelled) problems.push('unlabelled control ' + (el.name || el.id));
  }
  for (const img of document.querySelectorAll('img')) if (!img.alt) problems.push('image without alt ' + img.src);
  for (const el of document.querySelectorAll('a, button')) if (!el.textContent.trim() && !el.getAttribute('aria-label'))
    problems.push('unnamed ' + el.tagName);
  for (const svg of document.querySelectorAll('svg[role=img]')) if (!svg.querySelector('title')) problems.push('svg without title');
  return problems;
}"""


class PageSession:
    """One signed-in browser context: records console errors, page errors and failed requests."""

    def __init__(self, browser, base_url: str, name: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        self.page = self.context.new_page()
        self.base_url, self.name = base_url, name
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))

    def goto(self, path: str, refused: int | None = None):
        """Open `path`; with `refused`, expect that 4xx status (Chromium logs it, which is not a page error)."""
        seen = len(self.errors)
        response = self.page.goto(self.base_url + path, wait_until="load")
        if refused is not None:
            assert response.status == refused, (path, response.status)
            logged = f"the server responded with a status of {refused}"
            self.errors[seen:] = [e for e in self.errors[seen:] if logged not in e]
        return response

    def sign_in(self, token: str) -> None:
        self.goto("/ui/signin")
        self.page.fill("#token", token)
        with self.page.expect_navigation():
            self.page.click("button[type=submit]")

    def shot(self, label: str) -> Path:
        path = artifacts_dir() / f"{self.name}_{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        docs = os.environ.get("PHM_DOCS_SCREENSHOTS")  # set to docs/screenshots to refresh the README's pictures
        if docs:
            Path(docs).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(
                path=str(Path(docs) / f"{self.name}_{label}.png"),
                full_page=True,
                clip={"x": 0, "y": 0, "width": 1280, "height": 1500},
            )
        return path

    def accessibility_problems(self) -> list[str]:
        return self.page.evaluate(A11Y_CHECK)

    def close(self) -> None:
        self.context.close()
