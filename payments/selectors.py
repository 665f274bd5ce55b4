"""Reads of payments: the reconciliation of orders against what the payment provider says."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Exists, Min, OuterRef, Q

from core.db_routers import reading_from_replica
from orders.models import Order, OrderStatus
from patients.models import PayerType

from .models import InvoiceLine, Payment, PaymentLink, PaymentStatus

# Cash orders in these states have been paid for.
PAID_STATUSES = (OrderStatus.PAID, OrderStatus.IN_PROGRESS, OrderStatus.SHIPPED, OrderStatus.COMPLETED)


@dataclass(frozen=True)
class Mismatch:
    kind: str
    order_id: Any
    order_created_at: dt.datetime
    reference: str
    order_status: str
    payment_status: str
    amount_cents: int
    detail: str


def reconciliation_mismatches(*, now: dt.datetime, territory_ids: Iterable[Any] | None = None) -> list[Mismatch]:
    """Every disagreement between orders and payments, oldest order first (ids and states only, no PHI).

    - a paid cash order without a succeeded (or later refunded) payment;
    - a succeeded payment on an order that is cancelled or not (yet) paid;
    - a refunded payment whose order is not cancelled;
    - an order still awaiting payment longer than a link's lifetime (``PAYMENT_LINK_TTL_HOURS``)
      with no payment link still valid.

    ``territory_ids`` limits it to those territories (None: every territory). Read from the read replica
    when there is one (a report: a payment made in the last moments may show up on the next run).
    """
    with reading_from_replica():
        return _reconciliation_mismatches(now=now, territory_ids=territory_ids)


def _reconciliation_mismatches(*, now: dt.datetime, territory_ids: Iterable[Any] | None) -> list[Mismatch]:
    orders = Order.objects.all() if territory_ids is None else Order.objects.filter(territory_id__in=territory_ids)
    payments = Payment.objects.filter(order__in=orders)
    rows: list[Mismatch] = []
    settled = Payment.objects.filter(order=OuterRef("pk"), status__in=(PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED))
    unpaid = orders.filter(payer_type=PayerType.CASH, status__in=PAID_STATUSES).filter(~Exists(settled))
    for order in unpaid.prefetch_related("items"):
        rows.append(_row("paid_without_payment", order, None, "The order is paid but no payment succeeded."))
    for payment in (
        payments.filter(status=PaymentStatus.SUCCEEDED).exclude(order__status__in=PAID_STATUSES).select_related("order")
    ):
        rows.append(
            _row(
                "payment_on_unpaid_order",
                payment.order,
                payment,
                f"Payment succeeded; order is {payment.order.status}.",
            )
        )
    # A duplicate payment refunded on an order paid otherwise is not a mismatch.
    other_settled = Payment.objects.filter(order=OuterRef("order"), status=PaymentStatus.SUCCEEDED).exclude(
        pk=OuterRef("pk")
    )
    for payment in (
        payments.filter(status=PaymentStatus.REFUNDED)
        .exclude(order__status=OrderStatus.CANCELLED)
        .filter(~Exists(other_settled))
        .select_related("order")
    ):
        rows.append(
            _row("refund_without_cancellation", payment.order, payment, "Refunded; the order is not cancelled.")
        )
    expiry = now - dt.timedelta(hours=settings.PAYMENT_LINK_TTL_HOURS)
    waiting = (
        orders.filter(status=OrderStatus.AWAITING_PAYMENT)
        .annotate(waiting_since=Min("events__created_at", filter=Q(events__to_status=OrderStatus.AWAITING_PAYMENT)))
        .filter(waiting_since__lt=expiry)
        .filter(~Exists(PaymentLink.objects.filter(order=OuterRef("pk"), revoked_at__isnull=True, expires_at__gt=now)))
        .prefetch_related("items")
    )
    for order in waiting:
        rows.append(
            _row(
                "stale_awaiting_payment",
                order,
                None,
                f"Awaiting payment since {order.waiting_since:%Y-%m-%d %H:%M}; no payment link is still valid.",
            )
        )
    return sorted(rows, key=lambda row: (row.order_created_at, row.kind))


def _row(kind: str, order: Order, payment: Payment | None, detail: str) -> Mismatch:
    return Mismatch(
        kind=kind,
        order_id=order.pk,
        order_created_at=order.created_at,
        reference=order.reference,
        order_status=order.status,
        payment_status=payment.status if payment is not None else "",
        amount_cents=payment.amount_cents if payment is not None else order.total_cents,
        detail=detail,
    )


class PayPageState:
    """What the patient's payment page shows for a link."""

    PAYABLE = "payable"
    PAID = "paid"
    CLOSED = "closed"  # cancelled, rejected, or not waiting for payment
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class PayPageLine:
    description: str
    quantity: int
    total_cents: int


@dataclass(frozen=True)
class PayPage:
    """The minimum the patient needs: the practice, the order's reference, its lines and total."""

    state: str
    practice_name: str
    reference: str
    lines: list[PayPageLine]
    total_cents: int
    currency: str
    expires_at: dt.datetime


def pay_page(*, link: PaymentLink, now: dt.datetime) -> PayPage:
    """The payment page of ``link``: a paid order says so even once the link has expired."""
    order = link.order
    if order.status in PAID_STATUSES:
        state = PayPageState.PAID
    elif order.status != OrderStatus.AWAITING_PAYMENT:
        state = PayPageState.CLOSED
    elif link.revoked_at is not None:
        state = PayPageState.REVOKED
    elif link.expires_at <= now:
        state = PayPageState.EXPIRED
    else:
        state = PayPageState.PAYABLE
    invoice_lines = list(InvoiceLine.objects.filter(invoice__order=order))
    if invoice_lines:
        lines = [PayPageLine(line.description, line.quantity, line.total_cents) for line in invoice_lines]
    else:
        lines = [
            PayPageLine(item.product.name, item.quantity, item.line_total_cents)
            for item in order.items.select_related("product").order_by("sku")
        ]
    return PayPage(
        state=state,
        practice_name=link.territory.name,
        reference=order.reference,
        lines=lines,
        total_cents=sum(line.total_cents for line in lines),
        currency=settings.PAYMENT_CURRENCY,
        expires_at=link.expires_at,
    )
