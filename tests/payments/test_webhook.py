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
        pytest.param("future", id="dated-in-the-future"),
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
        "future": signed(body, timestamp=int(time.time()) + 301),
        "tampered": signed(body.replace(str(payment.amount_cents), "1")),
    }[signature]
    before = state(payment)

    response = post(client, body, header)

    assert response.status_code == 400
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "INVALID_SIGNATURE",
            "message": "The webhook signature is missing, invalid or outside the allowed time window.",
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

    assert outcomes == ["mismatch: order, amount or currency differs"] * 2
    assert state(payment) == ("awaiting_payment", "requires_payment_method", "open", 2, 0)


def test_an_event_for_an_unknown_payment_is_acknowledged(north: World, client: Any) -> None:
    body = json.dumps({"id": "evt_x", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_nope"}}})
    response = post(client, body, signed(body))
    assert response.json() == {"received": True, "outcome": "no matching payment"}
    assert ProcessedStripeEvent.objects.get().outcome == "no matching payment"


def test_a_signature_a_little_ahead_of_our_clock_is_still_accepted(north: World, client: Any) -> None:
    payment = paying(north)
    body = event("evt_skew", "payment_intent.succeeded", payment)

    response = post(client, body, signed(body, timestamp=int(time.time()) + 240))

    assert (response.status_code, response.json()) == (200, {"received": True, "outcome": "order paid"})


def nested_lists(depth: int) -> str:
    return "[" * depth + "]" * depth


def intent_event(payment: Payment, **changes: Any) -> dict[str, Any]:
    return json.loads(event("evt_shape", "payment_intent.succeeded", payment, **changes))


# Signed bodies that are JSON but not an event we can read: (the body, the field and problem named).
MALFORMED = {
    "data-a-list": (
        lambda p: json.dumps({**intent_event(p), "data": [intent_event(p)["data"]["object"]]}),
        {"data": ["Must be an object."]},
    ),
    "object-a-list": (
        lambda p: json.dumps({**intent_event(p), "data": {"object": [intent_event(p)["data"]["object"]]}}),
        {"data.object": ["Must be an object."]},
    ),
    "id-longer-than-255": (
        lambda p: json.dumps({**intent_event(p), "id": "evt_" + "x" * 252}),
        {"id": ["Must be a string of 1 to 255 printable characters."]},
    ),
    "type-longer-than-100": (
        lambda p: json.dumps({**intent_event(p), "type": "payment_intent.succeeded" + "x" * 77}),
        {"type": ["Must be a string of 1 to 100 printable characters."]},
    ),
    "nul-in-id": (
        lambda p: json.dumps({**intent_event(p), "id": "evt_\x00nul"}),
        {"id": ["Must be a string of 1 to 255 printable characters."]},
    ),
    "lone-surrogate-in-id": (
        lambda p: json.dumps({**intent_event(p), "id": "evt_"}).replace("evt_", "evt_\\ud800", 1),
        {"id": ["Must be a string of 1 to 255 printable characters."]},
    ),
    "id-a-number": (
        lambda p: json.dumps({**intent_event(p), "id": 12}),
        {"id": ["Must be a string of 1 to 255 printable characters."]},
    ),
    "no-type": (
        lambda p: json.dumps({k: v for k, v in intent_event(p).items() if k != "type"}),
        {"type": ["Must be a string of 1 to 100 printable characters."]},
    ),
    "nested-10000-deep": (
        lambda p: json.dumps(intent_event(p)).replace('"metadata"', f'"deep": {nested_lists(10_000)}, "metadata"'),
        {"body": ["Must be a JSON object."]},
    ),
    "a-list-not-an-object": (lambda p: json.dumps([intent_event(p)]), {"body": ["Must be a JSON object."]}),
    "not-json": (lambda p: "{not json", {"body": ["Must be a JSON object."]}),
    "metadata-a-list": (
        lambda p: json.dumps(intent_event(p, metadata=[str(p.order_id)])),
        {"data.object.metadata": ["Must be an object."]},
    ),
    "amount-a-string": (
        lambda p: json.dumps(intent_event(p, amount=str(p.amount_cents))),
        {"data.object.amount": ["Must be a whole number of cents from 0 to 99999999."]},
    ),
    "amount-a-boolean": (
        lambda p: json.dumps(intent_event(p, amount=True)),
        {"data.object.amount": ["Must be a whole number of cents from 0 to 99999999."]},
    ),
    "object-id-an-object": (
        lambda p: json.dumps(intent_event(p, id={"id": p.payment_intent_id})),
        {"data.object.id": ["Must be a string of 1 to 255 printable characters."]},
    ),
    "nul-in-the-decline-code": (
        lambda p: json.dumps(
            {
                **intent_event(p, last_payment_error={"code": "card\x00declined"}),
                "type": "payment_intent.payment_failed",
            }
        ),
        {"data.object.last_payment_error.code": ["Must be a string of 1 to 100 printable characters."]},
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_signed_but_malformed_event_is_refused_and_writes_nothing(north: World, client: Any, case: str) -> None:
    payment = paying(north)
    build, details = MALFORMED[case]
    body = build(payment)
    before = state(payment)

    response = post(client, body, signed(body))

    assert response.status_code == 400
    assert response.json() == {
        "status": "error",
        "error": {"code": "VALIDATION_ERROR", "message": "Not a Stripe event.", "details": details},
    }
    assert state(payment) == before == ("awaiting_payment", "requires_payment_method", "open", 0, 0)
    assert Payment.objects.get(pk=payment.pk).last_error_code == ""


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"currency": "eur"}, id="another-currency"),
        pytest.param({"currency": "USD"}, id="currency-not-as-charged"),
        pytest.param({"currency": None}, id="no-currency"),
        pytest.param({"amount": None}, id="no-amount"),
        pytest.param({"amount": 25001}, id="one-cent-more"),
        pytest.param({"metadata": {"order_id": "", "invoice_id": ""}}, id="another-order"),
    ],
)
def test_a_success_whose_amount_or_currency_is_not_the_payments_changes_nothing(
    north: World, client: Any, changes: dict[str, Any]
) -> None:
    payment = paying(north)
    body = json.dumps(intent_event(payment, **changes) | {"id": "evt_cross"})

    response = post(client, body, signed(body))

    assert (response.status_code, response.json()) == (
        200,
        {"received": True, "outcome": "mismatch: order, amount or currency differs"},
    )
    assert state(payment) == ("awaiting_payment", "requires_payment_method", "open", 1, 0)
    assert ProcessedStripeEvent.objects.get().outcome == "mismatch: order, amount or currency differs"


def test_a_session_naming_another_invoice_changes_nothing(north: World, client: Any) -> None:
    payment = paying(north)
    session = {
        "id": "cs_cross",
        "object": "checkout.session",
        "payment_status": "paid",
        "amount_total": payment.amount_cents,
        "currency": "usd",
        "metadata": {"order_id": str(payment.order_id), "invoice_id": "00000000-0000-0000-0000-000000000000"},
    }
    Payment.objects.filter(pk=payment.pk).update(checkout_session_id="cs_cross")
    body = json.dumps({"id": "evt_inv", "type": "checkout.session.completed", "data": {"object": session}})

    response = post(client, body, signed(body))

    assert response.json() == {"received": True, "outcome": "mismatch: order, amount or currency differs"}
    assert state(payment) == ("awaiting_payment", "requires_payment_method", "open", 1, 0)
    invoice = Invoice.objects.get(order_id=payment.order_id)
    good = json.dumps(
        {
            "id": "evt_inv_ok",
            "type": "checkout.session.completed",
            "data": {
                "object": session | {"metadata": {"order_id": str(payment.order_id), "invoice_id": str(invoice.pk)}}
            },
        }
    )
    assert post(client, good, signed(good)).json() == {"received": True, "outcome": "order paid"}
