"""Fulfillment work: starting, assigning and finishing an order's tasks, shipping and delivery.

Every function is atomic, takes the acting user, and needs the fulfill permission in the order's
territory (the system, ``actor=None``, may always act). A task is locked together with its order
(order first). When the last shipping task is done — every pick/pack shipped by the warehouse and
every dropship shipped by its vendor — the order moves to ``shipped`` through its FSM transition;
confirming delivery (``orders.services.order_complete``) moves it to ``completed``. Training tasks
never hold a shipment back.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from catalog.models import PurchaseOrderStatus
from catalog.purchasing import purchase_order_acknowledge, purchase_order_record_shipment, purchase_order_send
from catalog.services import ReservationLine, stock_pick, stock_reserve
from core.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from territories.models import TerritoryPermission
from territories.selectors import territory_permits

from .exceptions import OrderNotFound
from .models import (
    SHIPPING_TASK_KINDS,
    EventKind,
    FulfillmentPath,
    FulfillmentTask,
    Order,
    OrderStatus,
    StockStatus,
    TaskKind,
    TaskStatus,
)
from .selectors import _as_uuid
from .services import order_lock, order_transition
from .staffing import people_on_shift, task_changed
from .timeline import actor_kind_of, record_event


class StockNotYetAvailable(Conflict):
    code = "STOCK_NOT_AVAILABLE"


def _may_fulfill(actor: Any, order: Order) -> bool:
    return actor is None or territory_permits(
        user=actor, permission=TerritoryPermission.FULFILL_ORDER, territory_id=order.territory_id
    )


def fulfillment_task_lock(*, task_id: Any, actor: Any) -> tuple[FulfillmentTask, Order]:
    """Lock a task and its order. Call inside an atomic block.

    Raises NotFound, the same error whichever the reason, for a malformed id, a task that does
    not exist and a task of an order outside the actor's territories (so a task id from another
    territory cannot be told from a random one), and PermissionDenied when the actor sees the
    order but may not fulfill orders in its territory.
    """
    pk = _as_uuid(task_id)
    order_id = None
    if pk is not None:
        order_id = FulfillmentTask.objects.filter(pk=pk).values_list("order_id", flat=True).first()
    if pk is None or order_id is None:
        raise _task_not_found()
    try:
        order = order_lock(pk=order_id, actor=actor)
    except OrderNotFound:  # another territory's order: answer as for a task that does not exist
        raise _task_not_found() from None
    if not _may_fulfill(actor, order):
        raise PermissionDenied("You may not fulfill orders in this territory.")
    task = FulfillmentTask.objects.select_for_update(of=("self",)).select_related("purchase_order").get(pk=pk)
    return task, order


def _task_not_found() -> NotFound:
    return NotFound("No such fulfillment task.")


def fulfillment_task_kind(*, task_id: Any, actor: Any) -> str:
    """The kind of a task the actor may see; raises NotFound otherwise."""
    with transaction.atomic():
        task, _order = fulfillment_task_lock(task_id=task_id, actor=actor)
        return task.kind


def _require_open(task: FulfillmentTask, *kinds: TaskKind) -> None:
    if kinds and task.kind not in kinds:
        raise Conflict(f"This is a {task.get_kind_display().lower()} task.")
    if task.status not in (TaskStatus.OPEN, TaskStatus.IN_PROGRESS):
        raise Conflict(f"The task is {task.status}.")


def _note(order: Order, actor: Any, reason: str, payload: dict[str, Any]) -> None:
    record_event(
        order=order,
        kind=EventKind.FULFILLMENT,
        actor=actor,
        actor_kind=actor_kind_of(actor, None),
        from_status=order.status,
        to_status=order.status,
        reason=reason,
        payload=payload,
    )


def _finish(task: FulfillmentTask, actor: Any, **fields: Any) -> None:
    task.finish()
    task.completed_at = timezone.now()
    if task.assignee_id is None and actor is not None:
        task.assignee = actor
    for name, value in fields.items():
        setattr(task, name, value)
    task.save()
    task_changed(task)


def _ship_order_when_all_shipped(order: Order, actor: Any) -> None:
    shipping = FulfillmentTask.objects.filter(order=order, kind__in=SHIPPING_TASK_KINDS).exclude(
        status=TaskStatus.CANCELLED
    )
    if order.status != OrderStatus.IN_PROGRESS or shipping.exclude(status=TaskStatus.DONE).exists():
        return
    shipments = [
        {"carrier": carrier, "tracking_number": tracking}
        for carrier, tracking in shipping.order_by("shipped_at").values_list("carrier", "tracking_number")
    ]
    order_transition(order_id=order.pk, actor=actor, transition="ship", payload={"shipments": shipments})


@transaction.atomic
def fulfillment_task_start(*, task_id: Any, actor: Any) -> FulfillmentTask:
    """Start an open task; the actor becomes its assignee unless it has one."""
    task, _order = fulfillment_task_lock(task_id=task_id, actor=actor)
    if task.status != TaskStatus.OPEN:
        raise Conflict(f"The task is {task.status}.")
    task.start()
    if task.assignee_id is None:
        task.assignee = actor
    task.save()
    task_changed(task)
    return task


@transaction.atomic
def fulfillment_task_assign(*, task_id: Any, actor: Any, assignee: Any) -> FulfillmentTask:
    """Give an open or running task to someone who may fulfill orders in its territory and, for a
    warehouse task, is on shift at its warehouse on its due day."""
    task, order = fulfillment_task_lock(task_id=task_id, actor=actor)
    _require_open(task)
    if assignee is None or not _may_fulfill(assignee, order):
        raise ValidationFailed(details={"assignee": ["The assignee must fulfill orders in the order's territory."]})
    if (
        task.warehouse_id is not None
        and not people_on_shift(warehouse_id=task.warehouse_id, day=task.due_date).filter(pk=assignee.pk).exists()
    ):
        raise ValidationFailed(
            details={"assignee": ["The assignee must be on shift at the task's warehouse on its due day."]}
        )
    task.assignee = assignee
    task.save(update_fields=["assignee"])
    task_changed(task)
    return task


def _required(**values: str) -> dict[str, str]:
    errors = {name: ["Required."] for name, value in values.items() if not (value or "").strip()}
    if errors:
        raise ValidationFailed(details=errors)
    return {name: value.strip() for name, value in values.items()}


@transaction.atomic
def pick_pack_ship(*, task_id: Any, actor: Any, carrier: str, tracking_number: str) -> FulfillmentTask:
    """Pick, pack and hand a warehouse task's items to the carrier.

    The task's reserved stock is consumed (a backordered task first reserves it now, and raises
    StockNotYetAvailable, changing nothing, while stock is short). The order ships once every
    shipping task is done.
    """
    shipment = _required(carrier=carrier, tracking_number=tracking_number)
    task, order = fulfillment_task_lock(task_id=task_id, actor=actor)
    _require_open(task, TaskKind.PICK_PACK)
    items = list(task.items.select_related("product"))
    backordered = [item for item in items if item.fulfillment_path == FulfillmentPath.BACKORDER]
    if backordered:
        shortfalls = stock_reserve(
            order_id=order.pk, lines=[ReservationLine(item.pk, item.product_id, item.quantity) for item in backordered]
        )
        if shortfalls:
            short = {item.sku for item in backordered if item.pk in {s.order_line_id for s in shortfalls}}
            raise StockNotYetAvailable(
                "Stock for a backordered item has not arrived yet.", details={"items": sorted(short)}
            )
        for item in backordered:
            item.stock_status = StockStatus.RESERVED
            item.save(update_fields=["stock_status"])
    picked = stock_pick(order_id=order.pk, actor=actor, warehouse_id=task.warehouse_id)
    _finish(task, actor, shipped_at=timezone.now(), **shipment)
    _note(
        order,
        actor,
        f"Picked and packed {picked} units; shipped with {shipment['carrier']}.",
        {"task_id": str(task.pk), "picked_units": picked, **shipment},
    )
    _ship_order_when_all_shipped(order, actor)
    return task


@transaction.atomic
def dropship_send(*, task_id: Any, actor: Any) -> FulfillmentTask:
    """Send a dropship task's purchase order to the vendor and start the task."""
    task, order = fulfillment_task_lock(task_id=task_id, actor=actor)
    _require_open(task, TaskKind.DROPSHIP)
    assert task.purchase_order is not None  # every dropship task has its purchase order
    purchase_order = purchase_order_send(purchase_order_id=task.purchase_order.pk, actor=actor)
    if task.status == TaskStatus.OPEN:
        task.start()
        task.assignee = task.assignee or actor
        task.save()
    _note(order, actor, f"Purchase order {purchase_order.number} sent to {purchase_order.vendor}.", {})
    return task


