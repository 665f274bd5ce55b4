"""Patient work orders: the next refill of each recurring supply, kept by the ordering agent
(seed 000: "ingests open orders ... and updates patient_work_orders").

One code path with the checks and the patient card: ``patient_supply_status`` gives, per HCPCS code
delivered, the first day an order of the usual quantity may be delivered (quantity limits and the
refill rule, open orders included). A work order's state:

- ``ordered`` while an open order holds the code (or a code sharing its allowance);
- ``contacted``, ``confirmed``, ``skipped``: set by a person or the engagement agent for this refill,
  kept until the eligible day moves (a new delivery starts a new cycle);
- else ``due`` from ``WORK_ORDER_DUE_DAYS`` before the eligible day, and ``upcoming`` before that.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction

from catalog.reorders import Demand
from patients.models import Patient

from .compliance_checks import patient_supply_facts, patient_supply_status
from .models import WORK_ORDER_STATES_KEPT, PatientWorkOrder, WorkOrderState


def work_order_state(*, eligible_on: dt.date, on: dt.date, ordered: bool, kept: str | None = None) -> WorkOrderState:
    """The state of a refill eligible on ``eligible_on``, seen on ``on`` (``kept``: the state a person
    set for the same eligible day, if any)."""
    if ordered:
        return WorkOrderState.ORDERED
    if kept in WORK_ORDER_STATES_KEPT:
        return WorkOrderState(kept)
    if eligible_on <= on + dt.timedelta(days=settings.WORK_ORDER_DUE_DAYS):
        return WorkOrderState.DUE
    return WorkOrderState.UPCOMING


def work_orders_refresh(*, patient_id: Any, on: dt.date) -> list[PatientWorkOrder]:
    """Bring the patient's work orders in line with their deliveries and open orders as of ``on``:
    one per supply with an eligible day, the others removed. Returns them by eligible day. Idempotent."""
    patient = Patient.objects.filter(pk=patient_id).first()
    if patient is None:
        return []
    supply = patient_supply_facts(patient=patient)
    statuses = [s for s in patient_supply_status(patient=patient, on=on, supply=supply) if s.next_eligible]
    on_order = {line.hcpcs for order in supply.open_orders for line in order.lines if line.hcpcs}
    with transaction.atomic():
        existing = {
            w.hcpcs_code: w for w in PatientWorkOrder.objects.select_for_update().filter(patient=patient).order_by("pk")
        }
        kept: list[PatientWorkOrder] = []
        for status in statuses:
            assert status.next_eligible is not None
            current = existing.pop(status.hcpcs, None)
            same_cycle = current is not None and current.eligible_on == status.next_eligible
            state = work_order_state(
                eligible_on=status.next_eligible,
                on=on,
                ordered=bool(on_order & {status.hcpcs, *status.shares_allowance_with}),
                kept=current.state if same_cycle and current is not None else None,
            )
            values = {
                "territory_id": patient.territory_id,
                "last_delivered_on": status.last_delivered,
                "last_quantity": status.quantity,
                "supply_ends": status.supply_ends,
                "eligible_on": status.next_eligible,
                "state": state,
            }
            if current is None:
                current = PatientWorkOrder.objects.create(patient=patient, hcpcs_code=status.hcpcs, **values)
            elif any(getattr(current, field) != value for field, value in values.items()):
                for field, value in values.items():
                    setattr(current, field, value)
                current.save()
            kept.append(current)
        if existing:
            PatientWorkOrder.objects.filter(pk__in=[w.pk for w in existing.values()]).delete()
    return sorted(kept, key=lambda w: (w.eligible_on, w.hcpcs_code))


def work_orders_patients(*, after: Any = None, limit: int) -> list[Any]:
    """Ids of patients with work orders, in id order after ``after``: the nightly run's batches."""
    patients = PatientWorkOrder.objects.order_by("patient_id").values_list("patient_id", flat=True).distinct()
    if after is not None:
        patients = patients.filter(patient_id__gt=after)
    return list(patients[:limit])


def work_order_demand() -> list[Demand]:
    """What the work orders still to be ordered will take from stock (``upcoming``, ``due``,
    ``contacted``, ``confirmed``): each one's last quantity on its eligible day, for vendor reorders."""
    waiting = PatientWorkOrder.objects.filter(
        state__in=(WorkOrderState.UPCOMING, WorkOrderState.DUE, WorkOrderState.CONTACTED, WorkOrderState.CONFIRMED)
    )
    return [
        Demand(hcpcs=code, due_on=due_on, units=units)
        for code, due_on, units in waiting.order_by("eligible_on", "pk").values_list(
            "hcpcs_code", "eligible_on", "last_quantity"
        )
    ]
