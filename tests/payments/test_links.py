"""Payment links: a verified cash-pay order waits for payment and the patient gets /pay/<token>; the page
shows the minimum; Checkout Sessions are made once per attempt; expired, revoked and re-issued links
never take a second payment. Stripe is the real stripe-python client against a local server."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.core import signing
from django.utils import timezone

from core.exceptions import PermissionDenied, ValidationFailed
from orders import services as order_services
from orders.models import Order
from payments import links
from payments.models import Invoice, Payment, PaymentLink, ProcessedStripeEvent, Refund
from payments.selectors import reconciliation_mismatches
from tests.conftest import World

from .conftest import FakeStripe, awaiting_payment, deliver, stripe_event


def verified_through_the_agents(world: World, capture: Any, *, payer_type: str = "cash") -> Order:
    """Verify an order and let the payments agent react (outbox callbacks run, Celery eager)."""
    order = world.order(payer_type=payer_type)
    with capture(execute=True):
        order_services.order_verify(order_id=order.pk, actor=world.ops)
    return Order.objects.get(pk=order.pk)


def path_of(link: PaymentLink) -> str:
    return links.payment_link_url(link).removeprefix("http://localhost:8000")


def completed(session: dict[str, Any], order: Order) -> str:
    return stripe_event(f"evt_done_{session['id']}", "checkout.session.completed", session)


def test_verifying_a_cash_order_asks_the_patient_to_pay_by_link(
    north: World, django_capture_on_commit_callbacks: Any, capsys: Any
) -> None:
    capsys.readouterr()
    before = timezone.now()
    order = verified_through_the_agents(north, django_capture_on_commit_callbacks)

    assert order.status == "awaiting_payment"
    assert Invoice.objects.get(order=order).status == "open"
    link = PaymentLink.objects.get(order=order)
    assert (link.revoked_at, link.created_by) == (None, None)
    assert before + dt.timedelta(hours=72) <= link.expires_at <= timezone.now() + dt.timedelta(hours=72)
    assert link.notified_at is not None
    # The console backend (a log, not a phone) writes the message with the link's token masked
    sms = capsys.readouterr().out
    token = links.payment_link_token(link)
    # First the engagement agent's confirmation (the payment is its outstanding action), then the link
    assert sms == (
        f"[sms] North: your order {order.reference} is confirmed. A link to pay for it follows; we will tell you"
        " when it ships. Reply STOP to stop texts.\n"
        f"[sms] North: your order {order.reference} is ready for payment. Pay securely at "
        f"http://localhost:8000/pay/****{token[-4:]} — the link works until "
        f"{timezone.localtime(link.expires_at):%b %-d, %Y}.\n"
    )
    assert token[:-4] not in sms
    events = [(e.kind, e.transition, e.actor_kind, e.reason) for e in order.events.order_by("sequence")]
    assert events[-2:] == [
        ("transition", "request_payment", "system", "Cash-pay order verified: the patient pays by link"),
        ("payment", "", "system", "Payment link issued"),
    ]


def test_an_insurance_order_is_not_asked_for_payment(north: World, django_capture_on_commit_callbacks: Any) -> None:
    order = verified_through_the_agents(north, django_capture_on_commit_callbacks, payer_type="insurance")
    assert (order.status, PaymentLink.objects.count(), Invoice.objects.count()) == ("verified", 0, 0)


def test_the_page_shows_the_practice_items_and_total_and_nothing_about_the_patient(
    north: World, client: Any, stripe_server: FakeStripe
) -> None:
    order = awaiting_payment(north)
    link = links.payment_link_issue(order_id=order.pk, actor=north.ops)

    page = client.get(path_of(link))

    body = page.content.decode()
    assert page.status_code == 200
    assert f"Order {order.reference}" in body
    assert "North" in body
    assert north.product.name in body
    assert body.count("$250.00") == 3  # the line, the total and the button
    assert "Pay $250.00" in body
    for phi in ("Zelda", "QuartermaineNorth", "1948", "1EG4TE5MK73", "555-010", "@example.org", "G47.33"):
        assert phi not in body
    assert "SANDBOX" not in body
    assert (page["Cache-Control"], page["Referrer-Policy"], page["X-Robots-Tag"]) == (
        "no-store",
        "same-origin",
        "noindex, nofollow",
    )


@pytest.mark.parametrize("kind", ["tampered", "other-salt", "unknown-link"])
def test_a_forged_or_unknown_token_is_not_found(north: World, client: Any, kind: str) -> None:
    order = awaiting_payment(north)
    link = links.payment_link_issue(order_id=order.pk, actor=north.ops)
    token = {
        "tampered": links.payment_link_token(link)[:-2] + "xx",
        "other-salt": signing.Signer(salt="something-else").sign(link.pk.hex),
        "unknown-link": signing.Signer(salt="payments.payment-link").sign(uuid.uuid4().hex),
    }[kind]

    response = client.post(f"/pay/{token}")

    assert response.status_code == 404
    assert "This payment link is not valid" in response.content.decode()
    assert Payment.objects.count() == 0


def test_paying_opens_one_checkout_session_per_attempt_and_the_webhook_pays_the_order(
    north: World, client: Any, stripe_server: FakeStripe
) -> None:
    order = awaiting_payment(north)
    link = links.payment_link_issue(order_id=order.pk, actor=north.ops)

    first = client.post(path_of(link))
    again = client.post(path_of(link))

    assert (first.status_code, first["Location"]) == (302, "https://checkout.stripe.test/c/pay/cs_test_1")
    assert again["Location"] == first["Location"]
    assert stripe_server.count("/v1/checkout/sessions") == 1
    request = stripe_server.requests[0]
    invoice = Invoice.objects.get(order=order)
    url = links.payment_link_url(link)
    assert request["headers"]["Idempotency-Key"] == f"medorder-link-{link.pk}-attempt-1"
    # The link lasts 72 hours; Stripe allows a session at most 24, so it gets just under that.
    session_expiry = dt.datetime.fromtimestamp(int(request["form"].pop("expires_at")), tz=dt.UTC)
    assert dt.timedelta(hours=23, minutes=58) < session_expiry - timezone.now() <= dt.timedelta(hours=23, minutes=59)
    assert request["form"] == {
        "mode": "payment",
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "25000",
        "line_items[0][price_data][product_data][name]": f"Order {order.reference}",
        "client_reference_id": str(order.pk),
        "metadata[order_id]": str(order.pk),
        "metadata[invoice_id]": str(invoice.pk),
        "payment_intent_data[description]": f"Order {order.reference}",
        "payment_intent_data[metadata][order_id]": str(order.pk),
        "payment_intent_data[metadata][invoice_id]": str(invoice.pk),
        "success_url": f"{url}?checkout=done",
        "cancel_url": f"{url}?checkout=cancelled",
    }
    payment = Payment.objects.get(order=order)
    assert (payment.provider, payment.checkout_session_id, payment.link, payment.status, payment.amount_cents) == (
        "stripe",
        "cs_test_1",
        link,
        "requires_payment_method",
        25000,
    )

    response = deliver(client, completed(stripe_server.complete("cs_test_1", "pi_test_77"), order))

    assert response.json() == {"received": True, "outcome": "order paid"}
    payment = Payment.objects.get(pk=payment.pk)
    assert (payment.status, payment.payment_intent_id) == ("succeeded", "pi_test_77")
    assert (Order.objects.get(pk=order.pk).status, Invoice.objects.get(pk=invoice.pk).status) == ("paid", "paid")
    paid_page = client.post(path_of(link))
    assert paid_page.status_code == 200
    assert "this order is paid" in paid_page.content.decode()
    assert stripe_server.count("/v1/checkout/sessions") == 1


def test_an_expired_link_takes_no_payment(north: World, client: Any, stripe_server: FakeStripe) -> None:
    order = awaiting_payment(north)
    link = links.payment_link_issue(order_id=order.pk, actor=north.ops)
    PaymentLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    response = client.post(path_of(link))

    assert response.status_code == 200
    assert "This link has expired" in response.content.decode()
    assert "<form" not in response.content.decode()
    assert (stripe_server.requests, Payment.objects.count()) == ([], 0)


def test_re_issuing_expires_the_old_session_so_the_old_link_cannot_pay(
    north: World, client: Any, stripe_server: FakeStripe, django_capture_on_commit_callbacks: Any
) -> None:
    order = awaiting_payment(north)
    old = links.payment_link_issue(order_id=order.pk, actor=north.ops)
    client.post(path_of(old))

    with django_capture_on_commit_callbacks(execute=True):
        new = links.payment_link_issue(order_id=order.pk, actor=north.doctor)

    old = PaymentLink.objects.get(pk=old.pk)
    assert (old.revoke_reason, old.revoked_by) == ("Re-issued", north.doctor)
    assert stripe_server.sessions["cs_test_1"]["status"] == "expired"
    assert [r["path"] for r in stripe_server.requests] == [
        "/v1/checkout/sessions",
        "/v1/checkout/sessions/cs_test_1/expire",
    ]
    assert Payment.objects.get(checkout_session_id="cs_test_1").status == "canceled"

    refused = client.post(path_of(old))
    assert "This link has been replaced or withdrawn" in refused.content.decode()
    assert stripe_server.count("/v1/checkout/sessions") == 1

    fresh = client.post(path_of(new))
    assert fresh["Location"] == "https://checkout.stripe.test/c/pay/cs_test_2"
    assert stripe_server.requests[-1]["headers"]["Idempotency-Key"] == f"medorder-link-{new.pk}-attempt-2"
    assert list(Payment.objects.filter(order=order).order_by("attempt").values_list("attempt", "link", "status")) == [
        (1, old.pk, "canceled"),
        (2, new.pk, "requires_payment_method"),
    ]


def test_a_second_payment_that_slipped_through_is_refunded(
    north: World, client: Any, stripe_server: FakeStripe, django_capture_on_commit_callbacks: Any
) -> None:
    """The old session completed just before it could be expired, and the new one was paid too."""
    order = awaiting_payment(north)
    old = links.payment_link_issue(order_id=order.pk, actor=north.ops)
    client.post(path_of(old))
    stripe_server.complete("cs_test_1", "pi_test_first")  # paid at Stripe; its webhook is still on the way
    with django_capture_on_commit_callbacks(execute=True):
        new = links.payment_link_issue(order_id=order.pk, actor=north.ops)
    client.post(path_of(new))
    assert (
        deliver(client, completed(stripe_server.complete("cs_test_2", "pi_test_second"), order)).json()["outcome"]
        == "order paid"
    )

    with django_capture_on_commit_callbacks(execute=True):
        late = deliver(client, completed(stripe_server.sessions["cs_test_1"], order))

    assert late.json() == {"received": True, "outcome": "refund scheduled: order already paid"}
    duplicate = Payment.objects.get(checkout_session_id="cs_test_1")
    assert duplicate.status == "refunded"
    refund = Refund.objects.get(payment=duplicate)
    assert (refund.status, refund.refund_id, refund.reason, refund.amount_cents) == (
        "succeeded",
        "re_test_3",
        "Duplicate or late payment",
        25000,
    )
    refund_request = stripe_server.requests[-1]
    assert (refund_request["path"], refund_request["headers"]["Idempotency-Key"]) == (
        "/v1/refunds",
        f"medorder-refund-{duplicate.pk}",
    )
    assert refund_request["form"] == {"payment_intent": "pi_test_first", "metadata[order_id]": str(order.pk)}
    assert Order.objects.get(pk=order.pk).status == "paid"
    assert Payment.objects.get(checkout_session_id="cs_test_2").status == "succeeded"
    assert reconciliation_mismatches(now=timezone.now()) == []


def test_an_expired_session_is_recorded_and_the_link_opens_a_new_one(
    north: World, client: Any, stripe_server: FakeStripe
) -> None:
    order = awaiting_payment(north)
    link = links.payment_link_issue(order_id=order.pk, actor=north.ops)
    client.post(path_of(link))
    stripe_server.sessions["cs_test_1"]["status"] = "expired"

    response = deliver(client, stripe_event("evt_exp", "checkout.session.expired", stripe_server.sessions["cs_test_1"]))

    assert response.json() == {"received": True, "outcome": "checkout session expired"}
    assert Payment.objects.get(checkout_session_id="cs_test_1").status == "canceled"
    assert client.post(path_of(link))["Location"] == "https://checkout.stripe.test/c/pay/cs_test_2"


def test_staff_revoke_a_link_with_a_reason_and_others_cannot(
    north: World, south: World, client: Any, stripe_server: FakeStripe, django_capture_on_commit_callbacks: Any
) -> None:
    order = awaiting_payment(north)
    link = links.payment_link_issue(order_id=order.pk, actor=north.ops)
    client.post(path_of(link))

    for actor, reason, error in (
        (north.doctor, "Patient asked", PermissionDenied),
        (south.ops, "Patient asked", PermissionDenied),
        (north.ops, "  ", ValidationFailed),
    ):
        with pytest.raises(error):
            links.payment_link_revoke(link_id=link.pk, actor=actor, reason=reason)
        assert PaymentLink.objects.get(pk=link.pk).revoked_at is None
    assert stripe_server.sessions["cs_test_1"]["status"] == "open"

    with django_capture_on_commit_callbacks(execute=True):
        links.payment_link_revoke(link_id=link.pk, actor=north.ops, reason="Sent to the wrong number")

    link = PaymentLink.objects.get(pk=link.pk)
    assert (link.revoked_by, link.revoke_reason) == (north.ops, "Sent to the wrong number")
    assert stripe_server.sessions["cs_test_1"]["status"] == "expired"
    assert order.events.order_by("-sequence")[0].reason == "Payment link revoked: Sent to the wrong number"
    assert "replaced or withdrawn" in client.get(path_of(link)).content.decode()


def test_the_doctor_issues_the_link_from_the_portal(north: World, south: World, api: Any) -> None:
    order = awaiting_payment(north)
    earlier = links.payment_link_issue(order_id=order.pk, actor=north.ops)

    response = api(north.doctor).post(f"/api/portal/orders/{order.pk}/payment-link")

    assert response.status_code == 201, response.content
    link = PaymentLink.objects.get(revoked_at__isnull=True)
    assert response.json() == {
        "payment_link_id": str(link.pk),
        "url": links.payment_link_url(link),
        "expires_at": link.expires_at.isoformat().replace("+00:00", "Z"),
    }
    assert (link.created_by, PaymentLink.objects.get(pk=earlier.pk).revoke_reason) == (north.doctor, "Re-issued")


def test_the_portal_link_is_refused_outside_its_rules(north: World, south: World, api: Any) -> None:
    order = awaiting_payment(north)
    insured = north.order()
    cases = [
        (south.doctor, order, 404, "ORDER_NOT_FOUND"),
        (north.distributor, order, 403, "PERMISSION_DENIED"),
        (north.doctor, insured, 409, "PAYMENT_NOT_POSSIBLE"),
    ]
    for user, target, status, code in cases:
        response = api(user).post(f"/api/portal/orders/{target.pk}/payment-link")
        assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert PaymentLink.objects.count() == 0
    assert ProcessedStripeEvent.objects.count() == 0
