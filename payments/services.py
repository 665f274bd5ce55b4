"""Invoice, payment and refund writes. Each is idempotent: outbox delivery and client retries are at least once."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from core.exceptions import Conflict, DomainError, PermissionDenied, ValidationFailed
from orders.exceptions import InvalidStatusTransition
from orders.models import ActorKind, EventKind, Order, OrderStatus
from orders.selectors import order_get_for_user
from orders.services import order_transition
from orders.timeline import record_event
from patients.models import PayerType
from territories.models import TerritoryPermission
from territories.selectors import territory_permits

from .gateway import IntentResult, PaymentGatewayError, gateway
from .models import (
    Invoice,
    InvoiceLine,
    InvoiceSerial,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
)

# Orders not (or no longer) verified get no invoice: the event may arrive after a cancellation.
NOT_INVOICED = (OrderStatus.PENDING_VERIFICATION, OrderStatus.ON_HOLD, OrderStatus.REJECTED, OrderStatus.CANCELLED)


def invoice_number_next(*, year: int) -> str:
    """Take the next invoice number of ``year``. Call inside an atomic block (the serial row is locked)."""
    InvoiceSerial.objects.get_or_create(year=year)
    serial = InvoiceSerial.objects.select_for_update().get(year=year)
    serial.last += 1
    serial.save(update_fields=["last"])
    return f"INV-{year}-{serial.last:06d}"


def invoice_issue(*, order_id: Any) -> Invoice | None:
    """Issue the invoice of a verified cash-pay order (once; a repeat returns the same invoice).

    Insurance orders are billed to the payer, not invoiced to the patient: None. An order that
    is no longer in a state that is paid for (rejected or cancelled before this ran) gets none.
    """
    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).filter(pk=order_id).first()
        if order is None or order.payer_type != PayerType.CASH:
            return None
        existing = Invoice.objects.filter(order=order).first()
        if existing is not None:
            return existing
        if order.status in NOT_INVOICED:
            return None
        now = timezone.now()
        items = list(order.items.select_related("product").order_by("sku"))
        subtotal = sum(item.line_total_cents for item in items)
        invoice = Invoice.objects.create(
            number=invoice_number_next(year=timezone.localdate(now).year),
            order=order,
            territory_id=order.territory_id,
            status=InvoiceStatus.OPEN,
            subtotal_cents=subtotal,
            total_cents=subtotal,
            issued_at=now,
        )
        InvoiceLine.objects.bulk_create(
            InvoiceLine(
                invoice=invoice,
                sku=item.sku,
                description=item.product.name,
                quantity=item.quantity,
                unit_price_cents=item.unit_price_cents,
                total_cents=item.line_total_cents,
            )
            for item in items
        )
    return invoice


def invoice_void(*, order_id: Any) -> Invoice | None:
    """Void the open invoice of a cancelled order (a paid one stays paid; the refund records the rest)."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().filter(order_id=order_id).first()
        if invoice is None or invoice.status != InvoiceStatus.OPEN:
            return invoice
        invoice.status = InvoiceStatus.VOID
        invoice.voided_at = timezone.now()
        invoice.save(update_fields=["status", "voided_at"])
    return invoice


class PaymentNotPossible(Conflict):
    code = "PAYMENT_NOT_POSSIBLE"


class PaymentProviderUnavailable(DomainError):
    code = "PAYMENT_PROVIDER_UNAVAILABLE"
    http_status = 503
    default_message = "The payment provider could not be reached; try again shortly."


# Payments that may still take money (a Checkout Session or PaymentIntent not yet finished).
OPEN_PAYMENT_STATUSES = (
    PaymentStatus.REQUIRES_PAYMENT_METHOD,
    PaymentStatus.REQUIRES_CONFIRMATION,
    PaymentStatus.REQUIRES_ACTION,
    PaymentStatus.PROCESSING,
    PaymentStatus.REQUIRES_CAPTURE,
)


