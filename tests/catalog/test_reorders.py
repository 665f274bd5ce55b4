"""Vendor reorders (the ordering agent's): stock projected over the vendor's lead time from open
reservations, work orders due and open purchase orders; drafts per vendor and warehouse, rewritten
or cancelled as the projection changes; ``GET /api/v1/purchasing/reorders``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from catalog import services as stock
from catalog.models import Product, PurchaseOrder, Vendor, Warehouse
from catalog.purchasing import PurchaseLine, purchase_order_create_restock, purchase_order_send
from catalog.reorders import Demand, reorder_drafts_refresh, reorder_projection
from orders import services as order_services
from tests.conftest import World
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme() -> Vendor:
    return Vendor.objects.create(code="acme-dme", name="Acme DME", lead_time_days=7)


@pytest.fixture
def main() -> Warehouse:
    return Warehouse.objects.create(code="main", name="Main warehouse")


@pytest.fixture
def masks(acme: Vendor, main: Warehouse) -> Product:
    """Full face masks (A7030): reorder at 10, back up to 40; 20 in the main warehouse."""
    product = ProductFactory.create(
        sku="MASK-FULL", hcpcs_code="A7030", price_cents=9000, vendor=acme, reorder_point=10, par_level=40
    )
    stock.lot_receive(actor=None, product=product, warehouse=main, lot_number="FF-1", quantity=20)
    return product


def reserved_two(world: World, product: Product) -> None:
    """A patient order of two: two units reserved."""
    world.order(items=[order_services.ItemRequest(sku=product.sku, quantity=2)])


def test_stock_projected_at_the_reorder_point_is_reordered_up_to_par(north: World, masks: Product) -> None:
    today = timezone.localdate()
    reserved_two(north, masks)
    demand = [
        Demand("A7030", today + dt.timedelta(days=7), 8),  # within the 7-day lead time
        Demand("A7030", today + dt.timedelta(days=8), 100),  # after it: the next reorder's business
        Demand("A7034", today, 5),  # no product of ours
    ]

    (line,) = reorder_projection(today=today, demand=demand)

    assert (line.product, line.warehouse.code) == (masks, "main")
    assert (line.on_hand, line.reserved, line.due, line.on_order, line.projected, line.quantity) == (
        20,
        2,
        8,
        0,
        10,
        30,
    )


def test_one_unit_above_the_reorder_point_is_not_reordered(north: World, masks: Product) -> None:
    today = timezone.localdate()
    reserved_two(north, masks)

    assert reorder_projection(today=today, demand=[Demand("A7030", today, 7)]) == []


def test_units_already_on_order_count_and_the_agents_own_drafts_do_not(
    north: World, masks: Product, acme: Vendor, main: Warehouse
) -> None:
    today = timezone.localdate()
    demand = [Demand("A7030", today, 13)]  # 20 - 13 + 3 on order = 10: at the reorder point
    ordered = purchase_order_create_restock(
        actor=north.admin, vendor=acme, warehouse=main, lines=[PurchaseLine(product=masks, quantity=3)]
    )
    purchase_order_send(purchase_order_id=ordered.pk, actor=north.admin)
    (first,) = reorder_drafts_refresh(today=today, demand=demand)

    (line,) = reorder_projection(today=today, demand=demand)

    # The agent's own draft (30 units) is not counted as on order: only the sent purchase order is
    assert (line.on_order, line.projected, line.quantity) == (3, 10, 30)
    assert first.created_by is None
    assert [(po_line.product.sku, po_line.quantity) for po_line in first.lines.all()] == [("MASK-FULL", 30)]


def test_drafts_are_one_per_vendor_and_warehouse_rewritten_then_cancelled_when_not_needed(
    masks: Product, acme: Vendor, main: Warehouse
) -> None:
    today = timezone.localdate()
    gels = ProductFactory.create(
        sku="CUSHION-GEL", hcpcs_code="A7031", price_cents=4000, vendor=acme, reorder_point=5, par_level=12
    )
    stock.lot_receive(actor=None, product=gels, warehouse=main, lot_number="CG-1", quantity=4)

    (draft,) = reorder_drafts_refresh(today=today, demand=[Demand("A7030", today, 12)])
    assert (draft.vendor, draft.warehouse, draft.status, draft.kind) == (acme, main, "draft", "restock")
    assert sorted((line.product.sku, line.quantity) for line in draft.lines.all()) == [
        ("CUSHION-GEL", 8),
        ("MASK-FULL", 32),
    ]

    (again,) = reorder_drafts_refresh(today=today, demand=[])
    assert again.pk == draft.pk
    assert sorted((line.product.sku, line.quantity) for line in again.lines.all()) == [("CUSHION-GEL", 8)]

    stock.lot_receive(actor=None, product=gels, warehouse=main, lot_number="CG-2", quantity=10)
    assert reorder_drafts_refresh(today=today, demand=[]) == []
    assert PurchaseOrder.objects.get(pk=draft.pk).status == "cancelled"


def test_the_reorders_api_lists_the_agents_drafts_for_ops_and_not_for_doctors(
    north: World, masks: Product, api: Any
) -> None:
    today = timezone.localdate()
    (draft,) = reorder_drafts_refresh(today=today, demand=[Demand("A7030", today, 12)])

    body = api(north.ops).get("/api/v1/purchasing/reorders").json()
    refused = api(north.doctor).get("/api/v1/purchasing/reorders")

    assert body["results"] == [
        {
            "id": str(draft.pk),
            "number": draft.number,
            "status": "draft",
            "vendor": "acme-dme",
            "warehouse": "main",
            "created_at": body["results"][0]["created_at"],
            "lines": [{"sku": "MASK-FULL", "name": masks.name, "quantity": 32}],
        }
    ]
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "PERMISSION_DENIED"
