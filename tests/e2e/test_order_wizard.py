"""In a real browser, at a phone and a desktop viewport: a doctor orders through the wizard — a
clear order, and one that holds for a missing prior authorization — signs and submits; ops staff
resolve the hold from the review queue by attaching the document, approve and start fulfillment;
the doctor sees the order under Preparing. A screenshot of every wizard step is kept, and
axe-core finds no serious violation on any page of the way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from catalog.services import lot_receive
from orders.models import Order, OrderStatus
from tests.conftest import World
from tests.factories import CoverageFactory, ProductFactory, WarehouseFactory

from .conftest import Shots, serious_accessibility_violations, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

ORDER_PAGE = re.compile(r"/portal/orders/[0-9a-f-]{36}/$")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def accessible(page: Page) -> None:
    assert serious_accessibility_violations(page) == []


def step(page: Page, shots: Shots, name: str, label: str) -> None:
    """On the wizard step ``label``: check it, keep its screenshot."""
    expect(page.get_by_role("heading", level=1)).to_contain_text(f": {label}")
    accessible(page)
    shots(page, f"wizard-{name}")


def go_on(page: Page) -> None:
    page.get_by_role("button", name="Continue").click()


def start_for_patient(page: Page) -> None:
    """From the home page: find the patient and open a new order for them."""
    page.get_by_role("navigation", name="Portal").get_by_role("link", name="Patients").click()
    page.get_by_label("Name and/or date of birth").fill("Zelda QuartermaineNorth 1948-07-09")
    page.get_by_role("button", name="Search").click()
    results = page.get_by_role("region", name="Search results")
    results.get_by_role("link", name="New order for Zelda QuartermaineNorth").click()


def fill_wizard(page: Page, shots: Shots, *, product_name: str, quantity: int, inline_finding: str = "") -> None:
    """Patient → prescription → catalog → quantities → delivery → documents, each with a screenshot;
    ``inline_finding``: a finding expected beside the product once it is chosen."""
    step(page, shots, "1-patient", "Patient")
    page.get_by_label("This is the right patient").check()
    go_on(page)

    step(page, shots, "2-prescription", "Prescription")
    expect(page.get_by_label("Insurance")).to_be_checked()  # coverage on file
    page.get_by_label("Diagnosis codes (ICD-10-CM)").fill("G47.33")
    page.get_by_label("Face-to-face encounter date").fill(timezone.localdate().isoformat())
    go_on(page)

    step(page, shots, "3-catalog", "Catalog")
    checks = page.get_by_role("region", name="Compliance checks")
    expect(checks).to_contain_text("lacks the general description of the item")
    page.get_by_role("checkbox", name=re.compile(product_name)).check()
    # The checks re-run as soon as the box is ticked (htmx), before moving on.
    expect(checks).not_to_contain_text("lacks the general description of the item")
    expect(page.get_by_role("checkbox", name=re.compile(product_name))).to_be_checked()
    if inline_finding:
        expect(page.locator(".catalog .finding")).to_contain_text(inline_finding)
    shots(page, "wizard-3-catalog-chosen")
    go_on(page)

    step(page, shots, "4-quantities", "Quantities")
    page.get_by_label(re.compile(product_name)).fill(str(quantity))
    go_on(page)

    step(page, shots, "5-delivery", "Delivery")
    page.get_by_label("Delivery window").select_option("morning")
    go_on(page)

    step(page, shots, "6-documents", "Documents")


def draw_signature(page: Page) -> None:
    canvas = page.get_by_role("img", name="Signature box")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"], box["y"] + box["height"] / 2
    page.mouse.move(x + 20, y)
    page.mouse.down()
    for dx, dy in ((60, -25), (110, 20), (160, -15), (220, 10)):
        page.mouse.move(x + dx, y + dy, steps=4)
    page.mouse.up()


def test_a_doctor_orders_a_clear_order_through_the_wizard(
    north: World, browser_page: Page, shots: Shots, viewport: str
) -> None:
    page = browser_page
    CoverageFactory.create(patient=north.patient)
    sign_in(page, "dr.north")
    start_for_patient(page)
    fill_wizard(page, shots, product_name=north.product.name, quantity=2)
    expect(page.get_by_role("region", name="Compliance checks")).to_contain_text("treating practitioner's signature")
    go_on(page)

    step(page, shots, "7-review", "Review")
    checks = page.get_by_role("region", name="Compliance checks")
    expect(checks).to_contain_text("Clear")  # once signed
    expect(page.get_by_role("region", name="Items and fulfillment")).to_contain_text("Warehouse")
    draw_signature(page)
    page.get_by_label(re.compile("sign this written order")).check()
    shots(page, "wizard-7-review-signed")
    page.get_by_role("button", name="Submit order").click()

    page.wait_for_url(ORDER_PAGE)
    order = Order.objects.get()
    expect(page).to_have_url(re.compile(rf"/portal/orders/{order.pk}/$"))
    expect(page.get_by_role("status").first).to_contain_text(f"Order {order.reference} submitted")
    expect(page.get_by_role("region", name="Status")).to_contain_text("Clear")
    accessible(page)
    shots(page, "submitted")
    assert (order.status, order.ai_disposition, order.signed_by) == (
        OrderStatus.PENDING_VERIFICATION,
        "clear",
        north.doctor,
    )
    signature = order.attachments.get(artifact_type="SIGNATURE")
    assert signature.summary_sha256 == order.signature_hash
    assert signature.file.read().startswith(b"\x89PNG")  # the canvas, as drawn


def test_a_prior_authorization_hold_is_resolved_by_ops_and_the_doctor_sees_preparing(
    north: World, browser_page: Page, shots: Shots, tmp_path: Path, viewport: str
) -> None:
    page = browser_page
    CoverageFactory.create(patient=north.patient)
    pump = ProductFactory.create(sku="PCD-PUMP", name="Compression pump", hcpcs_code="E0651", price_cents=98000)
    lot_receive(actor=None, product=pump, warehouse=WarehouseFactory.create(), lot_number="PUMP-1", quantity=5)

    sign_in(page, "dr.north")
    start_for_patient(page)
    fill_wizard(
        page,
        shots,
        product_name="Compression pump",
        quantity=1,
        inline_finding="E0651 is on the CMS Required Prior Authorization List",
    )
    clears = page.get_by_role("region", name="Documents with this order")
    expect(clears).to_contain_text("no affirmed prior authorization is on file")
    go_on(page)

    step(page, shots, "7-review", "Review")
    expect(page.get_by_role("region", name="Compliance checks")).to_contain_text("Hold")
    # Signing without a pointer: type the name and have it written in the box.
    page.get_by_label("Type your name to sign").fill("Dr. North")
    page.get_by_role("button", name="Sign with typed name").click()
    page.get_by_label(re.compile("sign this written order")).check()
    shots(page, "wizard-7-review-signed")
    page.get_by_role("button", name="Submit order").click()
    page.wait_for_url(ORDER_PAGE)
    order = Order.objects.get()
    expect(page.get_by_role("region", name="Status")).to_contain_text("Hold")
    assert order.status == OrderStatus.ON_HOLD
    page.get_by_role("button", name="Sign out").click()

    # Ops: the queue, the hold's "attach" link, the document, approval, fulfillment.
    sign_in(page, "ops.north")
    page.get_by_role("navigation", name="Portal").get_by_role("link", name="Review queue").click()
    row = page.locator(f"[data-order='{order.reference}']")
    expect(row).to_contain_text("PRIOR_AUTH_REQUIRED")
    accessible(page)
    shots(page, "ops-review-queue")
    row.get_by_role("link", name="Prior authorization").click()
    expect(page.get_by_label("Document type")).to_have_value("PRIOR_AUTH")
    page.get_by_label("Document date").fill(timezone.localdate().isoformat())
    document = tmp_path / "pa-decision.pdf"
    document.write_bytes(PDF)
    page.get_by_label("File (PDF, PNG or JPEG)").set_input_files(str(document))
    page.get_by_role("button", name="Attach document").click()
    expect(page.get_by_role("region", name="Status")).to_contain_text("Clear")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status").first).to_contain_text("approved")
    page.get_by_role("button", name="Start fulfillment").click()
    expect(page.get_by_role("region", name="Status")).to_contain_text("Preparing")
    accessible(page)
    shots(page, "ops-started-fulfillment")
    page.get_by_role("button", name="Sign out").click()

    # The doctor: the order is under Preparing.
    sign_in(page, "dr.north")
    page.get_by_role("link", name=re.compile("Preparing")).click()
    expect(page.get_by_role("link", name=f"Order {order.reference}")).to_be_visible()
    shots(page, "doctor-sees-preparing")
    order.refresh_from_db()
    assert order.status == OrderStatus.IN_PROGRESS
