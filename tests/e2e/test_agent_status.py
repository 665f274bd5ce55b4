"""In a real browser, at a phone and a desktop viewport: ops staff open Agent Status from the portal,
see each agent's state and the orders waiting for a person, follow an order in review to its page,
resolve the review with a note, and see it leave the list. A failing agent shows as failing. The
doctor has no Agent Status. axe-core finds no serious violation on the way."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from agents.models import AgentRun
from orders.models import Order, OrderStatus
from tests.conftest import World

from .conftest import Shots, sign_in
from .test_order_wizard import NO_SIDEWAYS_SCROLL, ORDER_PAGE, accessible
from .test_review_decisions import sign_out

pytestmark = pytest.mark.django_db(transaction=True)

NOTE = "Spoke with the patient: the first order was lost in the post, so this one replaces it."


def test_ops_follow_an_order_in_review_from_agent_status_resolve_it_and_see_it_leave_the_list(
    north: World, browser_page: Page, shots: Shots, viewport: str
) -> None:
    page = browser_page
    north.order()
    duplicate = north.order()  # the same items for the same patient while the first is open: a review
    assert duplicate.ai_disposition == "needs_review"
    AgentRun.objects.create(
        agent="pharmacy",
        task="agents.pharmacy.submit_prescriptions",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        outcome="failed",
        error_code="PHARMACY_UNAVAILABLE",
    )

    # The doctor has no Agent Status
    sign_in(page, "dr.north")
    expect(page.get_by_role("navigation", name="Portal").get_by_role("link", name="Agent Status")).to_have_count(0)
    sign_out(page)

    # Ops: Agent Status from the portal's navigation
    sign_in(page, "ops.north")
    page.get_by_role("navigation", name="Portal").get_by_role("link", name="Agent Status").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Agent Status")
    agents = page.get_by_role("region", name="Agents")
    expect(agents.locator("[data-agent]")).to_have_count(5)
    expect(agents.locator("[data-agent='pharmacy']")).to_contain_text("Failing")
    expect(agents.locator("[data-agent='payments']")).to_contain_text("OK")
    expect(agents.get_by_role("img", name="1 run in the last 24 hours, 1 failed")).to_have_count(1)
    waiting = page.get_by_role("region", name=re.compile("Orders waiting for a person"))
    row = waiting.locator(f"[data-order='{duplicate.reference}']")
    expect(row).to_contain_text("DUPLICATE_ORDER")
    expect(row).to_contain_text("Pending verification")
    accessible(page)
    assert page.evaluate(NO_SIDEWAYS_SCROLL), "Agent Status scrolls sideways"
    shots(page, "ops-agent-status")

    # The order's page, the review resolved with a note
    row.get_by_role("link", name=f"Order {duplicate.reference}").click()
    page.wait_for_url(ORDER_PAGE)
    page.get_by_label("Review note").fill(NOTE)
    page.get_by_role("button", name="Resolve review and approve").click()
    expect(page.get_by_role("status").first).to_contain_text("resolved; the order is approved")
    assert Order.objects.get(pk=duplicate.pk).status == OrderStatus.VERIFIED

    # Back on Agent Status, the order has left the list
    page.get_by_role("navigation", name="Portal").get_by_role("link", name="Agent Status").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Agent Status")
    expect(page.locator(f"[data-order='{duplicate.reference}']")).to_have_count(0)
    expect(page.get_by_text("No order is waiting for a person.")).to_be_visible()
    accessible(page)
    shots(page, "ops-agent-status-cleared")
