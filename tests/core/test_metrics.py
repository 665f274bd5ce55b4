"""/metrics: who may scrape it, and the metrics after real requests, queries, cache calls, queued
Celery messages and outbox events (real PostgreSQL and Redis)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.celery import app as celery_app
from core.models import OutboxEvent, OutboxStatus
from tests.metrics import samples


def scrape(client: Client | None = None, **headers: Any) -> str:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; version=1.0.0; charset=utf-8"
    return response.content.decode()


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


# --- Who may scrape ---------------------------------------------------------------------------------


def test_a_scrape_from_an_allowed_address_is_answered(db: Any) -> None:
    assert "medorder_outbox_pending_events" in scrape(REMOTE_ADDR="127.0.0.1")


@pytest.mark.parametrize(
    ("remote_addr", "headers", "allowed_ips", "token", "status"),
    [
        pytest.param("203.0.113.9", {}, ["127.0.0.1"], "", 403, id="another address"),
        pytest.param("10.4.0.9", {}, ["10.4.0.0/16"], "", 200, id="an address in an allowed network"),
        pytest.param("10.5.0.9", {}, ["10.4.0.0/16"], "", 403, id="an address outside it"),
        pytest.param("::1", {}, ["127.0.0.1", "::1"], "", 200, id="IPv6 loopback"),
        pytest.param(
            "127.0.0.1",
            {"HTTP_X_FORWARDED_FOR": "127.0.0.1"},
            ["127.0.0.1"],
            "",
            403,
            id="an allowed address, through a proxy",
        ),
        pytest.param(
            "203.0.113.9",
            {"HTTP_AUTHORIZATION": "Bearer s3cret-scrape-token"},
            ["127.0.0.1"],
            "s3cret-scrape-token",
            200,
            id="the bearer token from anywhere",
        ),
        pytest.param(
            "203.0.113.9",
            {"HTTP_AUTHORIZATION": "Bearer s3cret-scrape-token", "HTTP_X_FORWARDED_FOR": "198.51.100.1"},
            [],
            "s3cret-scrape-token",
            200,
            id="the bearer token through a proxy",
        ),
        pytest.param(
            "127.0.0.1",
            {"HTTP_AUTHORIZATION": "Bearer wrong-token"},
            ["127.0.0.1"],
            "s3cret-scrape-token",
            403,
            id="a wrong token, even from an allowed address",
        ),
        pytest.param(
            "203.0.113.9",
            {"HTTP_AUTHORIZATION": "Bearer "},
            [],
            "",
            403,
            id="an empty token when none is configured",
        ),
    ],
)
def test_who_may_scrape(
    db: Any,
    settings: Any,
    remote_addr: str,
    headers: dict[str, Any],
    allowed_ips: list[str],
    token: str,
    status: int,
) -> None:
    settings.METRICS_ALLOWED_IPS = allowed_ips
    settings.METRICS_BEARER_TOKEN = token

    response = Client().get("/metrics", REMOTE_ADDR=remote_addr, **headers)

    assert response.status_code == status
    if status == 403:
        assert response.content == b"Forbidden\n"
        assert b"django_http" not in response.content


# --- Requests, queries and cache calls -----------------------------------------------------------------


@pytest.mark.postgres
def test_requests_are_counted_and_timed_per_view_name_never_per_path(north: Any) -> None:
    order = north.order()
    client = Client()
    client.force_login(north.doctor)
    before = scrape()

    # When the doctor opens the order's page twice
    for _ in range(2):
        assert client.get(f"/portal/orders/{order.pk}/").status_code == 200
    after = scrape()

    # Then the view's counters and latency histogram went up by exactly two, under its name
    view = {"view": "portal:order_detail", "method": "GET"}
    name = "django_http_requests_latency_seconds_by_view_method_count"
    assert (value(after, name, **view) or 0) - (value(before, name, **view) or 0) == 2
    total = "django_http_requests_total_by_view_transport_method_total"
    assert (value(after, total, transport="http", **view) or 0) - (
        value(before, total, transport="http", **view) or 0
    ) == 2
    responses = "django_http_responses_total_by_status_view_method_total"
    assert (value(after, responses, status="200", **view) or 0) - (
        value(before, responses, status="200", **view) or 0
    ) == 2
    # and nothing in the exposition names the order or its patient
    for identifying in (str(order.pk), order.pk.hex, order.reference, north.patient.last_name):
        assert identifying not in after


@pytest.mark.postgres
def test_database_queries_are_counted_and_timed(db: Any) -> None:
    before = scrape()
    with CaptureQueriesContext(connection) as queries:
        list(OutboxEvent.objects.filter(status=OutboxStatus.PENDING))
        OutboxEvent.objects.filter(status=OutboxStatus.FAILED).count()
    query_count = len(queries)  # read before the next request clears Django's query log
    after = scrape()
    # (the second scrape's own outbox query counts as well)
    labels = {"alias": "default", "vendor": "postgresql"}

    executed = value(after, "django_db_execute_total", **labels)
    executed_before = value(before, "django_db_execute_total", **labels) or 0
    assert query_count == 2
    assert executed is not None
    assert executed - executed_before == 2 + 1
    timed = "django_db_query_duration_seconds_count"
    assert (value(after, timed, **labels) or 0) - (value(before, timed, **labels) or 0) == 2 + 1


@pytest.mark.redis
def test_cache_calls_are_timed_and_gets_counted_as_hits_and_misses(db: Any) -> None:
    before = scrape()

    cache.set("tests.metrics.key", "value", 30)
    assert cache.get("tests.metrics.key") == "value"
    assert cache.get("tests.metrics.absent", "default") == "default"
    assert cache.get_many(["tests.metrics.key"]) == {"tests.metrics.key": "value"}
    cache.delete("tests.metrics.key")
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    timed = "medorder_cache_operation_seconds_count"
    assert [delta(timed, backend="redis", operation=op) for op in ("set", "get", "get_many", "delete")] == [1, 2, 1, 1]
    assert delta("django_cache_get_total", backend="redis") == 2
    assert delta("django_cache_get_hits_total", backend="redis") == 1
    assert delta("django_cache_get_misses_total", backend="redis") == 1


# --- Celery queue depth ---------------------------------------------------------------------------


@pytest.fixture
def empty_queue() -> Iterator[None]:
    """The broker's queue emptied before and after (no worker runs in these tests)."""
    celery_app.control.purge()
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = eager
        celery_app.control.purge()


