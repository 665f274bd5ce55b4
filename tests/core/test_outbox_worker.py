"""The outbox through a real Celery worker and a real Redis broker.

The worker runs in a thread of this process with its own database connection, so the route task
reports through Redis: it appends ``"<topic> <event id>"`` to a list the test reads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import shared_task
from celery.worker import WorkController
from django.conf import settings
from django_celery_beat.models import PeriodicTask

from config.celery import app as celery_app
from core.models import OutboxEvent, OutboxStatus

from .conftest import broker_unreachable, only_routes, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUTE = "tests.core.record_delivery_in_redis"
DELIVERIES_KEY = "tests.core.worker_deliveries"


@shared_task(name=ROUTE, ignore_result=True)
def record_delivery_in_redis(event_id: str, topic: str) -> None:
    """The test route: appends what it received, and which thread ran it, to a Redis list."""
    where = "main thread" if threading.current_thread() is threading.main_thread() else "worker thread"
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        client.rpush(DELIVERIES_KEY, f"{topic} {event_id} in {where}")


@pytest.fixture
def deliveries(redis_client: redis.Redis) -> Iterator[Any]:
    """``order.created`` routed to the Redis-recording task only; a function reading what it got."""
    redis_client.delete(DELIVERIES_KEY)
    with only_routes("order.created", ROUTE):
        yield lambda: [str(item) for item in redis_client.lrange(DELIVERIES_KEY, 0, -1)]
    redis_client.delete(DELIVERIES_KEY)


def _status(event: OutboxEvent) -> str:
    return str(OutboxEvent.objects.values_list("status", flat=True).get(pk=event.pk))


def test_a_real_worker_delivers_a_committed_orders_event(
    north: Any, live_worker: WorkController, deliveries: Any
) -> None:
    # Given a running worker, when an order is created (its own transaction commits)
    order = north.order()
    event = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.created")

    # Then the worker delivers the event and runs the route task with its id
    assert wait_until(lambda: _status(event) == OutboxStatus.DISPATCHED and deliveries() != [])
    assert deliveries() == [f"order.created {event.pk} in worker thread"]
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_error) == (OutboxStatus.DISPATCHED, 1, "")
    assert event.dispatched_at is not None


@pytest.mark.usefixtures("beat_schedule")
def test_nothing_is_lost_when_the_broker_is_down_at_commit(
    north: Any, live_worker: WorkController, deliveries: Any
) -> None:
    # Given the broker unreachable while an order commits
    with broker_unreachable():
        order = north.order()

    # Then the order is committed and its event waits, untouched, in the outbox
    event = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.created")
    assert (event.status, event.attempts) == (OutboxStatus.PENDING, 0)
    assert type(order).objects.filter(pk=order.pk).exists()
    assert deliveries() == []

    # When the broker is back and beat sends the outbox sweep
    sweep = PeriodicTask.objects.get(name="outbox-sweep").task
    assert sweep == "core.tasks.dispatch_outbox"
    celery_app.send_task(sweep)

    # Then the worker delivers the event
    assert wait_until(lambda: _status(event) == OutboxStatus.DISPATCHED and deliveries() != [])
    assert deliveries() == [f"order.created {event.pk} in worker thread"]
    event.refresh_from_db()
    assert (event.status, event.attempts) == (OutboxStatus.DISPATCHED, 1)
