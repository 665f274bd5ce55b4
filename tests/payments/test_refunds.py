"""Refunds: cancelling a paid order refunds it through Stripe once; staff refund with a permission and a
reason; a refund made in Stripe's dashboard is recorded from charge.refunded; an outage is retried
with the same idempotency key."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from core.exceptions import PermissionDenied, ValidationFailed
from orders import services as order_services
from orders.models import Order
from payments import links, services
from payments.models import Invoice, Payment, Refund
from payments.selectors import reconciliation_mismatches
from tests.admin.conftest import signed_in
from tests.conftest import World

from .conftest import FakeStripe, awaiting_payment, deliver, stripe_event


def paid(world: World, client: Any, stripe: FakeStripe) -> Payment:
    """An order paid through its link: Checkout Session cs_test_1 completed with PaymentIntent pi_paid."""
    order = awaiting_payment(world)
    link = links.payment_link_issue(order_id=order.pk, actor=world.ops)
    client.post(links.payment_link_url(link).removeprefix("http://localhost:8000"))
    session = stripe.complete("cs_test_1", "pi_paid")
    assert deliver(client, stripe_event("evt_paid", "checkout.session.completed", session)).status_code == 200
    payment = Payment.objects.get(order=order)
    assert (payment.status, Order.objects.get(pk=order.pk).status) == ("succeeded", "paid")
    return payment


def charge_refunded(payment: Payment, *, refund_id: str = "re_dash_1", full: bool = True) -> str:
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": payment.payment_intent_id,
        "amount": payment.amount_cents,
        "currency": "usd",
        "amount_refunded": payment.amount_cents if full else 100,
        "refunded": full,
        "refunds": {"object": "list", "data": [{"id": refund_id, "object": "refund", "status": "succeeded"}]},
    }
    return stripe_event(f"evt_refund_{refund_id}", "charge.refunded", charge)


def test_cancelling_a_paid_order_refunds_it_once(
    north: World, client: Any, stripe_server: FakeStripe, django_capture_on_commit_callbacks: Any
) -> None:
    payment = paid(north, client, stripe_server)

    with django_capture_on_commit_callbacks(execute=True):
        order_services.order_cancel(order_id=payment.order_id, actor=north.ops, reason="Patient changed their mind")
    services.refunds_for_cancelled_order(order_id=payment.order_id)  # a repeated delivery

    assert stripe_server.count("/v1/refunds") == 1
    request = stripe_server.requests[-1]
    assert request["headers"]["Idempotency-Key"] == f"medorder-refund-{payment.pk}"
    assert request["form"] == {"payment_intent": "pi_paid", "metadata[order_id]": str(payment.order_id)}
    refund = Refund.objects.get()
    assert (refund.payment_id, refund.refund_id, refund.status, refund.amount_cents, refund.reason) == (
        payment.pk,
        "re_test_2",
        "succeeded",
        25000,
        "Order cancelled",
    )
    payment = Payment.objects.get(pk=payment.pk)
    assert payment.status == "refunded"
    assert payment.refunded_at is not None
    assert Invoice.objects.get(order_id=payment.order_id).status == "paid"
    event = Order.objects.get(pk=payment.order_id).events.order_by("-sequence")[0]
    assert (event.kind, event.actor_kind, event.reason, event.payload["refund_id"]) == (
        "payment",
        "system",
        "Order cancelled",
        str(refund.pk),
    )
    # Stripe's own confirmation changes nothing more; the books agree
    confirmation = deliver(client, charge_refunded(payment, refund_id="re_test_2"))
    assert confirmation.json() == {"received": True, "outcome": "refund already recorded"}
    assert Refund.objects.count() == 1
    assert reconciliation_mismatches(now=timezone.now()) == []


def test_a_refund_during_an_outage_is_finished_by_the_retry_with_the_same_key(
    north: World, client: Any, stripe_server: FakeStripe
) -> None:
    payment = paid(north, client, stripe_server)
    order_services.order_cancel(order_id=payment.order_id, actor=north.ops, reason="Duplicate order")
    stripe_server.fail_next = 3  # the first try and stripe-python's two network retries

    with pytest.raises(services.PaymentProviderUnavailable):
        services.refunds_for_cancelled_order(order_id=payment.order_id)

    refund = Refund.objects.get()
    assert (refund.status, refund.refund_id, Payment.objects.get(pk=payment.pk).status) == (
        "pending",
        None,
        "succeeded",
    )

    services.refunds_for_cancelled_order(order_id=payment.order_id)

    refund = Refund.objects.get()
    assert (refund.status, refund.refund_id, Payment.objects.get(pk=payment.pk).status) == (
        "succeeded",
        "re_test_2",
        "refunded",
    )
    keys = {r["headers"]["Idempotency-Key"] for r in stripe_server.requests if r["path"] == "/v1/refunds"}
    assert keys == {f"medorder-refund-{payment.pk}"}
    assert stripe_server.count("/v1/refunds") == 4


def test_refunding_needs_the_permission_a_reason_and_a_succeeded_payment(
    north: World, south: World, client: Any, stripe_server: FakeStripe
) -> None:
    order = awaiting_payment(north)
    link = links.payment_link_issue(order_id=order.pk, actor=north.ops)
    client.post(links.payment_link_url(link).removeprefix("http://localhost:8000"))
    unpaid = Payment.objects.get()
    with pytest.raises(services.PaymentNotPossible):
        services.payment_refund(payment_id=unpaid.pk, actor=north.admin, reason="Goodwill")

    session = stripe_server.complete("cs_test_1", "pi_paid")
    deliver(client, stripe_event("evt_paid", "checkout.session.completed", session))
    for actor, reason, error in (
        (north.ops, "Goodwill", PermissionDenied),
        (south.admin, "Goodwill", PermissionDenied),
        (north.admin, " ", ValidationFailed),
    ):
        with pytest.raises(error):
            services.payment_refund(payment_id=unpaid.pk, actor=actor, reason=reason)
    assert (Refund.objects.count(), stripe_server.count("/v1/refunds")) == (0, 0)
    assert Payment.objects.get(pk=unpaid.pk).status == "succeeded"


def test_the_admin_refunds_with_a_reason_and_ops_cannot(north: World, client: Any, stripe_server: FakeStripe) -> None:
    payment = paid(north, client, stripe_server)
    change = reverse("admin:payments_payment_change", args=(payment.pk,))
    refund_url = reverse("admin:payments_payment_refund", args=(payment.pk,))

    ops = signed_in(north.ops)
    assert refund_url not in ops.get(change).content.decode()
    ops.post(refund_url, {"reason": "Goodwill"})
    assert (Refund.objects.count(), stripe_server.count("/v1/refunds")) == (0, 0)

    admin = signed_in(north.admin)
    assert refund_url in admin.get(change).content.decode()
    assert admin.post(refund_url, {"reason": ""}).status_code == 200  # the form asks again
    assert Refund.objects.count() == 0
    response = admin.post(refund_url, {"reason": "Damaged in transit; patient keeps nothing"})

    assert response.status_code == 302
    refund = Refund.objects.get()
    assert (refund.requested_by, refund.reason, refund.status) == (
        north.admin,
        "Damaged in transit; patient keeps nothing",
        "succeeded",
    )
    assert Payment.objects.get(pk=payment.pk).status == "refunded"
    # The staff's reason stays here: Stripe gets ids only
    assert stripe_server.requests[-1]["form"] == {
        "payment_intent": "pi_paid",
        "metadata[order_id]": str(payment.order_id),
    }
    # The order was not cancelled, so reconciliation shows the refund
    assert [row.kind for row in reconciliation_mismatches(now=timezone.now())] == ["refund_without_cancellation"]


def test_a_refund_made_in_stripe_is_recorded_from_its_webhook(
    north: World, client: Any, stripe_server: FakeStripe
) -> None:
    payment = paid(north, client, stripe_server)

    partial = deliver(client, charge_refunded(payment, refund_id="re_part", full=False))
    assert partial.json()["outcome"] == "ignored: partial refund"
    assert (Payment.objects.get(pk=payment.pk).status, Refund.objects.count()) == ("succeeded", 0)

    full = deliver(client, charge_refunded(payment, refund_id="re_dash_1"))

    assert full.json() == {"received": True, "outcome": "payment refunded"}
    assert Payment.objects.get(pk=payment.pk).status == "refunded"
    refund = Refund.objects.get()
    assert (refund.refund_id, refund.status, refund.amount_cents, refund.reason, refund.requested_by) == (
        "re_dash_1",
        "succeeded",
        25000,
        "Refunded at the payment provider",
        None,
    )
    assert stripe_server.count("/v1/refunds") == 0
