"""Invoices in the back office: read-only (services issue and void them), scoped to the user's territories."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.admin import ReadOnlyInline
from territories.admin_scoping import TerritoryListFilter, TerritoryScopedAdmin

from .models import Invoice, InvoiceLine, Payment


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = ("sku", "description", "quantity", "unit_price_cents", "total_cents")
    readonly_fields = fields


@admin.register(Invoice)
class InvoiceAdmin(TerritoryScopedAdmin):
    list_display = ("number", "order", "status", "total_cents", "currency", "issued_at", "paid_at", "voided_at")
    list_filter = ("status", ("territory", TerritoryListFilter))
    list_select_related = ("order",)
    search_fields = ("number", "order__reference")
    fields = (
        ("number", "status"),
        "order",
        "territory",
        ("subtotal_cents", "total_cents", "currency"),
        ("issued_at", "paid_at", "voided_at"),
    )
    readonly_fields = (
        "number",
        "status",
        "order",
        "territory",
        "subtotal_cents",
        "total_cents",
        "currency",
        "issued_at",
        "paid_at",
        "voided_at",
    )
    inlines = (InvoiceLineInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(TerritoryScopedAdmin):
    """Payments mirror the provider's state; money fields are never edited here."""

    list_display = ("order", "attempt", "provider", "status", "amount_cents", "currency", "created_at", "succeeded_at")
    list_filter = ("status", "provider", ("territory", TerritoryListFilter))
    list_select_related = ("order",)
    search_fields = ("order__reference", "=payment_intent_id", "=checkout_session_id")
    fields = (
        ("order", "attempt", "provider"),
        ("payment_intent_id", "checkout_session_id"),
        ("amount_cents", "currency", "status", "last_error_code"),
        ("created_at", "succeeded_at", "refunded_at"),
    )
    readonly_fields = (
        "order",
        "attempt",
        "provider",
        "payment_intent_id",
        "checkout_session_id",
        "amount_cents",
        "currency",
        "status",
        "last_error_code",
        "created_at",
        "succeeded_at",
        "refunded_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
