"""POST /payments/create-intent with the real stripe-python library against a local server speaking
Stripe's API: one PaymentIntent per order and attempt, opaque ids only, no PHI in any request."""

from __future__ import annotations

import json
from typing import Any

from django.test import override_settings
from pytest_httpserver import HTTPServer

from orders.models import Order
from payments.models import Payment
from tests.conftest import World

from .conftest import FakeStripe, awaiting_payment


def test_the_intent_is_created_once_per_attempt_with_opaque_ids_only(
    north: World, api: Any, stripe_server: FakeStripe
) -> None:
    order = awaiting_payment(north)
    client = api(north.ops)

    first = client.post("/payments/create-intent", {"order_id": str(order.pk)}, format="json")
    again = client.post("/payments/create-intent", {"order_id": str(order.pk)}, format="json")

    assert first.status_code == 200, first.content
    assert first.json() == {
        "payment_intent_id": "pi_test_1",
        "client_secret": "pi_test_1_secret_abc",
        "amount": 25000,
        "currency": "usd",
    }
    assert again.json() == first.json()
    payment = Payment.objects.get(order=order)
    assert (payment.attempt, payment.payment_intent_id, payment.amount_cents, payment.status, payment.provider) == (
        1,
        "pi_test_1",
        25000,
        "requires_payment_method",
        "stripe",
    )
    # Both requests carried the same deterministic key, the secret key, and only opaque data
    assert len(stripe_server.requests) == 2
    for request in stripe_server.requests:
        headers, form = request["headers"], request["form"]
        assert headers["Idempotency-Key"] == f"medorder-order-{order.pk}-attempt-1"
        assert headers["Authorization"] == "Bearer sk_test_local"
        assert form == {
            "amount": "25000",
            "currency": "usd",
            "description": f"Order {order.reference}",
            "metadata[order_id]": str(order.pk),
            "automatic_payment_methods[enabled]": "true",
        }
    # And nothing about the patient: name, date of birth, MBI, email, diagnosis or product codes
    sent = json.dumps(stripe_server.requests)
    for phi in ("Zelda", "QuartermaineNorth", "1948-07-09", "1EG4TE5MK73", "G47.33", "A7032", north.product.name):
        assert phi not in sent


def test_only_a_cash_order_awaiting_payment_can_be_paid(north: World, api: Any, stripe_server: FakeStripe) -> None:
    order = north.order(payer_type="cash")
    response = api(north.ops).post("/payments/create-intent", {"order_id": str(order.pk)}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "PAYMENT_NOT_POSSIBLE",
        "message": "Only a cash-pay order awaiting payment can be paid.",
        "details": {"order_id": str(order.pk), "status": "pending_verification"},
    }
    assert (Payment.objects.count(), stripe_server.requests) == (0, [])


def test_another_territory_gets_not_found_and_stripe_is_not_called(
    north: World, south: World, api: Any, stripe_server: FakeStripe
) -> None:
    order = awaiting_payment(north)
    response = api(south.ops).post("/payments/create-intent", {"order_id": str(order.pk)}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "ORDER_NOT_FOUND")
    assert (Payment.objects.count(), stripe_server.requests) == (0, [])


def test_reading_the_order_is_not_enough_to_start_a_payment(north: World, api: Any, stripe_server: FakeStripe) -> None:
    order = awaiting_payment(north)
    # The distributor sees the territory's orders but may not send payment links.
    assert api(north.distributor).get(f"/api/v1/orders/{order.pk}").status_code == 200

    response = api(north.distributor).post("/payments/create-intent", {"order_id": str(order.pk)}, format="json")

    assert response.status_code == 403
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "PERMISSION_DENIED",
            "message": "You may not take payments for orders in this territory.",
            "details": {},
        },
    }
    assert (Payment.objects.count(), stripe_server.requests) == (0, [])
    assert Order.objects.get(pk=order.pk).status == "awaiting_payment"


def test_a_stripe_failure_writes_nothing_and_says_so(north: World, api: Any, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/payment_intents", method="POST").respond_with_json(
        {"error": {"type": "invalid_request_error", "code": "amount_too_small", "message": "Amount too small"}},
        status=400,
    )
    order = awaiting_payment(north)
    with override_settings(STRIPE_SECRET_KEY="sk_test_local", STRIPE_API_BASE=httpserver.url_for("").rstrip("/")):
        response = api(north.ops).post("/payments/create-intent", {"order_id": str(order.pk)}, format="json")
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "PAYMENT_PROVIDER_UNAVAILABLE",
        "message": "The payment provider could not be reached; try again shortly.",
        "details": {"provider_error": "amount_too_small"},
    }
    assert Payment.objects.count() == 0
