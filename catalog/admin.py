"""The product catalog and its stock in the back office (shared by every territory).

Products are edited here and imported or exported as CSV. Stock is never edited directly: lot
pages are read-only and explained by their ledger, and counters change only through the stock
services behind "Receive stock", "Adjust stock" and the receipts import. Two reports (low stock,
expiring lots) read their rows from ``catalog.selectors`` and download as CSV.

Pages under ``/admin/catalog/``:

- ``product/import/``, ``product/export/``: the product CSV (``catalog.resources.ProductResource``);
  importing needs ``catalog.add_product`` and ``catalog.change_product``.
- ``product/low-stock/`` (``?format=csv``): products at or below their reorder point.
- ``lot/receive/``: receive stock into a lot (``catalog.add_lot``).
- ``lot/<id>/adjust/``: correct a lot's on-hand count with a reason (``catalog.change_lot``).
- ``lot/import/``: a CSV of receipts (``catalog.add_lot``); ``lot/export/``: every lot's counters.
- ``lot/expiring/`` (``?days=N``, ``?format=csv``): lots expiring within N days, and expired ones.

Every import is all or nothing: its preview lists each bad row by file line (the header is line 1)
and offers the confirmation only when there is none.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from import_export.admin import ImportExportMixin
from import_export.formats.base_formats import CSV

from core.admin import ReadOnlyAdmin, ReadOnlyInline
from core.admin_reports import Report, ReportColumn, ReportRow, render_report, wants_csv
from core.db_routers import reading_from_replica
from core.exceptions import PermissionDenied as DomainPermissionDenied
from core.exceptions import ValidationFailed
from core.templatetags.money import money

from .forms import AdjustStockForm, ExpiringLotsForm, ReceiveStockForm, add_service_errors
from .models import Lot, Product, StockAlert, StockMovement, Vendor, Warehouse
from .resources import LotStockResource, ProductResource, StockReceiptResource
from .selectors import expiring_lots_report, low_stock_report
from .services import (
    lot_adjust,
    lot_write_off_expired,
    product_create,
    product_data_of,
    product_rule_errors,
    product_update,
    stock_receive,
)

STOCK_FORM_TEMPLATE = "admin/catalog/lot/stock_form.html"


def expiry_window_default() -> int:
    """The expiring-lots report's default window: the daily alert's, else 30 days."""
    return int(getattr(settings, "STOCK_ALERT_EXPIRY_WINDOW_DAYS", 30))


# --- CSV import and export ------------------------------------------------------------------------


class CsvImportExportMixin(ImportExportMixin):
    """django-import-export for CSV files only, all or nothing.

    The preview (a dry run in a rolled-back transaction) lists every bad row by file line and
    offers the confirmation only when there is none. The confirmed import runs in one transaction
    rolled back on any row error, validation errors included: if the data changed after the
    preview so that a row now fails, nothing is imported and the admin is told so.
    Exports download at once (no form), as ``<export_file_stem>-<date>.csv``.
    """

    import_formats = [CSV]
    export_formats = [CSV]
    skip_export_form = True
    import_template_name = "admin/catalog/import.html"
    export_file_stem = "export"

    def get_import_data_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        import_kwargs: dict[str, Any] = super().get_import_data_kwargs(**kwargs)
        import_kwargs["rollback_on_validation_errors"] = True
        return import_kwargs

    def process_result(self, result: Any, request: HttpRequest) -> HttpResponse:
        if result.has_errors() or result.has_validation_errors():
            failed = len(result.invalid_rows) + len(result.error_rows) + len(result.base_errors)
            messages.error(
                request,
                f"Nothing was imported: {failed} problem(s) appeared when the import was confirmed "
                "(the data changed after the preview). Upload the file again to see them.",
            )
            app_label, model_name = self.get_model_info()
            return HttpResponseRedirect(reverse(f"admin:{app_label}_{model_name}_import"))
        response: HttpResponse = super().process_result(result, request)
        return response

    def get_data_for_export(self, request: HttpRequest, queryset: Any, **kwargs: Any) -> Any:
        """The exported rows, read from the read replica when there is one (an export may lag the primary).
        The permission to export was checked before, on the primary."""
        with reading_from_replica():
            return super().get_data_for_export(request, queryset, **kwargs)

    def get_export_filename(self, request: HttpRequest, queryset: Any, file_format: Any) -> str:
        return f"{self.export_file_stem}-{timezone.localdate().isoformat()}.{file_format.get_extension()}"


# --- Products, vendors, warehouses ----------------------------------------------------------------


class ProductAdminForm(forms.ModelForm):
    """The product form: the model's validators, then the catalog rules of ``product_rule_errors``.

    Staff type the price in dollars ("650.00"); it is stored as whole cents (``price_cents``).
    """

    price = forms.DecimalField(
        label="Price (USD)",
        min_value=Decimal("0"),
        max_digits=10,
        decimal_places=2,
        help_text="Unit price in dollars and cents, e.g. 650.00.",
        widget=forms.NumberInput(attrs={"step": "0.01"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and self.instance.price_cents is not None:
            self.initial.setdefault("price", (Decimal(self.instance.price_cents) / 100).quantize(Decimal("0.01")))

    class Meta:
        model = Product
        fields = [
            "sku",
            "name",
            "hcpcs_code",
            "therapy_type",
            "coverage_tier",
            "billing_modifier",
            "rxnorm_code",
            "rxnorm_name",
            "strength",
            "dose_form",
            "unit",
            "dispensing_unit",
            "dispensing_units_per_unit",
            "requires_prescription",
            "is_perishable",
            "requires_training",
            "recurring",
            "days_of_supply",
            "active",
            "par_level",
            "reorder_point",
            "warehouse_fulfillment",
            "dropship_fulfillment",
            "vendor",
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("price") is not None:
            cleaned["price_cents"] = int(cleaned["price"] * 100)
            self.instance.price_cents = cleaned["price_cents"]
        if self.errors:  # the rules compare fields: check them once each field is valid on its own
            return cleaned
        candidate = Product(
            **{name: value for name, value in cleaned.items() if name in {f.name for f in Product._meta.fields}}
        )
        for field, problems in product_rule_errors(product_data_of(candidate)).items():
            # "No fulfillment mode" belongs beside the first mode's checkbox.
            self.add_error("warehouse_fulfillment" if field == "fulfillment_modes" else field, problems)
        return cleaned


@admin.register(Product)
class ProductAdmin(CsvImportExportMixin, admin.ModelAdmin):
    resource_classes = [ProductResource]
    import_export_change_list_template = "admin/catalog/product/change_list.html"
    export_file_stem = "products"

    list_display = (
        "sku",
        "name",
        "hcpcs_code",
        "therapy_type",
        "price",
        "unit",
        "requires_prescription",
        "is_perishable",
        "requires_training",
        "active",
    )
    list_filter = (
        "therapy_type",
        "active",
        "requires_prescription",
        "is_perishable",
        "requires_training",
        "recurring",
        "vendor",
    )
    search_fields = ("sku", "name", "hcpcs_code", "rxnorm_code")
    readonly_fields = ("created_at", "updated_at")
    fields = (
        ("sku", "name"),
        ("hcpcs_code", "therapy_type", "coverage_tier", "billing_modifier"),
        ("rxnorm_code", "rxnorm_name"),
        ("strength", "dose_form"),
        ("price", "unit"),
        ("dispensing_unit", "dispensing_units_per_unit"),
        ("requires_prescription", "is_perishable", "requires_training", "active"),
        ("recurring", "days_of_supply"),
        ("par_level", "reorder_point"),
        ("warehouse_fulfillment", "dropship_fulfillment", "vendor"),
        ("created_at", "updated_at"),
    )

    form = ProductAdminForm

    @admin.display(description="price", ordering="price_cents")
    def price(self, product: Product) -> str:
        return money(product.price_cents)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A SKU never changes (order lines keep it); retire the product and add a new one instead.
        return (*self.readonly_fields, "sku") if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        """Write through ``product_create`` / ``product_update``; the form already showed their rules."""
        data = product_data_of(obj)
        if change:
            saved = product_update(actor=request.user, product=obj, data=data)
        else:
            saved = product_create(actor=request.user, data=data)
        obj.pk, obj._state.adding = saved.pk, False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Order items keep pointing at their product; retire a product by making it inactive.
        return False

    def has_import_permission(self, request: HttpRequest) -> bool:
        # An import both adds and changes products.
        return request.user.has_perms(["catalog.add_product", "catalog.change_product"])

    def get_urls(self) -> list[URLPattern]:
        return [
            path("low-stock/", self.admin_site.admin_view(self.low_stock_view), name="catalog_product_low_stock"),
            *super().get_urls(),
        ]

    def low_stock_view(self, request: HttpRequest) -> HttpResponse:
        """Products at or below their reorder point with the suggested reorder (``low_stock_report``)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        report = Report(
            columns=(
                ReportColumn("SKU"),
                ReportColumn("Product"),
                ReportColumn("Vendor"),
                ReportColumn("Available", numeric=True),
                ReportColumn("Reorder point", numeric=True),
                ReportColumn("Par level", numeric=True),
                ReportColumn("On order", numeric=True),
                ReportColumn("Suggested reorder", numeric=True),
            ),
            rows=[
                ReportRow(
                    values=(
                        row.sku,
                        row.name,
                        row.vendor,
                        row.available,
                        row.reorder_point,
                        row.par_level,
                        row.on_order,
                        row.suggested_reorder,
                    ),
                    url=reverse(
                        "admin:catalog_product_change", args=(row.product_id,), current_app=self.admin_site.name
                    ),
                )
                for row in low_stock_report(today=today)
            ],
        )
        if wants_csv(request):
            return report.csv_response(f"low-stock-{today.isoformat()}.csv")
        return render_report(
            self,
            request,
            report,
            title="Low stock",
            intro=(
                "Active products whose available stock (unexpired, unreserved, in active warehouses) is at or "
                "below their reorder point. Suggested reorder: the par level minus the available stock minus "
                "the units on open restock orders."
            ),
        )


