"""The order back office: lists, the read-only order page with its timeline, and lifecycle actions.

Nothing here changes an order's fields directly. Every status change, from the list's actions or
the buttons on an order's page, runs ``orders.services.order_transition`` with the staff user as
the actor: the same permission checks, timeline event and outbox events as the API.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_fsm import ConcurrentTransition
from simple_history.admin import SimpleHistoryAdmin

from compliance.inputs import ArtifactType
from core.admin import PHIAccessAdmin, ReadOnlyInline, ScopedHistoryMixin
from core.audit import access_record
from core.exceptions import Conflict, DomainError
from core.models import AccessChannel
from core.templatetags.money import money
from patients.admin_display import patient_label
from territories.admin_scoping import TerritoryListFilter, TerritoryScopedAdmin, admin_territories, model_permissions
from territories.models import TerritoryPermission
from territories.selectors import territory_permits

from .downloads import attachment_download
from .models import Attachment, FulfillmentTask, Order, OrderEvent, OrderItem
from .selectors import order_compliance_result
from .services import TRANSITIONS, order_attach, order_hcpcs_codes, order_transition, verification_offer

TRANSITION_LABELS: dict[str, str] = {
    "hold": "Put on hold",
    "release_hold": "Release hold",
    "verify": "Verify",
    "reject": "Reject",
    "request_payment": "Request payment",
    "mark_paid": "Mark paid",
    "start_fulfillment": "Start fulfillment",
    "ship": "Mark shipped",
    "complete": "Complete (delivered)",
    "cancel": "Cancel order",
}

# Transitions whose list action first asks for a reason (required where the service requires one).
# Verifying from the list takes no note: an order that needs review is refused there with a message
# and resolved on its own Verify page, which asks for the review note.
ASK_REASON = frozenset({"hold", "reject", "cancel"})

TRANSITION_TEMPLATE = "admin/orders/order/transition_confirm.html"


def _may_override(user: Any, orders: Iterable[Order]) -> bool:
    """Whether ``user`` may verify every one of ``orders`` over open findings (``override_compliance``)."""
    territory_ids = {order.territory_id for order in orders}
    return bool(territory_ids) and all(
        territory_permits(user=user, permission=TerritoryPermission.OVERRIDE_COMPLIANCE, territory_id=territory_id)
        for territory_id in territory_ids
    )


def transition_label(name: str) -> str:
    return TRANSITION_LABELS.get(name, name.replace("_", " ").capitalize())


class TransitionForm(forms.Form):
    """The reason (or note) recorded on the timeline with a transition."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        required=False,
        max_length=2000,
        help_text="Recorded on the order's timeline.",
    )

    override_reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        required=False,
        max_length=2000,
        label="Override reason",
        help_text="Only to verify over open compliance findings: needs the override permission; audited.",
    )

    def __init__(self, *args: Any, transition: str, can_override: bool = False, **kwargs: Any) -> None:
        """``can_override``: the user holds ``override_compliance`` where the orders are; only then
        is the override field shown (``order_approve`` decides again)."""
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = TRANSITIONS[transition].reason_required
        if transition == "verify":
            # Verifying resolves what the checks asked: an order that needs review is resolved by
            # the reviewer's note (orders.services._compliance_gate).
            self.fields["reason"].label = "Review note"
            self.fields["reason"].help_text = (
                "Required when the order needs review: what you checked and decided. Recorded on the"
                " timeline and in the compliance record."
            )
        if transition != "verify" or not can_override:
            del self.fields["override_reason"]


