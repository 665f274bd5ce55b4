"""Purchase orders in the back office.

Admins draft restock purchase orders here (vendor, warehouse, lines); sending, acknowledging,
receiving into stock and cancelling each run a ``catalog.purchasing`` service. Dropship purchase
orders belong to a patient order's fulfillment task and are worked from that task's page, so
the order's timeline records every step; here they are read-only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import formset_factory
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from core.exceptions import DomainError, ValidationFailed

from .models import PurchaseOrder, PurchaseOrderKind, PurchaseOrderLine, PurchaseOrderStatus
from .purchasing import (
    LotReceipt,
    purchase_order_acknowledge,
    purchase_order_cancel,
    purchase_order_receive,
    purchase_order_send,
)


class PurchaseOrderLineInline(admin.TabularInline):
    """Lines are edited only while a restock is a draft."""

    model = PurchaseOrderLine
    fields = ("product", "quantity")
    autocomplete_fields = ("product",)
    extra = 1

    def _editable(self, obj: Any) -> bool:
        return obj is None or (obj.kind == PurchaseOrderKind.RESTOCK and obj.status == PurchaseOrderStatus.DRAFT)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)


class AcknowledgeForm(forms.Form):
    vendor_reference = forms.CharField(max_length=100)
    expected_date = forms.DateField(required=False, help_text="When the vendor expects to deliver (YYYY-MM-DD).")


class ReceiptForm(forms.Form):
    line_id = forms.UUIDField(widget=forms.HiddenInput)
    lot_number = forms.CharField(max_length=64)
    expiration_date = forms.DateField(required=False, help_text="Required for perishable products.")
    quantity = forms.IntegerField(min_value=1)


ReceiptFormSet = formset_factory(ReceiptForm, extra=0)


@admin.register(PurchaseOrder)
class PurchaseOrderAdmin(admin.ModelAdmin):
    change_form_template = "admin/catalog/purchaseorder/change_form.html"
    list_display = ("number", "kind", "vendor", "status", "warehouse", "expected_date", "created_at", "sent_at")
    list_filter = ("kind", "status", "vendor", "warehouse")
    list_select_related = ("vendor", "warehouse")
    search_fields = ("number", "vendor__name", "vendor_reference", "tracking_number")
    date_hierarchy = "created_at"
    inlines = (PurchaseOrderLineInline,)
    actions = ("send_selected", "cancel_selected")
    readonly_fields = (
        "number",
        "kind",
        "status",
        "order_id",
        "vendor_reference",
        "carrier",
        "tracking_number",
        "created_by",
        "created_at",
        "sent_at",
        "acknowledged_at",
        "shipped_at",
        "closed_at",
    )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        editable = ["vendor", "warehouse", "expected_date"]
        if obj is None:
            return editable
        return ["number", "kind", "status", *editable, *self.readonly_fields[3:]]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is not None and not (obj.kind == PurchaseOrderKind.RESTOCK and obj.status == PurchaseOrderStatus.DRAFT):
            return (*self.readonly_fields, "vendor", "warehouse", "expected_date")
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: PurchaseOrder, form: Any, change: bool) -> None:
        """New purchase orders from the admin are restock drafts by the signed-in user."""
        if not change:
            obj.kind = PurchaseOrderKind.RESTOCK
            obj.created_by_id = request.user.pk
        super().save_model(request, obj, form, change)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if "warehouse" in form.base_fields:
            form.base_fields["warehouse"].required = True
        return form

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # --- actions ---------------------------------------------------------------------------------
    def _each_restock(self, request: HttpRequest, queryset: QuerySet[PurchaseOrder], label: str, run: Any) -> None:
        done = []
        for purchase_order in queryset.order_by("number"):
            if purchase_order.kind != PurchaseOrderKind.RESTOCK:
                self.message_user(
                    request,
                    f"{purchase_order.number}: a dropship is worked from its order's fulfillment task.",
                    messages.ERROR,
                )
                continue
            try:
                run(purchase_order_id=purchase_order.pk, actor=request.user)
            except DomainError as error:
                self.message_user(request, f"{purchase_order.number}: {error.message}", messages.ERROR)
            else:
                done.append(purchase_order.number)
        if done:
            self.message_user(request, f"{label}: {', '.join(done)}.", messages.SUCCESS)

    @admin.action(description="Send selected restock purchase orders to their vendors", permissions=["change"])
    def send_selected(self, request: HttpRequest, queryset: QuerySet[PurchaseOrder]) -> None:
        self._each_restock(request, queryset, "Sent", purchase_order_send)

    @admin.action(description="Cancel selected restock purchase orders", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[PurchaseOrder]) -> None:
        self._each_restock(request, queryset, "Cancelled", purchase_order_cancel)

    # --- acknowledge and receive -----------------------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/acknowledge/",
                self.admin_site.admin_view(self.acknowledge_view),
                name="catalog_purchaseorder_acknowledge",
            ),
            path(
                "<path:object_id>/receive/",
                self.admin_site.admin_view(self.receive_view),
                name="catalog_purchaseorder_receive",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        purchase_order = self.get_object(request, unquote(object_id))
        buttons = []
        if purchase_order is not None and purchase_order.kind == PurchaseOrderKind.RESTOCK:
            if purchase_order.status == PurchaseOrderStatus.SENT:
                buttons.append(("Record vendor acknowledgement", "admin:catalog_purchaseorder_acknowledge"))
            if purchase_order.status in (PurchaseOrderStatus.SENT, PurchaseOrderStatus.ACKNOWLEDGED):
                buttons.append(("Receive into stock", "admin:catalog_purchaseorder_receive"))
        context = {
            **(extra_context or {}),
            "purchase_order_actions": [
                {"label": label, "url": reverse(name, args=(object_id,))} for label, name in buttons
            ],
        }
        return super().change_view(request, object_id, form_url, context)

    def _restock_or_404(self, request: HttpRequest, object_id: str, permission: str) -> PurchaseOrder:
        purchase_order = self.get_object(request, unquote(object_id))
        if purchase_order is None or purchase_order.kind != PurchaseOrderKind.RESTOCK:
            raise Http404
        if not request.user.has_perm(permission):
            raise PermissionDenied
        return purchase_order

    def _render(self, request: HttpRequest, purchase_order: PurchaseOrder, title: str, **context: Any) -> HttpResponse:
        return TemplateResponse(
            request,
            "admin/catalog/purchaseorder/step.html",
            {
                **self.admin_site.each_context(request),
                "title": f"{title}: {purchase_order.number}",
                "opts": self.opts,
                "purchase_order": purchase_order,
                "back_url": reverse("admin:catalog_purchaseorder_change", args=(purchase_order.pk,)),
                "submit_label": title,
                **context,
            },
        )

    def acknowledge_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        purchase_order = self._restock_or_404(request, object_id, "catalog.change_purchaseorder")
        form = AcknowledgeForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                purchase_order_acknowledge(purchase_order_id=purchase_order.pk, actor=request.user, **form.cleaned_data)
            except DomainError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(request, f"{purchase_order.number} acknowledged.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:catalog_purchaseorder_change", args=(purchase_order.pk,)))
        return self._render(request, purchase_order, "Record vendor acknowledgement", form=form)

    def receive_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """One lot per line (number, expiry, quantity); all lines are received together or none."""
        purchase_order = self._restock_or_404(request, object_id, "catalog.add_lot")
        lines = list(purchase_order.lines.select_related("product"))
        initial = [{"line_id": line.pk, "quantity": line.quantity} for line in lines]
        formset = ReceiptFormSet(request.POST if request.method == "POST" else None, initial=initial)
        problems: list[str] = []
        if formset.is_bound and formset.is_valid():
            receipts = [LotReceipt(**form.cleaned_data) for form in formset.forms]
            try:
                purchase_order_receive(purchase_order_id=purchase_order.pk, actor=request.user, receipts=receipts)
            except ValidationFailed as error:
                problems = [f"{field}: {'; '.join(map(str, found))}" for field, found in (error.details or {}).items()]
            except DomainError as error:
                problems = [error.message]
            else:
                self.message_user(request, f"{purchase_order.number} received into stock.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:catalog_purchaseorder_change", args=(purchase_order.pk,)))
        rows = list(zip(lines, formset.forms, strict=True))
        return self._render(
            request, purchase_order, "Receive into stock", formset=formset, rows=rows, problems=problems
        )
