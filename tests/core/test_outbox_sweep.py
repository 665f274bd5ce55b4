"""The outbox sweep drains a backlog: batches until nothing due is left, within a time budget.

A broker outage leaves thousands of events pending; one beat run of the sweep must deliver all of
them (not 200 per run), each exactly once, and still stop between batches when its time budget is
spent or the broker refuses messages, so a run never overlaps the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import shared_task
from celery.worker import WorkController
from django.utils import timezone

from config.celery import app as celery_app
from core.models import OutboxEvent, OutboxStatus
from core.outbox import outbox_deliver_due

from .conftest import broker_unreachable, only_routes, wait_until
from .test_outbox_worker import deliveries  # noqa: F401 - the Redis-recording route's fixture

TOPIC = "order.created"
ROUTE = "tests.core.record_sweep_delivery"
SWEPT: list[str] = []


@shared_task(name=ROUTE, ignore_result=True)
def record_sweep_delivery(event_id: str, topic: str) -> None:
    """The eager test route: remembers each event id it was called with."""
    SWEPT.append(event_id)


@pytest.fixture
def swept() -> Iterator[list[str]]:
    SWEPT.clear()
    with only_routes(TOPIC, ROUTE):
        yield SWEPT
    SWEPT.clear()


def pending_events(count: int) -> list[str]:
    """``count`` due pending events (as an outage leaves them), oldest first; their ids."""
    now = timezone.now()
    events = OutboxEvent.objects.bulk_create(
        OutboxEvent(
            topic=TOPIC,
            aggregate_type="orders.order",
            aggregate_id=f"backlog-{index}",
            payload={"order_id": f"backlog-{index}"},
            available_at=now,
        )
        for index in range(count)
    )
    return [str(event.pk) for event in events]


def statuses() -> dict[str, int]:
    return {
        status: OutboxEvent.objects.filter(status=status).count()
        for status in (OutboxStatus.PENDING, OutboxStatus.DISPATCHED, OutboxStatus.FAILED)
    }


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_beat_run_delivers_a_backlog_of_a_thousand_events_exactly_once(
    live_worker: WorkController,
    deliveries: Any,  # noqa: F811 - the fixture imported above
) -> None:
    # Given 1,000 events left pending by a broker outage (routed to a task recording in Redis)
    ids = pending_events(1000)

    # When beat sends one outbox sweep to a real worker through the real Redis broker
    celery_app.send_task("core.tasks.dispatch_outbox")

    # Then every event is dispatched once and its route ran once, in the worker
    assert wait_until(lambda: len(deliveries()) >= 1000, timeout=120)
    assert statuses() == {OutboxStatus.PENDING: 0, OutboxStatus.DISPATCHED: 1000, OutboxStatus.FAILED: 0}
    assert set(OutboxEvent.objects.values_list("attempts", flat=True)) == {1}
    received = [entry.split()[1] for entry in deliveries()]
    assert sorted(received) == sorted(ids)
    assert {entry.split(" ", 2)[2] for entry in deliveries()} == {"in worker thread"}

    # And a second run finds nothing to do
    assert outbox_deliver_due() == 0
    assert len(deliveries()) == 1000


@pytest.mark.django_db
def test_a_sweep_works_through_every_batch_oldest_first(swept: list[str], settings: Any) -> None:
    settings.OUTBOX_SWEEP_BATCH = 100
    ids = pending_events(250)

    assert outbox_deliver_due() == 250

    assert swept == ids
    assert statuses() == {OutboxStatus.PENDING: 0, OutboxStatus.DISPATCHED: 250, OutboxStatus.FAILED: 0}


@pytest.mark.django_db
def test_a_sweep_whose_time_budget_is_spent_stops_after_the_batch_in_hand(swept: list[str]) -> None:
    # Given 250 due events
    ids = pending_events(250)

    # When a sweep with no time left runs (it always finishes the batch it started)
    assert outbox_deliver_due(batch_size=100, budget_seconds=0) == 100

    # Then the oldest 100 went out and the rest wait, untouched, for the next run
    assert swept == ids[:100]
    assert statuses() == {OutboxStatus.PENDING: 150, OutboxStatus.DISPATCHED: 100, OutboxStatus.FAILED: 0}
    assert set(OutboxEvent.objects.filter(status=OutboxStatus.PENDING).values_list("attempts", flat=True)) == {0}

    # And the next run delivers the rest, none twice
    assert outbox_deliver_due(batch_size=100) == 150
    assert swept == ids


@pytest.mark.django_db
def test_a_sweep_stops_when_the_broker_takes_nothing(swept: list[str]) -> None:
    # Given three due events and a broker refusing connections
    ids = pending_events(3)
    with broker_unreachable():
        # When the sweep runs with batches of two
        assert outbox_deliver_due(batch_size=2) == 0

    # Then the first batch's two attempts are counted (with backoff) and the run stopped there
    attempts = {str(pk): count for pk, count in OutboxEvent.objects.values_list("id", "attempts")}
    assert [attempts[pk] for pk in ids] == [1, 1, 0]
    assert statuses() == {OutboxStatus.PENDING: 3, OutboxStatus.DISPATCHED: 0, OutboxStatus.FAILED: 0}
    assert swept == []
