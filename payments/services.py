"""Invoice writes. Each service is idempotent: outbox delivery is at least once."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from orders.models import Order, OrderStatus
from patients.models import PayerType

from .models import Invoice, InvoiceLine, InvoiceSerial, InvoiceStatus

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
