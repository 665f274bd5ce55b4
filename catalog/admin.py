"""The product catalog in the back office (shared by every territory)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.admin import ReadOnlyAdmin, ReadOnlyInline

from .models import Lot, Product, StockMovement, Vendor, Warehouse


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = (
        "sku",
        "name",
        "hcpcs_code",
        "therapy_type",
        "price_cents",
        "unit",
        "requires_prescription",
        "is_perishable",
        "active",
    )
    list_filter = ("therapy_type", "active", "requires_prescription", "is_perishable", "vendor")
    search_fields = ("sku", "name", "hcpcs_code", "rxnorm_code")
    readonly_fields = ("created_at", "updated_at")
    fields = (
        ("sku", "name"),
        ("hcpcs_code", "therapy_type", "coverage_tier"),
        ("rxnorm_code", "strength", "dose_form"),
        ("price_cents", "unit"),
        ("requires_prescription", "is_perishable", "active"),
        ("par_level", "reorder_point"),
        ("warehouse_fulfillment", "dropship_fulfillment", "vendor"),
        ("created_at", "updated_at"),
    )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Order items keep pointing at their product; retire a product by making it inactive.
        return False


@admin.register(Vendor)
class VendorAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "email", "phone", "active")
    list_filter = ("active",)
    search_fields = ("code", "name")


@admin.register(Warehouse)
class WarehouseAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "active")
    list_filter = ("active",)
    search_fields = ("code", "name")


class StockMovementInline(ReadOnlyInline):
    """The lot's ledger: every change to its counters, oldest first."""

    model = StockMovement
    fields = ("created_at", "kind", "on_hand_delta", "reserved_delta", "reason", "order_id", "actor")
    readonly_fields = fields
    ordering = ("created_at",)


@admin.register(Lot)
class LotAdmin(ReadOnlyAdmin):
    """Lots and their counters, explained by the ledger; receipts and adjustments go through the stock services."""

    list_display = (
        "product",
        "lot_number",
        "warehouse",
        "expiration_date",
        "quantity_on_hand",
        "quantity_reserved",
        "quantity_available",
    )
    list_filter = ("warehouse", "product__therapy_type")
    list_select_related = ("product", "warehouse")
    search_fields = ("lot_number", "product__sku", "product__name")
    date_hierarchy = "expiration_date"
    readonly_fields = (
        "product",
        "warehouse",
        "lot_number",
        "expiration_date",
        "quantity_on_hand",
        "quantity_reserved",
        "received_at",
    )
    inlines = (StockMovementInline,)
