"""The transactional outbox: events commit with their change and are delivered after commit, once.

Celery runs eagerly here, so a route task runs in this process and records what it received;
delivery failures come from a real publish to a broker that refuses connections.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from celery import shared_task
from django.db import connection, transaction
from django.utils import timezone

from core.models import OutboxEvent, OutboxStatus
from core.outbox import outbox_deliver, outbox_deliver_due, outbox_publish, outbox_retry
from core.tasks import deliver_outbox_event
from orders.models import Order, OrderEvent
from orders.services import order_transition

from .conftest import broker_unreachable, only_routes

ROUTE = "tests.core.record_delivery"
DELIVERED: list[tuple[str, str]] = []


@shared_task(name=ROUTE, ignore_result=True)
def record_delivery(event_id: str, topic: str) -> None:
    """The test route: remembers each (event id, topic) it was called with."""
    DELIVERED.append((event_id, topic))


@pytest.fixture
def delivered() -> Iterator[list[tuple[str, str]]]:
    """``order.created`` and ``order.held`` routed to the recording task only; what it received."""
    DELIVERED.clear()
    with only_routes("order.created", ROUTE), only_routes("order.held", ROUTE):
        yield DELIVERED
    DELIVERED.clear()


class Boom(Exception):
    pass


def _created_event(order: Order) -> OutboxEvent:
    return OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.created")


def _make_due(event: OutboxEvent) -> None:
    """Skip the backoff wait (the clock moves on) so the next delivery attempt is due now."""
    OutboxEvent.objects.filter(pk=event.pk).update(available_at=timezone.now())


@pytest.mark.django_db(transaction=True)
def test_an_order_rolled_back_leaves_no_event_and_delivers_nothing(north: Any, delivered: list) -> None:
    # Given an order created inside a transaction that then fails
    def place_order_then_fail() -> None:
        with transaction.atomic():
            north.order()
            assert OutboxEvent.objects.count() == 1
            raise Boom

    with pytest.raises(Boom):
        place_order_then_fail()

    # Then neither the order nor its event exists, and nothing was delivered
    assert Order.objects.count() == 0
    assert OutboxEvent.objects.count() == 0
    assert delivered == []


@pytest.mark.django_db(transaction=True)
def test_a_committed_order_is_delivered_once_after_commit(north: Any, delivered: list) -> None:
    # Given an order created inside a transaction
    with transaction.atomic():
        order = north.order()
        event = _created_event(order)

        # Then nothing is delivered before the commit
        assert delivered == []
    started = timezone.now()

    # When it commits, then the event is delivered to the route exactly once
    event.refresh_from_db()
    assert delivered == [(str(event.pk), "order.created")]
    assert (event.status, event.attempts, event.last_error) == (OutboxStatus.DISPATCHED, 1, "")
    assert event.dispatched_at is not None
    assert event.created_at <= event.dispatched_at <= started
    assert OutboxEvent.objects.count() == 1


def test_delivery_is_scheduled_for_commit_and_only_then(
    north: Any, delivered: list, django_capture_on_commit_callbacks: Any
) -> None:
    # Given an order created, with the after-commit callbacks held back
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order = north.order()
    event = _created_event(order)

    # Then exactly one delivery is scheduled, and nothing has run yet
    assert len(callbacks) == 1
    assert delivered == []
    event.refresh_from_db()
    assert (event.status, event.attempts, event.dispatched_at) == (OutboxStatus.PENDING, 0, None)

    # When the commit callback runs, then the event goes out
    callbacks[0]()
    event.refresh_from_db()
    assert delivered == [(str(event.pk), "order.created")]
    assert (event.status, event.attempts) == (OutboxStatus.DISPATCHED, 1)


def test_a_second_delivery_of_the_same_event_is_a_no_op(
    north: Any, delivered: list, django_capture_on_commit_callbacks: Any
) -> None:
    # Given an event already delivered
    with django_capture_on_commit_callbacks(execute=True):
        order = north.order()
    event = _created_event(order)
    event.refresh_from_db()
    dispatched_at = event.dispatched_at
    assert delivered == [(str(event.pk), "order.created")]

    # When it is delivered again, directly, through the task, and by the sweep
    assert outbox_deliver(event_id=event.pk) is False
    assert deliver_outbox_event.apply(args=(str(event.pk),)).get() is False
    assert outbox_deliver_due() == 0

    # Then the route was not called again and the event is unchanged
    assert delivered == [(str(event.pk), "order.created")]
    event.refresh_from_db()
    assert (event.status, event.attempts, event.dispatched_at) == (OutboxStatus.DISPATCHED, 1, dispatched_at)


def test_a_failed_publish_keeps_the_event_pending_with_backoff(
    north: Any, delivered: list, django_capture_on_commit_callbacks: Any
) -> None:
    with broker_unreachable():
        # Given an order committed while the broker is down: the after-commit enqueue itself fails
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            order = north.order()
        assert len(callbacks) == 1
        event = _created_event(order)
        event.refresh_from_db()
        assert (event.status, event.attempts) == (OutboxStatus.PENDING, 0)

        # When the sweep tries to deliver it
        before = timezone.now()
        assert outbox_deliver(event_id=event.pk) is False
        after = timezone.now()

        # Then the attempt is counted, the event stays pending, and waits 1-2 s before the next try
        event.refresh_from_db()
        assert (event.status, event.attempts, event.last_error) == (OutboxStatus.PENDING, 1, "OperationalError")
        assert event.dispatched_at is None
        assert before + dt.timedelta(seconds=1) <= event.available_at <= after + dt.timedelta(seconds=2)

        # And until then another attempt does nothing
        assert outbox_deliver(event_id=event.pk) is False
        assert outbox_deliver_due() == 0
        event.refresh_from_db()
        assert event.attempts == 1
    assert delivered == []


def test_after_the_last_attempt_the_event_is_failed_until_staff_retry_it(
    north: Any, delivered: list, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.OUTBOX_MAX_ATTEMPTS = 3
    with broker_unreachable():
        # Given an event whose every delivery attempt fails
        with django_capture_on_commit_callbacks(execute=True):
            order = north.order()
        event = _created_event(order)

        # When it has been tried OUTBOX_MAX_ATTEMPTS times
        attempts = []
        for _ in range(3):
            _make_due(event)
            assert outbox_deliver(event_id=event.pk) is False
            event.refresh_from_db()
            attempts.append((event.attempts, event.status))

        # Then it is parked as failed, and the sweep leaves it alone
        assert attempts == [(1, OutboxStatus.PENDING), (2, OutboxStatus.PENDING), (3, OutboxStatus.FAILED)]
        assert event.last_error == "OperationalError"
        _make_due(event)
        assert outbox_deliver_due() == 0
        event.refresh_from_db()
        assert (event.status, event.attempts) == (OutboxStatus.FAILED, 3)

    # When staff retry it once the broker is back
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        outbox_retry(event_id=event.pk)

    # Then it is queued again and delivered after commit
    assert len(callbacks) == 1
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_error) == (OutboxStatus.DISPATCHED, 1, "")
    assert delivered == [(str(event.pk), "order.created")]


def test_retry_ignores_events_that_have_not_failed(
    north: Any, delivered: list, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        order = north.order()
    event = _created_event(order)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        outbox_retry(event_id=event.pk)

    assert callbacks == []
    event.refresh_from_db()
    assert (event.status, event.attempts) == (OutboxStatus.DISPATCHED, 1)
    assert delivered == [(str(event.pk), "order.created")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_event_locked_by_another_dispatcher_is_skipped(north: Any, delivered: list) -> None:
    # Given a committed event that was not delivered (the broker was down at commit)
    with broker_unreachable():
        order = north.order()
    event = _created_event(order)
    assert delivered == []

    # And another dispatcher holding its row lock in its own connection
    locked = threading.Event()
    release = threading.Event()

    def other_dispatcher() -> None:
        with psycopg.connect(**connection.get_connection_params()) as other, other.transaction():
            other.execute("SELECT id FROM core_outboxevent WHERE id = %s FOR UPDATE", [event.pk])
            locked.set()
            release.wait(10)

    thread = threading.Thread(target=other_dispatcher)
    thread.start()
    try:
        assert locked.wait(10)

        # When this dispatcher tries the event, then it skips it without waiting
        assert outbox_deliver(event_id=event.pk) is False
        assert delivered == []
    finally:
        release.set()
        thread.join(10)

    # And once the lock is released it delivers it
    assert outbox_deliver(event_id=event.pk) is True
    event.refresh_from_db()
    assert (event.status, event.attempts) == (OutboxStatus.DISPATCHED, 1)
    assert delivered == [(str(event.pk), "order.created")]


def test_payloads_carry_ids_and_statuses_only(north: Any) -> None:
    # Given an order created and put on hold with a reason naming the patient
    order = north.order()
    order_transition(order_id=order.pk, actor=north.ops, transition="hold", reason="Call Zelda about the mask size")
    created, checked, held = OrderEvent.objects.filter(order=order).order_by("sequence")
    assert (checked.kind, checked.actor_kind) == ("compliance", "ai")  # the checks publish nothing

    # Then its outbox events carry ids and statuses, and nothing else
    events = OutboxEvent.objects.filter(aggregate_id=str(order.pk)).order_by("created_at")
    common = {"order_id": str(order.pk), "territory_id": str(north.territory.pk)}
    assert [(e.topic, e.aggregate_type, e.payload) for e in events] == [
        (
            "order.created",
            "orders.order",
            {**common, "event_id": str(created.pk), "from_status": None, "to_status": "pending_verification"},
        ),
        (
            "order.held",
            "orders.order",
            {**common, "event_id": str(held.pk), "from_status": "pending_verification", "to_status": "on_hold"},
        ),
    ]
    patient = north.patient
    dumped = json.dumps([e.payload for e in events])
    for value in (
        patient.first_name,
        patient.last_name,
        patient.date_of_birth.isoformat(),
        patient.mbi,
        patient.phone,
        patient.email,
        patient.address["line1"],
        "G47.33",
        "Fixture order note",
        "mask size",
    ):
        assert value not in dumped


def test_a_payload_that_is_not_scalar_is_refused(north: Any) -> None:
    order = north.order()
    before = OutboxEvent.objects.count()

    with pytest.raises(TypeError) as caught, transaction.atomic():
        outbox_publish(topic="order.noted", aggregate=order, payload={"diagnosis_codes": ["G47.33"]})  # type: ignore[dict-item]

    assert str(caught.value) == "outbox payload value for 'diagnosis_codes' must be a scalar id or code"
    assert OutboxEvent.objects.count() == before
