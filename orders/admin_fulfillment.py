"""Fulfillment tasks in the back office: the work list, the routing rules, and the task actions.

A task's page is read-only; its buttons (start, ship with carrier and tracking, send the purchase
order, record the vendor's acknowledgement or shipment, training done) each run one service of
``orders.fulfillment`` as the staff user, which checks the territory permission again and moves
the order when the work allows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from accounts.models import User
from catalog.models import PurchaseOrderStatus, ReservationStatus, StockReservation
from core.admin import ReadOnlyInline
from core.audit import access_record
from core.exceptions import DomainError, ValidationFailed
from core.models import AccessChannel
from core.templatetags.money import money
from core.tracking import tracking_url
from patients.admin_display import patient_name
from territories.admin_scoping import TerritoryListFilter, TerritoryScopedAdmin
from territories.models import TerritoryPermission
from territories.selectors import territory_permits

from . import fulfillment, staffing
from .models import DeliveryMode, FulfillmentTask, FulfillmentTaskItem, Order, TaskKind, TaskStatus
from .routing import ROUTING_RULES


class ShipmentForm(forms.Form):
    carrier = forms.CharField(max_length=50)
    tracking_number = forms.CharField(max_length=100)


class AcknowledgementForm(forms.Form):
    vendor_reference = forms.CharField(max_length=100, help_text="The vendor's order or confirmation number.")


class TrainingForm(forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000, help_text="Recorded on the timeline."
    )


class AssignForm(forms.Form):
    """Who takes a warehouse task: one of the people on shift at its warehouse on its due day."""

    assignee = forms.ModelChoiceField(queryset=User.objects.none(), empty_label=None)

    def for_task(self, task: FulfillmentTask) -> None:
        field = self.fields["assignee"]
        field.queryset = staffing.people_on_shift(warehouse_id=task.warehouse_id, day=task.due_date)  # type: ignore[attr-defined]
        field.help_text = f"People on shift at {task.warehouse} on {task.due_date:%Y-%m-%d}."


def _po_status(task: FulfillmentTask) -> str | None:
    return task.purchase_order.status if task.purchase_order is not None else None


@dataclass(frozen=True)
class TaskAction:
    label: str
    applies: Callable[[FulfillmentTask], bool]
    run: Callable[[FulfillmentTask, Any, dict[str, Any]], Any]
    form: type[forms.Form] | None = None


def _is_open(task: FulfillmentTask) -> bool:
    return task.status in (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)


TASK_ACTIONS: dict[str, TaskAction] = {
    "start": TaskAction(
        "Start",
        lambda task: task.status == TaskStatus.OPEN,
        lambda task, user, data: fulfillment.fulfillment_task_start(task_id=task.pk, actor=user),
    ),
    "assign": TaskAction(
        "Assign",
        lambda task: _is_open(task) and task.warehouse_id is not None,
        lambda task, user, data: fulfillment.fulfillment_task_assign(
            task_id=task.pk, actor=user, assignee=data["assignee"]
        ),
        AssignForm,
    ),
    "ship": TaskAction(
        "Picked, packed and shipped",
        lambda task: _is_open(task) and task.kind == TaskKind.PICK_PACK,
        lambda task, user, data: fulfillment.pick_pack_ship(task_id=task.pk, actor=user, **data),
        ShipmentForm,
    ),
    "send": TaskAction(
        "Send purchase order",
        lambda task: _is_open(task) and _po_status(task) == PurchaseOrderStatus.DRAFT,
        lambda task, user, data: fulfillment.dropship_send(task_id=task.pk, actor=user),
    ),
    "acknowledge": TaskAction(
        "Record vendor acknowledgement",
        lambda task: _is_open(task) and _po_status(task) == PurchaseOrderStatus.SENT,
        lambda task, user, data: fulfillment.dropship_acknowledge(task_id=task.pk, actor=user, **data),
        AcknowledgementForm,
    ),
    "vendor_shipped": TaskAction(
        "Record vendor shipment",
        lambda task: (
            _is_open(task) and _po_status(task) in (PurchaseOrderStatus.SENT, PurchaseOrderStatus.ACKNOWLEDGED)
        ),
        lambda task, user, data: fulfillment.dropship_ship(task_id=task.pk, actor=user, **data),
        ShipmentForm,
    ),
    "training_done": TaskAction(
        "Training done",
        lambda task: _is_open(task) and task.kind == TaskKind.PATIENT_TRAINING,
        lambda task, user, data: fulfillment.patient_training_done(task_id=task.pk, actor=user, **data),
        TrainingForm,
    ),
}


class TaskItemInline(ReadOnlyInline):
    model = FulfillmentTaskItem
    verbose_name = "item"
    verbose_name_plural = "items"
    fields = ("item", "sku", "unit_price")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[FulfillmentTaskItem]:
        return super().get_queryset(request).select_related("orderitem__product")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The lines are part of the task (as they were as its automatic many-to-many): whoever sees the task.
        return bool(
            request.user.has_perm("orders.view_fulfillmenttask")
            or request.user.has_perm("orders.change_fulfillmenttask")
        )

    @admin.display(description="item")
    def item(self, line: FulfillmentTaskItem) -> str:
        return str(line)

    @admin.display(description="SKU")
    def sku(self, line: FulfillmentTaskItem) -> str:
        return line.orderitem.sku

    @admin.display(description="unit price")
    def unit_price(self, line: FulfillmentTaskItem) -> str:
        return money(line.orderitem.unit_price_cents)


@dataclass(frozen=True)
class PickLine:
    """One line of a pick list: what to take, and from which lots the order's stock was reserved."""

    quantity: int
    sku: str
    name: str
    hcpcs_code: str
    lots: list[StockReservation]


