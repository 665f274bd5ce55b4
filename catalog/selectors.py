from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Min, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from core.db_routers import reading_from_replica
from core.exceptions import NotFound

from .models import (
    OPEN_PURCHASE_ORDER_STATUSES,
    Lot,
    Product,
    ProductFavourite,
    PurchaseOrder,
    PurchaseOrderKind,
    PurchaseOrderLine,
    PurchaseOrderStatus,
    TherapyType,
)


def favourite_product_ids(*, user: Any) -> set[Any]:
    """The ids of the user's favourite products."""
    return set(ProductFavourite.objects.filter(user=user).values_list("product_id", flat=True))


def products_by_sku(*, skus: Iterable[str]) -> dict[str, Product]:
    """Active products for the given SKUs, keyed by SKU (unknown or inactive SKUs are absent), with their vendor."""
    return {p.sku: p for p in Product.objects.filter(sku__in=set(skus), active=True).select_related("vendor")}


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


def expected_restock_dates(*, product_ids: Iterable[Any]) -> dict[Any, dt.date]:
    """``expected_restock_date`` for many products in one query; products without one are absent."""
    ids = list(product_ids)
    if not ids:
        return {}
    rows = (
        PurchaseOrderLine.objects.filter(
            product_id__in=ids,
            purchase_order__kind=PurchaseOrderKind.RESTOCK,
            purchase_order__status__in=OPEN_PURCHASE_ORDER_STATUSES,
            purchase_order__expected_date__isnull=False,
        )
        .values("product_id")
        .annotate(expected=Min("purchase_order__expected_date"))
    )
    return {row["product_id"]: row["expected"] for row in rows}


# --- The catalog API's reads ------------------------------------------------------------------

# Users holding this model permission (admins) may also list and read inactive products.
CATALOG_ADMIN_PERMISSION = "catalog.change_product"


@dataclass(frozen=True)
class ProductFilters:
    """What a catalog list asks for; ``None`` means any value."""

    therapy_type: str | None = None
    coverage_tier: str | None = None
    search: str | None = None
    available: bool | None = None
    active: bool = True


@dataclass(frozen=True)
class CoverageTierGroup:
    coverage_tier: str
    products: list[Product]


@dataclass(frozen=True)
class TherapyGroup:
    therapy_type: str
    label: str
    coverage_tiers: list[CoverageTierGroup]


def _products_for_user(user: Any) -> QuerySet[Product]:
    """Products ``user`` may read: every product for catalog admins, active ones for everybody else."""
    products = Product.objects.select_related("vendor")
    return products if user.has_perm(CATALOG_ADMIN_PERMISSION) else products.filter(active=True)


def products_in_stock(*, today: dt.date | None = None) -> QuerySet[Any, Any]:
    """Ids of the products whose ``available_quantity`` is above zero, as one subquery.

    Counts the same lots as ``available_quantities`` (unexpired, in active warehouses).
    """
    today = today or timezone.localdate()
    return (
        Lot.objects.filter(
            Q(expiration_date__isnull=True) | Q(expiration_date__gte=today),
            warehouse__active=True,
        )
        .values("product_id")
        .annotate(available=Sum("quantity_on_hand") - Sum("quantity_reserved"))
        .filter(available__gt=0)
        .values("product_id")
    )


def product_list(*, user: Any, filters: ProductFilters, today: dt.date | None = None) -> QuerySet[Product]:
    """The products ``user`` may read that match ``filters``, ordered by therapy type, name and SKU.

    ``filters.active`` is honoured for catalog admins only; everybody else sees active products
    whatever it says. ``search`` matches part of the SKU, name, HCPCS or RxNorm code, any case.
    """
    products = _products_for_user(user)
    if user.has_perm(CATALOG_ADMIN_PERMISSION):
        products = products.filter(active=filters.active)
    if filters.therapy_type is not None:
        products = products.filter(therapy_type=filters.therapy_type)
    if filters.coverage_tier is not None:
        products = products.filter(coverage_tier=filters.coverage_tier)
    if filters.search:
        products = products.filter(
            Q(sku__icontains=filters.search)
            | Q(name__icontains=filters.search)
            | Q(hcpcs_code__icontains=filters.search)
            | Q(rxnorm_code__icontains=filters.search)
        )
    if filters.available is not None:
        in_stock = products_in_stock(today=today)
        products = products.filter(pk__in=in_stock) if filters.available else products.exclude(pk__in=in_stock)
    return products.order_by("therapy_type", "name", "sku")


def product_get_for_user(*, user: Any, sku: str) -> Product:
    """The product with ``sku`` if ``user`` may read it; raises NotFound otherwise (inactive ones
    are unknown to users who are not catalog admins)."""
    product = _products_for_user(user).filter(sku=sku).first()
    if product is None:
        raise NotFound("No such product in the catalog.")
    return product


