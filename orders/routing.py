"""Fulfillment routing: the path each order line takes, and the work it creates.

When an order enters ``in_progress`` every line gets a path by the first matching rule of
``ROUTING_RULES`` (the admin shows the same list), the decisions and their reasons go on the
order's timeline, and the work is created: a pick/pack task per warehouse holding the line's
reserved stock, a dropship purchase order and task per vendor, and a patient-training task for
items that need one. Prescribed medications (RxNorm products) in a territory an active
pharmacy serves are the pharmacy's to fill: no warehouse work, and stock held for them is
released. When an order is cancelled or rejected its reservations are released and
its open work is cancelled.

These functions run inside the order's transition (``orders.services.order_transition``), with
the order locked; they never commit on their own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from catalog.models import Product, ReservationStatus, StockReservation
from catalog.purchasing import PurchaseLine, purchase_order_cancel, purchase_order_create_dropship
from catalog.services import ReservationLine, stock_release, stock_reserve
from core.audit import with_history_user
from core.exceptions import Conflict
from territories.models import Territory

from .models import (
    SHIPPING_TASK_KINDS,
    EventKind,
    FulfillmentPath,
    FulfillmentTask,
    Order,
    OrderItem,
    StockStatus,
    TaskKind,
    TaskStatus,
)
from .staffing import task_changed
from .timeline import actor_kind_of, record_event


@dataclass(frozen=True)
class RoutingRule:
    code: str
    path: FulfillmentPath
    description: str


# First match wins.
ROUTING_RULES: tuple[RoutingRule, ...] = (
    RoutingRule(
        "pharmacy_prescription",
        FulfillmentPath.PHARMACY,
        "Filled by the pharmacy: a prescribed medication in a territory an active pharmacy serves "
        "(the prescription goes to it; any warehouse stock held for it is released).",
    ),
    RoutingRule(
        "warehouse_reserved",
        FulfillmentPath.WAREHOUSE,
        "Ships from the warehouse: the product allows it and its stock was reserved when the order was submitted.",
    ),
    RoutingRule(
        "warehouse_reserved_now",
        FulfillmentPath.WAREHOUSE,
        "Ships from the warehouse: the product allows it and stock received since submission is reserved now.",
    ),
    RoutingRule(
        "dropship_vendor",
        FulfillmentPath.DROPSHIP,
        "Dropshipped: the product allows dropship and its vendor is active.",
    ),
    RoutingRule(
        "warehouse_backorder",
        FulfillmentPath.BACKORDER,
        "Backordered: the product ships only from the warehouse, which has no usable stock yet; "
        "it is picked when stock arrives.",
    ),
)
RULES_BY_CODE = {rule.code: rule for rule in ROUTING_RULES}

# Standard effort per task, in minutes; pick/pack adds time for every line it handles.
STANDARD_EFFORT_MINUTES = {TaskKind.PICK_PACK: 10, TaskKind.DROPSHIP: 10, TaskKind.PATIENT_TRAINING: 30}
PICK_PACK_MINUTES_PER_LINE = 3
# Days from the start of fulfillment to each task's due date.
DUE_IN_DAYS = {TaskKind.PICK_PACK: 1, TaskKind.DROPSHIP: 0, TaskKind.PATIENT_TRAINING: 3}


class FulfillmentUnroutable(Conflict):
    """No rule can fulfill a line: the order cannot start fulfillment."""

    code = "FULFILLMENT_UNROUTABLE"


@dataclass(frozen=True)
class Decision:
    item: OrderItem
    rule: RoutingRule


def _pharmacy_fills(territory: Territory) -> bool:
    """An active pharmacy serves the territory (the pharmacy agent sends it the prescriptions).

    The same test as ``pharmacy.services.pharmacy_for``, through the territory's reverse relation
    because ``orders`` may not import ``pharmacy``.
    """
    return bool(territory.pharmacies.filter(active=True).exists())


def _first_rule(
    product: Product, *, by_pharmacy: bool, reserved: bool, reserved_now: bool = False
) -> RoutingRule | None:
    """The first of ``ROUTING_RULES`` that matches a line, given what is known of its stock; None
    when no rule can fulfill it."""
    vendor = product.vendor
    if by_pharmacy:
        code = "pharmacy_prescription"
    elif reserved:
        code = "warehouse_reserved"
    elif reserved_now:
        code = "warehouse_reserved_now"
    elif product.dropship_fulfillment and vendor is not None and vendor.active:
        code = "dropship_vendor"
    elif product.warehouse_fulfillment:
        code = "warehouse_backorder"
    else:
        return None
    return RULES_BY_CODE[code]


def expected_path(*, territory: Territory, product: Product, quantity: int, available: int) -> RoutingRule | None:
    """The rule that would route a line of ``quantity`` units of ``product`` if it were submitted
    now with ``available`` units in stock: "reserved at submission" read as "enough stock available
    now". None when nothing could fulfill it. An estimate for the portal's review page; the
    decision itself is made when fulfillment starts.
    """
    return _first_rule(
        product,
        by_pharmacy=product.is_medication and _pharmacy_fills(territory),
        reserved=product.warehouse_fulfillment and available >= quantity,
    )


def _decide(order: Order, items: Sequence[OrderItem]) -> list[Decision]:
    # Prescribed medications go to the pharmacy when one serves the territory; stock held for them is freed.
    by_pharmacy = (
        {item.pk for item in items if item.product.is_medication} if _pharmacy_fills(order.territory) else set()
    )
    if by_pharmacy:
        stock_release(order_id=order.pk, order_line_ids=sorted(by_pharmacy))
    reserved = set(
        StockReservation.objects.filter(order_id=order.pk, status=ReservationStatus.ACTIVE).values_list(
            "order_line_id", flat=True
        )
    )
    # Lines flagged at submission try the warehouse again before anything else.
    retry = [
        item
        for item in items
        if item.pk not in reserved and item.pk not in by_pharmacy and item.product.warehouse_fulfillment
    ]
    still_short = {
        shortfall.order_line_id
        for shortfall in stock_reserve(
            order_id=order.pk,
            lines=[ReservationLine(item.pk, item.product_id, item.quantity) for item in retry],
            needed_by=order.requested_date,
        )
    }
    reserved_now = {item.pk for item in retry} - still_short

    decisions: list[Decision] = []
    unroutable: dict[str, list[str]] = {}
    for item in items:
        rule = _first_rule(
            item.product,
            by_pharmacy=item.pk in by_pharmacy,
            reserved=item.pk in reserved,
            reserved_now=item.pk in reserved_now,
        )
        if rule is None:
            unroutable[item.sku] = ["Not stocked in the warehouse and no active vendor dropships it."]
            continue
        decisions.append(Decision(item, rule))
    if unroutable:
        raise FulfillmentUnroutable("An item has no fulfillment path.", details={"items": unroutable})
    return decisions


def _new_task(
    order: Order, kind: TaskKind, items: Sequence[OrderItem], today: dt.date, **fields: Any
) -> FulfillmentTask:
    effort = STANDARD_EFFORT_MINUTES[kind]
    if kind == TaskKind.PICK_PACK:
        effort += PICK_PACK_MINUTES_PER_LINE * len(items)
    due = today + dt.timedelta(days=DUE_IN_DAYS[kind])
    if kind == TaskKind.PATIENT_TRAINING and order.requested_date and order.requested_date > today:
        due = order.requested_date
    task = FulfillmentTask.objects.create(
        order=order, territory_id=order.territory_id, kind=kind, due_date=due, effort_minutes=effort, **fields
    )
    task.items.set(items)
    task_changed(task)
    return task


def _create_work(order: Order, decisions: Sequence[Decision], actor: Any, today: dt.date) -> list[FulfillmentTask]:
    tasks: list[FulfillmentTask] = []
    warehoused = {d.item.pk: d.item for d in decisions if d.rule.path == FulfillmentPath.WAREHOUSE}
    by_warehouse: dict[uuid.UUID, dict[uuid.UUID, OrderItem]] = defaultdict(dict)
    for line_id, warehouse_id in StockReservation.objects.filter(
        order_id=order.pk, status=ReservationStatus.ACTIVE, order_line_id__in=list(warehoused)
    ).values_list("order_line_id", "lot__warehouse_id"):
        by_warehouse[warehouse_id][line_id] = warehoused[line_id]
    for warehouse_id, warehouse_lines in sorted(by_warehouse.items(), key=lambda pair: str(pair[0])):
        tasks.append(
            _new_task(order, TaskKind.PICK_PACK, list(warehouse_lines.values()), today, warehouse_id=warehouse_id)
        )

    backordered = [d.item for d in decisions if d.rule.path == FulfillmentPath.BACKORDER]
    if backordered:
        tasks.append(_new_task(order, TaskKind.PICK_PACK, backordered, today))

    by_vendor: dict[Any, list[OrderItem]] = defaultdict(list)
    for decision in decisions:
        if decision.rule.path == FulfillmentPath.DROPSHIP:
            by_vendor[decision.item.product.vendor].append(decision.item)
    for vendor, lines in sorted(by_vendor.items(), key=lambda pair: pair[0].code):
        purchase_order = purchase_order_create_dropship(
            actor=actor,
            vendor=vendor,
            order_id=order.pk,
            lines=[PurchaseLine(item.product, item.quantity, item.pk) for item in lines],
        )
        tasks.append(_new_task(order, TaskKind.DROPSHIP, lines, today, purchase_order=purchase_order))

    training = [d.item for d in decisions if d.item.product.requires_training]
    if training:
        tasks.append(_new_task(order, TaskKind.PATIENT_TRAINING, training, today))
    return tasks


def fulfillment_route(*, order: Order, actor: Any, today: dt.date | None = None) -> list[FulfillmentTask]:
    """Route every line of an order entering ``in_progress`` and create its fulfillment work.

    Call with the order locked, inside its transition. Writes each line's path and rule, the
    tasks (and dropship purchase orders), and one timeline entry with every decision and its
    reason. Raises FulfillmentUnroutable, naming the lines, when a line has no path; the
    caller's transaction then changes nothing.
    """
    today = today or timezone.localdate()
    items = list(order.items.select_related("product__vendor"))
    decisions = _decide(order, items)
    for decision in decisions:
        item = decision.item
        item.fulfillment_path = decision.rule.path
        item.fulfillment_rule = decision.rule.code
        if decision.rule.code == "warehouse_reserved_now":
            item.stock_status = StockStatus.RESERVED
        with_history_user(item, actor)
        item.save(update_fields=["fulfillment_path", "fulfillment_rule", "stock_status"])
    tasks = _create_work(order, decisions, actor, today)
    record_event(
        order=order,
        kind=EventKind.FULFILLMENT,
        actor=actor,
        actor_kind=actor_kind_of(actor, None),
        from_status=order.status,
        to_status=order.status,
        reason="; ".join(f"{d.item.sku}: {d.rule.description}" for d in decisions),
        payload={
            "decisions": [
                {"sku": d.item.sku, "path": d.rule.path.value, "rule": d.rule.code, "reason": d.rule.description}
                for d in decisions
            ],
            "tasks": [task.kind for task in tasks],
        },
    )
    return tasks


def fulfillment_stop(*, order: Order, actor: Any) -> None:
    """Undo an order's fulfillment when it is cancelled or rejected.

    Call with the order locked, inside its transition. Releases its reserved stock, cancels its
    open tasks and open dropship purchase orders, and notes what was undone on the timeline.
    Idempotent: a second call finds nothing to undo and writes nothing.
    """
    released = stock_release(order_id=order.pk, actor=actor)
    open_tasks = list(
        FulfillmentTask.objects.select_for_update(of=("self",))
        .filter(order=order, status__in=[TaskStatus.OPEN, TaskStatus.IN_PROGRESS])
        .select_related("purchase_order")
        .order_by("pk")
    )
    cancelled_purchase_orders = []
    for task in open_tasks:
        task.cancel()
        task.save(update_fields=["status"])
        task_changed(task)
        purchase_order = task.purchase_order
        if purchase_order is not None and purchase_order.is_open:
            purchase_order_cancel(purchase_order_id=purchase_order.pk, actor=actor)
            cancelled_purchase_orders.append(purchase_order.number)
    if not (released or open_tasks):
        return
    parts = []
    if released:
        parts.append(f"released {released} reserved units")
    if open_tasks:
        parts.append(f"cancelled {len(open_tasks)} fulfillment tasks")
    if cancelled_purchase_orders:
        parts.append("cancelled purchase orders " + ", ".join(cancelled_purchase_orders))
    record_event(
        order=order,
        kind=EventKind.FULFILLMENT,
        actor=actor,
        actor_kind=actor_kind_of(actor, None),
        from_status=order.status,
        to_status=order.status,
        reason="Fulfillment stopped: " + "; ".join(parts) + ".",
        payload={"released_units": released, "cancelled_tasks": [str(task.pk) for task in open_tasks]},
    )


def fulfillment_delivered(*, order: Order, actor: Any) -> None:
    """Stamp delivery on the order's shipped tasks as the order completes. Call inside the transition."""
    FulfillmentTask.objects.filter(
        order=order, kind__in=SHIPPING_TASK_KINDS, status=TaskStatus.DONE, delivered_at__isnull=True
    ).update(delivered_at=timezone.now())
