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
from orders.management.commands.seed_demo import Command as SeedDemo
from orders.models import Order, OrderDraft, OrderStatus
from tests.conftest import World
from tests.factories import CoverageFactory, PatientFactory, ProductFactory, WarehouseFactory

from .conftest import Shots, serious_accessibility_violations, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

ORDER_PAGE = re.compile(r"/portal/orders/[0-9a-f-]{36}/$")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def accessible(page: Page) -> None:
    assert serious_accessibility_violations(page) == []


def step(page: Page, shots: Shots, name: str, label: str) -> None:
    """On the wizard step ``label``: check it (axe-core, no sideways scrolling, every
    aria-describedby names an element, tick boxes of 24 px), keep its screenshot."""
    expect(page.get_by_role("heading", level=1)).to_contain_text(f": {label}")
    accessible(page)
    assert page.evaluate(NO_SIDEWAYS_SCROLL), f"{label}: the page scrolls sideways"
    assert page.evaluate(MISSING_DESCRIPTIONS) == [], label
    assert page.evaluate(SMALL_TICK_BOXES) == [], label
    shots(page, f"wizard-{name}")


NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"
MISSING_DESCRIPTIONS = """() => [...document.querySelectorAll('[aria-describedby]')].flatMap(
  (el) => el.getAttribute('aria-describedby').split(/\\s+/).filter((id) => id && !document.getElementById(id)))"""
SMALL_TICK_BOXES = """() => [...document.querySelectorAll('input[type=checkbox], input[type=radio]')]
  .map((el) => el.getBoundingClientRect()).filter((box) => box.width < 24 || box.height < 24)
  .map((box) => [box.width, box.height])"""
# The focused element's outline against the colour behind it (the nearest opaque ancestor), as the
# WCAG contrast ratio (relative luminance, https://www.w3.org/TR/WCAG22/#dfn-contrast-ratio).
FOCUS_RING = """() => {
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const channel = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const el = document.activeElement;
  let behind = [255, 255, 255];
  for (let e = el.parentElement; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0)) { behind = c; break; }
  }
  const style = getComputedStyle(el);
  const [light, dark] = [luminance(parse(style.outlineColor)), luminance(behind)].sort((a, b) => b - a);
  const ratio = (light + 0.05) / (dark + 0.05);
  return {tag: el.tagName, style: style.outlineStyle, width: parseFloat(style.outlineWidth), ratio: ratio};
}"""


def focus_rings(page: Page, presses: int) -> list[dict[str, object]]:
    """Tab through ``presses`` elements from the top of the page; the focus ring of each."""
    page.locator("body").focus()
    rings = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        rings.append(page.evaluate(FOCUS_RING))
    return rings


def go_on(page: Page) -> None:
    page.get_by_role("button", name="Continue").click()


def sign_typed_and_submit(page: Page, shots: Shots | None = None) -> None:
    """On the review step: the ordering doctor signs with a typed name, confirms and submits; waits
    for the new order's page. ``shots``: keep a screenshot of the signed review first."""
    page.get_by_label("Type your name to sign").fill("Dr. North")
    page.get_by_role("button", name="Sign with typed name").click()
    page.get_by_label(re.compile("sign this written order")).check()
    if shots is not None:
        shots(page, "wizard-7-review-signed")
    page.get_by_role("button", name="Submit order").click()
    page.wait_for_url(ORDER_PAGE)


def start_for_patient(page: Page) -> None:
    """From the home page: find the patient and open a new order for them."""
    page.get_by_role("navigation", name="Portal").get_by_role("link", name="Patients").click()
    page.get_by_label("Name and/or date of birth").fill("Zelda QuartermaineNorth 1948-07-09")
    page.get_by_role("button", name="Search").click()
    results = page.get_by_role("region", name="Search results")
    results.get_by_role("link", name="New order for Zelda QuartermaineNorth").click()
    # The link only shows the page; the draft starts with the button's POST.
    accessible(page)
    page.get_by_role("button", name="Start order for Zelda QuartermaineNorth").click()


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
    sign_typed_and_submit(page, shots)
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
    # The decision is for the pump's code: a prior authorization clears only the item it names.
    page.get_by_label("E0651 · Compression pump").check()
    page.get_by_label("Document date").fill(timezone.localdate().isoformat())
    document = tmp_path / "pa-decision.pdf"
    document.write_bytes(PDF)
    page.get_by_label("File (PDF, PNG or JPEG)").set_input_files(str(document))
    page.get_by_role("button", name="Attach document").click()
    expect(page.get_by_role("region", name="Status")).to_contain_text("Clear")
    expect(page.get_by_role("region", name="Documents")).to_contain_text("for E0651")
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


def seed_demo_catalog() -> None:
    """The demo catalog (DME with HCPCS codes, cash-pay medications), as ``seed_demo`` creates it."""
    command = SeedDemo()
    command._products(vendors=command._vendors())


