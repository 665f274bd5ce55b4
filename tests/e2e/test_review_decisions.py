"""In a real browser, at a phone and a desktop viewport, across the roles an order passes:

(a) a doctor orders a CPAP resupply above the usual maximum with medical-necessity documentation
    through the wizard; the checks say *Needs review*; ops staff open the attached document from the
    order page, resolve the review with a note and start fulfillment; the doctor sees the order under
    Preparing and downloads the signed written order (PDF);
(b) a held order: ops staff are offered neither *Approve* nor the override; an admin releases it
    with an override and a reason from the order page;
(c) the doctor cancels an order with a reason.
axe-core finds no serious violation on any page of the way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from orders import services
from orders.models import Order, OrderEvent, OrderStatus
from tests.conftest import World
from tests.factories import CoverageFactory

from .conftest import Shots, sign_in
from .test_order_wizard import (
    ORDER_PAGE,
    PDF,
    accessible,
    fill_wizard,
    go_on,
    sign_typed_and_submit,
    start_for_patient,
    step,
)

pytestmark = pytest.mark.django_db(transaction=True)

NOTE = "Necessity letter read: mask leaks cause skin breakdown; four cushions this month are justified."


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()


def open_order(page: Page, order: Order) -> None:
    """From the home page's Pending tab, the order's page."""
    page.get_by_role("link", name=f"Order {order.reference}").first.click()
    page.wait_for_url(ORDER_PAGE)


def test_a_cpap_resupply_needing_review_is_resolved_by_ops_with_a_note_and_the_doctor_sees_it_preparing(
    north: World, browser_page: Page, shots: Shots, tmp_path: Path, viewport: str
) -> None:
    page = browser_page
    CoverageFactory.create(patient=north.patient)

    # The doctor: seven nasal cushions (A7032, two a month: at most six at a time) with the necessity letter
    sign_in(page, "dr.north")
    start_for_patient(page)
    fill_wizard(page, shots, product_name=north.product.name, quantity=7)
    page.get_by_label("Document type").select_option("MEDICAL_NECESSITY")
    page.get_by_label("Document date").fill(timezone.localdate().isoformat())
    letter = tmp_path / "necessity-letter.pdf"
    letter.write_bytes(PDF)
    page.get_by_label("File (PDF, PNG or JPEG)").set_input_files(str(letter))
    page.get_by_role("button", name="Add document").click()
    expect(page.get_by_role("region", name="Documents with this order")).to_contain_text(
        "Medical-necessity documentation"
    )
    accessible(page)
    go_on(page)

    step(page, shots, "7-review", "Review")
    expect(page.get_by_role("region", name="Compliance checks")).to_contain_text("Needs review")
    sign_typed_and_submit(page)
    order = Order.objects.get()
    assert (order.status, order.ai_disposition) == (OrderStatus.PENDING_VERIFICATION, "needs_review")
    status = page.get_by_role("region", name="Status")
    expect(status).to_contain_text("Needs review")
    expect(status).to_contain_text("Answered by Medical-necessity documentation attached")
    expect(status).not_to_contain_text("Clears with")
    # The doctor may not decide a review: nothing to approve, and it is not "needs your action"
    expect(page.get_by_role("button", name=re.compile("approve", re.I))).to_have_count(0)
    accessible(page)
    shots(page, "doctor-submitted-needs-review")
    page.get_by_role("navigation", name="Portal").get_by_role("link", name="Orders").click()
    expect(page.get_by_role("heading", name=re.compile("Needs your action"))).to_have_count(0)
    accessible(page)
    sign_out(page)

    # Ops: the queue, the order, the document read, the review resolved with a note
    sign_in(page, "ops.north")
    page.get_by_role("navigation", name="Portal").get_by_role("link", name="Review queue").click()
    row = page.locator(f"[data-order='{order.reference}']")
    expect(row).to_contain_text("QUANTITY_LIMIT_EXCEEDED")
    expect(row).to_contain_text("Answered by Medical-necessity documentation attached")
    accessible(page)
    shots(page, "ops-review-queue")
    row.get_by_role("link", name=f"Open order {order.reference}").click()
    page.wait_for_url(ORDER_PAGE)
    documents = page.get_by_role("region", name="Documents")
    with page.expect_download() as download:
        documents.get_by_role("link", name=re.compile("Medical-necessity documentation")).click()
    assert Path(download.value.path()).read_bytes() == PDF
    expect(page.get_by_role("button", name="Override and approve")).to_have_count(0)  # ops may not override
    accessible(page)
    shots(page, "ops-order-needs-review")
    page.get_by_role("button", name="Resolve review and approve").click()
    expect(page.get_by_role("region", name="Resolve the review")).to_contain_text("This field is required.")
    accessible(page)
    page.get_by_label("Review note").fill(NOTE)
    page.get_by_role("button", name="Resolve review and approve").click()
    expect(page.get_by_role("status").first).to_contain_text("resolved; the order is approved")
    expect(page.get_by_role("region", name="Status")).to_contain_text(f"Review resolved: {NOTE}")
    expect(page.get_by_role("region", name="Timeline")).to_contain_text(NOTE)
    expect(page.get_by_role("button", name=re.compile("approve", re.I))).to_have_count(0)  # nothing left to approve
    page.get_by_role("button", name="Start fulfillment").click()
    expect(page.get_by_role("region", name="Status")).to_contain_text("Preparing")
    accessible(page)
    shots(page, "ops-started-fulfillment")
    page.get_by_role("navigation", name="Portal").get_by_role("link", name="Review queue").click()
    expect(page.locator(f"[data-order='{order.reference}']")).to_have_count(0)
    accessible(page)
    sign_out(page)

    # The doctor: under Preparing, with the signed written order to print
    sign_in(page, "dr.north")
    page.get_by_role("link", name=re.compile("Preparing")).click()
    expect(page.get_by_role("link", name=f"Order {order.reference}")).to_be_visible()
    accessible(page)
    shots(page, "doctor-sees-preparing")
    open_order(page, order)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the signed written order (PDF)").click()
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert download.value.suggested_filename == f"written-order-{order.reference}.pdf"
    accessible(page)
    order.refresh_from_db()
    assert (order.status, order.approver, order.ai_disposition) == (OrderStatus.IN_PROGRESS, north.ops, "clear")
    assert OrderEvent.objects.get(order=order, transition="verify").reason == NOTE


def test_a_held_order_is_released_by_an_admin_override_from_the_order_page(
    north: World, browser_page: Page, shots: Shots, viewport: str
) -> None:
    page = browser_page
    order = north.order(items=[services.ItemRequest(sku=north.product.sku, quantity=7)])  # above the usual maximum
    assert Order.objects.get(pk=order.pk).status == OrderStatus.ON_HOLD

    # Ops without the override permission: neither Approve nor the override is offered
    sign_in(page, "ops.north")
    page.goto(f"/portal/orders/{order.pk}/")
    expect(page.get_by_role("region", name="Status")).to_contain_text("Hold")
    expect(page.get_by_role("button", name=re.compile("approve", re.I))).to_have_count(0)
    expect(page.get_by_label("Override reason")).to_have_count(0)
    accessible(page)
    shots(page, "ops-held-order")
    sign_out(page)

    # An admin: the override with a reason
    sign_in(page, "admin.north")
    page.goto(f"/portal/orders/{order.pk}/")
    expect(page.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    accessible(page)
    page.get_by_role("button", name="Override and approve").click()
    expect(page.get_by_role("region", name="Approve")).to_contain_text("This field is required.")
    page.get_by_label("Override reason").fill("Backorder accepted by the patient; letter to follow")
    shots(page, "admin-override")
    page.get_by_role("button", name="Override and approve").click()
    expect(page.get_by_role("status").first).to_contain_text("approved over its findings")
    status = page.get_by_role("region", name="Status")
    expect(status).to_contain_text("Verified")
    expect(status).to_contain_text("Approved over the findings (override): Backorder accepted by the patient")
    accessible(page)
    shots(page, "admin-released")
    order.refresh_from_db()
    assert (order.status, order.approver) == (OrderStatus.VERIFIED, north.admin)
    verify = OrderEvent.objects.get(order=order, transition="verify")
    assert verify.payload["override"] == {
        "reason": "Backorder accepted by the patient; letter to follow",
        "findings": ["QUANTITY_LIMIT_EXCEEDED"],
    }


def test_the_doctor_cancels_an_order_with_a_reason(
    north: World, browser_page: Page, shots: Shots, viewport: str
) -> None:
    page = browser_page
    order = north.order()
    sign_in(page, "dr.north")
    open_order(page, order)
    cancel = page.get_by_role("region", name="Cancel the order")
    cancel.get_by_role("button", name="Cancel order").click()
    expect(page.get_by_role("region", name="Cancel the order")).to_contain_text("This field is required.")
    accessible(page)
    page.get_by_label("Reason for cancelling").fill("The patient changed supplier")
    shots(page, "doctor-cancel")
    page.get_by_role("region", name="Cancel the order").get_by_role("button", name="Cancel order").click()
    expect(page.get_by_role("status").first).to_contain_text(f"Order {order.reference} cancelled.")
    expect(page.get_by_role("region", name="Status")).to_contain_text("Cancelled")
    expect(page.get_by_role("region", name="Cancel the order")).to_have_count(0)
    accessible(page)
    shots(page, "doctor-cancelled")
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert OrderEvent.objects.get(order=order, transition="cancel").reason == "The patient changed supplier"
