"""In a real browser: sign in, the home page's holds and stages, patient search and card, and the
order page where a document clears a hold — at a phone and a desktop viewport, with axe-core."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from orders import services
from orders.models import Order
from tests.conftest import World

from .conftest import Shots, serious_accessibility_violations, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_a_doctor_finds_the_patient_and_clears_a_hold_with_a_document(
    north: World, browser_page: Page, shots: Shots, tmp_path: Path, viewport: str
) -> None:
    page = browser_page
    order = north.order(actor=north.ops)  # unsigned: held for the signed written order

    page.goto("/portal/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/portal/$"))
    assert serious_accessibility_violations(page) == []
    shots(page, "sign-in")
    sign_in(page, "dr.north")

    holds = page.get_by_role("region", name="Needs your action")
    expect(holds).to_contain_text(f"Order {order.reference}")
    expect(holds).to_contain_text("The written order lacks the treating practitioner's signature.")
    assert serious_accessibility_violations(page) == []
    shots(page, "home")

    # Find the patient by name and date of birth; the results come in without a reload
    page.get_by_role("navigation", name="Portal").get_by_role("link", name="Patients").click()
    page.get_by_label("Name and/or date of birth").fill("Zelda QuartermaineNorth 1948-07-09")
    page.get_by_role("button", name="Search").click()
    result = page.get_by_role("region", name="Search results").get_by_role(
        "link", name="Zelda QuartermaineNorth", exact=True
    )
    expect(result).to_be_visible()
    assert ("Zelda" in page.url, "1948" in page.url) == (False, False)
    shots(page, "patient-search")
    result.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Zelda QuartermaineNorth")
    assert serious_accessibility_violations(page) == []
    shots(page, "patient-card")

    # Straight from the hold to its fix: attach the signed written order
    page.goto("/portal/")
    holds.get_by_role("link", name="Signed standard written order").click()
    expect(page.get_by_label("Document type")).to_have_value("SWO")
    document = tmp_path / "signed-order.pdf"
    document.write_bytes(PDF)
    page.get_by_label("File (PDF, PNG or JPEG)").set_input_files(str(document))
    assert serious_accessibility_violations(page) == []
    shots(page, "order-with-hold")
    page.get_by_role("button", name="Attach document").click()

    expect(page.get_by_role("status").first).to_contain_text("Document attached")
    expect(page.get_by_role("region", name="Status")).to_contain_text("Clear")
    shots(page, "hold-cleared")
    assert Order.objects.get(pk=order.pk).ai_disposition == "clear"


def test_the_order_page_refreshes_its_status_without_a_reload(north: World, browser_page: Page) -> None:
    page = browser_page
    order = north.order()
    sign_in(page, "dr.north")
    page.goto(f"/portal/orders/{order.pk}/")
    status = page.get_by_role("region", name="Status")
    expect(status).to_contain_text("Pending")

    services.order_verify(order_id=order.pk, actor=north.ops)
    services.order_transition(order_id=order.pk, actor=north.ops, transition="start_fulfillment")

    expect(status).to_contain_text("Preparing", timeout=15_000)
