"""Invoices, payments, links and refunds in the back office, scoped to the user's territories.

Money fields are read-only: services write every record. Staff act through buttons on a record's
page — refund a payment, re-issue or revoke a link — each asking for what the service needs (a
reason) and each checked against the user's territory permissions by the service itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from core.admin import ReadOnlyAdmin, ReadOnlyInline
from core.admin_reports import Report, ReportColumn, ReportRow, render_report, wants_csv
from core.exceptions import DomainError
from core.templatetags.money import money
from territories.admin_scoping import TerritoryListFilter, TerritoryScopedAdmin, admin_territories
from territories.models import TerritoryPermission
from territories.selectors import territory_permits

from .links import payment_link_issue, payment_link_revoke, payment_link_url
from .models import Invoice, InvoiceLine, Payment, PaymentLink, PaymentStatus, Refund
from .selectors import reconciliation_mismatches
from .services import payment_refund

CONFIRM_TEMPLATE = "admin/payments/confirm.html"


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Kept in the audit trail; never sent to the payment provider.",
    )


def _confirm(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    obj: Any,
    title: str,
    action: str,
    form: forms.Form | None,
    back_url: str,
) -> TemplateResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "object": obj,
        "form": form,
        "action_label": action,
        "back_url": back_url,
    }
    return TemplateResponse(request, CONFIRM_TEMPLATE, context)


def _money_column(field: str, description: str, currency_of: Callable[[Any], str] = lambda obj: obj.currency) -> Any:
    """An admin column and read-only field showing the integer cents in ``field`` as money ("$650.00")."""

    @admin.display(description=description, ordering=field)
    def show(model_admin: Any, obj: Any) -> str:
        return money(getattr(obj, field), currency_of(obj))

    return show


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = ("sku", "description", "quantity", "unit_price", "line_total")
    readonly_fields = fields
    unit_price = _money_column("unit_price_cents", "Unit price", lambda line: line.invoice.currency)
    line_total = _money_column("total_cents", "Total", lambda line: line.invoice.currency)


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin, TerritoryScopedAdmin):
    list_display = ("number", "order", "status", "total", "issued_at", "paid_at", "voided_at")
    list_filter = ("status", ("territory", TerritoryListFilter))
    list_select_related = ("order",)
    search_fields = ("number", "order__reference")
    fields = (
        ("number", "status"),
        "order",
        "territory",
        ("subtotal", "total"),
        ("issued_at", "paid_at", "voided_at"),
    )
    readonly_fields = (
        "number",
        "status",
        "order",
        "territory",
        "subtotal",
        "total",
        "issued_at",
        "paid_at",
        "voided_at",
    )
    inlines = (InvoiceLineInline,)
    subtotal = _money_column("subtotal_cents", "Subtotal")
    total = _money_column("total_cents", "Total")


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin, TerritoryScopedAdmin):
    """Payments mirror the provider's state; money fields are never edited here."""

    list_display = ("order", "attempt", "provider", "status", "amount", "created_at", "succeeded_at")
    list_filter = ("status", "provider", ("territory", TerritoryListFilter))
    list_select_related = ("order",)
    search_fields = ("order__reference", "=payment_intent_id", "=checkout_session_id")
    fields = (
        ("order", "attempt", "provider"),
        ("payment_intent_id", "checkout_session_id", "link"),
        ("amount", "status", "last_error_code"),
        ("created_at", "succeeded_at", "refunded_at"),
    )
    readonly_fields = (
        "order",
        "attempt",
        "provider",
        "payment_intent_id",
        "checkout_session_id",
        "link",
        "amount",
        "status",
        "last_error_code",
        "created_at",
        "succeeded_at",
        "refunded_at",
    )
    change_form_template = "admin/payments/payment/change_form.html"
    amount = _money_column("amount_cents", "Amount")

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "reconciliation/",
                self.admin_site.admin_view(self.reconciliation_view),
                name="payments_payment_reconciliation",
            ),
            path(
                "<path:object_id>/refund/", self.admin_site.admin_view(self.refund_view), name="payments_payment_refund"
            ),
            *super().get_urls(),
        ]

    def can_refund(self, request: HttpRequest, payment: Payment) -> bool:
        return payment.status == PaymentStatus.SUCCEEDED and territory_permits(
            user=request.user, permission=TerritoryPermission.REFUND_PAYMENT, territory_id=payment.territory_id
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        payment = self.get_object(request, unquote(object_id))
        extra = {"can_refund": payment is not None and self.can_refund(request, payment)}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Refund one succeeded payment in full, with a reason (``payment_refund`` checks the permission)."""
        payment = self.get_object(request, unquote(object_id))
        if payment is None:
            raise Http404
        change_url = reverse("admin:payments_payment_change", args=(payment.pk,), current_app=self.admin_site.name)
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                refund = payment_refund(payment_id=payment.pk, actor=request.user, reason=form.cleaned_data["reason"])
            except DomainError as error:
                self.message_user(request, f"Order {payment.order.reference}: {error.message}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Order {payment.order.reference}: refund {refund.get_status_display().lower()}.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(change_url)
        return _confirm(
            self,
            request,
            obj=payment,
            title=f"Refund the payment for order {payment.order.reference}",
            action="Refund in full",
            form=form,
            back_url=change_url,
        )

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


@admin.register(PaymentLink)
class PaymentLinkAdmin(ReadOnlyAdmin, TerritoryScopedAdmin):
    """Payment links: the address to read out to a patient, and buttons to re-issue or revoke."""

    list_display = ("order", "created_at", "expires_at", "revoked_at", "notified_at")
    list_filter = (("territory", TerritoryListFilter),)
    list_select_related = ("order",)
    search_fields = ("order__reference",)
    readonly_fields = (
        "order",
        "address",
        "created_at",
        "created_by",
        "expires_at",
        "revoked_at",
        "revoked_by",
        "revoke_reason",
        "notified_at",
    )
    change_form_template = "admin/payments/paymentlink/change_form.html"

    @admin.display(description="Address")
    def address(self, obj: PaymentLink) -> str:
        if not obj.is_usable(timezone.now()):
            return "No longer usable."
        url = payment_link_url(obj)
        return format_html('<a href="{}" rel="noreferrer" target="_blank">{}</a>', url, url)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (
            "order",
            "address",
            ("created_at", "created_by"),
            "expires_at",
            ("revoked_at", "revoked_by", "revoke_reason"),
            "notified_at",
        )

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/reissue/", view(self.reissue_view), name="payments_paymentlink_reissue"),
            path("<path:object_id>/revoke/", view(self.revoke_view), name="payments_paymentlink_revoke"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        link = self.get_object(request, unquote(object_id))
        extra = {}
        if link is not None:
            extra = {
                "can_reissue": territory_permits(
                    user=request.user, permission=TerritoryPermission.SEND_PAYMENT_LINK, territory_id=link.territory_id
                ),
                "can_revoke": link.revoked_at is None
                and territory_permits(
                    user=request.user,
                    permission=TerritoryPermission.REVOKE_PAYMENT_LINK,
                    territory_id=link.territory_id,
                ),
            }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def _link_or_404(self, request: HttpRequest, object_id: str) -> PaymentLink:
        link = self.get_object(request, unquote(object_id))
        if link is None:
            raise Http404
        return link

    def _change_url(self, link: PaymentLink) -> str:
        return reverse("admin:payments_paymentlink_change", args=(link.pk,), current_app=self.admin_site.name)

    def reissue_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Issue a new link for the order; the old one (and its open Checkout Session) stops working."""
        link = self._link_or_404(request, object_id)
        if request.method != "POST":
            return _confirm(
                self,
                request,
                obj=link,
                title=f"Re-issue the payment link of order {link.order.reference}",
                action="Re-issue",
                form=None,
                back_url=self._change_url(link),
            )
        try:
            new = payment_link_issue(order_id=link.order_id, actor=request.user)
        except DomainError as error:
            self.message_user(request, f"Order {link.order.reference}: {error.message}", messages.ERROR)
            return HttpResponseRedirect(self._change_url(link))
        self.message_user(request, f"Order {link.order.reference}: a new payment link was issued.", messages.SUCCESS)
        return HttpResponseRedirect(self._change_url(new))

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        link = self._link_or_404(request, object_id)
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                payment_link_revoke(link_id=link.pk, actor=request.user, reason=form.cleaned_data["reason"])
            except DomainError as error:
                self.message_user(request, f"Order {link.order.reference}: {error.message}", messages.ERROR)
            else:
                self.message_user(
                    request, f"Order {link.order.reference}: the payment link was revoked.", messages.SUCCESS
                )
            return HttpResponseRedirect(self._change_url(link))
        return _confirm(
            self,
            request,
            obj=link,
            title=f"Revoke the payment link of order {link.order.reference}",
            action="Revoke",
            form=form,
            back_url=self._change_url(link),
        )


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin, TerritoryScopedAdmin):
    list_display = ("payment", "status", "amount", "refund_id", "requested_by", "created_at")
    list_filter = ("status", ("territory", TerritoryListFilter))
    list_select_related = ("payment__order", "requested_by")
    search_fields = ("payment__order__reference", "=refund_id")
    fields = (
        "payment",
        ("status", "amount"),
        "refund_id",
        "reason",
        ("requested_by", "created_at", "updated_at"),
    )
    readonly_fields = (
        "payment",
        "status",
        "amount",
        "refund_id",
        "reason",
        "requested_by",
        "created_at",
        "updated_at",
    )
    amount = _money_column("amount_cents", "Amount", lambda refund: refund.payment.currency)


from . import admin_claims  # noqa: E402, F401 - registers the claims pages
