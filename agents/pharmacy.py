"""Pharmacy agent: prescriptions go out as FHIR R4 once their order may be filled, dispense status is
polled, and due refills are sent. Tasks routed from the outbox (``agents.routes``) take the event id
only; the scheduled ones take nothing. The work is ``pharmacy.services``.
"""

from __future__ import annotations

from django.conf import settings

from pharmacy import services

from .models import AgentName
from .runtime import RetryLater, agent_task, event_aggregate_id


def _dead_letter(*, event_id: str, topic: str) -> None:
    order_id = event_aggregate_id(event_id)
    if order_id is not None:
        services.prescriptions_dead_letter(order_id=order_id)


@agent_task(
    AgentName.PHARMACY,
    max_retries=lambda: settings.PHARMACY_MAX_RETRIES,
    on_retries_exhausted=_dead_letter,
)
def submit_prescriptions(*, event_id: str, topic: str) -> None:
    """``order.verified`` / ``order.paid`` / ``prescription.retry`` / ``prescription.refill``: send the
    order's pending prescriptions.

    Network errors and 5xx are retried with backoff and jitter up to ``PHARMACY_MAX_RETRIES``;
    then the prescriptions still pending are dead-lettered for staff.
    """
    order_id = event_aggregate_id(event_id)
    if order_id is None:
        return
    if services.prescriptions_submit(order_id=order_id).retry_needed:
        raise RetryLater(code="PHARMACY_UNAVAILABLE")


@agent_task(AgentName.PHARMACY, max_retries=3)
def poll_dispense_status() -> dict[str, int]:
    """Beat: ask the pharmacies about their open prescriptions (see ``services.prescriptions_poll``)."""
    return services.prescriptions_poll()


@agent_task(AgentName.PHARMACY, max_retries=3)
def send_due_refills() -> dict[str, int]:
    """Beat, daily: the resupply flow sends the refills that are due (``services.refills_send_due``).

    Does nothing when ``PHARMACY_AUTO_REFILL`` is off. The refills themselves reach the pharmacy
    through the outbox (``prescription.refill``), so a failure here loses nothing.
    """
    if not settings.PHARMACY_AUTO_REFILL:
        return {"sent": 0, "skipped": 0}
    return services.refills_send_due()
