"""Receiving provider webhook events: verified, applied once each, in any order.

``webhook_receive`` checks the ``Stripe-Signature`` over the raw body with stripe-python's own
verification before anything is read; the view and the sandbox both come through it.
``stripe_event_apply`` records the event id in the same transaction as its effect, so a
redelivery is answered without doing anything again. A failure that arrives after a success
never downgrades it; a second successful payment for an order already paid (or cancelled) is
refunded through the outbox (``payment.refund_due``), so nothing is charged twice.
"""

from __future__ import annotations

import json
from typing import Any

import stripe
from django.db import transaction
from django.utils import timezone

from core.outbox import outbox_publish
from orders.models import OrderStatus
from orders.services import order_transition

from .gateway import webhook_secret
from .models import (
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentProvider,
    PaymentStatus,
    ProcessedStripeEvent,
    Refund,
    RefundStatus,
)
from .services import payment_mark_refunded

# How old a signed event may be (seconds); older ones are refused as replays.
SIGNATURE_TOLERANCE = 300


class InvalidWebhook(Exception):
    """The body is not a Stripe event signed with our secret within the tolerance (``code`` says which)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def webhook_receive(*, payload: bytes, signature: str | None) -> str:
    """Verify ``signature`` over the raw ``payload`` and apply the event; returns its outcome.

    Raises InvalidWebhook("INVALID_SIGNATURE") for a missing, wrong or stale signature and
    InvalidWebhook("VALIDATION_ERROR") for a signed body that is not an event; nothing is written.
    """
    try:
        stripe.WebhookSignature.verify_header(payload, signature, webhook_secret(), tolerance=SIGNATURE_TOLERANCE)
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError) as error:
        raise InvalidWebhook("INVALID_SIGNATURE") from error
    if not isinstance(event, dict) or "id" not in event or "type" not in event:
        raise InvalidWebhook("VALIDATION_ERROR")
    return stripe_event_apply(event=event)


def stripe_event_apply(*, event: dict[str, Any]) -> str:
    """Apply one verified event; returns its outcome (``duplicate`` for one already applied)."""
    event_id, event_type = str(event["id"]), str(event["type"])
    obj = event.get("data", {}).get("object", {})
    with transaction.atomic():
        if ProcessedStripeEvent.objects.select_for_update().filter(event_id=event_id).exists():
            return "duplicate"
        payment = _payment_for(event_type, obj)
        handler = _HANDLERS.get(event_type)
        if handler is None:
            outcome = "ignored"
        elif payment is None:
            outcome = "no matching payment"
        elif not _matches(payment, event_type, obj):
            outcome = "mismatch: order or amount differs"
        else:
            outcome = handler(payment, obj)
        ProcessedStripeEvent.objects.create(event_id=event_id, type=event_type, payment=payment, outcome=outcome)
    return outcome


def _payment_for(event_type: str, obj: dict[str, Any]) -> Payment | None:
    """The payment an event is about: by Checkout Session id, else by PaymentIntent id."""
    payments = Payment.objects.select_for_update()
    if event_type.startswith("checkout.session."):
        session_id = obj.get("id")
        return payments.filter(checkout_session_id=session_id).first() if session_id else None
    intent_id = obj.get("id") if event_type.startswith("payment_intent.") else obj.get("payment_intent")
    return payments.filter(payment_intent_id=intent_id).first() if intent_id else None


def _matches(payment: Payment, event_type: str, obj: dict[str, Any]) -> bool:
    """The event's own order id and amount must be the payment's (a cross-check, not the match).

    Charges carry no metadata of ours, so a charge is checked by its amount alone.
    """
    amount = obj.get("amount_total") if event_type.startswith("checkout.session.") else obj.get("amount")
    if amount is not None and amount != payment.amount_cents:
        return False
    if event_type.startswith("charge."):
        return True
    return (obj.get("metadata") or {}).get("order_id") == str(payment.order_id)


def _session_completed(payment: Payment, obj: dict[str, Any]) -> str:
    if obj.get("payment_intent") and not payment.payment_intent_id:
        payment.payment_intent_id = obj["payment_intent"]
        payment.save(update_fields=["payment_intent_id", "updated_at"])
    if obj.get("payment_status") == "paid":
        return _succeeded(payment, obj)
    if payment.status in (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED):
        return "ignored: the payment already succeeded"
    payment.status = PaymentStatus.PROCESSING
    payment.save(update_fields=["status", "updated_at"])
    return "payment processing"


def _session_expired(payment: Payment, obj: dict[str, Any]) -> str:
    if payment.status in (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED):
        return "ignored: the payment already succeeded"
    payment.status = PaymentStatus.CANCELED
    payment.save(update_fields=["status", "updated_at"])
    return "checkout session expired"


def _succeeded(payment: Payment, obj: dict[str, Any]) -> str:
    if payment.status in (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED):
        return "already succeeded"
    payment.status = PaymentStatus.SUCCEEDED
    payment.succeeded_at = timezone.now()
    payment.last_error_code = ""
    payment.save(update_fields=["status", "succeeded_at", "last_error_code", "updated_at"])
    Invoice.objects.filter(order_id=payment.order_id, status=InvoiceStatus.OPEN).update(
        status=InvoiceStatus.PAID, paid_at=payment.succeeded_at
    )
    order = payment.order
    if order.status == OrderStatus.AWAITING_PAYMENT:
        provider = "Sandbox" if payment.provider == PaymentProvider.SANDBOX else "Stripe"
        order_transition(
            order_id=payment.order_id, actor=None, transition="mark_paid", reason=f"{provider} payment succeeded"
        )
        return "order paid"
    paid_before = (
        Payment.objects.filter(order_id=payment.order_id, status__in=(PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED))
        .exclude(pk=payment.pk)
        .exists()
    )
    if order.status == OrderStatus.CANCELLED or paid_before:
        outbox_publish(topic="payment.refund_due", aggregate=payment, payload={"order_id": str(payment.order_id)})
        return f"refund scheduled: order already {order.status}"
    return f"payment succeeded; order was {order.status}"


def _failed(payment: Payment, obj: dict[str, Any]) -> str:
    if payment.status in (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED):
        return "ignored: the payment already succeeded"  # a late failure never downgrades a success
    error = obj.get("last_payment_error") or {}
    payment.status = PaymentStatus.REQUIRES_PAYMENT_METHOD
    payment.last_error_code = str(error.get("code") or error.get("decline_code") or "payment_failed")[:100]
    payment.save(update_fields=["status", "last_error_code", "updated_at"])
    return "payment failed"


def _refunded(payment: Payment, obj: dict[str, Any]) -> str:
    """A charge refunded in full, here or in Stripe's dashboard: the payment is refunded, the refund recorded."""
    if not obj.get("refunded"):
        return "ignored: partial refund"
    refunds = (obj.get("refunds") or {}).get("data") or []
    refund_id = refunds[0].get("id") if refunds else None
    refund = Refund.objects.select_for_update().filter(payment=payment).first()
    if refund is None:
        Refund.objects.create(
            payment=payment,
            territory_id=payment.territory_id,
            refund_id=refund_id,
            amount_cents=int(obj.get("amount_refunded") or payment.amount_cents),
            status=RefundStatus.SUCCEEDED,
            reason="Refunded at the payment provider",
        )
    else:
        refund.status = RefundStatus.SUCCEEDED
        refund.refund_id = refund.refund_id or refund_id
        refund.save(update_fields=["status", "refund_id", "updated_at"])
    return "payment refunded" if payment_mark_refunded(payment_id=payment.pk) else "refund already recorded"


_HANDLERS = {
    "checkout.session.completed": _session_completed,
    "checkout.session.expired": _session_expired,
    "payment_intent.succeeded": _succeeded,
    "payment_intent.payment_failed": _failed,
    "charge.refunded": _refunded,
}
