"""Invoice and payment writes. Each is idempotent: outbox delivery and client retries are at least once."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.exceptions import Conflict, DomainError
from orders.models import Order, OrderStatus
from orders.selectors import order_get_for_user
from patients.models import PayerType

from .gateway import IntentResult, PaymentGatewayError, payment_intent_create
from .models import Invoice, InvoiceLine, InvoiceSerial, InvoiceStatus, Payment, PaymentProvider, PaymentStatus

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


def payment_intent_for_order(*, actor: Any, order_id: Any) -> tuple[Payment, IntentResult]:
    """``POST /payments/create-intent``: create or return the PaymentIntent of an order awaiting payment.

    The idempotency key is fixed per order and attempt (``medorder-order-<id>-attempt-<n>``), so
    a retry, a double click or two racing requests get the same PaymentIntent and nothing is
    charged twice. Only the order's id goes to Stripe as metadata, with a generic description.
    Raises OrderNotFound (not the actor's), PaymentNotPossible (not a cash order awaiting
    payment), PaymentProviderUnavailable (Stripe refused or was unreachable; nothing is written).
    """
    order = order_get_for_user(user=actor, pk=order_id)
    if order.payer_type != PayerType.CASH or order.status != OrderStatus.AWAITING_PAYMENT:
        raise PaymentNotPossible(
            "Only a cash-pay order awaiting payment can be paid.",
            details={"order_id": str(order.pk), "status": order.status},
        )
    if not settings.STRIPE_SECRET_KEY:
        raise PaymentProviderUnavailable("Stripe is not configured here.")
    latest = Payment.objects.filter(order=order).order_by("-attempt").first()
    attempt = 1 if latest is None else latest.attempt + (1 if latest.status == PaymentStatus.CANCELED else 0)
    amount = order.total_cents
    try:
        intent = payment_intent_create(
            amount_cents=amount,
            currency=settings.PAYMENT_CURRENCY,
            reference=order.reference,
            metadata={"order_id": str(order.pk)},
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
                "provider": PaymentProvider.STRIPE,
                "payment_intent_id": intent.payment_intent_id,
                "amount_cents": intent.amount,
                "currency": intent.currency,
                "status": intent.status,
            },
        )
    return payment, intent
