"""In a real browser: a doctor finds a patient by the start of a name, sees their recent patients,
opens the card with the patient's orders and their stages and what is already on its way, and
reorders an earlier order into a prefilled wizard draft — at a phone and a desktop viewport, with
axe-core on every page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from orders import fulfillment, services
from orders.models import FulfillmentTask, OrderDraft
from patients.models import PriorAuthorization
from tests.conftest import World
from tests.factories import PatientFactory

from .conftest import Shots, serious_accessibility_violations, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_doctor_finds_a_patient_by_prefix_sees_their_orders_and_reorders(
    north: World, browser_page: Page, shots: Shots, viewport: str
) -> None:
    page = browser_page
    # Given Ada Marchetti with three orders: shipped (with tracking), preparing, and cancelled
    patient = PatientFactory.create(
        provider=north.provider,
        territory=north.territory,
        first_name="Ada",
        last_name="Marchetti",
        date_of_birth=dt.date(1950, 12, 10),
        medications=["Imdur(60mg)", "Lisinopril 10 mg daily"],
    )
    PriorAuthorization.objects.create(
        patient=patient,
        territory=north.territory,
        hcpcs_code="L1851",
        decision="affirmed",
        decision_date=timezone.localdate() - dt.timedelta(days=59),  # 60 days (ORTHOSES): today is the last valid day
        tracking_number="UTN-L1851",
    )
    line = [services.ItemRequest(sku=north.product.sku, quantity=1)]
    shipped = north.order(patient_id=patient.pk, items=line, requested_date=dt.date.today() - dt.timedelta(days=40))
    services.order_verify(order_id=shipped.pk, actor=north.ops)
    services.order_transition(order_id=shipped.pk, actor=north.ops, transition="start_fulfillment")
    task = FulfillmentTask.objects.get(order=shipped, kind="pick_pack")
    fulfillment.pick_pack_ship(task_id=task.pk, actor=north.ops, carrier="UPS", tracking_number="1Z999AA10123456784")
    cancelled = north.order(patient_id=patient.pk, items=line)
    services.order_transition(order_id=cancelled.pk, actor=north.ops, transition="cancel", reason="Entered twice")
    preparing = north.order(patient_id=patient.pk, items=line, actor=north.ops)
    services.order_approve(order_id=preparing.pk, actor=north.admin, override_reason="Mask refit agreed")
    services.order_transition(order_id=preparing.pk, actor=north.ops, transition="start_fulfillment")

    sign_in(page, "dr.north")

    # The patients page lists the doctor's recent patients; "March" finds Marchetti
    page.get_by_role("navigation", name="Portal").get_by_role("link", name="Patients").click()
    recent = page.get_by_role("region", name="Your recent patients")
    expect(recent.get_by_role("link", name="Ada Marchetti", exact=True)).to_be_visible()
    assert serious_accessibility_violations(page) == []
    shots(page, "recent-patients")
    page.get_by_label("Name and/or date of birth").fill("March")
    page.get_by_role("button", name="Search").click()
    result = page.get_by_role("region", name="Search results").get_by_role("link", name="Ada Marchetti", exact=True)
    expect(result).to_be_visible()
    assert "March" not in page.url
    assert serious_accessibility_violations(page) == []
    shots(page, "prefix-search")

    # The card lists the three orders with their stages, and what is already on its way
    result.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ada Marchetti")
    orders = page.get_by_role("region", name="Orders")
    expect(orders.get_by_role("listitem")).to_have_count(3)
    expect(orders.get_by_role("listitem").nth(0)).to_contain_text(f"Order {preparing.reference}")
    expect(orders.get_by_role("listitem").nth(0)).to_contain_text("Preparing")
    expect(orders.get_by_role("listitem").nth(1)).to_contain_text("Cancelled")
    expect(orders.get_by_role("listitem").nth(2)).to_contain_text("Shipped")
    on_its_way = page.get_by_role("region", name="On its way")
    expect(on_its_way).to_contain_text(
        f"An order for this item is already on its way: {preparing.reference}, Preparing."
    )
    expect(on_its_way).to_contain_text(f"An order for this item is already on its way: {shipped.reference}, Shipped.")
    # Its prior authorization is valid until today (the program's 60 days), and its medications say
    # what the safety table recognised
    today = f"{timezone.localdate():%b %-d, %Y}"
    expect(page.get_by_role("region", name="Warnings")).to_contain_text(
        f"The prior authorization for L1851 expires on {today}."
    )
    expect(page.get_by_role("region", name="Prior authorizations")).to_contain_text(f"{today} (the program's validity)")
    medications = page.get_by_role("region", name="Medications as recorded")
    expect(medications.get_by_role("row", name=re.compile("Imdur"))).to_contain_text("isosorbide mononitrate")
    expect(medications.get_by_role("row", name=re.compile("Lisinopril"))).to_contain_text(
        "Not recognised — not checked by the safety table"
    )
    assert serious_accessibility_violations(page) == []
    shots(page, "patient-card")

    # The shipped order's page links its tracking number to the carrier
    orders.get_by_role("link", name=f"Order {shipped.reference}").click()
    tracking = page.get_by_role("link", name=re.compile("1Z999AA10123456784"))
    expect(tracking).to_have_attribute("href", "https://www.ups.com/track?tracknum=1Z999AA10123456784")
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text("by the compliance checks")
    expect(timeline).not_to_contain_text("AI (deterministic")
    assert serious_accessibility_violations(page) == []
    shots(page, "order-page")
    page.go_back()

    # Reorder the shipped order: a new draft, prefilled, opens in the wizard
    page.get_by_role("button", name=f"Reorder {shipped.reference}").click()
    expect(page).to_have_url(re.compile(r"/portal/drafts/[0-9a-f-]+/patient/$"))
    expect(page.get_by_role("status").first).to_contain_text(f"A new order copied from {shipped.reference}")
    expect(page.get_by_role("region", name="On its way")).to_contain_text(preparing.reference)
    assert serious_accessibility_violations(page) == []
    shots(page, "reorder-wizard")
    page.get_by_label("This is the right patient").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_label("Insurance")).to_be_checked()
    expect(page.get_by_label("Diagnosis codes (ICD-10-CM)")).to_have_value("G47.33")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("checkbox", name=re.compile(north.product.name))).to_be_checked()
    checks = page.get_by_role("region", name="Compliance checks")
    expect(checks).to_contain_text(f"An order for this item is already on its way: {preparing.reference}, Preparing.")
    assert serious_accessibility_violations(page) == []
    shots(page, "reorder-items")

    draft = OrderDraft.objects.get(created_by=north.doctor, order__isnull=True)
    assert (draft.patient_id, draft.answers["skus"], draft.answers["quantities"]) == (
        patient.pk,
        [north.product.sku],
        {north.product.sku: 1},
    )
