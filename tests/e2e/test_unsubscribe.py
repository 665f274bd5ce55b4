"""In a real browser, at a phone and a desktop viewport: ops approve an order in the portal, the
patient follows the unsubscribe link of the confirmation email and stops order emails; the next
message is not sent, and ops see it so on the order's page. axe-core finds no serious violation."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Page, expect

from orders import messaging
from orders.models import Message, MessageTemplate
from patients.models import Patient
from tests.conftest import World

from .conftest import sign_in
from .test_order_wizard import NO_SIDEWAYS_SCROLL, ORDER_PAGE, accessible

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_patient_stops_order_emails_from_the_link_and_ops_see_the_next_one_not_sent(
    north: World, browser_page: Page, live_server: Any, settings: Any
) -> None:
    settings.PUBLIC_BASE_URL = live_server.url
    page = browser_page
    order = north.order()

    # Ops approve the order from its page: the confirmation goes out by email (and text)
    sign_in(page, "ops.north")
    page.goto(f"{live_server.url}/portal/orders/{order.pk}/")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status").first).to_contain_text("approved")
    (email,) = [m for m in mail.outbox if m.subject == f"Your order {order.reference}"]
    (link,) = re.findall(r"https?://\S+/messages/unsubscribe/\S+", str(email.body))
    page.context.clear_cookies()

    # The patient opens the link and stops the emails
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Order emails")
    accessible(page)
    assert page.evaluate(NO_SIDEWAYS_SCROLL), "the unsubscribe page scrolls sideways"
    page.get_by_role("button", name="Stop order emails").click()
    expect(page.get_by_role("status")).to_contain_text("You will get no more emails about your orders.")
    accessible(page)
    patient = Patient.objects.get(pk=north.patient.pk)
    assert (patient.consent_email, patient.consent_sms, patient.consent_source) == (False, True, "unsubscribe link")

    # Ops see the confirmation sent; the shipment email is logged as not sent
    now = timezone.now()
    for message in messaging.messages_schedule(order_id=order.pk, template=MessageTemplate.SHIPPED, now=now):
        messaging.message_send(message_id=message.pk, now=now)
    assert Message.objects.get(order=order, template="shipped", channel="email").status == "suppressed"
    sign_in(page, "ops.north")
    page.goto(f"{live_server.url}/portal/orders/{order.pk}/")
    page.wait_for_url(ORDER_PAGE)
    log = page.get_by_role("region", name="Messages to the patient")
    expect(log.locator("[data-message='confirmation-email']")).to_contain_text("Sent")
    expect(log.locator("[data-message='shipped-email']")).to_contain_text("Not sent")
    accessible(page)