def product_groups() -> list[TherapyGroup]:
    """Active products grouped by therapy type, then coverage tier (one query).

    Therapy types follow ``TherapyType``'s order (unknown slugs last), coverage tiers are sorted
    (a blank tier first), products by name and SKU. Empty groups are left out.
    """
    position = {value: index for index, value in enumerate(TherapyType.values)}
    labels = dict(TherapyType.choices)
    products = Product.objects.select_related("vendor").filter(active=True).order_by("coverage_tier", "name", "sku")
    tiers: dict[str, dict[str, list[Product]]] = {}
    for product in products:
        tiers.setdefault(product.therapy_type, {}).setdefault(product.coverage_tier, []).append(product)
    ordered = sorted(tiers, key=lambda therapy_type: (position.get(therapy_type, len(position)), therapy_type))
    return [
        TherapyGroup(
            therapy_type=therapy_type,
            label=labels.get(therapy_type, therapy_type),
            coverage_tiers=[CoverageTierGroup(tier, members) for tier, members in tiers[therapy_type].items()],
        )
        for therapy_type in ordered
    ]


# --- The back office's stock reports ----------------------------------------------------------


@dataclass(frozen=True)
class LowStockRow:
    """One product at or below its reorder point; ``suggested_reorder`` = max(0, par - available - on order)."""

    product_id: Any
    sku: str
    name: str
    vendor: str
    available: int
    reorder_point: int
    par_level: int
    on_order: int
    suggested_reorder: int


def low_stock_report(*, today: dt.date) -> list[LowStockRow]:
    """Active products with a reorder point above zero whose available stock is at or below it, by SKU.

    Available stock is ``available_quantities`` (unexpired, unreserved units in active warehouses)
    on ``today``; on order is the units on open restock purchase orders. The same condition as the
    daily low-stock alert. ``vendor`` is the vendor's name, empty when the product has none. Three queries,
    on the read replica when there is one (a report may lag the primary by the replica's delay).
    """
    with reading_from_replica():
        products = list(
            Product.objects.filter(active=True, reorder_point__gt=0).select_related("vendor").order_by("sku")
        )
        available = available_quantities(product_ids=[product.pk for product in products], today=today)
        low = [product for product in products if available[product.pk] <= product.reorder_point]
        on_order = on_order_quantities(product_ids=[product.pk for product in low])
    return [
        LowStockRow(
            product_id=product.pk,
            sku=product.sku,
            name=product.name,
            vendor=product.vendor.name if product.vendor else "",
            available=available[product.pk],
            reorder_point=product.reorder_point,
            par_level=product.par_level,
            on_order=on_order[product.pk],
            suggested_reorder=max(0, product.par_level - available[product.pk] - on_order[product.pk]),
        )
        for product in low
    ]


@dataclass(frozen=True)
class ExpiringLotRow:
    """One lot with stock on hand that expires soon (``days_left`` >= 0) or has expired (``expired``)."""

    lot_id: Any
    sku: str
    product_name: str
    warehouse: str
    lot_number: str
    expiration_date: dt.date
    days_left: int
    quantity_on_hand: int
    quantity_reserved: int
    quantity_available: int

    @property
    def expired(self) -> bool:
        return self.days_left < 0


def expiring_lots_report(*, today: dt.date, days: int) -> list[ExpiringLotRow]:
    """Lots in active warehouses with units on hand expiring no later than ``today + days``, the
    already expired ones included, soonest first (then SKU, warehouse code, lot number).

    A lot expiring today has ``days_left`` 0 and is still usable; ``warehouse`` is the warehouse's
    code. The same lots as the daily expiring-lot alert with a window of ``days``. One query, on the read
    replica when there is one.
    """
    with reading_from_replica():
        lots = list(
            Lot.objects.filter(
                quantity_on_hand__gt=0,
                expiration_date__lte=today + dt.timedelta(days=days),
                warehouse__active=True,
            )
            .select_related("product", "warehouse")
            .order_by("expiration_date", "product__sku", "warehouse__code", "lot_number")
        )
    return [
        ExpiringLotRow(
            lot_id=lot.pk,
            sku=lot.product.sku,
            product_name=lot.product.name,
            warehouse=lot.warehouse.code,
            lot_number=lot.lot_number,
            expiration_date=lot.expiration_date,
            days_left=(lot.expiration_date - today).days,
            quantity_on_hand=lot.quantity_on_hand,
            quantity_reserved=lot.quantity_reserved,
            quantity_available=lot.quantity_available,
        )
        for lot in lots
        if lot.expiration_date is not None
    ]


def reorder_drafts() -> QuerySet[PurchaseOrder]:
    """The vendor reorders the ordering agent proposed that are still drafts (restock, by nobody),
    newest first, with their vendor, warehouse and lines."""
    return (
        PurchaseOrder.objects.filter(
            kind=PurchaseOrderKind.RESTOCK, status=PurchaseOrderStatus.DRAFT, created_by__isnull=True
        )
        .select_related("vendor", "warehouse")
        .prefetch_related(Prefetch("lines", PurchaseOrderLine.objects.select_related("product").order_by("pk")))
        .order_by("-created_at", "-id")
    )
