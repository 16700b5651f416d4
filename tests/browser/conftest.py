"""Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against live_server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


@pytest.fixture(scope="session")
def chromium():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium on PATH: apt-get install chromium (or set CHROMIUM)")
    # Playwright's sync API runs an event loop in this thread; Django refuses sync DB
    # calls from a thread with a running loop unless told it is fine (the tests are sync).
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield CspWatchingBrowser(browser)
        browser.close()


# --- the site's Content-Security-Policy is enforced; any violation fails the test ---------

CSP_VIOLATIONS: list[dict] = []
_REPORT_JS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspReport({directive: e.violatedDirective, blocked: e.blockedURI,
                      source: e.sourceFile, line: e.lineNumber, sample: e.sample,
                      page: document.location.pathname});
});
"""


def _watch(target) -> None:
    """Report every securitypolicyviolation event of ``target`` (a context or a page)."""
    target.expose_binding("__cspReport", lambda source, report: CSP_VIOLATIONS.append(report))
    target.add_init_script(_REPORT_JS)


class CspWatchingBrowser:
    """The Playwright browser, whose every new context and page reports CSP violations."""

    def __init__(self, browser):
        self._browser = browser

    def new_context(self, *args, **kwargs):
        context = self._browser.new_context(*args, **kwargs)
        _watch(context)
        return context

    def new_page(self, *args, **kwargs):
        page = self._browser.new_page(*args, **kwargs)
        _watch(page)
        return page

    def __getattr__(self, name):
        return getattr(self._browser, name)


@pytest.fixture(autouse=True)
def no_csp_violations():
    """Every browser test runs under the enforced policy and fails on a violation report."""
    CSP_VIOLATIONS.clear()
    yield CSP_VIOLATIONS
    assert not CSP_VIOLATIONS, f"Content-Security-Policy violations: {CSP_VIOLATIONS}"


@pytest.fixture
def shot():
    """shot(page, name): save a full-page screenshot under test-artifacts/browser/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, full_page: bool = True) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
