"""Applying Stripe webhook events: once each, in any order, never downgrading a paid order.

The signature is checked by the view (stripe-python's own verification) before anything here
runs. ``stripe_event_apply`` records the event id in the same transaction as its effect, so a
redelivery is answered without doing anything again.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from orders.models import OrderStatus
from orders.services import order_transition

from .models import Invoice, InvoiceStatus, Payment, PaymentStatus, ProcessedStripeEvent


def stripe_event_apply(*, event: dict[str, Any]) -> str:
    """Apply one verified event; returns its outcome (``duplicate`` for one already applied)."""
    event_id, event_type = str(event["id"]), str(event["type"])
    obj = event.get("data", {}).get("object", {})
    with transaction.atomic():
        if ProcessedStripeEvent.objects.select_for_update().filter(event_id=event_id).exists():
            return "duplicate"
        payment = _payment_for(event_type, obj)
        if payment is None:
            outcome = "no matching payment"
        elif not _matches(payment, obj):
            outcome = "mismatch: order or amount differs"
        elif event_type == "payment_intent.succeeded":
            outcome = _succeeded(payment)
        elif event_type == "payment_intent.payment_failed":
            outcome = _failed(payment, obj)
        else:
            outcome = "ignored"
        ProcessedStripeEvent.objects.create(event_id=event_id, type=event_type, payment=payment, outcome=outcome)
    return outcome


def _payment_for(event_type: str, obj: dict[str, Any]) -> Payment | None:
    intent_id = obj.get("id") if event_type.startswith("payment_intent.") else obj.get("payment_intent")
    if not intent_id:
        return None
    return Payment.objects.select_for_update().filter(payment_intent_id=intent_id).first()


def _matches(payment: Payment, obj: dict[str, Any]) -> bool:
    """The event's own order id and amount must be the payment's (a cross-check, not the match)."""
    metadata = obj.get("metadata") or {}
    amount = obj.get("amount")
    return metadata.get("order_id") == str(payment.order_id) and (amount is None or amount == payment.amount_cents)


def _succeeded(payment: Payment) -> str:
    if payment.status == PaymentStatus.SUCCEEDED:
        return "already succeeded"
    payment.status = PaymentStatus.SUCCEEDED
    payment.succeeded_at = timezone.now()
    payment.last_error_code = ""
    payment.save(update_fields=["status", "succeeded_at", "last_error_code", "updated_at"])
    Invoice.objects.filter(order_id=payment.order_id, status=InvoiceStatus.OPEN).update(
        status=InvoiceStatus.PAID, paid_at=payment.succeeded_at
    )
    if payment.order.status == OrderStatus.AWAITING_PAYMENT:
        order_transition(
            order_id=payment.order_id, actor=None, transition="mark_paid", reason="Stripe payment succeeded"
        )
        return "order paid"
    return f"payment succeeded; order was {payment.order.status}"


def _failed(payment: Payment, obj: dict[str, Any]) -> str:
    if payment.status == PaymentStatus.SUCCEEDED:
        return "ignored: the payment already succeeded"  # a late failure never downgrades a success
    error = obj.get("last_payment_error") or {}
    payment.status = PaymentStatus.REQUIRES_PAYMENT_METHOD
    payment.last_error_code = str(error.get("code") or error.get("decline_code") or "payment_failed")[:100]
    payment.save(update_fields=["status", "last_error_code", "updated_at"])
    return "payment failed"