class AttachmentForm(forms.Form):
    """A document for an order; the compliance checks run again while the order waits for verification.

    A prior authorization names the order's item code(s) it is for (``order_attach`` refuses it
    otherwise); ``codes`` are the order's HCPCS codes offered."""

    artifact_type = forms.ChoiceField(choices=[(t.value, t.value) for t in ArtifactType])
    document_date = forms.DateField(required=False, help_text="The date on the document (YYYY-MM-DD).")
    hcpcs_codes = forms.MultipleChoiceField(
        label="HCPCS codes",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="For a prior authorization: the item(s) the decision is for (required). It clears only those.",
    )
    file = forms.FileField(help_text="PDF, PNG or JPEG.")

    def __init__(self, *args: Any, codes: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        codes_field = self.fields["hcpcs_codes"]
        assert isinstance(codes_field, forms.MultipleChoiceField)
        codes_field.choices = [(code, code) for code in codes]


class OrderAgeFilter(admin.SimpleListFilter):
    """How long ago the order was placed."""

    title = "age"
    parameter_name = "age"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("under_1d", "Under 1 day"),
            ("1_7d", "1 to 7 days"),
            ("over_7d", "Over 7 days"),
            ("over_30d", "Over 30 days"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        day = timedelta(days=1)
        match self.value():
            case "under_1d":
                return queryset.filter(created_at__gt=now - day)
            case "1_7d":
                return queryset.filter(created_at__lte=now - day, created_at__gt=now - 7 * day)
            case "over_7d":
                return queryset.filter(created_at__lte=now - 7 * day)
            case "over_30d":
                return queryset.filter(created_at__lte=now - 30 * day)
        return queryset


class OrderItemInline(ReadOnlyInline):
    model = OrderItem
    fields = (
        "sku",
        "product",
        "quantity",
        "unit_price",
        "line_total",
        "stock_status",
        "fulfillment_path",
        "fulfillment_rule",
    )
    readonly_fields = fields

    @admin.display(description="unit price")
    def unit_price(self, item: OrderItem) -> str:
        return money(item.unit_price_cents)

    @admin.display(description="line total")
    def line_total(self, item: OrderItem) -> str:
        return money(item.line_total_cents)


class FulfillmentTaskInline(ReadOnlyInline):
    """The order's fulfillment work; each task's page has its actions."""

    model = FulfillmentTask
    fields = ("kind", "status", "due_date", "assignee", "warehouse", "purchase_order", "carrier", "tracking_number")
    readonly_fields = fields
    show_change_link = True


class AttachmentInline(ReadOnlyInline):
    """Documents on the order (the compliance ledger); add one with the "Add document" button."""

    model = Attachment
    fields = (
        "artifact_type",
        "hcpcs_codes",
        "document_date",
        "content_type",
        "size",
        "uploaded_by",
        "created_at",
        "download",
    )
    readonly_fields = fields

    @admin.display(description="file")
    def download(self, obj: Attachment) -> str:
        url = reverse("admin:orders_order_attachment", args=(obj.order_id, obj.pk))
        return format_html('<a href="{}">Open</a>', url)


class OrderEventInline(ReadOnlyInline):
    """The order's timeline, oldest first. Events are immutable."""

    model = OrderEvent
    verbose_name = "timeline event"
    verbose_name_plural = "timeline"
    fields = ("sequence", "created_at", "kind", "from_status", "to_status", "actor", "actor_kind", "reason")
    readonly_fields = fields
    ordering = ("sequence",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderEvent]:
        return super().get_queryset(request).select_related("actor")


def _transition_action(name: str) -> Callable[[OrderAdmin, HttpRequest, QuerySet[Order]], HttpResponse | None]:
    def action(model_admin: OrderAdmin, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        return model_admin.transition_action(request, queryset, name)

    action.__name__ = name  # the action's name in the changelist form
    return admin.action(description=f"{transition_label(name)}: selected orders", permissions=["change"])(action)


@admin.register(Order)
class OrderAdmin(ScopedHistoryMixin, PHIAccessAdmin, TerritoryScopedAdmin, SimpleHistoryAdmin):
    """Orders of the territories where the user reads PHI in a back-office role (the page shows the
    patient, diagnosis and notes). The page is read-only; status changes are actions."""

    territory_permission = TerritoryPermission.VIEW_PHI

    list_display = (
        "reference",
        "status",
        "stage_display",
        "ai_disposition",
        "territory",
        "payer_type",
        "priority",
        "created_at",
    )
    list_filter = (
        "status",
        ("territory", TerritoryListFilter),
        "ai_disposition",
        "payer_type",
        OrderAgeFilter,
    )
    list_select_related = ("territory",)
    search_fields = ("reference",)
    search_help_text = "Order reference (or part of it), or the order's exact id."
    date_hierarchy = "created_at"
    list_per_page = 50
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("reference", "id"),
                    ("status", "stage_display"),
                    "territory",
                    ("patient_name", "provider"),
                    ("source", "priority", "delivery_mode"),
                    ("payer_type", "requested_date"),
                    "total",
                    "ai_disposition",
                    ("created_by", "approver"),
                )
            },
        ),
        ("Compliance", {"fields": ("compliance_findings",)}),
        (
            "Written order",
            {"fields": (("order_date", "f2f_date"), ("signed_by", "signed_at"), "signature_hash")},
        ),
        (
            "Clinical and insurance details",
            {"fields": ("service_type", "diagnosis_codes", "notes", "insurance_details", "verification_data")},
        ),
        ("Timestamps", {"fields": (("created_at", "updated_at"), ("verified_at", "completed_at", "cancelled_at"))}),
    )
    readonly_fields = (
        "reference",
        "id",
        "status",
        "stage_display",
        "territory",
        "patient_name",
        "provider",
        "source",
        "priority",
        "delivery_mode",
        "payer_type",
        "requested_date",
        "total",
        "ai_disposition",
        "compliance_findings",
        "order_date",
        "f2f_date",
        "signed_by",
        "signed_at",
        "signature_hash",
        "created_by",
        "approver",
        "service_type",
        "diagnosis_codes",
        "notes",
        "insurance_details",
        "verification_data",
        "created_at",
        "updated_at",
        "verified_at",
        "completed_at",
        "cancelled_at",
    )
    inlines = (OrderItemInline, AttachmentInline, FulfillmentTaskInline, OrderEventInline)
    actions = [_transition_action(name) for name in TRANSITIONS]

    @admin.display(description="patient")
    def patient_name(self, obj: Order) -> str:
        # Only readers of the territory's PHI reach the order's page (territory_permission).
        return patient_label(obj.patient, phi_visible=True)

    @admin.display(description="total")
    def total(self, obj: Order) -> str:
        return money(obj.total_cents)

    def phi_objects(self, request: HttpRequest, obj: Order) -> list[Any]:
        return [obj, obj.patient]  # the page names the patient

    @admin.display(description="stage")
    def stage_display(self, obj: Order) -> str:
        return obj.stage.value if obj.stage is not None else "—"

    @admin.display(description="latest check")
    def compliance_findings(self, obj: Order) -> str:
        """The latest compliance decision: each finding, what would resolve it, and the rule's source."""
        result = order_compliance_result(order=obj)
        if result is None:
            return "Not checked yet."
        findings = list(result["findings"])
        if not findings:
            return format_html("<strong>{}</strong>: no findings.", result["disposition"])
        rows = format_html_join(
            "",
            "<li><strong>{}</strong> {} — {}{}{}</li>",
            (
                (
                    f["severity"],
                    f["code"],
                    f["message"],
                    format_html(" Resolve with: {}.", ", ".join(f["required_artifacts"]))
                    if f["required_artifacts"]
                    else "",
                    format_html(' <a href="{}" rel="noreferrer">{}</a>', f["source"]["url"], f["source"]["title"])
                    if f.get("source") and f["source"].get("url")
                    else "",
                )
                for f in findings
            ),
        )
        return format_html("<strong>{}</strong><ul>{}</ul>", result["disposition"], rows)

    # --- permissions: orders are created by the API and portal, changed only by transitions ---------
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The model permission gates the transition actions; no order is ever edited through a form.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Order], search_term: str
    ) -> tuple[QuerySet[Order], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(reference__icontains=term)
        with contextlib.suppress(ValueError):
            condition |= Q(pk=uuid.UUID(term))
        return queryset.filter(condition), False

    # --- transitions ------------------------------------------------------------------------------
    def run_transition(
        self, request: HttpRequest, orders: Iterable[Order], transition: str, reason: str, override_reason: str = ""
    ) -> int:
        """Run ``transition`` on each order through the service; report each outcome. Returns the successes.

        Each order is its own transaction: one refusal does not undo the others. Messages name
        orders by reference only, never by anything that is PHI.
        """
        done: list[str] = []
        for order in orders:
            try:
                order_transition(
                    order_id=order.pk,
                    actor=request.user,
                    transition=transition,
                    reason=reason,
                    override_reason=override_reason,
                )
            except DomainError as error:
                self.message_user(request, f"Order {order.reference}: {error.message}", messages.ERROR)
            except ConcurrentTransition:
                self.message_user(request, f"Order {order.reference}: {Conflict.default_message}", messages.ERROR)
            else:
                done.append(order.reference)
        if done:
            self.message_user(
                request,
                f"{transition_label(transition)}: done for {len(done)} order(s): {', '.join(done)}.",
                messages.SUCCESS,
            )
        return len(done)

    def transition_action(
        self, request: HttpRequest, queryset: QuerySet[Order], transition: str
    ) -> HttpResponse | None:
        """The list action for ``transition``; asks for a reason first where one is wanted."""
        orders = list(queryset.order_by("reference"))
        if transition not in ASK_REASON:
            self.run_transition(request, orders, transition, "")
            return None
        form = TransitionForm(
            request.POST if "apply" in request.POST else None,
            transition=transition,
            can_override=_may_override(request.user, orders),
        )
        if form.is_bound and form.is_valid():
            override = form.cleaned_data.get("override_reason", "")
            self.run_transition(request, orders, transition, form.cleaned_data["reason"], override)
            return None
        return self._render_transition_form(
            request,
            form=form,
            transition=transition,
            orders=orders,
            action_name=transition,
            back_url=reverse("admin:orders_order_changelist", current_app=self.admin_site.name),
        )

    def transition_view(self, request: HttpRequest, object_id: str, transition: str) -> HttpResponse:
        """Confirm and run one transition on one order (the buttons on the order's page)."""
        if transition not in TRANSITIONS:
            raise Http404
        order = self.get_object(request, unquote(object_id))
        if order is None:
            raise Http404
        if not self.has_change_permission(request):
            raise PermissionDenied
        change_url = reverse("admin:orders_order_change", args=(order.pk,), current_app=self.admin_site.name)
        form = TransitionForm(
            request.POST if request.method == "POST" else None,
            transition=transition,
            can_override=_may_override(request.user, [order]),
        )
        if form.is_bound and form.is_valid():
            override = form.cleaned_data.get("override_reason", "")
            self.run_transition(request, [order], transition, form.cleaned_data["reason"], override)
            return HttpResponseRedirect(change_url)
        return self._render_transition_form(
            request, form=form, transition=transition, orders=[order], action_name=None, back_url=change_url
        )

    def _render_transition_form(
        self,
        request: HttpRequest,
        *,
        form: TransitionForm,
        transition: str,
        orders: list[Order],
        action_name: str | None,
        back_url: str,
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": f"{transition_label(transition)}: confirm",
            "opts": self.opts,
            "form": form,
            "transition_label": transition_label(transition),
            "orders": orders,
            "action_name": action_name,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "back_url": back_url,
        }
        return TemplateResponse(request, TRANSITION_TEMPLATE, context)

    def attach_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Add a document to the order through ``order_attach`` (which re-runs the checks)."""
        order = self.get_object(request, unquote(object_id))
        if order is None:
            raise Http404
        if not request.user.has_perm("orders.add_attachment"):
            raise PermissionDenied
        change_url = reverse("admin:orders_order_change", args=(order.pk,), current_app=self.admin_site.name)
        form = AttachmentForm(request.POST or None, request.FILES or None, codes=order_hcpcs_codes(order))
        if request.method == "POST" and form.is_valid():
            try:
                order_attach(order_id=order.pk, actor=request.user, **form.cleaned_data)
            except DomainError as error:
                details = "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in error.details.items())
                self.message_user(request, f"{error.message} {details}".strip(), messages.ERROR)
            else:
                self.message_user(request, f"Order {order.reference}: document added and checks run again.")
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Add a document to order {order.reference}",
            "opts": self.opts,
            "form": form,
            "order": order,
            "back_url": change_url,
        }
        return TemplateResponse(request, "admin/orders/order/attach.html", context)

    def attachment_view(self, request: HttpRequest, object_id: str, attachment_id: str) -> HttpResponseBase:
        """Open an attachment of an order the user may see (recorded as a PHI read).

        Needs ``view_phi`` and a role allowed to view attachments in the order's territory; 404 otherwise.
        """
        order = self.get_object(request, unquote(object_id))
        attachment = order.attachments.filter(pk=attachment_id).first() if order is not None else None
        if order is None or attachment is None:
            raise Http404
        readable = admin_territories(
            request,
            permission=TerritoryPermission.VIEW_PHI,
            model_permissions=model_permissions(Attachment._meta, "view"),
        )
        if not request.user.is_superuser and not readable.filter(pk=order.territory_id).exists():
            raise Http404
        access_record(user=request.user, objects=[attachment], channel=AccessChannel.ADMIN)
        return attachment_download(attachment)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/transition/<str:transition>/",
                self.admin_site.admin_view(self.transition_view),
                name="orders_order_transition",
            ),
            path("<path:object_id>/attach/", self.admin_site.admin_view(self.attach_view), name="orders_order_attach"),
            path(
                "<path:object_id>/attachments/<uuid:attachment_id>/",
                self.admin_site.admin_view(self.attachment_view),
                name="orders_order_attachment",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "order_transitions": self._available_transitions(request, object_id),
            "can_attach": request.user.has_perm("orders.add_attachment"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _available_transitions(self, request: HttpRequest, object_id: str) -> list[dict[str, str]]:
        """Buttons for the transitions the user may run on the order now (the service decides again)."""
        if not self.has_change_permission(request):
            return []
        order = self.get_object(request, unquote(object_id))
        if order is None:
            return []
        available = {transition.name for transition in order.get_available_user_status_transitions(user=request.user)}
        offer = verification_offer(order=order, user=request.user)
        if not (offer.approve or offer.override):
            available.discard("verify")  # a hold the user cannot override: documents resolve it, not this user
        return [
            {
                "label": transition_label(name),
                "url": reverse(
                    "admin:orders_order_transition", args=(order.pk, name), current_app=self.admin_site.name
                ),
            }
            for name in TRANSITIONS  # in lifecycle order
            if name in available
        ]


# The fulfillment work list registers itself with the admin site.
from . import admin_fulfillment, admin_staffing  # noqa: E402, F401