@transaction.atomic
def dropship_acknowledge(*, task_id: Any, actor: Any, vendor_reference: str) -> FulfillmentTask:
    """Record the vendor's acknowledgement of a dropship task's purchase order."""
    task, order = fulfillment_task_lock(task_id=task_id, actor=actor)
    _require_open(task, TaskKind.DROPSHIP)
    assert task.purchase_order is not None
    purchase_order = purchase_order_acknowledge(
        purchase_order_id=task.purchase_order.pk, actor=actor, vendor_reference=vendor_reference
    )
    _note(order, actor, f"Vendor acknowledged purchase order {purchase_order.number}.", {})
    return task


@transaction.atomic
def dropship_ship(*, task_id: Any, actor: Any, carrier: str, tracking_number: str) -> FulfillmentTask:
    """Record the vendor's shipment of a dropship task (its purchase order must have been sent).

    The order ships once every shipping task is done.
    """
    shipment = _required(carrier=carrier, tracking_number=tracking_number)
    task, order = fulfillment_task_lock(task_id=task_id, actor=actor)
    _require_open(task, TaskKind.DROPSHIP)
    assert task.purchase_order is not None
    if task.purchase_order.status == PurchaseOrderStatus.DRAFT:
        raise Conflict("Send the purchase order to the vendor first.")
    purchase_order_record_shipment(purchase_order_id=task.purchase_order.pk, actor=actor, **shipment)
    _finish(task, actor, shipped_at=timezone.now(), **shipment)
    _note(
        order,
        actor,
        f"Vendor shipped purchase order {task.purchase_order.number} with {shipment['carrier']}.",
        {"task_id": str(task.pk), **shipment},
    )
    _ship_order_when_all_shipped(order, actor)
    return task


@transaction.atomic
def patient_training_done(*, task_id: Any, actor: Any, note: str = "") -> FulfillmentTask:
    """Mark a patient-training task done (with an optional note on the timeline)."""
    task, order = fulfillment_task_lock(task_id=task_id, actor=actor)
    _require_open(task, TaskKind.PATIENT_TRAINING)
    _finish(task, actor)
    _note(order, actor, note.strip() or "Patient training done.", {"task_id": str(task.pk)})
    return task