def pick_lines(task: FulfillmentTask) -> list[PickLine]:
    """The task's lines with the active reservations in the task's warehouse (first to expire first)."""
    lines = list(task.items.select_related("product").order_by("sku"))
    reservations = StockReservation.objects.filter(
        order_line_id__in=[line.pk for line in lines], status=ReservationStatus.ACTIVE
    )
    if task.warehouse_id is not None:
        reservations = reservations.filter(lot__warehouse_id=task.warehouse_id)
    reservations = reservations.select_related("lot").order_by("lot__expiration_date", "lot__lot_number")
    by_line: dict[Any, list[StockReservation]] = {}
    for reservation in reservations:
        by_line.setdefault(reservation.order_line_id, []).append(reservation)
    return [
        PickLine(line.quantity, line.sku, line.product.name, line.product.hcpcs_code, by_line.get(line.pk, []))
        for line in lines
    ]


def ship_to(order: Order) -> dict[str, Any]:
    """Where the parcel goes: the order's delivery address, else the patient's (PHI: record the read)."""
    address = order.delivery_address or (
        order.patient.address if order.delivery_mode == DeliveryMode.SHIP_TO_PATIENT else None
    )
    to_patient = order.delivery_mode == DeliveryMode.SHIP_TO_PATIENT
    return {
        "name": patient_name(order.patient)
        if to_patient
        else f"{order.provider.name}, for {patient_name(order.patient)}",
        "address": address or {},
        "mode": order.get_delivery_mode_display(),
    }


