"""Workforce agent (seed 000: "recalculates staffing when fulfillment_tasks change"): keeps each
warehouse's staffing plan current as tasks and shifts change (``orders.staffing``)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from orders import staffing

from . import alerts
from .models import AgentName
from .runtime import agent_task, event_payload


@agent_task(AgentName.WORKFORCE)
def recalculate_staffing(*, event_id: str, topic: str) -> None:
    """``staffing.changed``: recalculate the plan of the warehouse and day the event names."""
    payload = event_payload(event_id)
    if payload is None:
        return
    staffing.staffing_plan_recalculate(
        warehouse_id=payload["warehouse_id"], day=dt.date.fromisoformat(str(payload["day"]))
    )


@agent_task(AgentName.WORKFORCE, max_retries=3)
def sweep_staff_alerts() -> dict[str, int]:
    """Beat, every five minutes: raise and send the staff alerts that are due (``agents.alerts``)."""
    result = alerts.staff_alerts_sweep(now=timezone.now())
    return {"raised": result.raised, "sent": sum(result.sent.values()), "failed": sum(result.failed.values())}
