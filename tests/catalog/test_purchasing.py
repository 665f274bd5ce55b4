"""Restock purchase orders: services and their admin pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from catalog import purchasing
from catalog.models import Lot, Product, PurchaseOrder, PurchaseOrderLine, StockMovement, Vendor, Warehouse
from catalog.selectors import expected_restock_date, on_order_quantities
from core.exceptions import Conflict, ValidationFailed
from tests.admin.conftest import messages_of, signed_in
from tests.conftest import World
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

IN_A_YEAR = timezone.localdate() + dt.timedelta(days=365)


@pytest.fixture
def warehouse() -> Warehouse:
    return Warehouse.objects.create(code="main", name="Main warehouse")


@pytest.fixture
def vendor() -> Vendor:
    return Vendor.objects.create(code="medline", name="Medline", email="po@medline.example")


@pytest.fixture
def strips() -> Product:
    return ProductFactory.create(sku="STRIPS-50", hcpcs_code="A4253", is_perishable=True)


@pytest.fixture
def lancets() -> Product:
    return ProductFactory.create(sku="LANCETS-100", hcpcs_code="A4259")


def restock(vendor: Vendor, warehouse: Warehouse, *lines: tuple[Product, int]) -> PurchaseOrder:
    return purchasing.purchase_order_create_restock(
        actor=None,
        vendor=vendor,
        warehouse=warehouse,
        lines=[purchasing.PurchaseLine(product, quantity) for product, quantity in lines],
        expected_date=dt.date(2026, 12, 10),
    )


def line_of(purchase_order: PurchaseOrder, product: Product) -> PurchaseOrderLine:
    return purchase_order.lines.get(product=product)


def test_a_restock_goes_draft_sent_acknowledged_received(
    vendor: Vendor, warehouse: Warehouse, strips: Product, lancets: Product, django_capture_on_commit_callbacks: Any
) -> None:
    purchase_order = restock(vendor, warehouse, (strips, 40), (lancets, 10))
    assert on_order_quantities(product_ids=[strips.pk, lancets.pk]) == {strips.pk: 40, lancets.pk: 10}
    assert expected_restock_date(product=strips) == dt.date(2026, 12, 10)

    with django_capture_on_commit_callbacks(execute=True):
        purchasing.purchase_order_send(purchase_order_id=purchase_order.pk, actor=None)
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["po@medline.example"], f"Purchase order {purchase_order.number}")
    ]
    assert "40 x STRIPS-50" in mail.outbox[0].body
    assert "10 x LANCETS-100" in mail.outbox[0].body

    purchasing.purchase_order_acknowledge(
        purchase_order_id=purchase_order.pk, actor=None, vendor_reference="ML-1", expected_date=dt.date(2026, 12, 12)
    )
    assert expected_restock_date(product=strips) == dt.date(2026, 12, 12)

    purchasing.purchase_order_receive(
        purchase_order_id=purchase_order.pk,
        actor=None,
        receipts=[
            purchasing.LotReceipt(line_of(purchase_order, strips).pk, "S-77", 40, IN_A_YEAR),
            purchasing.LotReceipt(line_of(purchase_order, lancets).pk, "L-12", 10),
        ],
    )

    purchase_order = PurchaseOrder.objects.get(pk=purchase_order.pk)
    assert (purchase_order.status, purchase_order.vendor_reference) == ("received", "ML-1")
    assert purchase_order.closed_at is not None
    assert sorted(Lot.objects.values_list("lot_number", "quantity_on_hand", "expiration_date")) == [
        ("L-12", 10, None),
        ("S-77", 40, IN_A_YEAR),
    ]
    assert StockMovement.objects.filter(kind="receipt").count() == 2
    assert on_order_quantities(product_ids=[strips.pk]) == {strips.pk: 0}


def test_a_bad_receipt_receives_nothing(
    vendor: Vendor, warehouse: Warehouse, strips: Product, lancets: Product
) -> None:
    purchase_order = restock(vendor, warehouse, (lancets, 10), (strips, 40))
    purchasing.purchase_order_send(purchase_order_id=purchase_order.pk, actor=None)

    with pytest.raises(ValidationFailed) as refused:
        purchasing.purchase_order_receive(
            purchase_order_id=purchase_order.pk,
            actor=None,
            receipts=[
                purchasing.LotReceipt(line_of(purchase_order, lancets).pk, "L-12", 10),
                purchasing.LotReceipt(line_of(purchase_order, strips).pk, "S-77", 40),  # perishable, no date
            ],
        )

    assert refused.value.details == {"expiration_date": ["A perishable product's lot needs an expiration date."]}
    assert (Lot.objects.count(), StockMovement.objects.count()) == (0, 0)
    assert PurchaseOrder.objects.get(pk=purchase_order.pk).status == "sent"


def test_steps_out_of_order_are_refused(vendor: Vendor, warehouse: Warehouse, lancets: Product) -> None:
    purchase_order = restock(vendor, warehouse, (lancets, 10))
    with pytest.raises(Conflict, match="is draft; it cannot be acknowledged"):
        purchasing.purchase_order_acknowledge(purchase_order_id=purchase_order.pk, actor=None, vendor_reference="X")
    with pytest.raises(Conflict, match="Only a dropship"):
        purchasing.purchase_order_record_shipment(
            purchase_order_id=purchase_order.pk, actor=None, carrier="UPS", tracking_number="1Z"
        )
    with pytest.raises(ValidationFailed):
        purchasing.purchase_order_create_restock(actor=None, vendor=vendor, warehouse=warehouse, lines=[])
    purchasing.purchase_order_cancel(purchase_order_id=purchase_order.pk, actor=None)
    purchasing.purchase_order_cancel(purchase_order_id=purchase_order.pk, actor=None)  # idempotent
    with pytest.raises(Conflict, match="is cancelled; it cannot be sent"):
        purchasing.purchase_order_send(purchase_order_id=purchase_order.pk, actor=None)
    assert PurchaseOrder.objects.get(pk=purchase_order.pk).status == "cancelled"


# --- admin ---------------------------------------------------------------------------------------


def test_admin_drafts_sends_and_receives_a_restock(
    north: World, vendor: Vendor, warehouse: Warehouse, lancets: Product
) -> None:
    client = signed_in(north.admin)
    response = client.post(
        reverse("admin:catalog_purchaseorder_add"),
        {
            "vendor": vendor.pk,
            "warehouse": warehouse.pk,
            "expected_date": "2026-12-10",
            "lines-TOTAL_FORMS": "1",
            "lines-INITIAL_FORMS": "0",
            "lines-0-product": lancets.pk,
            "lines-0-quantity": "25",
        },
    )
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    purchase_order = PurchaseOrder.objects.get()
    assert (purchase_order.kind, purchase_order.status, purchase_order.created_by) == ("restock", "draft", north.admin)
    assert list(purchase_order.lines.values_list("product__sku", "quantity")) == [("LANCETS-100", 25)]

    response = client.post(
        reverse("admin:catalog_purchaseorder_changelist"),
        {"action": "send_selected", "_selected_action": [purchase_order.pk]},
        follow=True,
    )
    assert messages_of(response)[-1] == f"Sent: {purchase_order.number}."

    receive_url = reverse("admin:catalog_purchaseorder_receive", args=(purchase_order.pk,))
    assert (
        receive_url
        in client.get(reverse("admin:catalog_purchaseorder_change", args=(purchase_order.pk,))).content.decode()
    )
    line = purchase_order.lines.get()
    form = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-line_id": str(line.pk),
        "form-0-lot_number": "L-1",
        "form-0-expiration_date": "",
        "form-0-quantity": "24",
    }
    response = client.post(receive_url, form)
    assert response.status_code == 302
    assert PurchaseOrder.objects.get(pk=purchase_order.pk).status == "received"
    assert Lot.objects.filter(product=lancets).values_list("lot_number", "quantity_on_hand").get() == ("L-1", 24)


def test_ops_staff_cannot_receive_stock(north: World, vendor: Vendor, warehouse: Warehouse, lancets: Product) -> None:
    purchase_order = restock(vendor, warehouse, (lancets, 5))
    purchasing.purchase_order_send(purchase_order_id=purchase_order.pk, actor=None)
    line = purchase_order.lines.get()
    response = signed_in(north.ops).post(
        reverse("admin:catalog_purchaseorder_receive", args=(purchase_order.pk,)),
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-line_id": str(line.pk),
            "form-0-lot_number": "L-1",
            "form-0-quantity": "5",
        },
    )
    assert response.status_code == 403
    # (the world's own product has its lot; the lancets have none)
    assert (Lot.objects.filter(product=lancets).count(), PurchaseOrder.objects.get(pk=purchase_order.pk).status) == (
        0,
        "sent",
    )
