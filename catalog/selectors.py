from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db.models import Q, Sum
from django.utils import timezone

from .models import Lot, Product


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
