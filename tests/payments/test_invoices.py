"""Invoices: issued when a cash-pay order is verified, voided when it is cancelled before payment,
through the outbox routes of the payments agent (at least once, so every step is idempotent)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import OutboxEvent
from core.outbox import outbox_deliver
from orders import services as order_services
from payments import services
from payments.models import Invoice, InvoiceLine
from tests.admin.conftest import signed_in
from tests.conftest import World
from tests.factories import ProductFactory


def deliver(order_id: Any, topic: str, django_capture_on_commit_callbacks: Any) -> None:
    """Deliver the order's pending ``topic`` event to its routes (Celery runs eagerly in tests)."""
    event = OutboxEvent.objects.get(aggregate_id=str(order_id), topic=topic)
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_deliver(event_id=event.pk) is True


def cash_order(world: World) -> Any:
    filters = ProductFactory.create(
        sku="RX-FIN-1", name="Finasteride 1 mg", price_cents=1500, warehouse_fulfillment=False
    )
    order = world.order(
        payer_type="cash",
        items=[
            order_services.ItemRequest(sku=world.product.sku, quantity=2),
            order_services.ItemRequest(sku=filters.sku, quantity=3),
        ],
    )
    order_services.order_verify(order_id=order.pk, actor=world.ops)
    return order


def test_verifying_a_cash_order_issues_its_invoice_once(north: World, django_capture_on_commit_callbacks: Any) -> None:
    order = cash_order(north)

    deliver(order.pk, "order.verified", django_capture_on_commit_callbacks)

    invoice = Invoice.objects.get(order=order)
    year = timezone.localdate().year
    assert (invoice.number, invoice.status, invoice.subtotal_cents, invoice.total_cents, invoice.currency) == (
        f"INV-{year}-000001",
        "open",
        2 * 12500 + 3 * 1500,
        2 * 12500 + 3 * 1500,
        "usd",
    )
    assert list(
        InvoiceLine.objects.filter(invoice=invoice).values_list("sku", "quantity", "unit_price_cents", "total_cents")
    ) == [
        (north.product.sku, 2, 12500, 25000),
        ("RX-FIN-1", 3, 1500, 4500),
    ]
    # A second delivery of the same event changes nothing
    assert services.invoice_issue(order_id=order.pk) == invoice
    assert (Invoice.objects.count(), InvoiceLine.objects.count()) == (1, 2)


def test_numbers_follow_each_other_within_the_year(north: World) -> None:
    first, second = cash_order(north), north.order(payer_type="cash")
    order_services.order_verify(order_id=second.pk, actor=north.ops)
    numbers = [services.invoice_issue(order_id=o.pk).number for o in (first, second)]  # type: ignore[union-attr]
    year = timezone.localdate().year
    assert numbers == [f"INV-{year}-000001", f"INV-{year}-000002"]


def test_insurance_and_unverified_orders_get_no_invoice(north: World) -> None:
    insurance = north.order()
    order_services.order_verify(order_id=insurance.pk, actor=north.ops)
    pending = north.order(payer_type="cash")
    assert (services.invoice_issue(order_id=insurance.pk), services.invoice_issue(order_id=pending.pk)) == (None, None)
    assert Invoice.objects.count() == 0


def test_cancelling_before_payment_voids_the_invoice(north: World, django_capture_on_commit_callbacks: Any) -> None:
    order = cash_order(north)
    deliver(order.pk, "order.verified", django_capture_on_commit_callbacks)

    order_services.order_cancel(order_id=order.pk, actor=north.ops, reason="Patient changed their mind")
    deliver(order.pk, "order.cancelled", django_capture_on_commit_callbacks)

    invoice = Invoice.objects.get(order=order)
    assert invoice.status == "void"
    assert invoice.voided_at is not None
    voided_at = invoice.voided_at
    services.invoice_void(order_id=order.pk)  # a repeat changes nothing
    assert Invoice.objects.get(order=order).voided_at == voided_at


def test_a_late_verified_event_after_cancellation_issues_nothing(north: World) -> None:
    order = cash_order(north)
    order_services.order_cancel(order_id=order.pk, actor=north.ops, reason="Duplicate order")
    assert services.invoice_issue(order_id=order.pk) is None
    assert Invoice.objects.count() == 0


def test_invoices_are_read_only_in_the_admin_and_scoped(north: World, south: World) -> None:
    invoice = services.invoice_issue(order_id=cash_order(north).pk)
    assert invoice is not None
    page = signed_in(north.ops).get(reverse("admin:payments_invoice_change", args=(invoice.pk,)))
    assert page.status_code == 200
    assert invoice.number in page.content.decode()
    assert signed_in(south.ops).get(reverse("admin:payments_invoice_change", args=(invoice.pk,))).status_code == 404
    assert signed_in(north.ops).get(reverse("admin:payments_invoice_add")).status_code == 403


def test_the_admin_shows_invoice_money_as_money(north: World) -> None:
    # Given an invoice of the fixture cash order
    invoice = services.invoice_issue(order_id=cash_order(north).pk)
    assert invoice is not None
    lines = list(invoice.lines.all())
    assert lines
    client = signed_in(north.ops)

    # When ops open the invoice list and the invoice's page
    listing = client.get(reverse("admin:payments_invoice_changelist")).content.decode()
    page = client.get(reverse("admin:payments_invoice_change", args=(invoice.pk,))).content.decode()

    # Then the amounts read as dollars, never as a count of cents
    total = f"${invoice.total_cents / 100:,.2f}"
    assert total in listing
    for line in lines:
        assert f"${line.unit_price_cents / 100:,.2f}" in page
        assert f"${line.total_cents / 100:,.2f}" in page
    assert total in page
    for body in (listing, page):
        assert "cents" not in body.lower()


@pytest.mark.parametrize(
    ("topic", "tasks"),
    [
        (
            "order.verified",
            [
                "agents.payments.issue_invoice",
                "agents.payments.request_payment",
                "agents.pharmacy.submit_prescriptions",
            ],
        ),
        ("order.awaiting_payment", ["agents.payments.send_payment_link"]),
        ("payment_link.revoked", ["agents.payments.expire_checkout_sessions"]),
        (
            "order.cancelled",
            [
                "agents.ordering.refresh_work_orders",
                "agents.payments.void_invoice",
                "agents.payments.withdraw_payment_links",
                "agents.payments.refund_cancelled_order",
            ],
        ),
        ("payment.refund_due", ["agents.payments.refund_duplicate_payment"]),
    ],
)
def test_the_payments_agent_is_routed_for_its_events(topic: str, tasks: list[str]) -> None:
    from core.outbox import routes_for

    assert routes_for(topic) == tasks