def test_a_cash_pay_patient_orders_a_medication_with_its_prescription(
    north: World, browser_page: Page, shots: Shots, viewport: str
) -> None:
    page = browser_page
    seed_demo_catalog()
    patient = PatientFactory.create(
        provider=north.provider, territory=north.territory, first_name="Cass", last_name="Payne", insured=False
    )
    sign_in(page, "dr.north")
    # The deep link shows a page; nothing is created until the button is pressed.
    page.goto(f"/portal/orders/new?patient={patient.pk}")
    accessible(page)
    assert OrderDraft.objects.count() == 0
    page.get_by_role("button", name="Start order for Cass Payne").click()
    step(page, shots, "1-patient", "Patient")
    page.get_by_label("This is the right patient").check()
    go_on(page)

    step(page, shots, "2-prescription", "Prescription")
    expect(page.get_by_label("Cash pay")).to_be_checked()  # no coverage in force
    expect(page.get_by_label("Insurance")).not_to_be_checked()
    page.get_by_label("Insurance").check()
    go_on(page)
    expect(page.locator(".errorlist")).to_contain_text("no insurance coverage in force")
    page.get_by_label("Cash pay").check()
    go_on(page)

    step(page, shots, "3-catalog", "Catalog")
    # Server-side search through htmx: the list narrows without a page load.
    page.get_by_label("Search products").fill("liraglutide")
    pen = page.get_by_role("checkbox", name=re.compile("Liraglutide"))
    expect(pen).to_be_visible()
    expect(page.get_by_role("checkbox", name=re.compile("CPAP device"))).to_have_count(0)
    expect(page.locator("#catalog-results")).not_to_contain_text("cash_pay")
    expect(page.locator("#catalog-results")).to_contain_text("Cash pay only tier")
    star = page.get_by_role("button", name=re.compile("Favourite: Liraglutide"))
    star.click()
    expect(page.get_by_role("button", name=re.compile("Favourite: Liraglutide"))).to_have_attribute(
        "aria-pressed", "true"
    )
    pen = page.get_by_role("checkbox", name=re.compile("Liraglutide"))
    pen.check()
    expect(page.get_by_role("region", name="Compliance checks")).to_contain_text("Disposition so far")
    expect(pen).to_be_checked()
    shots(page, "wizard-3-catalog-chosen")
    go_on(page)

    step(page, shots, "4-quantities", "Quantities")
    go_on(page)  # the prescription is not given yet
    expect(page.locator(".errorlist").first).to_contain_text("Needed for the prescription of Liraglutide")
    page.get_by_label("Sig (dose and directions)").fill("Inject 0.6 mg under the skin once a day")
    page.get_by_label("Doses").fill("1")
    page.get_by_label("Every").fill("1")
    page.get_by_label("Period").select_option("d")
    page.get_by_label("Days' supply").fill("30")
    page.get_by_label("Refills").fill("2")
    step(page, shots, "4-quantities-prescription", "Quantities")
    go_on(page)

    step(page, shots, "5-delivery", "Delivery")
    page.get_by_label("Address line 1").fill("1 Elm St")
    page.get_by_label("City").fill("Fargo")
    page.get_by_label("State").fill("XX")
    page.get_by_label("ZIP code").fill("5810")
    go_on(page)
    expect(page.get_by_text("Enter a 5-digit ZIP code")).to_be_visible()
    expect(page.get_by_text("Enter the two-letter USPS code of a US state or territory")).to_be_visible()
    step(page, shots, "5-delivery-errors", "Delivery")
    page.get_by_label("State").fill("ND")
    page.get_by_label("ZIP code").fill("58102")
    go_on(page)

    step(page, shots, "6-documents", "Documents")
    go_on(page)
    step(page, shots, "7-review", "Review")
    total = page.locator("[data-total]")
    expect(total).to_have_text("$799.00")
    box = total.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= page.viewport_size["width"]  # type: ignore[index]
    assert page.evaluate(
        "() => { const w = document.querySelector('.table-wrap'); return w.scrollWidth <= w.clientWidth; }"
    )
    sign_typed_and_submit(page)
    order = Order.objects.get()
    expect(page.get_by_role("status").first).to_contain_text("the patient gets a payment link")
    accessible(page)
    shots(page, "submitted")
    line = order.items.get()
    assert (order.payer_type, line.dosage_text, line.days_supply, line.refills) == (
        "cash",
        "Inject 0.6 mg under the skin once a day",
        30,
        2,
    )


def test_an_insured_cpap_patient_sees_a_short_catalog_that_fits_a_phone(
    north: World, browser_page: Page, shots: Shots, viewport: str
) -> None:
    page = browser_page
    seed_demo_catalog()
    sign_in(page, "dr.north")
    page.goto("/")
    page.wait_for_url("**/portal/")  # the site root leads to the portal
    page.goto(f"/portal/orders/new?patient={north.patient.pk}")
    page.get_by_role("button", name="Start order for Zelda QuartermaineNorth").click()
    page.get_by_label("This is the right patient").check()
    go_on(page)
    expect(page.get_by_label("Insurance")).to_be_checked()
    go_on(page)
    step(page, shots, "3-catalog", "Catalog")
    results = page.locator("#catalog-results")
    for cash_only in ("Tadalafil", "Finasteride", "Sildenafil", "Minoxidil", "Liraglutide"):
        expect(results).not_to_contain_text(cash_only)
    page.get_by_label("Therapy").select_option("cpap")
    expect(page.get_by_role("checkbox", name=re.compile("Home blood glucose monitor"))).to_have_count(0)
    expect(page.get_by_role("checkbox", name=re.compile("CPAP full face mask"))).to_be_visible()
    height = page.evaluate("() => document.documentElement.scrollHeight")
    assert height < (2600 if viewport == "phone" else 1800), height
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    shots(page, "wizard-3-catalog-cpap")
    # Keyboard focus: a ring of at least 3:1 against what surrounds it, on every element reached.
    rings = focus_rings(page, 14)
    weak = [ring for ring in rings if ring["style"] == "none" or float(ring["ratio"]) < 3]  # type: ignore[arg-type]
    assert weak == [], weak
