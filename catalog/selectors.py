from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db.models import Q, Sum
from django.utils import timezone

from .models import (
    OPEN_PURCHASE_ORDER_STATUSES,
    Lot,
    Product,
    PurchaseOrder,
    PurchaseOrderKind,
    PurchaseOrderLine,
)


def products_by_sku(*, skus: Iterable[str]) -> dict[str, Product]:
    """Active products for the given SKUs, keyed by SKU (unknown or inactive SKUs are absent)."""
    return {p.sku: p for p in Product.objects.filter(sku__in=set(skus), active=True)}


def available_quantity(*, product: Product, today: dt.date | None = None) -> int:
    """Unexpired units on hand minus reservations, across active warehouses."""
    today = today or timezone.localdate()
    totals = Lot.objects.filter(
        Q(expiration_date__isnull=True) | Q(expiration_date__gte=today),
        product=product,
        warehouse__active=True,
    ).aggregate(on_hand=Sum("quantity_on_hand"), reserved=Sum("quantity_reserved"))
    return (totals["on_hand"] or 0) - (totals["reserved"] or 0)


def available_quantities(*, product_ids: Iterable[Any], today: dt.date | None = None) -> dict[Any, int]:
    """``available_quantity`` for many products in one query; products without stock map to 0."""
    today = today or timezone.localdate()
    ids = list(product_ids)
    rows = (
        Lot.objects.filter(
            Q(expiration_date__isnull=True) | Q(expiration_date__gte=today),
            product_id__in=ids,
            warehouse__active=True,
        )
        .values("product_id")
        .annotate(on_hand=Sum("quantity_on_hand"), reserved=Sum("quantity_reserved"))
    )
    totals = {row["product_id"]: row["on_hand"] - row["reserved"] for row in rows}
    return {pk: totals.get(pk, 0) for pk in ids}


def on_order_quantities(*, product_ids: Iterable[Any]) -> dict[Any, int]:
    """Units on open restock purchase orders (draft, sent, acknowledged) per product; 0 when none."""
    ids = list(product_ids)
    rows = (
        PurchaseOrderLine.objects.filter(
            product_id__in=ids,
            purchase_order__kind=PurchaseOrderKind.RESTOCK,
            purchase_order__status__in=OPEN_PURCHASE_ORDER_STATUSES,
        )
        .values("product_id")
        .annotate(quantity=Sum("quantity"))
    )
    totals = {row["product_id"]: row["quantity"] for row in rows}
    return {pk: totals.get(pk, 0) for pk in ids}


def expected_restock_date(*, product: Product) -> dt.date | None:
    """The earliest expected date of an open restock purchase order for the product, if any."""
    return (
        PurchaseOrder.objects.filter(
            kind=PurchaseOrderKind.RESTOCK,
            status__in=OPEN_PURCHASE_ORDER_STATUSES,
            lines__product=product,
            expected_date__isnull=False,
        )
        .order_by("expected_date")
        .values_list("expected_date", flat=True)
        .first()
    )
