"""The reconciliation report: every kind of disagreement between orders and payments, on the admin
page (scoped to the user's territories) and as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from django.urls import reverse
from django.utils import timezone

from orders import services as order_services
from orders.models import Order
from payments.models import Payment
from payments.selectors import reconciliation_mismatches
from tests.admin.conftest import signed_in
from tests.conftest import World

URL = "/admin/payments/payment/reconciliation/"


def cash(world: World, *steps: str, actor: Any = None) -> Order:
    # each order for a patient of its own: a second identical open order for one patient needs review
    order = world.order(payer_type="cash", patient_id=world.other_patient().pk)
    for step in steps:
        order_services.order_transition(order_id=order.pk, actor=actor or world.admin, transition=step)
    return Order.objects.get(pk=order.pk)


def payment(order: Order, status: str) -> Payment:
    return Payment.objects.create(
        order=order,
        territory_id=order.territory_id,
        provider="stripe",
        payment_intent_id=f"pi_{order.reference}",
        amount_cents=order.total_cents,
        status=status,
    )


def test_each_kind_of_mismatch_is_listed_once_and_matching_pairs_are_not(north: World) -> None:
    # Mismatches
    paid_by_hand = cash(north, "verify", "request_payment", "mark_paid")
    cancelled_but_paid = cash(north, "verify", "request_payment")
    payment(cancelled_but_paid, "succeeded")
    order_services.order_cancel(order_id=cancelled_but_paid.pk, actor=north.admin, reason="Duplicate")
    refunded_not_cancelled = cash(north, "verify", "request_payment", "mark_paid")
    payment(refunded_not_cancelled, "refunded")
    waiting = cash(north, "verify", "request_payment")
    # Agreements
    paid_properly = cash(north, "verify", "request_payment", "mark_paid")
    payment(paid_properly, "succeeded")
    north.order()  # an insurance order is never paid through us

    now = timezone.now()
    rows = reconciliation_mismatches(now=now)
    assert [(r.kind, r.reference) for r in rows] == [
        ("paid_without_payment", paid_by_hand.reference),
        ("payment_on_unpaid_order", cancelled_but_paid.reference),
        ("refund_without_cancellation", refunded_not_cancelled.reference),
    ]
    assert rows[1].detail == "Payment succeeded; order is cancelled."

    # After the link's 72 hours the waiting order shows up too
    later = reconciliation_mismatches(now=now + dt.timedelta(hours=72, minutes=1))
    assert [(r.kind, r.reference) for r in later][-1] == ("stale_awaiting_payment", waiting.reference)
    assert len(later) == 4


def test_the_admin_page_and_csv_are_scoped_to_the_users_territories(north: World, south: World) -> None:
    north_order = cash(north, "verify", "request_payment", "mark_paid")
    cash(south, "verify", "request_payment", "mark_paid")

    page = signed_in(north.ops).get(URL)
    assert page.status_code == 200
    text = page.content.decode()
    assert north_order.reference in text
    assert reverse("admin:orders_order_change", args=(north_order.pk,)) in text
    assert Order.objects.filter(territory=south.territory).get().reference not in text

    download = signed_in(north.ops).get(URL, {"format": "csv"})
    assert download["Content-Disposition"] == (
        f'attachment; filename="payment-reconciliation-{timezone.localdate().isoformat()}.csv"'
    )
    assert list(csv.reader(io.StringIO(download.content.decode()))) == [
        ["Mismatch", "Order", "Order status", "Payment status", "Amount (cents)", "Detail"],
        [
            "paid_without_payment",
            north_order.reference,
            "paid",
            "",
            "25000",
            "The order is paid but no payment succeeded.",
        ],
    ]


def test_the_report_needs_the_payment_view_permission_and_is_linked_from_payments(north: World) -> None:
    assert signed_in(north.doctor).get(URL).status_code == 302
    payments_page = signed_in(north.ops).get(reverse("admin:payments_payment_changelist"))
    assert URL in payments_page.content.decode()
