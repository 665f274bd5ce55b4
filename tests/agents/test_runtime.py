"""The agent runtime: every run recorded as an AgentRun, an event handled once per task, retries with
backoff up to a limit, failures recorded by code, and a run whose worker died ended as lost.

The runtime is exercised through an agent task of the payments agent on a real order, and through
small agent tasks defined here (Celery runs them eagerly: a retry runs again at once)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agents import services
from agents.models import AgentName, AgentRun, RunOutcome
from agents.payments import issue_invoice
from agents.runtime import RetryLater, agent_task, error_code, retry_delay
from config.celery import app as celery_app
from core.exceptions import ValidationFailed
from core.models import OutboxEvent
from orders import services as order_services
from payments.models import Invoice
from tests.conftest import World

pytestmark = pytest.mark.django_db

calls: list[dict[str, Any]] = []


@agent_task(AgentName.ORDERING, max_retries=2)
def busy_twice(*, event_id: str, topic: str) -> str:
    """Fails for want of a remote service on its first two tries."""
    calls.append({"event_id": event_id, "topic": topic})
    if len(calls) <= 2:
        raise RetryLater(code="VENDOR_UNAVAILABLE")
    return "done"


@agent_task(AgentName.ORDERING, max_retries=1)
def always_busy(*, event_id: str, topic: str) -> None:
    calls.append({"event_id": event_id, "topic": topic})
    raise RetryLater(code="VENDOR_UNAVAILABLE")


def hand_to_staff(*, event_id: str, topic: str) -> None:
    calls.append({"handed_over": event_id})


@agent_task(AgentName.WORKFORCE, max_retries=1, on_retries_exhausted=hand_to_staff)
def busy_then_handed_over(*, event_id: str, topic: str) -> None:
    calls.append({"event_id": event_id, "topic": topic})
    raise RetryLater(code="VENDOR_UNAVAILABLE")


@agent_task(AgentName.ENGAGEMENT)
def refused(*, event_id: str, topic: str) -> None:
    raise ValidationFailed("The message template is unknown.")


@agent_task(AgentName.ENGAGEMENT)
def broken() -> None:
    raise KeyError("a value that must not be recorded")


@pytest.fixture(autouse=True)
def fresh_calls() -> Iterator[None]:
    calls.clear()
    propagates = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False  # each retry comes back to apply()'s loop
    try:
        yield
    finally:
        celery_app.conf.task_eager_propagates = propagates


def runs(**filters: Any) -> list[tuple[Any, ...]]:
    return list(
        AgentRun.objects.filter(**filters)
        .order_by("started_at", "attempt")
        .values_list("agent", "task", "topic", "attempt", "outcome", "error_code")
    )


def test_a_payments_agent_task_records_its_run_and_does_nothing_for_the_same_event_again(north: World) -> None:
    order = north.order(payer_type="cash")
    order_services.order_verify(order_id=order.pk, actor=north.ops)
    event = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.verified")
    message = {"event_id": str(event.pk), "topic": "order.verified"}

    issue_invoice.apply(kwargs=message, task_id="delivery-1")
    invoiced = list(Invoice.objects.filter(order=order).values())
    issue_invoice.apply(kwargs=message, task_id="delivery-2")

    assert len(invoiced) == 1
    assert list(Invoice.objects.filter(order=order).values()) == invoiced
    name = "agents.payments.issue_invoice"
    assert runs(event_id=event.pk) == [
        ("payments", name, "order.verified", 0, "ok", ""),
        ("payments", name, "order.verified", 0, "skipped-duplicate", ""),
    ]
    first, second = AgentRun.objects.filter(event_id=event.pk).order_by("started_at")
    assert (first.celery_task_id, second.celery_task_id) == ("delivery-1", "delivery-2")
    assert first.finished_at is not None
    assert first.finished_at >= first.started_at
    assert first.duration_ms == round((first.finished_at - first.started_at).total_seconds() * 1000)
    assert (second.finished_at, second.duration_ms) == (second.started_at, 0)


def test_another_task_or_event_is_not_a_duplicate() -> None:
    event_id = str(uuid.uuid4())
    services.agent_run_start(
        agent=AgentName.PAYMENTS, task="agents.payments.void_invoice", event_id=event_id, outcome=RunOutcome.OK
    )
    services.agent_run_start(
        agent=AgentName.ORDERING, task=busy_twice.name, event_id=event_id, outcome=RunOutcome.FAILED
    )

    assert services.agent_run_already_done(task="agents.payments.void_invoice", event_id=event_id)
    assert not services.agent_run_already_done(task=busy_twice.name, event_id=event_id)
    assert not services.agent_run_already_done(task="agents.payments.void_invoice", event_id=uuid.uuid4())


def test_a_task_whose_service_is_busy_is_retried_until_it_succeeds_each_try_a_run() -> None:
    event_id = str(uuid.uuid4())

    result = busy_twice.apply(kwargs={"event_id": event_id, "topic": "order.approved"})

    assert result.get() == "done"
    assert len(calls) == 3
    name = "tests.agents.test_runtime.busy_twice"
    assert runs(event_id=event_id) == [
        ("ordering", name, "order.approved", 0, "retried", "VENDOR_UNAVAILABLE"),
        ("ordering", name, "order.approved", 1, "retried", "VENDOR_UNAVAILABLE"),
        ("ordering", name, "order.approved", 2, "ok", ""),
    ]


def test_a_task_out_of_retries_fails_with_the_last_errors_code() -> None:
    event_id = str(uuid.uuid4())

    result = always_busy.apply(kwargs={"event_id": event_id, "topic": "order.approved"})

    assert isinstance(result.result, RetryLater)
    assert result.state == "FAILURE"
    assert len(calls) == 2
    name = "tests.agents.test_runtime.always_busy"
    assert runs(event_id=event_id) == [
        ("ordering", name, "order.approved", 0, "retried", "VENDOR_UNAVAILABLE"),
        ("ordering", name, "order.approved", 1, "failed", "VENDOR_UNAVAILABLE"),
    ]
    # Not handled: a later delivery of the same event tries again.
    always_busy.apply(kwargs={"event_id": event_id, "topic": "order.approved"})
    assert len(calls) == 4


def test_a_task_out_of_retries_hands_its_work_over_when_it_says_how() -> None:
    event_id = str(uuid.uuid4())

    result = busy_then_handed_over.apply(kwargs={"event_id": event_id, "topic": "order.approved"})

    assert result.state == "SUCCESS"
    assert calls == [
        {"event_id": event_id, "topic": "order.approved"},
        {"event_id": event_id, "topic": "order.approved"},
        {"handed_over": event_id},
    ]
    assert [outcome for *_, outcome, _code in runs(event_id=event_id)] == ["retried", "failed"]


def test_a_refused_task_fails_at_once_with_the_domain_errors_code() -> None:
    event_id = str(uuid.uuid4())

    result = refused.apply(kwargs={"event_id": event_id, "topic": "order.shipped"})

    assert isinstance(result.result, ValidationFailed)
    assert runs(event_id=event_id) == [
        ("engagement", "tests.agents.test_runtime.refused", "order.shipped", 0, "failed", "VALIDATION_ERROR")
    ]


def test_a_scheduled_task_that_breaks_records_the_class_of_the_error_not_its_message() -> None:
    result = broken.apply()

    assert isinstance(result.result, KeyError)
    assert runs(task="tests.agents.test_runtime.broken") == [
        ("engagement", "tests.agents.test_runtime.broken", "", 0, "failed", "KeyError")
    ]
    assert AgentRun.objects.get(task="tests.agents.test_runtime.broken").event_id is None


def test_a_run_left_running_by_a_dead_worker_is_ended_lost_when_its_message_comes_back() -> None:
    event_id = uuid.uuid4()
    lost = services.agent_run_start(
        agent=AgentName.ORDERING, task=busy_twice.name, event_id=event_id, celery_task_id="message-1"
    )
    other = services.agent_run_start(
        agent=AgentName.ORDERING, task=busy_twice.name, event_id=event_id, celery_task_id="message-2"
    )

    calls.extend([{}, {}])  # the function succeeds at once
    busy_twice.apply(kwargs={"event_id": str(event_id), "topic": "order.approved"}, task_id="message-1")

    lost.refresh_from_db()
    other.refresh_from_db()
    assert (lost.outcome, lost.error_code) == ("failed", "WorkerLost")
    assert lost.finished_at is not None
    assert (other.outcome, other.error_code, other.finished_at) == ("running", "", None)
    assert [outcome for *_, outcome, _code in runs(event_id=event_id, celery_task_id="message-1")] == [
        "failed",
        "ok",
    ]


@pytest.mark.parametrize(
    ("error", "code"),
    [(ValidationFailed("x"), "VALIDATION_ERROR"), (RetryLater(), "RETRY_LATER"), (ValueError("x"), "ValueError")],
)
def test_an_error_is_recorded_by_its_code_or_class(error: Exception, code: str) -> None:
    assert error_code(error) == code


def test_the_retry_delay_grows_with_jitter_and_is_capped_at_ten_minutes() -> None:
    delays = [retry_delay(n) for n in range(12) for _ in range(20)]
    assert all(0 <= d <= 600 for d in delays)
    assert max(retry_delay(0) for _ in range(50)) <= 2
    assert max(retry_delay(11) for _ in range(200)) > 300
    assert len({round(d, 6) for d in delays}) > 200
