"""In Chromium, under the site's content security policy: injected script, handlers and styles
are refused and reported (and the violation check of every browser test sees them); Swagger UI at
/api/docs/ works under the policy."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .conftest import CSPViolations

pytestmark = pytest.mark.django_db(transaction=True)


def test_injected_script_handlers_and_styles_are_refused(browser_page: Page, csp_violations: CSPViolations) -> None:
    page = browser_page
    page.goto("/accounts/login/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert csp_violations.reported == []

    # When markup injected into the page tries to run script, an inline handler and a style
    # (Playwright's own evaluation is exempt from the policy; what it inserts into the page is not)
    color = page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injectedScriptRan = true;";
            document.body.append(script);
            const image = document.createElement("img");
            image.setAttribute("onerror", "window.injectedHandlerRan = true;");
            image.src = "/static/does-not-exist.png";
            document.body.append(image);
            const styled = document.createElement("p");
            styled.setAttribute("style", "color: rgb(255, 0, 0)");
            document.body.append(styled);
            return getComputedStyle(styled).color;
        }"""
    )
    page.wait_for_function("() => document.querySelector('img[onerror]').complete")

    # Then none of it ran, and each refusal was reported
    assert color != "rgb(255, 0, 0)"
    assert page.evaluate("() => [window.injectedScriptRan, window.injectedHandlerRan]") == [None, None]
    reported = [line for line in csp_violations.reported if line.startswith("CSP violation:")]
    assert [line.split(" blocked ")[0] for line in reported] == [
        "CSP violation: script-src-elem",
        "CSP violation: script-src-attr",
        "CSP violation: style-src-attr",
    ]
    assert len(csp_violations.reported) == 6  # and Chromium's own message for each
    # (all expected: the fixture would fail the test on them)
    csp_violations.reported.clear()


def test_the_api_docs_work_under_the_policy(browser_page: Page) -> None:
    page = browser_page
    page.goto("/api/docs/")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Medical ordering API")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/orders").first).to_be_visible()
    # (the browser_page fixture fails the test on any policy violation of the page)
