"""Claims in the back office: each claim with its lines and checkpoints, the payer's answers recorded
by staff (submitted, paid, denied: each a service of ``payments.claims``), and the claims work queue
(ready to bill, delivered but not billed for ``CLAIM_BILLING_DAYS``, denied) on the page or as CSV."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from core.admin import ReadOnlyAdmin, ReadOnlyInline
from core.admin_reports import Report, ReportColumn, ReportRow, render_report, wants_csv
from core.exceptions import DomainError
from core.templatetags.money import money
from territories.admin_scoping import TerritoryListFilter, TerritoryScopedAdmin
from territories.models import TerritoryPermission
from territories.selectors import territory_permits

from . import claims
from .admin import _confirm
from .models import Claim, ClaimCheckpoint, ClaimLine, ClaimStatus


class SubmitForm(forms.Form):
    reference = forms.CharField(max_length=100, required=False, help_text="The payer's claim or batch number.")


class PayForm(forms.Form):
    amount_cents = forms.IntegerField(min_value=0, label="Amount paid (cents)")


class DenyForm(forms.Form):
    reason_code = forms.CharField(max_length=50, help_text="The payer's reason code (e.g. a CARC code).")
    amount_cents = forms.IntegerField(min_value=0, required=False, label="Amount denied (cents)")


@dataclass(frozen=True)
class ClaimStep:
    label: str
    status: ClaimStatus
    form: type[forms.Form]


CLAIM_STEPS = {
    "submit": ClaimStep("Record submission", ClaimStatus.READY_TO_BILL, SubmitForm),
    "pay": ClaimStep("Record payment", ClaimStatus.SUBMITTED, PayForm),
    "deny": ClaimStep("Record denial", ClaimStatus.SUBMITTED, DenyForm),
}


def _run_step(step: str, claim: Claim, actor: Any, data: dict[str, Any]) -> Claim:
    if step == "submit":
        return claims.claim_submit(claim_id=claim.pk, actor=actor, reference=data["reference"])
    if step == "pay":
        return claims.claim_pay(claim_id=claim.pk, actor=actor, amount_cents=data["amount_cents"])
    return claims.claim_deny(
        claim_id=claim.pk, actor=actor, reason_code=data["reason_code"], amount_cents=data["amount_cents"]
    )


class ClaimLineInline(ReadOnlyInline):
    model = ClaimLine
    fields = ("hcpcs_code", "modifier", "units", "charge", "diagnosis_pointers")
    readonly_fields = fields

    @admin.display(description="charge")
    def charge(self, line: ClaimLine) -> str:
        return money(line.charge_cents, "usd")


class ClaimCheckpointInline(ReadOnlyInline):
    model = ClaimCheckpoint
    fields = ("kind", "at", "actor", "amount", "note")
    readonly_fields = fields

    @admin.display(description="amount")
    def amount(self, checkpoint: ClaimCheckpoint) -> str:
        return money(checkpoint.amount_cents, "usd") if checkpoint.amount_cents is not None else "—"


@admin.register(Claim)
class ClaimAdmin(ReadOnlyAdmin, TerritoryScopedAdmin):
    """Insurance claims staged by the payments agent; staff record the payer's answers."""

    list_display = ("order", "status", "date_of_service", "charge", "paid", "created_at")
    list_filter = ("status", ("territory", TerritoryListFilter))
    list_select_related = ("order",)
    search_fields = ("order__reference",)
    fields = (("order", "status"), ("date_of_service", "charge", "paid"), ("created_at", "updated_at"))
    readonly_fields = ("order", "status", "date_of_service", "charge", "paid", "created_at", "updated_at")
    inlines = (ClaimLineInline, ClaimCheckpointInline)
    change_form_template = "admin/payments/claim/change_form.html"
    change_list_template = "admin/payments/claim/change_list.html"
    show_full_result_count = False

    @admin.display(description="charge", ordering="charge_cents")
    def charge(self, claim: Claim) -> str:
        return money(claim.charge_cents, "usd")

    @admin.display(description="paid", ordering="paid_cents")
    def paid(self, claim: Claim) -> str:
        return money(claim.paid_cents, "usd") if claim.paid_cents is not None else "—"

    def get_urls(self) -> list[URLPattern]:
        return [
            path("work-queue/", self.admin_site.admin_view(self.work_queue_view), name="payments_claim_work_queue"),
            path(
                "<path:object_id>/step/<str:step>/",
                self.admin_site.admin_view(self.step_view),
                name="payments_claim_step",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        claim = self.get_object(request, unquote(object_id))
        billing = claim is not None and territory_permits(
            user=request.user, permission=TerritoryPermission.RECORD_PAYMENT, territory_id=claim.territory_id
        )
        status = claim.status if claim is not None and billing else None
        steps = [(name, step.label) for name, step in CLAIM_STEPS.items() if status == step.status]
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "claim_steps": steps})

    def step_view(self, request: HttpRequest, object_id: str, step: str) -> HttpResponse:
        """The step's form, then its service as the staff user (which checks the permission)."""
        claim_step = CLAIM_STEPS.get(step)
        claim = self.get_object(request, unquote(object_id))
        if claim_step is None or claim is None:
            raise Http404
        change_url = reverse("admin:payments_claim_change", args=(claim.pk,), current_app=self.admin_site.name)
        form = claim_step.form(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                _run_step(step, claim, request.user, form.cleaned_data)
            except DomainError as error:
                self.message_user(request, f"{claim_step.label}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"{claim_step.label}: done for order {claim.order}.", messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        return _confirm(
            self,
            request,
            obj=claim,
            title=f"{claim_step.label} for order {claim.order}",
            action=claim_step.label,
            form=form,
            back_url=change_url,
        )

    def work_queue_view(self, request: HttpRequest) -> HttpResponse:
        """Claims that need billing staff: ready to bill, delivered and not billed for ``CLAIM_BILLING_DAYS``
        (oldest delivery first), and denied; on the page or as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        late = today - dt.timedelta(days=settings.CLAIM_BILLING_DAYS)
        visible = self.get_queryset(request).select_related("order")
        rows: list[tuple[str, Claim]] = [
            ("Delivered, not billed", claim)
            for claim in visible.filter(status=ClaimStatus.READY_TO_BILL, date_of_service__lte=late).order_by(
                "date_of_service", "pk"
            )[: settings.CLAIM_QUEUE_LIMIT]
        ]
        rows += [
            ("Ready to bill", claim)
            for claim in visible.filter(status=ClaimStatus.READY_TO_BILL, date_of_service__gt=late).order_by(
                "date_of_service", "pk"
            )[: settings.CLAIM_QUEUE_LIMIT]
        ]
        rows += [
            ("Denied", claim)
            for claim in visible.filter(status=ClaimStatus.DENIED).order_by("-updated_at", "pk")[
                : settings.CLAIM_QUEUE_LIMIT
            ]
        ]
        report = Report(
            columns=(
                ReportColumn("Queue"),
                ReportColumn("Order"),
                ReportColumn("Date of service"),
                ReportColumn("Days since delivery", numeric=True),
                ReportColumn("Charge (cents)", numeric=True),
                ReportColumn("Status"),
            ),
            rows=[
                ReportRow(
                    values=(
                        queue,
                        claim.order.reference,
                        claim.date_of_service or "",
                        (today - claim.date_of_service).days if claim.date_of_service else "",
                        claim.charge_cents,
                        claim.get_status_display(),
                    ),
                    url=reverse("admin:payments_claim_change", args=(claim.pk,), current_app=self.admin_site.name),
                    css_class="late" if queue == "Delivered, not billed" else "",
                )
                for queue, claim in rows
            ],
        )
        if wants_csv(request):
            return report.csv_response(f"claims-work-queue-{today.isoformat()}.csv")
        return render_report(
            self,
            request,
            report,
            title="Claims work queue",
            intro=f"Claims delivered and not billed for {settings.CLAIM_BILLING_DAYS} days or more (oldest first), "
            "claims ready to bill, and denied claims.",
        )
