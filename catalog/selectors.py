from __future__ import annotations

from collections.abc import Iterable

from .models import Product


def products_by_sku(*, skus: Iterable[str]) -> dict[str, Product]:
    """Active products for the given SKUs, keyed by SKU (unknown or inactive SKUs are absent)."""
    return {p.sku: p for p in Product.objects.filter(sku__in=set(skus), active=True)}
