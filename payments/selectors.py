"""Reads of payments: the reconciliation of orders against what the payment provider says."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Exists, Min, OuterRef, Q

from orders.models import Order, OrderStatus
from patients.models import PayerType

from .models import Payment, PaymentStatus

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
    - an order still awaiting payment after its payment link's lifetime (``PAYMENT_LINK_TTL_HOURS``).

    ``territory_ids`` limits it to those territories (None: every territory).
    """
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
    for payment in (
        payments.filter(status=PaymentStatus.REFUNDED)
        .exclude(order__status=OrderStatus.CANCELLED)
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
        .prefetch_related("items")
    )
    for order in waiting:
        rows.append(
            _row("stale_awaiting_payment", order, None, f"Awaiting payment since {order.waiting_since:%Y-%m-%d %H:%M}.")
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
