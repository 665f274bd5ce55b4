"""Staffing of the warehouses' fulfillment work: shifts, and each warehouse's day planned against them
(``StaffingPlan``), kept current by the workforce agent (seed 000: "recalculates staffing when
fulfillment_tasks change").

A change to a warehouse task (created, started, assigned, done, cancelled) or to a shift publishes
``staffing.changed`` with the warehouse and the day (ids and a date, no PHI) in the same
transaction; the workforce agent then recalculates that day's plan (``staffing_plan_recalculate``).
Tasks without a warehouse (dropship, patient training) are not warehouse work and are not planned.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import models, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import User
from core.outbox import outbox_publish

from .models import FulfillmentTask, Shift, StaffingPlan, TaskStatus

STAFFING_CHANGED = "staffing.changed"


def staffing_changed(*, aggregate: models.Model, warehouse_id: Any, day: dt.date) -> None:
    """Announce that ``warehouse_id``'s work or shifts on ``day`` changed. Call inside the atomic
    block of the change."""
    outbox_publish(
        topic=STAFFING_CHANGED,
        aggregate=aggregate,
        payload={"warehouse_id": str(warehouse_id), "day": day.isoformat()},
    )


def task_changed(task: FulfillmentTask) -> None:
    """``staffing_changed`` for a task's warehouse and due day (nothing for a task without a warehouse)."""
    if task.warehouse_id is not None:
        staffing_changed(aggregate=task, warehouse_id=task.warehouse_id, day=task.due_date)


def people_on_shift(*, warehouse_id: Any, day: dt.date) -> models.QuerySet[User]:
    """The people with a shift at ``warehouse_id`` on ``day``."""
    return User.objects.filter(shifts__warehouse_id=warehouse_id, shifts__day=day).distinct().order_by("username")


def shift_save(*, shift: Shift) -> Shift:
    """Save a new or changed shift and announce the days it touches (the old one too when moved)."""
    with transaction.atomic():
        before = Shift.objects.filter(pk=shift.pk).values("warehouse_id", "day").first() if shift.pk else None
        shift.save()
        touched = {(shift.warehouse_id, shift.day)}
        if before is not None:
            touched.add((before["warehouse_id"], before["day"]))
        for warehouse_id, day in sorted(touched, key=lambda pair: (str(pair[0]), pair[1])):
            staffing_changed(aggregate=shift, warehouse_id=warehouse_id, day=day)
    return shift


def shift_delete(*, shift: Shift) -> None:
    """Delete a shift and announce its day."""
    with transaction.atomic():
        staffing_changed(aggregate=shift, warehouse_id=shift.warehouse_id, day=shift.day)
        shift.delete()


def staffing_plan_recalculate(*, warehouse_id: Any, day: dt.date) -> StaffingPlan:
    """Plan ``warehouse_id``'s ``day``: the open and running tasks due that day against the minutes of
    the people on shift. Tasks are fitted in the order they were created; those past the available
    minutes are the ones that do not fit. Writes the plan (one row per warehouse and day, replaced
    in one statement, so concurrent recalculations never duplicate it) and returns it."""
    tasks = list(
        FulfillmentTask.objects.filter(
            warehouse_id=warehouse_id, due_date=day, status__in=(TaskStatus.OPEN, TaskStatus.IN_PROGRESS)
        )
        .order_by("created_at", "pk")
        .values_list("pk", "effort_minutes")
    )
    available = Shift.objects.filter(warehouse_id=warehouse_id, day=day).aggregate(total=Sum("minutes"))["total"] or 0
    required = sum(effort for _pk, effort in tasks)
    used, unfitted = 0, []
    for pk, effort in tasks:
        if used + effort <= available:
            used += effort
        else:
            unfitted.append(str(pk))
    plan = StaffingPlan(
        warehouse_id=warehouse_id,
        day=day,
        open_tasks=len(tasks),
        required_minutes=required,
        available_minutes=available,
        utilisation_percent=round(100 * required / available) if available else None,
        unfitted_task_ids=unfitted,
        calculated_at=timezone.now(),
    )
    StaffingPlan.objects.bulk_create(
        [plan],
        update_conflicts=True,
        unique_fields=["warehouse", "day"],
        update_fields=[
            "open_tasks",
            "required_minutes",
            "available_minutes",
            "utilisation_percent",
            "unfitted_task_ids",
            "calculated_at",
        ],
    )
    return StaffingPlan.objects.get(warehouse_id=warehouse_id, day=day)