def payment_metadata(order: Order) -> dict[str, str]:
    """What the provider is told about an order: its opaque id, and its invoice's once issued."""
    metadata = {"order_id": str(order.pk)}
    invoice = Invoice.objects.filter(order=order).only("id").first()
    if invoice is not None:
        metadata["invoice_id"] = str(invoice.pk)
    return metadata


def payment_attempt_next(*, order: Order) -> int:
    """The next attempt number of an order's payments (part of each attempt's idempotency key)."""
    return (Payment.objects.filter(order=order).aggregate(last=Max("attempt"))["last"] or 0) + 1


def order_payment_request(*, order_id: Any) -> Order | None:
    """``order.verified``: move a verified cash-pay order to ``awaiting_payment`` (the system acting).

    Insurance orders, and orders no longer verified (cancelled meanwhile, already moved on by a
    repeat delivery), are left alone: None.
    """
    order = Order.objects.filter(pk=order_id).only("payer_type", "status").first()
    if order is None or order.payer_type != PayerType.CASH or order.status != OrderStatus.VERIFIED:
        return None
    try:
        return order_transition(
            order_id=order_id,
            actor=None,
            transition="request_payment",
            reason="Cash-pay order verified: the patient pays by link",
        )
    except InvalidStatusTransition:
        return None  # moved on between the read and the lock


def payment_intent_for_order(*, actor: Any, order_id: Any) -> tuple[Payment, IntentResult]:
    """``POST /payments/create-intent``: create or return the PaymentIntent of an order awaiting payment.

    The idempotency key is fixed per order and attempt (``medorder-order-<id>-attempt-<n>``), so
    a retry, a double click or two racing requests get the same PaymentIntent and nothing is
    charged twice; a new attempt starts only after the previous intent was canceled. Only opaque
    ids go to the provider, with a generic description. Starting a payment asks the same of the
    actor as issuing its payment link: the territory's ``send_payment_link`` permission (reading
    the order is not enough). Raises OrderNotFound (not the actor's), PermissionDenied (without
    that permission), PaymentNotPossible (not a cash order awaiting payment),
    PaymentProviderUnavailable (the provider refused or was unreachable; nothing is written).
    """
    order = order_get_for_user(user=actor, pk=order_id)
    if not territory_permits(
        user=actor, permission=TerritoryPermission.SEND_PAYMENT_LINK, territory_id=order.territory_id
    ):
        raise PermissionDenied("You may not take payments for orders in this territory.")
    if order.payer_type != PayerType.CASH or order.status != OrderStatus.AWAITING_PAYMENT:
        raise PaymentNotPossible(
            "Only a cash-pay order awaiting payment can be paid.",
            details={"order_id": str(order.pk), "status": order.status},
        )
    current = (
        Payment.objects.filter(order=order, checkout_session_id__isnull=True, status__in=OPEN_PAYMENT_STATUSES)
        .order_by("-attempt")
        .first()
    )
    attempt = current.attempt if current is not None else payment_attempt_next(order=order)
    try:
        provider = gateway()
        intent = provider.payment_intent_create(
            amount_cents=order.total_cents,
            currency=settings.PAYMENT_CURRENCY,
            reference=order.reference,
            metadata=payment_metadata(order),
            idempotency_key=f"medorder-order-{order.pk}-attempt-{attempt}",
        )
    except PaymentGatewayError as error:
        raise PaymentProviderUnavailable(details={"provider_error": error.code}) from error
    with transaction.atomic():
        payment, _created = Payment.objects.get_or_create(
            order=order,
            attempt=attempt,
            defaults={
                "territory_id": order.territory_id,
                "provider": provider.provider,
                "payment_intent_id": intent.payment_intent_id,
                "amount_cents": intent.amount,
                "currency": intent.currency,
                "status": intent.status,
            },
        )
    return payment, intent


