"""Browser tests: Playwright driving the system's Chromium against a live server.

Each journey runs at a phone viewport (375 px) and a desktop one. Screenshots of the steps are
kept under ``test-artifacts/e2e/`` (``E2E_ARTIFACTS_DIR``). Every page runs under the site's content
security policy, and a test fails when the browser reports a violation of it (``csp_violations``).
Without Chromium the tests skip, or fail when ``REQUIRE_SERVICES=1``; ``make test`` installs it from
the OS packages when permitted.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, ViewportSize, sync_playwright

from conftest import REQUIRE_SERVICES

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS_DIR", Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"))
VIEWPORTS: dict[str, ViewportSize] = {
    "phone": {"width": 375, "height": 812},
    "desktop": {"width": 1280, "height": 900},
}
PASSWORD = "test-password"  # the factories' password


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        if REQUIRE_SERVICES:
            pytest.fail("REQUIRE_SERVICES=1 but no Chromium is installed (scripts/ensure_chromium.sh installs it)")
        pytest.skip("no Chromium here: the browser tests need the OS package `chromium`")
    # Playwright's sync API keeps an event loop on this thread while the browser is open; the
    # Django ORM calls the tests make between browser steps are synchronous and safe here.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# What Chromium writes to the console when it blocks something for the policy ("Refused to execute
# inline script because it violates the following Content Security Policy directive: ..."), and
# what the page script below reports for every securitypolicyviolation event.
_CSP_CONSOLE = re.compile(r"Content Security Policy|^CSP violation:")
# Added to every page before its own scripts (Playwright's init scripts are not subject to the policy).
_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const where = `${event.sourceFile}:${event.lineNumber}`;
  console.error(`CSP violation: ${event.effectiveDirective} blocked ${event.blockedURI || "inline"} at ${where}`);
});
"""


class CSPViolations:
    """Collects the content security policy violations the browser reports in the watched contexts."""

    def __init__(self) -> None:
        self.reported: list[str] = []

    def watch(self, context: BrowserContext) -> None:
        context.add_init_script(script=_REPORT_VIOLATIONS)
        context.on("console", self._on_console)

    def _on_console(self, message: ConsoleMessage) -> None:
        if _CSP_CONSOLE.search(message.text):
            self.reported.append(f"{message.text} ({message.location.get('url', '')})")


@pytest.fixture
def csp_violations() -> Iterator[CSPViolations]:
    """Fails the test when any page of a watched context (every ``browser_page``) broke the policy."""
    watcher = CSPViolations()
    yield watcher
    assert watcher.reported == [], "content security policy violations:\n" + "\n".join(watcher.reported)


@pytest.fixture
def browser_page(browser: Browser, live_server: Any, viewport: str, csp_violations: CSPViolations) -> Iterator[Page]:
    """A fresh browser context (no cookies) at the test's viewport, pointed at the live server."""
    phone = viewport == "phone"
    context = browser.new_context(
        viewport=VIEWPORTS[viewport], base_url=live_server.url, is_mobile=phone, has_touch=phone
    )
    csp_violations.watch(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


class Shots:
    """Numbered screenshots of one test's steps: ``<artifacts>/<test>/<viewport>-<nn>-<step>.png``."""

    def __init__(self, folder: Path, viewport: str) -> None:
        self.folder, self.viewport, self.count = folder, viewport, 0
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, page: Page, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.viewport}-{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest, viewport: str) -> Shots:
    name = re.sub(r"\[.*\]$", "", request.node.name)
    return Shots(ARTIFACTS / name, viewport)


def serious_accessibility_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (id, help, targets)."""
    results = Axe().run(page)
    return [
        {"id": v["id"], "help": v["help"], "targets": [n["target"] for n in v["nodes"]]}
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def sign_in(page: Page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/portal/")
