"""POST /payments/webhook: stripe-python's signature verification over the raw body, each event applied
once, in any order; success moves the order to paid through the FSM (order.paid)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe
from django.test import override_settings

from core.models import OutboxEvent
from orders import services as order_services
from orders.models import Order
from payments.models import Invoice, Payment, ProcessedStripeEvent
from payments.services import invoice_issue
from tests.conftest import World

SECRET = "whsec_test_secret"
URL = "/payments/webhook"

pytestmark = pytest.mark.usefixtures("webhook_secret")


@pytest.fixture
def webhook_secret() -> Any:
    with override_settings(STRIPE_WEBHOOK_SECRET=SECRET):
        yield


def paying(world: World) -> Payment:
    """A cash order awaiting payment, its invoice, and its PaymentIntent on file."""
    order = world.order(payer_type="cash")
    order_services.order_verify(order_id=order.pk, actor=world.ops)
    order_services.order_transition(order_id=order.pk, actor=world.ops, transition="request_payment")
    invoice_issue(order_id=order.pk)
    return Payment.objects.create(
        order=order,
        territory=world.territory,
        provider="stripe",
        payment_intent_id=f"pi_{order.reference}",
        amount_cents=order.total_cents,
    )


def event(event_id: str, event_type: str, payment: Payment, **changes: Any) -> str:
    intent = {
        "id": payment.payment_intent_id,
        "object": "payment_intent",
        "amount": payment.amount_cents,
        "currency": "usd",
        "metadata": {"order_id": str(payment.order_id)},
        **changes,
    }
    return json.dumps({"id": event_id, "object": "event", "type": event_type, "data": {"object": intent}})


def post(client: Any, body: str, signature: str | None) -> Any:
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post(URL, data=body, content_type="application/json", **headers)


def signed(body: str, *, secret: str = SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)


def state(payment: Payment) -> tuple[Any, ...]:
    return (
        Order.objects.get(pk=payment.order_id).status,
        Payment.objects.get(pk=payment.pk).status,
        Invoice.objects.get(order_id=payment.order_id).status,
        ProcessedStripeEvent.objects.count(),
        OutboxEvent.objects.filter(topic="order.paid").count(),
    )


def test_a_signed_success_pays_the_order_once(north: World, client: Any) -> None:
    payment = paying(north)
    body = event("evt_1", "payment_intent.succeeded", payment)

    first = post(client, body, signed(body))
    again = post(client, body, signed(body))

    assert (first.status_code, first.json()) == (200, {"received": True, "outcome": "order paid"})
    assert (again.status_code, again.json()) == (200, {"received": True, "outcome": "duplicate"})
    assert state(payment) == ("paid", "succeeded", "paid", 1, 1)
    paid = Order.objects.get(pk=payment.order_id).events.get(transition="mark_paid")
    assert (paid.actor_id, paid.actor_kind, paid.reason) == (None, "system", "Stripe payment succeeded")


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(None, id="missing"),
        pytest.param("t=1,v1=deadbeef", id="garbage"),
        pytest.param("wrong-secret", id="wrong-secret"),
        pytest.param("stale", id="stale"),
        pytest.param("tampered", id="tampered-body"),
    ],
)
def test_bad_signatures_are_refused_and_change_nothing(north: World, client: Any, signature: str | None) -> None:
    payment = paying(north)
    body = event("evt_bad", "payment_intent.succeeded", payment)
    header = {
        None: None,
        "t=1,v1=deadbeef": "t=1,v1=deadbeef",
        "wrong-secret": signed(body, secret="whsec_other"),
        "stale": signed(body, timestamp=int(time.time()) - 301),
        "tampered": signed(body.replace(str(payment.amount_cents), "1")),
    }[signature]
    before = state(payment)

    response = post(client, body, header)

    assert response.status_code == 400
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "INVALID_SIGNATURE",
            "message": "The webhook signature is missing, invalid or too old.",
            "details": {},
        },
    }
    assert state(payment) == before == ("awaiting_payment", "requires_payment_method", "open", 0, 0)


def test_a_failure_after_a_success_never_downgrades(north: World, client: Any) -> None:
    payment = paying(north)
    success = event("evt_ok", "payment_intent.succeeded", payment)
    failure = event(
        "evt_late_fail", "payment_intent.payment_failed", payment, last_payment_error={"code": "card_declined"}
    )
    post(client, success, signed(success))

    response = post(client, failure, signed(failure))

    assert response.json() == {"received": True, "outcome": "ignored: the payment already succeeded"}
    assert state(payment) == ("paid", "succeeded", "paid", 2, 1)


def test_a_failure_records_its_code_and_a_later_success_still_pays(north: World, client: Any) -> None:
    payment = paying(north)
    failure = event("evt_f", "payment_intent.payment_failed", payment, last_payment_error={"code": "card_declined"})
    post(client, failure, signed(failure))
    assert (Payment.objects.get(pk=payment.pk).last_error_code, state(payment)[:3]) == (
        "card_declined",
        ("awaiting_payment", "requires_payment_method", "open"),
    )
    success = event("evt_s", "payment_intent.succeeded", payment)
    post(client, success, signed(success))
    assert state(payment) == ("paid", "succeeded", "paid", 2, 1)


def test_an_event_whose_order_or_amount_differs_is_recorded_but_changes_nothing(north: World, client: Any) -> None:
    payment = paying(north)
    wrong_amount = event("evt_amount", "payment_intent.succeeded", payment, amount=1)
    wrong_order = event("evt_order", "payment_intent.succeeded", payment, metadata={"order_id": "someone-else"})

    outcomes = [post(client, body, signed(body)).json()["outcome"] for body in (wrong_amount, wrong_order)]

    assert outcomes == ["mismatch: order or amount differs", "mismatch: order or amount differs"]
    assert state(payment) == ("awaiting_payment", "requires_payment_method", "open", 2, 0)


def test_an_event_for_an_unknown_payment_is_acknowledged(north: World, client: Any) -> None:
    body = json.dumps({"id": "evt_x", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_nope"}}})
    response = post(client, body, signed(body))
    assert response.json() == {"received": True, "outcome": "no matching payment"}
    assert ProcessedStripeEvent.objects.get().outcome == "no matching payment"
