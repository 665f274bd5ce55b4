"""Pharmacy agent tasks, routed from the outbox (``agents.routes``). They take the event id only."""

from __future__ import annotations

import random
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from core.models import OutboxEvent

from . import services


def retry_delay(retries: int) -> float:
    """Exponential backoff with full jitter: up to 2, 4, 8 ... seconds, capped at ten minutes."""
    return random.uniform(0, min(600.0, 2.0 ** (retries + 1)))  # noqa: S311 - jitter, not security


@shared_task(bind=True, acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), max_retries=None)
def submit_prescriptions(self: Any, *, event_id: str, topic: str) -> None:
    """``order.verified`` / ``order.paid`` / ``prescription.retry``: send the order's pending prescriptions.

    Network errors and 5xx are retried with backoff and jitter up to ``PHARMACY_MAX_RETRIES``;
    then the prescriptions still pending are dead-lettered for staff.
    """
    event = OutboxEvent.objects.filter(pk=event_id).only("aggregate_id").first()
    if event is None:
        return
    result = services.prescriptions_submit(order_id=event.aggregate_id)
    if not result.retry_needed:
        return
    if self.request.retries >= settings.PHARMACY_MAX_RETRIES:
        services.prescriptions_dead_letter(order_id=event.aggregate_id)
        return
    raise self.retry(countdown=retry_delay(self.request.retries))


@shared_task(acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), max_retries=3)
def poll_dispense_status() -> dict[str, int]:
    """Beat: ask the pharmacies about their open prescriptions (see ``services.prescriptions_poll``)."""
    return services.prescriptions_poll()


@shared_task(acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), max_retries=3)
def send_due_refills() -> dict[str, int]:
    """Beat, daily: the resupply flow sends the refills that are due (``services.refills_send_due``).

    Does nothing when ``PHARMACY_AUTO_REFILL`` is off. The refills themselves reach the pharmacy
    through the outbox (``prescription.refill``), so a failure here loses nothing.
    """
    if not settings.PHARMACY_AUTO_REFILL:
        return {"sent": 0, "skipped": 0}
    return services.refills_send_due()
