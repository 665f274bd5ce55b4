"""Vendor reorders, proposed by the ordering agent (seed 000: "updates patient_work_orders plus
vendor_reorders") and approved by a person: they are draft restock purchase orders, never sent
automatically.

Per product and warehouse, what the stock will be once the vendor could deliver:

    projected = on hand - reserved (open reservations) - due + on order

``due``: the units of the patients' work orders eligible within the vendor's lead time (demand of a
HCPCS code is counted against its stocked product with the most on hand, in that product's
warehouse with the most on hand: work orders name codes, not products or warehouses); ``on order``:
open restock purchase orders to that warehouse, the agent's own drafts left out (they are being
replaced). When ``projected`` is at or below the product's reorder point, the proposal is enough to
reach its par level. Proposals are grouped per vendor and warehouse into one draft each: the
agent's earlier draft for the pair is rewritten, and one no longer needed is cancelled.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q, Sum

from .models import (
    OPEN_PURCHASE_ORDER_STATUSES,
    Lot,
    Product,
    PurchaseOrder,
    PurchaseOrderKind,
    PurchaseOrderLine,
    PurchaseOrderStatus,
    Warehouse,
)
from .purchasing import PurchaseLine, purchase_order_cancel, purchase_order_create_restock


@dataclass(frozen=True)
class Demand:
    """Units of a HCPCS code a patient may be sent from ``due_on`` (a work order)."""

    hcpcs: str
    due_on: dt.date
    units: int


@dataclass(frozen=True)
class ReorderLine:
    product: Product
    warehouse: Warehouse
    on_hand: int
    reserved: int
    due: int
    on_order: int
    projected: int
    quantity: int


def _agent_drafts() -> Q:
    """The reorder drafts the agent wrote (restock, draft, by nobody) and may rewrite."""
    return Q(kind=PurchaseOrderKind.RESTOCK, status=PurchaseOrderStatus.DRAFT, created_by__isnull=True)


def reorder_projection(*, today: dt.date, demand: Sequence[Demand]) -> list[ReorderLine]:
    """The products and warehouses whose projected stock is at or below the reorder point, with the
    quantity to order (par level less the projection). Products must be active, stocked in the
    warehouse (a lot there), sold from it and bought from an active vendor."""
    products = {
        p.pk: p
        for p in Product.objects.filter(
            active=True, warehouse_fulfillment=True, vendor__active=True, reorder_point__gt=0
        ).select_related("vendor")
    }
    stock = (
        Lot.objects.filter(Q(expiration_date__isnull=True) | Q(expiration_date__gte=today), product_id__in=products)
        .filter(warehouse__active=True)
        .values("product_id", "warehouse_id")
        .annotate(on_hand=Sum("quantity_on_hand"), reserved=Sum("quantity_reserved"))
    )
    levels = {(row["product_id"], row["warehouse_id"]): (row["on_hand"], row["reserved"]) for row in stock}
    ordered = (
        PurchaseOrderLine.objects.filter(
            product_id__in=products,
            purchase_order__kind=PurchaseOrderKind.RESTOCK,
            purchase_order__status__in=OPEN_PURCHASE_ORDER_STATUSES,
        )
        .exclude(purchase_order__in=PurchaseOrder.objects.filter(_agent_drafts()))
        .values("product_id", "purchase_order__warehouse_id")
        .annotate(quantity=Sum("quantity"))
    )
    on_order = {(row["product_id"], row["purchase_order__warehouse_id"]): row["quantity"] for row in ordered}
    # Where each code's demand lands: its product with the most on hand, in that product's fullest warehouse.
    fullest: dict[Any, tuple[int, Any]] = {}
    for (product_id, warehouse_id), (on_hand, _reserved) in sorted(levels.items(), key=lambda item: str(item[0])):
        if product_id not in fullest or on_hand > fullest[product_id][0]:
            fullest[product_id] = (on_hand, warehouse_id)
    by_code: dict[str, Any] = {}
    for product_id, (on_hand, _warehouse) in sorted(fullest.items(), key=lambda item: str(item[0])):
        code = products[product_id].hcpcs_code
        if code and (code not in by_code or on_hand > fullest[by_code[code]][0]):
            by_code[code] = product_id
    due: dict[Any, int] = defaultdict(int)
    for wanted in demand:
        chosen = by_code.get(wanted.hcpcs)
        if chosen is None:
            continue
        vendor = products[chosen].vendor
        assert vendor is not None
        if wanted.due_on <= today + dt.timedelta(days=vendor.lead_time_days):
            due[chosen] += wanted.units
    warehouses = Warehouse.objects.in_bulk({warehouse_id for _product, warehouse_id in levels})
    lines = []
    for (product_id, warehouse_id), (on_hand, reserved) in sorted(levels.items(), key=lambda item: str(item[0])):
        product = products[product_id]
        wanted_units = due[product_id] if fullest[product_id][1] == warehouse_id else 0
        coming = on_order.get((product_id, warehouse_id), 0)
        projected = on_hand - reserved - wanted_units + coming
        if projected <= product.reorder_point and product.par_level > projected:
            lines.append(
                ReorderLine(
                    product=product,
                    warehouse=warehouses[warehouse_id],
                    on_hand=on_hand,
                    reserved=reserved,
                    due=wanted_units,
                    on_order=coming,
                    projected=projected,
                    quantity=product.par_level - projected,
                )
            )
    return lines


def reorder_drafts_refresh(*, today: dt.date, demand: Sequence[Demand]) -> list[PurchaseOrder]:
    """Write the reorder proposals as one draft per vendor and warehouse (rewriting the agent's own
    earlier drafts, cancelling those no longer needed); returns the drafts, by vendor and warehouse."""
    grouped: dict[tuple[Any, Any], list[ReorderLine]] = defaultdict(list)
    for line in reorder_projection(today=today, demand=demand):
        assert line.product.vendor is not None
        grouped[(line.product.vendor.pk, line.warehouse.pk)].append(line)
    drafts = []
    with transaction.atomic():
        existing = {
            (po.vendor_id, po.warehouse_id): po
            for po in PurchaseOrder.objects.select_for_update().filter(_agent_drafts()).order_by("created_at", "pk")
        }
        for key, lines in sorted(grouped.items(), key=lambda item: (str(item[0][0]), str(item[0][1]))):
            wanted = [PurchaseLine(product=line.product, quantity=line.quantity) for line in lines]
            draft = existing.pop(key, None)
            if draft is None:
                vendor = lines[0].product.vendor
                assert vendor is not None
                draft = purchase_order_create_restock(
                    actor=None, vendor=vendor, warehouse=lines[0].warehouse, lines=wanted
                )
            else:
                draft.lines.all().delete()
                PurchaseOrderLine.objects.bulk_create(
                    PurchaseOrderLine(purchase_order=draft, product=line.product, quantity=line.quantity)
                    for line in wanted
                )
            drafts.append(draft)
        for stale in existing.values():
            purchase_order_cancel(purchase_order_id=stale.pk, actor=None)
    return drafts
