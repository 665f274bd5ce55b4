"""Receiving provider webhook events: verified, applied once each, in any order.

``webhook_receive`` checks the ``Stripe-Signature`` over the raw body with stripe-python's own
verification before anything is read, and its timestamp within 300 s either way; the view and
the sandbox both come through it. ``stripe_event_parse`` then refuses a signed body that is not
an event of the shapes the handlers read (a bad shape is a 400, never a 500, and writes nothing).
The cross-check against the payment asks for its exact amount and currency and its order.
``stripe_event_apply`` records the event id in the same transaction as its effect, so a
redelivery is answered without doing anything again. A failure that arrives after a success
never downgrades it; a second successful payment for an order already paid (or cancelled) is
refunded through the outbox (``payment.refund_due``), so nothing is charged twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
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

# How far a signature's timestamp may be from now, in seconds, either way: stripe-python's default
# tolerance (``stripe.Webhook.DEFAULT_TOLERANCE``, 300 s; https://docs.stripe.com/webhooks#replay-attacks,
# read 2026-12). stripe-python refuses only timestamps too old; one too far ahead is refused here.
SIGNATURE_TOLERANCE = 300
# What the event row can hold (ProcessedStripeEvent.event_id and .type).
EVENT_ID_MAX_LENGTH = 255
EVENT_TYPE_MAX_LENGTH = 100
# Ids of Stripe objects (Checkout Sessions, PaymentIntents, refunds) as our rows hold them.
OBJECT_ID_MAX_LENGTH = 255
# Stripe amounts have at most eight digits ($999,999.99 in USD; https://docs.stripe.com/api/payment_intents/object#payment_intent_object-amount,
# read 2026-12).
AMOUNT_MAX = 99_999_999
# The strings of an event's object that handlers read, and the longest each may be.
_OBJECT_STRINGS = {
    "id": OBJECT_ID_MAX_LENGTH,
    "payment_intent": OBJECT_ID_MAX_LENGTH,
    "currency": 3,
    "payment_status": 50,
}
_OBJECT_AMOUNTS = ("amount", "amount_total", "amount_refunded")


class InvalidWebhook(Exception):
    """The body is not a Stripe event signed with our secret within the tolerance (``code`` says which).

    ``details`` names what is wrong with a signed body that is not a usable event (field → problems).
    """

    def __init__(self, code: str, details: dict[str, list[str]] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.details = details or {}


@dataclass(frozen=True)
class StripeEvent:
    """A verified event whose id, type and object have the shapes the handlers read."""

    id: str
    type: str
    object: dict[str, Any]


def webhook_receive(*, payload: bytes, signature: str | None) -> str:
    """Verify ``signature`` over the raw ``payload`` and apply the event; returns its outcome.

    Raises InvalidWebhook("INVALID_SIGNATURE") for a missing or wrong signature, or one whose
    timestamp is more than SIGNATURE_TOLERANCE seconds old or ahead, and
    InvalidWebhook("VALIDATION_ERROR") for a signed body that is not a usable event (see
    ``stripe_event_parse``); nothing is written then.
    """
    try:
        stripe.WebhookSignature.verify_header(payload, signature, webhook_secret(), tolerance=SIGNATURE_TOLERANCE)
    except (stripe.SignatureVerificationError, ValueError) as error:
        raise InvalidWebhook("INVALID_SIGNATURE") from error
    if _signed_at(str(signature)) > time.time() + SIGNATURE_TOLERANCE:
        raise InvalidWebhook("INVALID_SIGNATURE")
    return stripe_event_apply(event=stripe_event_parse(payload))


def _signed_at(signature: str) -> int:
    """The ``t=`` timestamp of a header stripe-python has verified (its first one, as stripe-python reads it)."""
    items = [item.split("=", 2) for item in signature.split(",")]
    return int(next(item[1] for item in items if item[0] == "t"))


def _refuse(field: str, problem: str) -> InvalidWebhook:
    return InvalidWebhook("VALIDATION_ERROR", {field: [problem]})


def _text(value: Any, *, field: str, max_length: int, required: bool = False) -> None:
    """A string of 1 to ``max_length`` printable characters: no NUL (PostgreSQL text cannot hold one),
    no control characters, no lone surrogates (they cannot be stored as UTF-8)."""
    if value is None and not required:
        return
    if not isinstance(value, str) or not value or len(value) > max_length or not value.isprintable():
        raise _refuse(field, f"Must be a string of 1 to {max_length} printable characters.")


def _object_checked(obj: Any) -> dict[str, Any]:
    """``data.object`` with every field a handler reads of the type Stripe documents for it."""
    if not isinstance(obj, dict):
        raise _refuse("data.object", "Must be an object.")
    for key, max_length in _OBJECT_STRINGS.items():
        _text(obj.get(key), field=f"data.object.{key}", max_length=max_length)
    for key in _OBJECT_AMOUNTS:
        amount = obj.get(key)
        if amount is not None and (type(amount) is not int or not 0 <= amount <= AMOUNT_MAX):
            raise _refuse(f"data.object.{key}", f"Must be a whole number of cents from 0 to {AMOUNT_MAX}.")
    if not isinstance(obj.get("metadata") or {}, dict):
        raise _refuse("data.object.metadata", "Must be an object.")
    if obj.get("refunded") is not None and not isinstance(obj["refunded"], bool):
        raise _refuse("data.object.refunded", "Must be true or false.")
    error = obj.get("last_payment_error") or {}
    if not isinstance(error, dict):
        raise _refuse("data.object.last_payment_error", "Must be an object.")
    for key in ("code", "decline_code"):
        _text(error.get(key), field=f"data.object.last_payment_error.{key}", max_length=100)
    refunds = obj.get("refunds") or {}
    if not isinstance(refunds, dict) or not isinstance(refunds.get("data") or [], list):
        raise _refuse("data.object.refunds", "Must be a list object.")
    for refund in refunds.get("data") or []:
        if not isinstance(refund, dict):
            raise _refuse("data.object.refunds.data", "Must hold refund objects.")
        _text(refund.get("id"), field="data.object.refunds.data.id", max_length=OBJECT_ID_MAX_LENGTH)
    return obj


def stripe_event_parse(payload: bytes) -> StripeEvent:
    """The event a verified body holds. Raises InvalidWebhook("VALIDATION_ERROR") for a body that
    is not JSON (or nested too deeply to read), not an object with an ``id`` of at most 255 and a
    ``type`` of at most 100 printable characters, with ``data.object`` an object; or, for the
    event types handled here, whose object's fields are not of Stripe's types."""
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):
        raise _refuse("body", "Must be a JSON object.") from None
    if not isinstance(event, dict):
        raise _refuse("body", "Must be a JSON object.")
    _text(event.get("id"), field="id", max_length=EVENT_ID_MAX_LENGTH, required=True)
    _text(event.get("type"), field="type", max_length=EVENT_TYPE_MAX_LENGTH, required=True)
    data = event.get("data")
    if not isinstance(data, dict):
        raise _refuse("data", "Must be an object.")
    obj = data.get("object")
    if not isinstance(obj, dict):
        raise _refuse("data.object", "Must be an object.")
    if event["type"] in _HANDLERS:
        _object_checked(obj)
    return StripeEvent(id=event["id"], type=event["type"], object=obj)


def stripe_event_apply(*, event: StripeEvent) -> str:
    """Apply one verified, parsed event; returns its outcome (``duplicate`` for one already applied).

    An event of a type not handled here is recorded as ``ignored``, without looking for its payment.
    """
    event_id, event_type, obj = event.id, event.type, event.object
    with transaction.atomic():
        if ProcessedStripeEvent.objects.select_for_update().filter(event_id=event_id).exists():
            return "duplicate"
        handler = _HANDLERS.get(event_type)
        payment = _payment_for(event_type, obj) if handler is not None else None
        if handler is None:
            outcome = "ignored"
        elif payment is None:
            outcome = "no matching payment"
        elif not _matches(payment, event_type, obj):
            outcome = "mismatch: order, amount or currency differs"
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
    """The event's own amount, currency and order id must be the payment's (a cross-check, not the match).

    Amount and currency must be present and exactly the payment's (a session's ``amount_total``,
    otherwise ``amount``). Charges carry no metadata of ours, so a charge is checked by its
    amount and currency alone; other objects must also name the payment's order, and its
    invoice when they name one.
    """
    amount = obj.get("amount_total") if event_type.startswith("checkout.session.") else obj.get("amount")
    if amount != payment.amount_cents or obj.get("currency") != payment.currency:
        return False
    if event_type.startswith("charge."):
        return True
    metadata = obj.get("metadata") or {}
    if metadata.get("order_id") != str(payment.order_id):
        return False
    if "invoice_id" in metadata:
        invoice = Invoice.objects.filter(order_id=payment.order_id).only("id", "currency").first()
        return (
            invoice is not None and metadata["invoice_id"] == str(invoice.pk) and invoice.currency == payment.currency
        )
    return True


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
