"""Ordering agent (seed 000: "ingests open orders (portal + forecasted) and updates
patient_work_orders"): keeps each patient's work orders current (``orders.work_orders``) when an
order of theirs is created, approved, delivered or cancelled, and every night, when refills
become due with no event at all."""

from __future__ import annotations

import logging

from django.utils import timezone

from catalog import reorders
from orders import work_orders
from orders.models import Order

from .models import AgentName
from .runtime import agent_task, event_aggregate_id

logger = logging.getLogger(__name__)

NIGHTLY_BATCH = 500


@agent_task(AgentName.ORDERING)
def refresh_work_orders(*, event_id: str, topic: str) -> None:
    """``order.created`` / ``order.approved`` / ``order.delivered`` / ``order.cancelled``: refresh the
    work orders of the order's patient."""
    order_id = event_aggregate_id(event_id)
    patient_id = Order.objects.filter(pk=order_id).values_list("patient_id", flat=True).first() if order_id else None
    if patient_id is not None:
        work_orders.work_orders_refresh(patient_id=patient_id, on=timezone.localdate())


@agent_task(AgentName.ORDERING, max_retries=3)
def refresh_all_work_orders() -> dict[str, int]:
    """Beat, nightly: refresh every patient's work orders (upcoming ones become due), in batches, then
    the vendor reorder drafts from the stock and the work orders (``catalog.reorders``)."""
    today, after, patients = timezone.localdate(), None, 0
    while batch := work_orders.work_orders_patients(after=after, limit=NIGHTLY_BATCH):
        for patient_id in batch:
            work_orders.work_orders_refresh(patient_id=patient_id, on=today)
        patients += len(batch)
        after = batch[-1]
        logger.info("Work orders refreshed for %d patients so far", patients)
    drafts = reorders.reorder_drafts_refresh(today=today, demand=work_orders.work_order_demand())
    return {"patients": patients, "reorder_drafts": len(drafts)}
