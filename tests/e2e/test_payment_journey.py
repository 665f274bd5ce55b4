"""In a real browser, at a phone and a desktop viewport: a cash-pay order crosses every hand it must
pass to be paid. Ops staff approve it on its portal page; the payments agent invoices it and texts
the patient a pay link (through a local HTTP server standing in for the SMS provider); the patient
opens the link in a browser of their own, presses *Pay*, pays on the sandbox Checkout and sees the
order paid; ops staff see it paid in the portal. A declined card leaves the order awaiting payment.
axe-core finds no serious violation on any page of the way.

These are the pages' own form posts, so Chromium sends the ``Origin`` header Django's CSRF check
reads — which the Django test client never does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from pytest_httpserver import HTTPServer

from orders import services as order_services
from orders.models import Order, OrderStatus
from payments import links
from payments.models import Invoice, InvoiceStatus, Payment, PaymentLink, PaymentStatus
from tests.conftest import World

from .conftest import VIEWPORTS, CSPViolations, Shots, serious_accessibility_violations, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

ORDER_TOTAL = "$250.00"  # two of the world's $125.00 masks
SANDBOX_CHECKOUT = re.compile(r"/pay/sandbox/cs_sandbox_\w+$")


def accessible(page: Page) -> None:
    assert serious_accessibility_violations(page) == []


@pytest.fixture
def sms_provider(httpserver: HTTPServer, settings: Any) -> HTTPServer:
    """The SMS provider: a local HTTP server the real HTTP backend posts each message to."""
    httpserver.expect_request("/messages", method="POST").respond_with_json({"status": "queued"}, status=202)
    settings.SMS_BACKEND = "core.sms.HTTPSMSBackend"
    settings.SMS_HTTP_URL = httpserver.url_for("/messages")
    settings.SMS_HTTP_TOKEN = "sms-test-token"
    return httpserver


@pytest.fixture
def public_site(live_server: Any, settings: Any) -> str:
    """Links and the sandbox Checkout point at the live server, as ``PUBLIC_BASE_URL`` does in production."""
    settings.PUBLIC_BASE_URL = live_server.url
    return str(live_server.url)


@pytest.fixture
def patient_browser(
    browser: Browser, public_site: str, viewport: str, csp_violations: CSPViolations
) -> Iterator[Callable[[], Page]]:
    """Opens the patient's own browser (a fresh context: no cookies, no portal session) at the test's viewport."""
    contexts = []

    def open_browser() -> Page:
        phone = viewport == "phone"
        context = browser.new_context(viewport=VIEWPORTS[viewport], is_mobile=phone, has_touch=phone)
        csp_violations.watch(context)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield open_browser
    for context in contexts:
        context.close()


def texted_link(sms_provider: HTTPServer, world: World) -> str:
    """The one pay link the patient was texted (from the SMS provider's received messages: the link and
    the order's confirmation, in either order: each agent answers its own event)."""
    messages = [json.loads(request.get_data()) for request, _response in sms_provider.log]
    assert [message["to"] for message in messages] == [world.patient.phone, world.patient.phone]
    (confirmation,) = [m["body"] for m in messages if "/pay/" not in m["body"]]
    assert "is confirmed. A link to pay for it follows" in confirmation
    (body,) = [m["body"] for m in messages if "/pay/" in m["body"]]
    for phi in (world.patient.first_name, world.patient.last_name, "1948", world.product.name, "G47.33"):
        assert phi not in body
        assert phi not in confirmation
    found = re.findall(r"https?://\S+/pay/[^\s]+", body)
    assert len(found) == 1, body
    return str(found[0])


def test_a_cash_order_is_approved_the_patient_pays_on_the_link_and_ops_see_it_paid(
    north: World,
    browser_page: Page,
    patient_browser: Callable[[], Page],
    sms_provider: HTTPServer,
    shots: Shots,
    viewport: str,
) -> None:
    order = north.order(payer_type="cash")  # the doctor's signed order: clear, pending verification
    assert (order.status, order.ai_disposition, order.total_cents) == (OrderStatus.PENDING_VERIFICATION, "clear", 25000)

    # Ops staff approve it on its page; the payments agent invoices it and texts the patient a link.
    ops = browser_page
    sign_in(ops, "ops.north")
    ops.goto(f"/portal/orders/{order.pk}/")
    accessible(ops)
    shots(ops, "ops-order-to-approve")
    ops.get_by_role("button", name="Approve").click()
    expect(ops.get_by_role("status").first).to_contain_text(f"Order {order.reference} approved")
    expect(ops.get_by_role("region", name="Status")).to_contain_text("Awaiting payment")
    accessible(ops)
    shots(ops, "ops-approved-awaiting-payment")
    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_PAYMENT
    assert Invoice.objects.get(order=order).status == InvoiceStatus.OPEN
    link = PaymentLink.objects.get(order=order)
    pay_url = texted_link(sms_provider, north)
    assert pay_url == links.payment_link_url(link)

    # The patient, on their own browser: the link, Pay, the sandbox Checkout, Pay, the confirmation.
    patient = patient_browser()
    patient.goto(pay_url)
    expect(patient.get_by_role("heading", level=1)).to_have_text(f"Order {order.reference}")
    expect(patient.get_by_role("table")).to_contain_text(north.product.name)
    accessible(patient)
    shots(patient, "patient-pay-page")
    patient.get_by_role("button", name=f"Pay {ORDER_TOTAL}").click()
    patient.wait_for_url(SANDBOX_CHECKOUT)
    expect(patient.get_by_role("heading", level=1)).to_have_text(f"Order {order.reference}")
    expect(patient.get_by_text(ORDER_TOTAL)).to_be_visible()
    accessible(patient)
    shots(patient, "patient-sandbox-checkout")
    patient.get_by_role("button", name="Pay (sandbox: succeeds)").click()
    patient.wait_for_url(f"{pay_url}?checkout=done")
    expect(patient.get_by_role("status")).to_have_text("Thank you — this order is paid. Nothing more is needed.")
    expect(patient.get_by_role("button", name=re.compile("Pay"))).to_have_count(0)
    accessible(patient)
    shots(patient, "patient-paid-confirmation")

    order.refresh_from_db()
    payment = Payment.objects.get(order=order)
    assert (order.status, payment.status, payment.amount_cents, payment.link_id) == (
        OrderStatus.PAID,
        PaymentStatus.SUCCEEDED,
        25000,
        link.pk,
    )
    assert Invoice.objects.get(order=order).status == InvoiceStatus.PAID

    # Ops staff see it paid.
    ops.reload()
    expect(ops.get_by_role("region", name="Status")).to_contain_text("Paid")
    expect(ops.get_by_role("region", name="Timeline")).to_contain_text("Sandbox payment succeeded")
    accessible(ops)
    shots(ops, "ops-sees-paid")


def test_a_declined_card_leaves_the_order_awaiting_payment_and_the_patient_can_try_again(
    north: World, patient_browser: Callable[[], Page], shots: Shots, viewport: str
) -> None:
    order = north.order(payer_type="cash")
    order_services.order_approve(order_id=order.pk, actor=north.ops, notes="Clear")  # the agent issues the link
    pay_url = links.payment_link_url(PaymentLink.objects.get(order=order))

    patient = patient_browser()
    patient.goto(pay_url)
    patient.get_by_role("button", name=f"Pay {ORDER_TOTAL}").click()
    patient.wait_for_url(SANDBOX_CHECKOUT)
    patient.get_by_role("button", name="Decline (sandbox: fails)").click()
    expect(patient.get_by_role("alert")).to_have_text(
        "The sandbox declined the payment (card_declined). You can try again."
    )
    accessible(patient)
    shots(patient, "patient-declined")

    order.refresh_from_db()
    payment = Payment.objects.get(order=order)
    assert (order.status, payment.status, payment.last_error_code) == (
        OrderStatus.AWAITING_PAYMENT,
        PaymentStatus.REQUIRES_PAYMENT_METHOD,
        "card_declined",
    )
    assert Invoice.objects.get(order=order).status == InvoiceStatus.OPEN

    patient.get_by_role("link", name="Back without paying").click()
    patient.wait_for_url(f"{pay_url}?checkout=cancelled")
    expect(patient.get_by_role("status")).to_have_text("The payment was not completed. You can try again below.")
    expect(patient.get_by_role("button", name=f"Pay {ORDER_TOTAL}")).to_be_visible()
    accessible(patient)
    shots(patient, "patient-back-to-try-again")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.AWAITING_PAYMENT

    # Back from a Checkout before its webhook arrived (Stripe's is not instant): the page says it is confirming.
    patient.goto(f"{pay_url}?checkout=done")
    expect(patient.get_by_role("status")).to_have_text(
        "We are confirming your payment. This usually takes a few seconds."
    )
    expect(patient.get_by_role("button", name=re.compile("Pay"))).to_have_count(0)
    accessible(patient)
    shots(patient, "patient-payment-being-confirmed")
    patient.get_by_role("link", name="Check again").click()
    expect(patient.get_by_role("status")).to_contain_text("We are confirming your payment")
