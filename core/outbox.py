"""Transactional outbox: publish domain events with the change, deliver them after commit.

``outbox_publish`` is called inside the atomic block that makes a change; the event row commits
or rolls back with it. After commit a Celery task delivers the event to every task routed to
its topic (the route table lives in ``agents`` and registers itself with :func:`subscribe`).
Delivery is at least once: consumers receive ``event_id`` and must be idempotent. A failed
delivery stays pending with exponential backoff and jitter; a periodic sweep picks up anything
an after-commit enqueue missed (a broker outage, a crashed web process), in batches until nothing
due is left (``outbox_deliver_due``).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from .models import OutboxEvent, OutboxStatus

logger = logging.getLogger(__name__)

_routes: dict[str, list[str]] = defaultdict(list)

PayloadValue = str | int | bool | None


def subscribe(topic: str, task_name: str) -> None:
    """Route events of ``topic`` to the Celery task ``task_name`` (called with ``event_id``)."""
    if task_name not in _routes[topic]:
        _routes[topic].append(task_name)


def unsubscribe(topic: str, task_name: str) -> None:
    if task_name in _routes.get(topic, []):
        _routes[topic].remove(task_name)


def routes_for(topic: str) -> list[str]:
    return list(_routes.get(topic, []))


def outbox_publish(*, topic: str, aggregate: models.Model, payload: dict[str, PayloadValue]) -> OutboxEvent:
    """Record ``topic`` for ``aggregate``. Call inside the atomic block of the change.

    ``payload`` carries ids, codes and states only (never PHI); values must be scalars.
    Delivery is scheduled for after commit and never fails the caller.
    """
    for key, value in payload.items():
        if not isinstance(value, str | int | bool | type(None)):
            raise TypeError(f"outbox payload value for {key!r} must be a scalar id or code")
    event = OutboxEvent.objects.create(
        topic=topic,
        aggregate_type=aggregate._meta.label_lower,
        aggregate_id=str(aggregate.pk),
        payload=payload,
        available_at=timezone.now(),
    )
    _deliver_after_commit(str(event.id))
    return event


def outbox_publish_all(
    *, aggregate: models.Model, events: Sequence[tuple[str, dict[str, PayloadValue]]]
) -> list[OutboxEvent]:
    """``outbox_publish`` for several ``(topic, payload)`` of one aggregate, in one INSERT."""
    rows = []
    now = timezone.now()
    for topic, payload in events:
        for key, value in payload.items():
            if not isinstance(value, str | int | bool | type(None)):
                raise TypeError(f"outbox payload value for {key!r} must be a scalar id or code")
        rows.append(
            OutboxEvent(
                topic=topic,
                aggregate_type=aggregate._meta.label_lower,
                aggregate_id=str(aggregate.pk),
                payload=payload,
                available_at=now,
            )
        )
    created = OutboxEvent.objects.bulk_create(rows)
    for event in created:
        _deliver_after_commit(str(event.id))
    return created


def _deliver_after_commit(event_id: str) -> None:
    """Enqueue delivery once the current transaction commits; a broker outage is left to the sweep."""
    from .tasks import deliver_outbox_event

    # A named function, not functools.partial: when a robust callback fails Django logs its
    # ``__qualname__``, which a partial lacks (the AttributeError would escape the commit).
    def enqueue_delivery() -> None:
        deliver_outbox_event.apply_async(args=(event_id,), retry=False)

    transaction.on_commit(enqueue_delivery, robust=True)


def backoff_delay(attempts: int) -> timedelta:
    """Exponential backoff with full jitter: up to 2**attempts seconds, capped at one hour."""
    ceiling = min(2**attempts, 3600)
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311 - jitter, not security


def outbox_deliver(*, event_id: str | uuid.UUID) -> bool:
    """Deliver one pending, due event to its routes. Returns True if it was delivered now.

    Locks the row (skipping it if another worker holds it), so concurrent dispatchers never
    deliver the same attempt twice. On a publish failure the attempt is recorded with backoff;
    after ``OUTBOX_MAX_ATTEMPTS`` the event is parked as failed for staff to retry.
    """
    from celery import current_app

    with transaction.atomic():
        event = (
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(pk=event_id, status=OutboxStatus.PENDING, available_at__lte=timezone.now())
            .first()
        )
        if event is None:
            return False
        message: dict[str, Any] = {"event_id": str(event.id), "topic": event.topic}
        try:
            for task_name in routes_for(event.topic):
                current_app.signature(task_name, kwargs=message).apply_async(retry=False)
        except Exception as exc:  # the broker or a route failed: retry later, never lose the event
            _record_failure(event, exc)
            return False
        event.attempts += 1
        event.status = OutboxStatus.DISPATCHED
        event.dispatched_at = timezone.now()
        event.last_error = ""
        event.save(update_fields=["attempts", "status", "dispatched_at", "last_error"])
        return True


def outbox_deliver_due(*, batch_size: int | None = None, budget_seconds: float | None = None) -> int:
    """The sweep: deliver every due pending event, oldest first, in batches, until none is left.

    Each batch is one transaction: up to ``batch_size`` (``OUTBOX_SWEEP_BATCH``) due events are
    locked (skipping rows another dispatcher holds), published to their routes and marked
    dispatched together; an event whose publish fails is recorded as ``outbox_deliver`` records
    it (backoff, then failed), so it is not due again in this run. The sweep stops when a batch
    comes back short (nothing more is due), when a batch delivered nothing (the broker is not
    taking messages: the next run tries again), or once ``budget_seconds``
    (``OUTBOX_SWEEP_BUDGET_SECONDS``) have passed, checked between batches, so one beat tick never
    runs into the next. Returns how many events went out.
    """
    batch_size = batch_size or settings.OUTBOX_SWEEP_BATCH
    budget = settings.OUTBOX_SWEEP_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    delivered = 0
    while True:
        sent, seen = _deliver_batch(batch_size)
        delivered += sent
        if seen < batch_size or sent == 0 or time.monotonic() >= deadline:
            return delivered


def _deliver_batch(batch_size: int) -> tuple[int, int]:
    """Deliver one batch of due events in one transaction; returns (delivered, looked at)."""
    from celery import current_app

    with transaction.atomic():
        events = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(status=OutboxStatus.PENDING, available_at__lte=timezone.now())
            .order_by("created_at", "pk")[:batch_size]
        )
        sent: list[Any] = []
        for event in events:
            message: dict[str, Any] = {"event_id": str(event.id), "topic": event.topic}
            try:
                for task_name in routes_for(event.topic):
                    current_app.signature(task_name, kwargs=message).apply_async(retry=False)
            except Exception as exc:  # the broker or a route failed: this one waits, the batch goes on
                _record_failure(event, exc)
                continue
            sent.append(event.pk)
        if sent:
            OutboxEvent.objects.filter(pk__in=sent).update(
                status=OutboxStatus.DISPATCHED,
                attempts=F("attempts") + 1,
                dispatched_at=timezone.now(),
                last_error="",
            )
    return len(sent), len(events)


def _record_failure(event: OutboxEvent, exc: Exception) -> None:
    """Count a failed delivery attempt: retry later with backoff, or park the event as failed."""
    event.attempts += 1
    event.last_error = f"{type(exc).__name__}"[:300]
    if event.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        event.status = OutboxStatus.FAILED
    else:
        event.available_at = timezone.now() + backoff_delay(event.attempts)
    event.save(update_fields=["attempts", "last_error", "status", "available_at"])
    logger.warning("outbox event %s (%s) delivery failed: %s", event.id, event.topic, event.last_error)


def outbox_retry(*, event_id: str | uuid.UUID) -> None:
    """Put a failed event back in the queue (staff action); delivery follows after commit."""
    with transaction.atomic():
        updated = OutboxEvent.objects.filter(pk=event_id, status=OutboxStatus.FAILED).update(
            status=OutboxStatus.PENDING, attempts=0, available_at=timezone.now()
        )
        if updated:
            _deliver_after_commit(str(event_id))