@pytest.mark.redis
@pytest.mark.postgres
def test_the_celery_queue_depth_counts_every_waiting_message(db: Any, empty_queue: None) -> None:
    assert value(scrape(), "medorder_celery_queue_length", queue="celery") == 0

    # When three messages wait, one of them with a priority (kombu keeps those in a list of their own)
    celery_app.send_task("core.tasks.dispatch_outbox")
    celery_app.send_task("core.tasks.dispatch_outbox")
    celery_app.send_task("core.tasks.dispatch_outbox", priority=6)
    text = scrape()

    assert value(text, "medorder_celery_queue_length", queue="celery") == 3
    assert value(text, "medorder_metrics_source_up", source="celery_broker") == 1


@pytest.mark.redis
@pytest.mark.postgres
def test_other_queues_are_reported_when_configured(db: Any, settings: Any, empty_queue: None) -> None:
    settings.METRICS_CELERY_QUEUES = ["celery", "pharmacy"]
    with redis.Redis.from_url(settings.CELERY_BROKER_URL) as client:
        client.delete("pharmacy")
        client.rpush("pharmacy", "m1", "m2")
        try:
            text = scrape()
        finally:
            client.delete("pharmacy")

    assert value(text, "medorder_celery_queue_length", queue="celery") == 0
    assert value(text, "medorder_celery_queue_length", queue="pharmacy") == 2


@pytest.mark.postgres
def test_a_broker_that_does_not_answer_is_reported_down_not_empty(db: Any, settings: Any) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    text = scrape()

    assert value(text, "medorder_metrics_source_up", source="celery_broker") == 0
    assert "medorder_celery_queue_length" not in text
    assert value(text, "medorder_metrics_source_up", source="database") == 1


def test_without_a_redis_broker_no_queue_depth_is_reported(db: Any, settings: Any) -> None:
    settings.CELERY_BROKER_URL = "memory://"

    text = scrape()

    assert "medorder_celery_queue_length" not in text
    assert value(text, "medorder_metrics_source_up", source="celery_broker") is None


# --- Outbox lag -----------------------------------------------------------------------------------


def _event(status: str, age: dt.timedelta) -> OutboxEvent:
    event = OutboxEvent.objects.create(
        topic="order.created",
        aggregate_type="orders.order",
        aggregate_id="1",
        payload={},
        available_at=timezone.now(),
        status=status,
    )
    OutboxEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - age)
    return event


def test_an_empty_outbox_has_no_lag(db: Any) -> None:
    OutboxEvent.objects.all().delete()

    text = scrape()

    assert value(text, "medorder_outbox_pending_events") == 0
    assert value(text, "medorder_outbox_oldest_pending_age_seconds") == 0
    assert value(text, "medorder_outbox_failed_events") == 0
    assert value(text, "medorder_metrics_source_up", source="database") == 1


def test_the_outbox_lag_is_the_age_of_the_oldest_pending_event(db: Any) -> None:
    OutboxEvent.objects.all().delete()
    _event(OutboxStatus.PENDING, dt.timedelta(seconds=30))
    _event(OutboxStatus.PENDING, dt.timedelta(minutes=17))
    _event(OutboxStatus.DISPATCHED, dt.timedelta(hours=5))  # delivered: not waiting
    _event(OutboxStatus.FAILED, dt.timedelta(hours=2))

    text = scrape()

    assert value(text, "medorder_outbox_pending_events") == 2
    assert value(text, "medorder_outbox_failed_events") == 1
    age = value(text, "medorder_outbox_oldest_pending_age_seconds")
    assert age is not None
    # 17 minutes, plus the moments between creating the rows and the scrape
    assert 17 * 60 <= age < 17 * 60 + 60


@pytest.mark.postgres
def test_a_placed_orders_undelivered_events_are_the_outbox_backlog(north: Any) -> None:
    # Given an order placed: its events commit with it (delivery waits for the commit this test's
    # transaction never makes, like a broker outage would)
    OutboxEvent.objects.all().delete()
    north.order()
    pending = OutboxEvent.objects.filter(status=OutboxStatus.PENDING).count()

    text = scrape()

    assert pending >= 1
    assert value(text, "medorder_outbox_pending_events") == pending