@admin.register(Vendor)
class VendorAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "email", "phone", "lead_time_days", "active")
    list_filter = ("active",)
    search_fields = ("code", "name")


@admin.register(Warehouse)
class WarehouseAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "active")
    list_filter = ("active",)
    search_fields = ("code", "name")


# --- Lots and the stock ledger --------------------------------------------------------------------


EXPIRING_COLUMNS = (
    ReportColumn("Expires"),
    ReportColumn("Status"),
    ReportColumn("Days left", numeric=True),
    ReportColumn("SKU"),
    ReportColumn("Product"),
    ReportColumn("Warehouse"),
    ReportColumn("Lot"),
    ReportColumn("On hand", numeric=True),
    ReportColumn("Reserved", numeric=True),
    ReportColumn("Available", numeric=True),
)


class StockMovementInline(ReadOnlyInline):
    """The lot's ledger: every change to its counters, oldest first."""

    model = StockMovement
    fields = ("created_at", "kind", "on_hand_delta", "reserved_delta", "reason", "order_id", "actor")
    readonly_fields = fields
    ordering = ("created_at",)


@admin.register(Lot)
class LotAdmin(CsvImportExportMixin, ReadOnlyAdmin):
    """Lots and their counters, explained by the ledger; receipts and adjustments go through the stock services.

    The import is a file of receipts (``StockReceiptResource``), the export every lot's counters
    (``LotStockResource``). No admin log entries are written for imports: each receipt is a ledger
    row with its actor.
    """

    import_export_change_list_template = "admin/catalog/lot/change_list.html"
    export_file_stem = "stock"
    skip_admin_log = True

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
    actions = ("write_off_expired",)

    @admin.action(description="Write off the unreserved stock of selected expired lots", permissions=["change"])
    def write_off_expired(self, request: HttpRequest, queryset: QuerySet[Lot]) -> None:
        """Each lot through ``lot_write_off_expired``; a lot that has not expired is refused by name."""
        for lot in queryset.select_related("product").order_by("pk"):
            try:
                units = lot_write_off_expired(actor=request.user, lot_id=lot.pk)
            except ValidationFailed:
                self.message_user(request, f"{lot}: not expired, nothing written off.", messages.ERROR)
            else:
                self.message_user(request, f"{lot}: {units} units written off.", messages.SUCCESS)

    # --- permissions: receiving is "add lot", adjusting is "change lot" ---------------------------
    def may_receive(self, request: HttpRequest) -> bool:
        return request.user.has_perm("catalog.add_lot")

    def may_adjust(self, request: HttpRequest) -> bool:
        return request.user.has_perm("catalog.change_lot")

    def has_import_permission(self, request: HttpRequest) -> bool:
        return self.may_receive(request)

    def get_import_resource_classes(self, request: HttpRequest) -> list[type[StockReceiptResource]]:
        return [StockReceiptResource]

    def get_export_resource_classes(self, request: HttpRequest) -> list[type[LotStockResource]]:
        return [LotStockResource]

    def add_success_message(self, result: Any, request: HttpRequest) -> None:
        receipts = [row.instance for row in result.valid_rows()]
        units = sum(receipt.quantity for receipt in receipts)
        lots = len({receipt.lot.pk for receipt in receipts})
        messages.success(request, f"Stock received: {len(receipts)} receipt(s), {units} units into {lots} lot(s).")

    def get_urls(self) -> list[URLPattern]:
        admin_view = self.admin_site.admin_view
        return [
            path("receive/", admin_view(self.receive_view), name="catalog_lot_receive"),
            path("expiring/", admin_view(self.expiring_lots_view), name="catalog_lot_expiring"),
            path("<path:object_id>/adjust/", admin_view(self.adjust_view), name="catalog_lot_adjust"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        lot = self.get_object(request, unquote(object_id))
        tools: dict[str, Any] = {}
        if lot is not None:
            if self.may_adjust(request):
                tools["adjust_url"] = reverse(
                    "admin:catalog_lot_adjust", args=(lot.pk,), current_app=self.admin_site.name
                )
            if self.may_receive(request):
                tools["receive_url"] = self._receive_url(lot)
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **tools})

    def _receive_url(self, lot: Lot) -> str:
        """The receive page filled in for another receipt into ``lot``."""
        initial = {"product": lot.product_id, "warehouse": lot.warehouse_id, "lot_number": lot.lot_number}
        if lot.expiration_date:
            initial["expiration_date"] = lot.expiration_date.isoformat()
        return f"{reverse('admin:catalog_lot_receive', current_app=self.admin_site.name)}?{urlencode(initial)}"

    def _lot_url(self, lot: Lot) -> str:
        return reverse("admin:catalog_lot_change", args=(lot.pk,), current_app=self.admin_site.name)

    # --- receive and adjust -----------------------------------------------------------------------
    def receive_view(self, request: HttpRequest) -> HttpResponse:
        """Receive units into a lot through ``stock_receive``; its refusals are shown on the form."""
        if not self.may_receive(request):
            raise PermissionDenied
        fields = ("product", "warehouse", "lot_number", "expiration_date")
        form = ReceiveStockForm(
            request.POST if request.method == "POST" else None,
            initial={name: request.GET[name] for name in fields if name in request.GET},
        )
        if form.is_bound and form.is_valid():
            try:
                lot = stock_receive(actor=request.user, **form.cleaned_data)
            except ValidationFailed as error:
                add_service_errors(form, error.details, error.message)
            except DomainPermissionDenied:
                raise PermissionDenied from None
            else:
                self.message_user(
                    request,
                    f"Received {form.cleaned_data['quantity']} units of {lot.product.sku} into lot "
                    f"{lot.lot_number} at {lot.warehouse}; {lot.quantity_on_hand} on hand now.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self._lot_url(lot))
        return self._render_stock_form(
            request, form=form, title="Receive stock", submit="Receive", lot=None, back_url=self._changelist_url()
        )

    def adjust_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Correct a lot's on-hand count through ``lot_adjust``; its refusals are shown on the form."""
        lot = self.get_object(request, unquote(object_id))
        if lot is None:
            raise Http404
        if not self.may_adjust(request):
            raise PermissionDenied
        form = AdjustStockForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                lot = lot_adjust(
                    actor=request.user,
                    lot_id=lot.pk,
                    delta=form.cleaned_data["delta"],
                    reason=form.cleaned_data["reason"],
                )
            except ValidationFailed as error:
                add_service_errors(form, error.details, error.message)
            else:
                self.message_user(
                    request,
                    f"Adjusted lot {lot.lot_number} by {form.cleaned_data['delta']:+d}; "
                    f"{lot.quantity_on_hand} on hand now.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self._lot_url(lot))
        return self._render_stock_form(
            request, form=form, title=f"Adjust stock: {lot}", submit="Adjust", lot=lot, back_url=self._lot_url(lot)
        )

    def _changelist_url(self) -> str:
        return reverse("admin:catalog_lot_changelist", current_app=self.admin_site.name)

    def _render_stock_form(
        self, request: HttpRequest, *, form: Any, title: str, submit: str, lot: Lot | None, back_url: str
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "form": form,
            "submit_label": submit,
            "lot": lot,
            "back_url": back_url,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, STOCK_FORM_TEMPLATE, context)

    # --- the expiring-lots report -----------------------------------------------------------------
    def expiring_lots_view(self, request: HttpRequest) -> HttpResponse:
        """Lots with stock expiring within ``?days=`` (default ``expiry_window_default()``) and expired ones."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        form = ExpiringLotsForm({"days": request.GET.get("days", expiry_window_default())})
        if not form.is_valid():
            empty = Report(columns=EXPIRING_COLUMNS, rows=[])
            response = self._render_expiring(request, empty, form=form)
            response.status_code = 400
            return response
        days: int = form.cleaned_data["days"]
        report = Report(
            columns=EXPIRING_COLUMNS,
            rows=[
                ReportRow(
                    values=(
                        row.expiration_date,
                        "Expired" if row.expired else "Expiring",
                        row.days_left,
                        row.sku,
                        row.product_name,
                        row.warehouse,
                        row.lot_number,
                        row.quantity_on_hand,
                        row.quantity_reserved,
                        row.quantity_available,
                    ),
                    url=reverse("admin:catalog_lot_change", args=(row.lot_id,), current_app=self.admin_site.name),
                    css_class="expired" if row.expired else "",
                )
                for row in expiring_lots_report(today=today, days=days)
            ],
        )
        if wants_csv(request):
            return report.csv_response(f"expiring-lots-{today.isoformat()}.csv")
        return self._render_expiring(request, report, form=form)

    def _render_expiring(self, request: HttpRequest, report: Report, *, form: ExpiringLotsForm) -> TemplateResponse:
        return render_report(
            self,
            request,
            report,
            title="Expiring lots",
            intro=(
                "Lots with units on hand in active warehouses that expire within the window, and lots that have "
                "already expired (negative days left), soonest first."
            ),
            filter_form=form,
        )


# --- Stock alerts ---------------------------------------------------------------------------------


class ResolvedListFilter(admin.SimpleListFilter):
    title = "resolved"
    parameter_name = "resolved"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Sequence[tuple[str, str]]:
        return (("no", "Open"), ("yes", "Resolved"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[StockAlert]) -> QuerySet[StockAlert]:
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(StockAlert)
class StockAlertAdmin(ReadOnlyAdmin):
    """Alerts raised by the daily stock check (``catalog.alerts``); only the check raises and resolves them."""

    list_display = (
        "kind",
        "product",
        "lot",
        "available_quantity",
        "on_order_quantity",
        "suggested_reorder_quantity",
        "expiration_date",
        "raised_at",
        "notified_at",
        "resolved_at",
    )
    list_filter = ("kind", ResolvedListFilter)
    list_select_related = ("product", "lot", "lot__product")
    search_fields = ("product__sku", "product__name", "lot__lot_number")
    date_hierarchy = "raised_at"


# Purchase orders register themselves with the admin site.
from . import admin_purchasing  # noqa: E402, F401