@admin.register(FulfillmentTask)
class FulfillmentTaskAdmin(TerritoryScopedAdmin):
    """The fulfillment work list of the user's territories, soonest due first."""

    change_list_template = "admin/orders/fulfillmenttask/change_list.html"
    change_form_template = "admin/orders/fulfillmenttask/change_form.html"
    list_display = (
        "order",
        "kind",
        "status",
        "due_date",
        "assignee",
        "warehouse",
        "purchase_order",
        "effort_minutes",
        "tracking",
    )
    list_filter = ("status", "kind", ("territory", TerritoryListFilter), "warehouse", "due_date")
    list_select_related = ("order", "assignee", "warehouse", "purchase_order")
    search_fields = ("order__reference", "tracking_number", "purchase_order__number")
    ordering = ("due_date", "created_at")
    fields = (
        ("order", "kind", "status"),
        ("assignee", "due_date", "effort_minutes"),
        ("warehouse", "purchase_order"),
        ("carrier", "tracking_number"),
        ("shipped_at", "delivered_at"),
        ("created_at", "completed_at"),
    )
    readonly_fields = (
        "order",
        "kind",
        "status",
        "assignee",
        "due_date",
        "effort_minutes",
        "warehouse",
        "purchase_order",
        "carrier",
        "tracking_number",
        "shipped_at",
        "delivered_at",
        "created_at",
        "completed_at",
    )
    inlines = (TaskItemInline,)

    @admin.display(description="tracking")
    def tracking(self, task: FulfillmentTask) -> str:
        """Carrier and number, the number linking to the carrier's tracking page when known."""
        if not task.tracking_number:
            return "—"
        url = tracking_url(task.carrier, task.tracking_number)
        if url is None:
            return f"{task.carrier} {task.tracking_number}"
        return format_html(
            '{} <a href="{}" rel="noopener noreferrer" target="_blank">{}</a>', task.carrier, url, task.tracking_number
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Model level gates the task buttons; tasks are never edited through a form.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**(extra_context or {}), "routing_rules": ROUTING_RULES})

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        task = self.get_object(request, unquote(object_id))
        buttons = []
        if task is not None and self.has_change_permission(request):
            buttons = [
                {
                    "label": action.label,
                    "url": reverse("admin:orders_fulfillmenttask_act", args=(task.pk, name)),
                }
                for name, action in TASK_ACTIONS.items()
                if action.applies(task)
            ]
        documents = []
        if task is not None and task.kind == TaskKind.PICK_PACK:
            documents.append(
                {"label": "Pick list", "url": reverse("admin:orders_fulfillmenttask_pick_list", args=(task.pk,))}
            )
            if self.packing_slip_allowed(request, task):
                documents.append(
                    {
                        "label": "Packing slip",
                        "url": reverse("admin:orders_fulfillmenttask_packing_slip", args=(task.pk,)),
                    }
                )
        context = {**(extra_context or {}), "task_actions": buttons, "task_documents": documents}
        return super().change_view(request, object_id, form_url, context)

    def packing_slip_allowed(self, request: HttpRequest, task: FulfillmentTask) -> bool:
        """The slip shows the ship-to name and address: ``view_phi`` in the task's territory (as the API)."""
        return territory_permits(
            user=request.user, permission=TerritoryPermission.VIEW_PHI, territory_id=task.territory_id
        )

    def _pick_task_or_404(self, request: HttpRequest, object_id: str) -> FulfillmentTask:
        task = self.get_object(request, unquote(object_id))
        if task is None or task.kind != TaskKind.PICK_PACK:
            raise Http404
        return task

    def pick_list_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A printable pick list: the lines, quantities and reserved lots in the task's warehouse (no PHI)."""
        task = self._pick_task_or_404(request, object_id)
        context = {"task": task, "order": task.order, "lines": pick_lines(task), "document": "Pick list", "slip": False}
        return TemplateResponse(request, "admin/orders/fulfillmenttask/slip.html", context)

    def packing_slip_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A printable packing slip with the ship-to address; needs ``view_phi`` (403) and records the read."""
        task = self._pick_task_or_404(request, object_id)
        if not self.packing_slip_allowed(request, task):
            raise PermissionDenied
        order = task.order
        access_record(user=request.user, objects=[order, order.patient], channel=AccessChannel.ADMIN)
        context = {
            "task": task,
            "order": order,
            "lines": pick_lines(task),
            "document": "Packing slip",
            "slip": True,
            "ship_to": ship_to(order),
        }
        return TemplateResponse(request, "admin/orders/fulfillmenttask/slip.html", context)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/pick-list/",
                self.admin_site.admin_view(self.pick_list_view),
                name="orders_fulfillmenttask_pick_list",
            ),
            path(
                "<path:object_id>/packing-slip/",
                self.admin_site.admin_view(self.packing_slip_view),
                name="orders_fulfillmenttask_packing_slip",
            ),
            path(
                "<path:object_id>/act/<str:action>/",
                self.admin_site.admin_view(self.action_view),
                name="orders_fulfillmenttask_act",
            ),
            *super().get_urls(),
        ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[FulfillmentTask]:
        return super().get_queryset(request).select_related("purchase_order")

    def action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        """Show the action's form (or a confirmation), then run its service as the staff user."""
        task_action = TASK_ACTIONS.get(action)
        task = self.get_object(request, unquote(object_id))
        if task_action is None or task is None:
            raise Http404
        if not self.has_change_permission(request):
            raise PermissionDenied
        change_url = reverse("admin:orders_fulfillmenttask_change", args=(task.pk,))
        form_class = task_action.form or forms.Form
        form = form_class(request.POST if request.method == "POST" else None)
        if isinstance(form, AssignForm):
            form.for_task(task)
        if form.is_bound and form.is_valid():
            try:
                task_action.run(task, request.user, form.cleaned_data)
            except ValidationFailed as error:
                for field, problems in (error.details or {}).items():
                    form.add_error(field if field in form.fields else None, problems)
            except DomainError as error:
                self.message_user(request, f"{task_action.label}: {error.message}", messages.ERROR)
                return HttpResponseRedirect(change_url)
            else:
                self.message_user(request, f"{task_action.label}: done for order {task.order}.", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{task_action.label}: {task}",
            "opts": self.opts,
            "task": task,
            "form": form,
            "action_label": task_action.label,
            "back_url": change_url,
        }
        return TemplateResponse(request, "admin/orders/fulfillmenttask/action.html", context)