def payment_refund(*, payment_id: Any, actor: Any, reason: str) -> Refund:
    """Refund a succeeded payment in full, once: a repeat (or a retry after a failure) returns the same refund.

    ``actor`` None is the system (refunding a cancelled order); a user needs the territory's
    ``refund_payment`` permission. The refund row is committed before the provider is called,
    with the idempotency key ``medorder-refund-<payment id>``, so a crash or an outage in
    between is finished by the next call and never refunds twice. Raises ValidationFailed
    (no reason), PermissionDenied, PaymentNotPossible (the payment has not succeeded) and
    PaymentProviderUnavailable (the refund stays pending and can be retried).
    """
    if not (reason or "").strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        order = Order.objects.select_for_update(of=("self",)).get(pk=payment.order_id)  # for its timeline
        if actor is not None and not territory_permits(
            user=actor, permission=TerritoryPermission.REFUND_PAYMENT, territory_id=payment.territory_id
        ):
            raise PermissionDenied("You may not refund payments in this territory.")
        refund = Refund.objects.filter(payment=payment).first()
        if refund is None:
            if payment.status != PaymentStatus.SUCCEEDED or not payment.payment_intent_id:
                raise PaymentNotPossible(
                    "Only a succeeded payment can be refunded.",
                    details={"payment_id": str(payment.pk), "status": payment.status},
                )
            refund = Refund.objects.create(
                payment=payment,
                territory_id=payment.territory_id,
                amount_cents=payment.amount_cents,
                reason=reason.strip()[:500],
                requested_by=actor,
            )
            record_event(
                order=order,
                kind=EventKind.PAYMENT,
                actor=actor,
                actor_kind=ActorKind.SYSTEM if actor is None else ActorKind.STAFF,
                reason=reason.strip()[:500],
                payload={
                    "refund_id": str(refund.pk),
                    "payment_id": str(payment.pk),
                    "amount_cents": refund.amount_cents,
                },
            )
    if refund.refund_id and refund.status != RefundStatus.PENDING:
        return refund
    try:
        result = gateway_for(payment).refund_create(
            payment_intent_id=str(payment.payment_intent_id),
            metadata={"order_id": str(payment.order_id)},
            idempotency_key=f"medorder-refund-{payment.pk}",
        )
    except PaymentGatewayError as error:
        raise PaymentProviderUnavailable(details={"provider_error": error.code}) from error
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        refund.refund_id = result.refund_id
        if refund.status == RefundStatus.PENDING:  # the webhook may have confirmed it already
            refund.status = result.status
        refund.save(update_fields=["refund_id", "status", "updated_at"])
        if refund.status == RefundStatus.SUCCEEDED:
            payment_mark_refunded(payment_id=payment.pk)
    return refund


def payment_mark_refunded(*, payment_id: Any) -> bool:
    """Record that the provider refunded the payment in full; False when it was already recorded."""
    updated = Payment.objects.filter(pk=payment_id, status=PaymentStatus.SUCCEEDED).update(
        status=PaymentStatus.REFUNDED, refunded_at=timezone.now(), updated_at=timezone.now()
    )
    return bool(updated)


def gateway_for(payment: Payment) -> Any:
    """The provider a payment was made with (a sandbox payment is never sent to Stripe, and back)."""
    provider = gateway()
    if provider.provider != payment.provider:
        raise PaymentGatewayError(f"payment made with {payment.provider}, provider now {provider.provider}")
    return provider


def refunds_for_cancelled_order(*, order_id: Any) -> list[Refund]:
    """``order.cancelled``: refund every succeeded payment of the order (idempotent)."""
    order = Order.objects.filter(pk=order_id).only("status").first()
    if order is None or order.status != OrderStatus.CANCELLED:
        return []
    return [
        payment_refund(payment_id=payment.pk, actor=None, reason="Order cancelled")
        for payment in Payment.objects.filter(order_id=order_id, status=PaymentStatus.SUCCEEDED)
    ]
