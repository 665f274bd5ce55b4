"""Invoices in the back office: read-only (services issue and void them), scoped to the user's territories."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from core.admin import ReadOnlyAdmin, ReadOnlyInline
from core.admin_reports import Report, ReportColumn, ReportRow, render_report, wants_csv
from territories.admin_scoping import TerritoryListFilter, TerritoryScopedAdmin, admin_territories

from .models import Invoice, InvoiceLine, Payment
from .selectors import reconciliation_mismatches


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = ("sku", "description", "quantity", "unit_price_cents", "total_cents")
    readonly_fields = fields


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin, TerritoryScopedAdmin):
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


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin, TerritoryScopedAdmin):
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

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "reconciliation/",
                self.admin_site.admin_view(self.reconciliation_view),
                name="payments_payment_reconciliation",
            ),
            *super().get_urls(),
        ]

    def reconciliation_view(self, request: HttpRequest) -> HttpResponse:
        """Orders and payments that disagree (``reconciliation_mismatches``), on the page or as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        territory_ids = (
            None if request.user.is_superuser else list(admin_territories(request).values_list("pk", flat=True))
        )
        report = Report(
            columns=(
                ReportColumn("Mismatch"),
                ReportColumn("Order"),
                ReportColumn("Order status"),
                ReportColumn("Payment status"),
                ReportColumn("Amount (cents)", numeric=True),
                ReportColumn("Detail"),
            ),
            rows=[
                ReportRow(
                    values=(
                        row.kind,
                        row.reference,
                        row.order_status,
                        row.payment_status,
                        row.amount_cents,
                        row.detail,
                    ),
                    url=reverse("admin:orders_order_change", args=(row.order_id,), current_app=self.admin_site.name),
                )
                for row in reconciliation_mismatches(now=now, territory_ids=territory_ids)
            ],
        )
        if wants_csv(request):
            return report.csv_response(f"payment-reconciliation-{timezone.localdate(now).isoformat()}.csv")
        return render_report(
            self,
            request,
            report,
            title="Payment reconciliation",
            intro="Paid orders without a succeeded payment, succeeded payments on cancelled or unpaid orders, "
            "refunds without a cancelled order, and orders still awaiting payment after the link expired.",
        )
