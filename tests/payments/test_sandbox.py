"""The built-in sandbox (no Stripe keys): the whole cash-pay flow on a fresh clone, its outcomes sent
as signed Stripe events through the same webhook code, clearly labelled as sandbox."""

from __future__ import annotations

import re
from typing import Any

from django.test import override_settings

from orders import services as order_services
from orders.models import Order
from payments import links
from payments.checks import payment_provider_configured
from payments.gateway import webhook_secret
from payments.models import Invoice, Payment, PaymentLink, ProcessedStripeEvent
from tests.conftest import World

from .conftest import deliver, stripe_event

BASE = "http://localhost:8000"


def test_a_patient_pays_in_the_sandbox_from_the_link_to_fulfillment(
    north: World, api: Any, client: Any, capsys: Any, django_capture_on_commit_callbacks: Any
) -> None:
    order = north.order(payer_type="cash")
    capsys.readouterr()
    with django_capture_on_commit_callbacks(execute=True):
        approved = api(north.ops).post(f"/api/portal/orders/{order.pk}/approve", {}, format="json")
    assert approved.status_code == 200, approved.content

    # The patient is texted the link (the console backend writes it with its token masked)
    link = PaymentLink.objects.get(order=order)
    link_path = links.payment_link_url(link).removeprefix(BASE)
    sms = capsys.readouterr().out
    assert f"{BASE}/pay/****{links.payment_link_token(link)[-4:]} —" in sms
    page = client.get(link_path)
    assert "SANDBOX — test payments only, no real money moves." in page.content.decode()

    # Pay: the sandbox's Checkout page, clearly labelled
    to_checkout = client.post(link_path)
    assert to_checkout.status_code == 302
    checkout_path = to_checkout["Location"].removeprefix(BASE)
    assert re.fullmatch(r"/pay/sandbox/cs_sandbox_[0-9a-f]{32}", checkout_path)
    checkout = client.get(checkout_path)
    assert "SANDBOX CHECKOUT — this stands in for Stripe. No card is charged." in checkout.content.decode()
    assert "$250.00" in checkout.content.decode()

    # A declined card: the order still waits, the patient may try again
    declined = client.post(checkout_path, {"outcome": "fail"})
    assert "The sandbox declined the payment (card_declined)" in declined.content.decode()
    payment = Payment.objects.get(order=order)
    assert (payment.provider, payment.status, payment.last_error_code) == (
        "sandbox",
        "requires_payment_method",
        "card_declined",
    )
    assert Order.objects.get(pk=order.pk).status == "awaiting_payment"

    with django_capture_on_commit_callbacks(execute=True):
        succeeded = client.post(checkout_path, {"outcome": "succeed"})
    assert (succeeded.status_code, succeeded["Location"]) == (302, f"{BASE}{link_path}?checkout=done")

    assert Order.objects.get(pk=order.pk).status == "paid"
    assert Invoice.objects.get(order=order).status == "paid"
    assert Payment.objects.get(pk=payment.pk).status == "succeeded"
    assert list(ProcessedStripeEvent.objects.order_by("processed_at").values_list("type", "outcome")) == [
        ("payment_intent.payment_failed", "payment failed"),
        ("checkout.session.completed", "order paid"),
    ]
    paid_event = Order.objects.get(pk=order.pk).events.get(transition="mark_paid")
    assert (paid_event.actor_kind, paid_event.reason) == ("system", "Sandbox payment succeeded")
    assert "this order is paid" in client.get(link_path).content.decode()
    # The checkout cannot be paid again
    client.post(checkout_path, {"outcome": "succeed"})
    assert ProcessedStripeEvent.objects.count() == 2

    # And the fulfillment path continues
    order_services.order_transition(order_id=order.pk, actor=north.ops, transition="start_fulfillment")
    assert Order.objects.get(pk=order.pk).status == "in_progress"


def test_the_sandbox_webhook_still_demands_its_signature(north: World, client: Any) -> None:
    body = stripe_event("evt_forged", "payment_intent.succeeded", {"id": "pi_sandbox_x", "amount": 1})
    assert deliver(client, body, secret="whsec_guess").status_code == 400
    assert deliver(client, body, secret=webhook_secret()).json() == {"received": True, "outcome": "no matching payment"}


def test_the_sandbox_checkout_does_not_exist_once_stripe_is_configured(north: World, client: Any) -> None:
    order = north.order(payer_type="cash")
    order_services.order_verify(order_id=order.pk, actor=north.ops)
    order_services.order_transition(order_id=order.pk, actor=north.ops, transition="request_payment")
    link = links.payment_link_issue(order_id=order.pk, actor=north.ops)
    checkout_path = client.post(links.payment_link_url(link).removeprefix(BASE))["Location"].removeprefix(BASE)
    assert client.get(checkout_path).status_code == 200

    with override_settings(STRIPE_SECRET_KEY="sk_live_configured"):
        assert client.get(checkout_path).status_code == 404
        assert client.post(checkout_path, {"outcome": "succeed"}).status_code == 404
    assert Order.objects.get(pk=order.pk).status == "awaiting_payment"


def test_where_the_sandbox_is_not_allowed_nothing_pretends_to_take_money(north: World, api: Any, client: Any) -> None:
    order = north.order(payer_type="cash")
    order_services.order_verify(order_id=order.pk, actor=north.ops)
    order_services.order_transition(order_id=order.pk, actor=north.ops, transition="request_payment")
    link = links.payment_link_issue(order_id=order.pk, actor=north.ops)

    with override_settings(PAYMENTS_SANDBOX_ALLOWED=False):
        assert [error.id for error in payment_provider_configured(None)] == ["payments.E002"]
        intent = api(north.ops).post("/payments/create-intent", {"order_id": str(order.pk)}, format="json")
        page = client.post(links.payment_link_url(link).removeprefix(BASE))

    assert (intent.status_code, intent.json()["error"]["details"]) == (503, {"provider_error": "not_configured"})
    assert page.status_code == 503
    assert "We could not reach the payment service" in page.content.decode()
    assert Payment.objects.count() == 0


def test_a_stripe_key_without_its_webhook_secret_fails_the_check() -> None:
    with override_settings(STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRET=""):
        assert [error.id for error in payment_provider_configured(None)] == ["payments.E001"]
    with override_settings(STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRET="whsec_x"):
        assert payment_provider_configured(None) == []
    assert payment_provider_configured(None) == []  # the sandbox, allowed outside production
