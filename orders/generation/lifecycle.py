"""The rows one order leaves behind on its way to a status, as the services write them.

``OrderWriter.order`` queues, for one order, what ``order_create`` and each transition of
``orders.services`` (with ``orders.routing``, ``orders.fulfillment`` and ``catalog.services``)
write, step by step:

* create: the order and its history row (``+``), its lines and theirs, one stock reservation and
  one reservation movement per line (the lot of the order's quarter), the ``created`` and
  ``compliance`` timeline events, the submission snapshot and ``order.created`` in the outbox;
  a hold moves it to ``on_hold`` (history row, ``hold`` event by the checks, ``order.held``);
* verify: the approval snapshot (with the reviewer's resolution when it needed review), its
  ``compliance`` event, the ``verify`` event, ``order.verified`` and ``order.approved``;
* request_payment, mark_paid (cash pay, by the system): history row, event, outbox event;
* start_fulfillment: the lines routed (``warehouse_reserved``, a history row each), one pick/pack
  task per warehouse with its items, the transition and the routing decisions on the timeline;
* ship: the reservations picked (pick movements), each task shipped with its timeline entry, then
  the ``ship`` transition; complete: the transition, the tasks stamped delivered;
* cancel / reject: the transition with its reason, active reservations released (release
  movements) and the ``Fulfillment stopped`` entry.

Rows that change along the way (the order, its lines, reservations, tasks) are written once, as
they end; history, timeline, snapshots, the ledger and the outbox keep every step. Not written:
what agents do after commit (invoices, payment links, pharmacy prescriptions) and PHI access records.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from catalog.models import MovementKind, ReservationStatus, StockMovement, StockReservation
from compliance.models import ComplianceSnapshot, SnapshotKind
from core.models import OutboxEvent, OutboxStatus
from patients.models import PayerType

from ..models import (
    ActorKind,
    DeliveryMode,
    DeliveryWindow,
    EventKind,
    FulfillmentPath,
    FulfillmentTask,
    FulfillmentTaskItem,
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
    Priority,
    Source,
    StockStatus,
    TaskKind,
    TaskStatus,
)
from ..routing import DUE_IN_DAYS, PICK_PACK_MINUTES_PER_LINE, RULES_BY_CODE, STANDARD_EFFORT_MINUTES
from . import content
from .tables import Tables
from .templates import Outcome, dated_inputs
from .world import Catalog, Doctor, PatientRef, TerritoryWorld, _quarter_start

HistoricalOrder = Order.history.model
HistoricalOrderItem = OrderItem.history.model
WRITTEN_MODELS = (
    Order,
    HistoricalOrder,
    OrderItem,
    HistoricalOrderItem,
    OrderEvent,
    OutboxEvent,
    ComplianceSnapshot,
    StockReservation,
    StockMovement,
    FulfillmentTask,
    FulfillmentTaskItem,
)

# Steps after creation that lead to each status (cash pay waits for payment before fulfillment).
_FULFILLED = ("start_fulfillment",)
PATHS: dict[str, tuple[str, ...]] = {
    OrderStatus.PENDING_VERIFICATION: (),
    OrderStatus.ON_HOLD: ("hold",),
    OrderStatus.VERIFIED: ("verify",),
    OrderStatus.AWAITING_PAYMENT: ("verify", "request_payment"),
    OrderStatus.PAID: ("verify", "request_payment", "mark_paid"),
    OrderStatus.IN_PROGRESS: ("verify", *_FULFILLED),
    OrderStatus.SHIPPED: ("verify", *_FULFILLED, "ship"),
    OrderStatus.COMPLETED: ("verify", *_FULFILLED, "ship", "complete"),
}
# How long after the previous step each step happens, in seconds (low, high).
_DELAYS = {
    "hold": (0.05, 0.2),
    "verify": (3600, 2 * 86400),
    "request_payment": (0.5, 3),
    "mark_paid": (3600, 3 * 86400),
    "start_fulfillment": (3600, 2 * 86400),
    "ship": (4 * 3600, 2 * 86400),
    "complete": (2 * 86400, 6 * 86400),
    "cancel": (3600, 5 * 86400),
    "reject": (3600, 3 * 86400),
}
# Days before now an order in each open status was placed (orders do not stay open for years).
RECENT_DAYS: dict[str, tuple[float, float]] = {
    OrderStatus.PENDING_VERIFICATION: (0, 10),
    OrderStatus.ON_HOLD: (0, 10),
    OrderStatus.VERIFIED: (1, 12),
    OrderStatus.AWAITING_PAYMENT: (1, 12),
    OrderStatus.PAID: (2, 12),
    OrderStatus.IN_PROGRESS: (2, 14),
    OrderStatus.SHIPPED: (4, 20),
}

_TRANSITION_TOPICS = {
    "hold": ("order.held",),
    "verify": ("order.verified", "order.approved"),
    "request_payment": ("order.awaiting_payment",),
    "mark_paid": ("order.paid",),
    "start_fulfillment": ("order.fulfillment.started",),
    "ship": ("order.shipped",),
    "complete": ("order.delivered",),
    "cancel": ("order.cancelled",),
    "reject": ("order.rejected",),
}
_TARGET = {
    "hold": OrderStatus.ON_HOLD,
    "verify": OrderStatus.VERIFIED,
    "request_payment": OrderStatus.AWAITING_PAYMENT,
    "mark_paid": OrderStatus.PAID,
    "start_fulfillment": OrderStatus.IN_PROGRESS,
    "ship": OrderStatus.SHIPPED,
    "complete": OrderStatus.COMPLETED,
    "cancel": OrderStatus.CANCELLED,
    "reject": OrderStatus.REJECTED,
}
_REVIEW_NOTE = "Reviewed with the prescriber: continue as ordered."

# Ids: generated rows' are text (``_new_id``); the world's (users, territories) are UUIDs.
Id = uuid.UUID | str

# Version 4 and the RFC 4122 variant in a 128-bit number.
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID_V4 = (0x4000 << 64) | (0x8000 << 48)

_REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # as orders.models.new_reference
_REFERENCE_SPACE = 32**6  # 2**30
_REFERENCE_MULTIPLIER = 0x2545F491  # odd: i -> (i * M + offset) mod 2**30 is a bijection


def reference_of(number: int) -> str:
    chars = []
    for _ in range(6):
        number, digit = divmod(number, 32)
        chars.append(_REFERENCE_ALPHABET[digit])
    text = "".join(chars)
    return f"{text[:3]}-{text[3:]}"


@dataclass
class References:
    """Order references without repeats: the ``index``-th order of a run gets the bijective
    scramble of its index (distinct within the run), unless an existing order already has it."""

    offset: int
    taken: frozenset[str]
    run_size: int

    def of(self, index: int, rng: random.Random) -> str:
        reference = reference_of((index * _REFERENCE_MULTIPLIER + self.offset) % _REFERENCE_SPACE)
        while reference in self.taken:
            # An earlier order has it: take one no index of this run maps to.
            number = rng.randrange(_REFERENCE_SPACE)
            index_of = ((number - self.offset) * pow(_REFERENCE_MULTIPLIER, -1, _REFERENCE_SPACE)) % _REFERENCE_SPACE
            if index_of >= self.run_size:
                reference = reference_of(number)
        return reference


@dataclass
class _Clock:
    now: dt.datetime
    at: dt.datetime

    def after(self, seconds: float) -> dt.datetime:
        self.at = min(self.at + dt.timedelta(seconds=seconds), self.now)
        return self.at


class OrderWriter:
    """Queues the rows of generated orders (``order``) and writes them per batch (``write``)."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        outcomes_held: dict[str, list[Outcome]],
        outcomes_passing: dict[str, list[Outcome]],
        references: References,
        now: dt.datetime,
        rng: random.Random,
    ) -> None:
        self.catalog = catalog
        self.held = outcomes_held
        self.passing = outcomes_passing
        self.references = references
        self.now = now
        self.rng = rng
        self.tables = Tables(*WRITTEN_MODELS)
        self._territory_text: dict[Any, str] = {}

    def _new_id(self) -> str:
        """A random (version 4) UUID in its text form, drawn from the batch's generator: the rows
        take it as is, and payloads name it as ``str(uuid)`` would."""
        number = (self.rng.getrandbits(128) & _UUID_CLEAR) | _UUID_V4
        text = f"{number:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    # --- choosing -----------------------------------------------------------------------------
    def _profile_for(self, status: str, world: TerritoryWorld) -> str | None:
        """The payer profile of an order ending in ``status``: cash pay for the payment statuses,
        insurance for ``verified`` (a verified cash order asks for payment at once), else any, as
        weighted. None when the territory has no patient of a fitting profile."""
        options = [p for p in content.PAYER_PROFILES if world.patients.get(p.key)]
        if status in (OrderStatus.AWAITING_PAYMENT, OrderStatus.PAID):
            options = [p for p in options if p.payer_type == PayerType.CASH]
        elif status == OrderStatus.VERIFIED:
            options = [p for p in options if p.payer_type == PayerType.INSURANCE]
        if not options:
            return None
        return self.rng.choices(options, [p.weight for p in options])[0].key

    def _patient(self, world: TerritoryWorld, profile: str, latest: dt.datetime, sex: str) -> PatientRef | None:
        candidates = world.patients.get(profile) or []
        chosen = None
        for _ in range(20):
            patient = self.rng.choice(candidates)
            if patient.created_at <= latest:
                chosen = patient
                if patient.sex == sex:
                    break
        return chosen

    # --- one order ----------------------------------------------------------------------------
    def order(self, *, index: int, status: str, world: TerritoryWorld) -> bool:
        """Queue one order of ``world`` that ends in ``status``; False when no patient fits (the
        territory has no patient registered early enough), nothing queued then."""
        rng = self.rng
        steps: tuple[str, ...]
        if status == OrderStatus.CANCELLED:
            steps = (*rng.choice(((), ("hold",), ("verify",))), "cancel")
        elif status == OrderStatus.REJECTED:
            steps = (*rng.choice(((), ("hold",))), "reject")
        else:
            steps = PATHS[status]
        profile = self._profile_for(status, world)
        if profile is None:
            return False
        if profile == "cash" and "verify" in steps and steps[-1] != "verify":
            at = steps.index("verify") + 1
            steps = (*steps[:at], "request_payment", *steps[at:])
            if "start_fulfillment" in steps:
                at = steps.index("start_fulfillment")
                steps = (*steps[:at], "mark_paid", *steps[at:])
        pool = (self.held if "hold" in steps else self.passing).get(profile)
        if not pool:
            return False
        outcome = rng.choice(pool)
        sex = str(outcome.inputs["patient"]["sex"])
        if status in RECENT_DAYS:
            low, high = RECENT_DAYS[status]
            placed = self.now - dt.timedelta(days=low + rng.random() * (high - low))
            patient = self._patient(world, profile, placed, sex)
        else:
            latest = self.now - dt.timedelta(days=8)
            patient = self._patient(world, profile, latest, sex)
            if patient is not None:
                span = (latest - patient.created_at).total_seconds()
                placed = patient.created_at + dt.timedelta(seconds=rng.random() * span)
        if patient is None:
            return False
        self._write_order(index, world, patient, outcome, steps, placed)
        return True

    def _write_order(
        self,
        index: int,
        world: TerritoryWorld,
        patient: PatientRef,
        outcome: Outcome,
        steps: tuple[str, ...],
        placed: dt.datetime,
    ) -> None:
        rng, tables = self.rng, self.tables
        clock = _Clock(now=self.now, at=placed)
        doctor: Doctor = world.doctor_of(patient.provider_id)
        ops = rng.choice(world.ops)
        creator = doctor.user_id if outcome.signed else ops
        order_date = placed.date()
        requested = order_date + dt.timedelta(days=rng.randint(3, 14)) if rng.random() < 0.5 else None
        basket = outcome.basket
        order_id = self._new_id()
        order: dict[str, Any] = {
            "id": order_id,
            "reference": self.references.of(index, rng),
            "territory_id": world.id,
            "patient_id": patient.id,
            "provider_id": patient.provider_id,
            "status": OrderStatus.PENDING_VERIFICATION,
            "source": (Source.PORTAL if rng.random() < 0.6 else Source.API) if outcome.signed else Source.PORTAL,
            "priority": rng.choices((Priority.ROUTINE, Priority.URGENT, Priority.STAT), (90, 9, 1))[0],
            "delivery_mode": rng.choices(
                (DeliveryMode.SHIP_TO_PATIENT, DeliveryMode.SHIP_TO_PRACTICE, DeliveryMode.PICKUP), (85, 10, 5)
            )[0],
            "requested_date": requested,
            "delivery_window": rng.choices(
                (DeliveryWindow.ANY, DeliveryWindow.MORNING, DeliveryWindow.AFTERNOON), (70, 20, 10)
            )[0],
            "order_date": order_date,
            "payer_type": outcome.profile.payer_type,
            "ai_disposition": None,
            "approver_id": None,
            "created_by_id": creator,
            "service_type": basket.service_type,
            "diagnosis_codes": list(basket.diagnosis_codes),
            "notes": rng.choice(content.NOTES),
            "insurance_details": None,
            "verification_data": None,
            "f2f_date": None,
            "delivery_address": None,
            "signed_by_id": doctor.user_id if outcome.signed else None,
            "signed_at": placed if outcome.signed else None,
            "signature_hash": _signature_hash(order_id, patient, order_date, basket) if outcome.signed else "",
            "created_at": placed,
            "updated_at": placed,
            "verified_at": None,
            "completed_at": None,
            "cancelled_at": None,
        }
        timeline = _Timeline(self, order, world.id)

        # order_create: the order, its lines (stock reserved first), the timeline entry and outbox event.
        self._history(order, placed, "+", creator)
        lines = self._lines(order, basket, placed, creator)
        created = timeline.event(placed, EventKind.CREATED, creator, ActorKind.STAFF, to_status=order["status"])
        timeline.outbox("order.created", created)
        checked_at = clock.after(0.04)
        snapshot_id = self._snapshot(order, outcome, SnapshotKind.SUBMISSION, checked_at, creator, resolution=None)
        order["ai_disposition"] = outcome.disposition
        timeline.compliance(checked_at, outcome, snapshot_id, "submission")
        request_user = creator  # the history of saves inside the creating request names its user

        for step in steps:
            low, high = _DELAYS[step]
            at = clock.after(low + rng.random() * (high - low))
            if step in ("hold",):
                self._transition(
                    order,
                    timeline,
                    step,
                    at,
                    None,
                    ActorKind.AI,
                    request_user,
                    reason=outcome.hold_reason,
                    payload={"disposition": outcome.disposition},
                )
            elif step == "verify":
                self._verify(order, timeline, outcome, at, ops)
            elif step in ("request_payment", "mark_paid"):
                self._transition(order, timeline, step, at, None, ActorKind.SYSTEM, None)
            elif step == "start_fulfillment":
                self._start_fulfillment(order, timeline, lines, at, ops)
            elif step == "ship":
                self._ship(order, timeline, lines, at, ops)
            elif step == "complete":
                order["completed_at"] = at
                self._transition(order, timeline, step, at, ops, ActorKind.STAFF, ops)
                for task in lines.tasks:
                    task["delivered_at"] = at
            else:  # cancel, reject
                actor = doctor.user_id if step == "cancel" and order["status"] != OrderStatus.VERIFIED else ops
                reason = rng.choice(content.CANCEL_REASONS if step == "cancel" else content.REJECT_REASONS)
                if step == "cancel":
                    order["cancelled_at"] = at
                self._transition(order, timeline, step, at, actor, ActorKind.STAFF, actor, reason=reason)
                self._release(order, timeline, lines, at, actor)
        for task in lines.tasks:
            tables[FulfillmentTask].add(**task)
        for reservation in lines.reservations:
            tables[StockReservation].add(**reservation)
        for item in lines.items:
            tables[OrderItem].add(**item)
        tables[Order].add(**order)

    # --- pieces -------------------------------------------------------------------------------
    def _history(self, row: dict[str, Any], at: dt.datetime, kind: str, user: Id | None, *, item: bool = False) -> None:
        model = HistoricalOrderItem if item else HistoricalOrder
        self.tables[model].add(**row, history_date=at, history_type=kind, history_user_id=user)

    def _lines(self, order: dict[str, Any], basket: content.Basket, at: dt.datetime, creator: Id) -> _Lines:
        lines = _Lines()
        quarter = _quarter_start(at.date())
        for line in basket.lines:
            product = self.catalog.products[line.sku]
            item = {
                "id": self._new_id(),
                "order_id": order["id"],
                "product_id": product.pk,
                "sku": product.sku,
                "quantity": line.quantity,
                "unit_price_cents": product.price_cents,
                "stock_status": StockStatus.RESERVED,
                "stock_available": None,
                "fulfillment_path": "",
                "fulfillment_rule": "",
                "dosage_text": line.dosage_text,
                "dose_frequency": line.dose_frequency,
                "dose_period": line.dose_period,
                "dose_period_unit": line.dose_period_unit,
                "refills": line.refills,
                "days_supply": line.days_supply,
            }
            lines.items.append(item)
            lot_id = self.catalog.lots[(product.sku, quarter)]
            lines.warehouse_of_item[item["id"]] = self.catalog.warehouse_of[product.sku]
            lines.reservations.append(
                {
                    "id": self._new_id(),
                    "lot_id": lot_id,
                    "order_id": order["id"],
                    "order_line_id": item["id"],
                    "quantity": line.quantity,
                    "status": ReservationStatus.ACTIVE,
                    "created_at": at,
                    "closed_at": None,
                }
            )
            self._movement(lot_id, MovementKind.RESERVATION, at, order["id"], None, reserved=line.quantity)
        for item in lines.items:
            self._history(item, at, "+", creator, item=True)
        return lines

    def _movement(
        self,
        lot_id: Id,
        kind: str,
        at: dt.datetime,
        order_id: Id,
        actor: Id | None,
        *,
        on_hand: int = 0,
        reserved: int = 0,
    ) -> None:
        self.tables[StockMovement].add(
            id=self._new_id(),
            lot_id=lot_id,
            kind=kind,
            on_hand_delta=on_hand,
            reserved_delta=reserved,
            reason="",
            order_id=order_id,
            actor_id=actor,
            created_at=at,
        )

    def _snapshot(
        self,
        order: dict[str, Any],
        outcome: Outcome,
        kind: str,
        at: dt.datetime,
        actor: Id | None,
        *,
        resolution: dict[str, Any] | None,
    ) -> Id:
        snapshot_id = self._new_id()
        result = dict(outcome.result)
        if resolution:
            result["resolution"] = resolution
        self.tables[ComplianceSnapshot].add(
            id=snapshot_id,
            order_id=order["id"],
            territory_id=order["territory_id"],
            kind=kind,
            disposition=outcome.disposition,
            rule_versions=outcome.rule_versions,
            inputs=dated_inputs(outcome, order_date=order["order_date"], requested_date=order["requested_date"]),
            result=result,
            actor_id=actor,
            created_at=at,
        )
        return snapshot_id

    def _transition(
        self,
        order: dict[str, Any],
        timeline: _Timeline,
        step: str,
        at: dt.datetime,
        actor: Id | None,
        actor_kind: str,
        history_user: Id | None,
        *,
        reason: str = "",
        payload: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``order_transition``: the status flips, the order is saved (a history row) and the
        transition goes on the timeline; returns the event (the outbox events follow ``after``)."""
        from_status = order["status"]
        order["status"] = _TARGET[step]
        order["updated_at"] = at
        self._history(order, at, "~", history_user)
        event = timeline.event(
            at,
            EventKind.TRANSITION,
            actor,
            actor_kind,
            from_status=from_status,
            to_status=order["status"],
            transition=step,
            reason=reason,
            payload=payload,
        )
        if step not in ("start_fulfillment", "cancel", "reject"):  # theirs follow the routing entry
            self._publish(timeline, step, event)
        return event

    def _publish(self, timeline: _Timeline, step: str, event: dict[str, Any]) -> None:
        for topic in _TRANSITION_TOPICS[step]:
            timeline.outbox(topic, event)

    def _verify(self, order: dict[str, Any], timeline: _Timeline, outcome: Outcome, at: dt.datetime, ops: Id) -> None:
        review = outcome.disposition == "needs_review"
        resolution = (
            {"by": "review", "note": _REVIEW_NOTE, "actor_id": str(ops), "findings": outcome.codes} if review else None
        )
        snapshot_id = self._snapshot(order, outcome, SnapshotKind.APPROVAL, at, ops, resolution=resolution)
        timeline.compliance(at, outcome, snapshot_id, "approval")
        order["ai_disposition"] = "clear"
        order["verified_at"] = at
        order["approver_id"] = ops
        gate: dict[str, Any] = {"compliance": outcome.disposition}
        if review:
            gate["review"] = {"note": _REVIEW_NOTE, "findings": outcome.codes}
        self._transition(
            order,
            timeline,
            "verify",
            at,
            ops,
            ActorKind.STAFF,
            ops,
            reason=_REVIEW_NOTE if review else "",
            payload=gate,
        )

    def _start_fulfillment(
        self, order: dict[str, Any], timeline: _Timeline, lines: _Lines, at: dt.datetime, ops: Id
    ) -> None:
        event = self._transition(order, timeline, "start_fulfillment", at, ops, ActorKind.STAFF, ops)
        rule = RULES_BY_CODE["warehouse_reserved"]
        for item in lines.items:
            item["fulfillment_path"] = FulfillmentPath.WAREHOUSE
            item["fulfillment_rule"] = rule.code
            self._history(item, at, "~", ops, item=True)
        by_warehouse: dict[Id, list[dict[str, Any]]] = defaultdict(list)
        for item in lines.items:
            by_warehouse[lines.warehouse_of_item[item["id"]]].append(item)
        for warehouse_id, items in sorted(by_warehouse.items(), key=lambda pair: str(pair[0])):
            task_id = self._new_id()
            lines.tasks.append(
                {
                    "id": task_id,
                    "order_id": order["id"],
                    "territory_id": order["territory_id"],
                    "kind": TaskKind.PICK_PACK,
                    "status": TaskStatus.OPEN,
                    "warehouse_id": warehouse_id,
                    "purchase_order_id": None,
                    "assignee_id": None,
                    "due_date": at.date() + dt.timedelta(days=DUE_IN_DAYS[TaskKind.PICK_PACK]),
                    "effort_minutes": STANDARD_EFFORT_MINUTES[TaskKind.PICK_PACK]
                    + PICK_PACK_MINUTES_PER_LINE * len(items),
                    "carrier": "",
                    "tracking_number": "",
                    "shipped_at": None,
                    "delivered_at": None,
                    "created_at": at,
                    "completed_at": None,
                    "warehouse_items": [item["id"] for item in items],
                }
            )
            for item in items:
                self.tables[FulfillmentTaskItem].add(fulfillmenttask_id=task_id, orderitem_id=item["id"])
        timeline.event(
            at,
            EventKind.FULFILLMENT,
            ops,
            ActorKind.STAFF,
            from_status=order["status"],
            to_status=order["status"],
            reason="; ".join(f"{item['sku']}: {rule.description}" for item in lines.items),
            payload={
                "decisions": [
                    {"sku": item["sku"], "path": rule.path.value, "rule": rule.code, "reason": rule.description}
                    for item in lines.items
                ],
                "tasks": [TaskKind.PICK_PACK.value for _ in lines.tasks],
            },
        )
        self._publish(timeline, "start_fulfillment", event)

    def _ship(self, order: dict[str, Any], timeline: _Timeline, lines: _Lines, at: dt.datetime, ops: Id) -> None:
        shipments = []
        for task in lines.tasks:
            picked = 0
            for reservation in lines.reservations:
                if reservation["order_line_id"] in task["warehouse_items"] and reservation["status"] == "active":
                    quantity = reservation["quantity"]
                    reservation.update(status=ReservationStatus.CONSUMED, closed_at=at)
                    self._movement(
                        reservation["lot_id"],
                        MovementKind.PICK,
                        at,
                        order["id"],
                        ops,
                        on_hand=-quantity,
                        reserved=-quantity,
                    )
                    picked += quantity
            carrier = self.rng.choice(content.CARRIERS)
            tracking = f"1Z{self.rng.randrange(16**16):016X}"
            task.update(
                status=TaskStatus.DONE,
                completed_at=at,
                assignee_id=ops,
                shipped_at=at,
                carrier=carrier,
                tracking_number=tracking,
            )
            shipments.append({"carrier": carrier, "tracking_number": tracking})
            timeline.event(
                at,
                EventKind.FULFILLMENT,
                ops,
                ActorKind.STAFF,
                from_status=order["status"],
                to_status=order["status"],
                reason=f"Picked and packed {picked} units; shipped with {carrier}.",
                payload={
                    "task_id": task["id"],
                    "picked_units": picked,
                    "carrier": carrier,
                    "tracking_number": tracking,
                },
            )
        self._transition(order, timeline, "ship", at, ops, ActorKind.STAFF, ops, payload={"shipments": shipments})

    def _release(self, order: dict[str, Any], timeline: _Timeline, lines: _Lines, at: dt.datetime, actor: Id) -> None:
        released = 0
        for reservation in lines.reservations:
            if reservation["status"] == ReservationStatus.ACTIVE:
                reservation.update(status=ReservationStatus.RELEASED, closed_at=at)
                self._movement(
                    reservation["lot_id"],
                    MovementKind.RELEASE,
                    at,
                    order["id"],
                    actor,
                    reserved=-reservation["quantity"],
                )
                released += reservation["quantity"]
        if released:
            timeline.event(
                at,
                EventKind.FULFILLMENT,
                actor,
                ActorKind.STAFF,
                from_status=order["status"],
                to_status=order["status"],
                reason=f"Fulfillment stopped: released {released} reserved units.",
                payload={"released_units": released, "cancelled_tasks": []},
            )
        step = "cancel" if order["status"] == OrderStatus.CANCELLED else "reject"
        self._publish(timeline, step, timeline.last_transition)

    def write(self) -> dict[str, int]:
        """Write the queued rows (call inside a transaction); rows written per table."""
        return self.tables.write()


@dataclass
class _Lines:
    items: list[dict[str, Any]] = field(default_factory=list)
    reservations: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    warehouse_of_item: dict[Id, Id] = field(default_factory=dict)


class _Timeline:
    """The order's timeline events (numbered from 1) and the outbox events that announce them."""

    def __init__(self, writer: OrderWriter, order: dict[str, Any], territory_id: Id) -> None:
        self.writer = writer
        self.order = order
        self.territory_id = territory_id
        self.territory_text = str(territory_id)
        self.sequence = 0
        self.last_transition: dict[str, Any] = {}

    def event(
        self,
        at: dt.datetime,
        kind: str,
        actor: Id | None,
        actor_kind: str,
        *,
        from_status: str = "",
        to_status: str = "",
        transition: str = "",
        reason: str = "",
        payload: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        self.sequence += 1
        event = {
            "id": self.writer._new_id(),
            "order_id": self.order["id"],
            "territory_id": self.territory_id,
            "kind": kind,
            "from_status": from_status,
            "to_status": to_status,
            "transition": transition,
            "actor_id": actor,
            "actor_kind": actor_kind,
            "reason": reason or None,
            "payload": payload or None,
            "created_at": at,
            "sequence": self.sequence,
        }
        self.writer.tables[OrderEvent].add(**event)
        if kind == EventKind.TRANSITION:
            self.last_transition = event
        return event

    def compliance(self, at: dt.datetime, outcome: Outcome, snapshot_id: Id, check: str) -> None:
        status = self.order["status"]
        self.event(
            at,
            EventKind.COMPLIANCE,
            None,
            ActorKind.AI,
            from_status=status,
            to_status=status,
            payload={
                "snapshot_id": snapshot_id,
                "check": check,
                "disposition": outcome.disposition,
                "findings": outcome.findings,
            },
        )

    def outbox(self, topic: str, event: dict[str, Any]) -> None:
        """``outbox_publish`` with ``event_payload``; delivered a moment later."""
        at = event["created_at"]
        self.writer.tables[OutboxEvent].add(
            id=self.writer._new_id(),
            topic=topic,
            aggregate_type="orders.order",
            aggregate_id=self.order["id"],
            payload={
                "order_id": self.order["id"],
                "territory_id": self.territory_text,
                "event_id": event["id"],
                "from_status": event["from_status"] or None,
                "to_status": event["to_status"] or None,
            },
            status=OutboxStatus.DISPATCHED,
            attempts=1,
            available_at=at,
            last_error="",
            created_at=at,
            dispatched_at=at + dt.timedelta(milliseconds=20),
        )


def _signature_hash(order_id: Id, patient: PatientRef, order_date: dt.date, basket: content.Basket) -> str:
    """As ``orders.services._sign``: the hash of the summary the practitioner signed."""
    summary = {
        "order": str(order_id),
        "patient": str(patient.id),
        "provider": str(patient.provider_id),
        "order_date": order_date.isoformat(),
        "items": sorted([line.sku, line.quantity] for line in basket.lines),
        "diagnosis_codes": list(basket.diagnosis_codes),
    }
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()
