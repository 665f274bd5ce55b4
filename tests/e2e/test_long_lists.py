"""In a real browser, at a phone and a desktop viewport, with axe-core: a doctor with a long history
pages through a tab (*Older orders*, *Newer orders*) and through the holds (*More needing action*),
and ops staff page through the review queue. The history is written at once (``bulk_create``)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from orders.models import OrderStatus
from orders.selectors import HOLDS_PAGE_SIZE, PORTAL_PAGE_SIZE
from tests.conftest import World
from tests.factories import orders_in_bulk

from .conftest import Shots, serious_accessibility_violations, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def _references_listed(region: Any) -> list[str]:
    return [text.removeprefix("Order ") for text in region.locator("a.ref").all_inner_texts()]


def test_a_doctor_pages_through_a_long_history_and_many_holds(north: World, browser_page: Page, shots: Shots) -> None:
    page = browser_page
    delivered = orders_in_bulk(north, PORTAL_PAGE_SIZE + 2, status=OrderStatus.COMPLETED, disposition="clear")
    held = orders_in_bulk(north, HOLDS_PAGE_SIZE + 1, status=OrderStatus.ON_HOLD, disposition="hold")
    sign_in(page, "dr.north")

    # The holds: the 50 waiting longest, then the next one
    holds = page.get_by_role("region", name="Needs your action")
    expect(holds.get_by_role("heading")).to_have_text(f"Needs your action {HOLDS_PAGE_SIZE}+")
    assert _references_listed(holds) == [o.reference for o in held[:HOLDS_PAGE_SIZE]]
    assert serious_accessibility_violations(page) == []
    shots(page, "holds")
    holds.get_by_role("link", name="More needing action").click()
    expect(holds.locator("a.ref")).to_have_count(1)
    assert _references_listed(holds) == [held[-1].reference]
    holds.get_by_role("link", name="Previous").click()
    expect(holds.locator("a.ref")).to_have_count(HOLDS_PAGE_SIZE)

    # The Shipped tab: the newest 25, then the 2 older ones, and back
    page.get_by_role("navigation", name="Order stages").get_by_role("link", name="Shipped").click()
    shipped = page.get_by_role("list", name="Shipped orders")
    expect(shipped.locator("a.ref")).to_have_count(PORTAL_PAGE_SIZE)
    assert _references_listed(shipped) == [o.reference for o in reversed(delivered)][:PORTAL_PAGE_SIZE]
    pages = page.get_by_role("navigation", name="Shipped orders pages")
    assert serious_accessibility_violations(page) == []
    shots(page, "shipped")
    pages.get_by_role("link", name="Older orders").click()
    expect(shipped.locator("a.ref")).to_have_count(2)
    assert _references_listed(shipped) == [delivered[1].reference, delivered[0].reference]
    assert serious_accessibility_violations(page) == []
    shots(page, "shipped-older")
    pages.get_by_role("link", name="Newer orders").click()
    expect(shipped.locator("a.ref")).to_have_count(PORTAL_PAGE_SIZE)
    expect(pages.get_by_role("link", name="Newer orders")).to_have_count(0)


def test_ops_pages_through_the_review_queue(north: World, browser_page: Page, shots: Shots) -> None:
    page = browser_page
    held = orders_in_bulk(north, 52, status=OrderStatus.ON_HOLD, disposition="hold")
    sign_in(page, "ops.north")

    page.goto("/portal/review/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Review queue 52")
    expect(page.locator("li.order-row")).to_have_count(50)
    assert serious_accessibility_violations(page) == []
    shots(page, "queue")
    page.get_by_role("navigation", name="Review queue pages").get_by_role("link", name="Next page").click()
    expect(page.locator("li.order-row")).to_have_count(2)
    assert [text.removeprefix("Order ") for text in page.locator("li.order-row a.ref").all_inner_texts()] == [
        o.reference for o in held[50:]
    ]
    assert serious_accessibility_violations(page) == []
    shots(page, "queue-next")
