"""The product catalog in the back office (shared by every territory)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Product


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
        "active",
    )
    list_filter = ("therapy_type", "active", "requires_prescription")
    search_fields = ("sku", "name", "hcpcs_code")
    readonly_fields = ("created_at", "updated_at")
    fields = (
        ("sku", "name"),
        ("hcpcs_code", "therapy_type"),
        ("price_cents", "unit"),
        ("requires_prescription", "active"),
        ("created_at", "updated_at"),
    )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Order items keep pointing at their product; retire a product by making it inactive.
        return False
