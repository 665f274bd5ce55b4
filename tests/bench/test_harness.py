"""The benchmark harness's own parts that run without a server: the query counter, the read floor,
percentiles and the lock-wait summary (``make bench`` itself is not part of ``make test``)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from rest_framework.test import APIRequestFactory, force_authenticate

from bench.load import Sample, Series
from bench.locks import LockWait, summarize
from bench.middleware import QueryCountMiddleware
from bench.run import Config
from bench.views import FloorReadView


def _three_queries(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        for _ in range(3):
            cursor.execute("SELECT 1")
    return HttpResponse("ok")


@pytest.mark.django_db
def test_the_query_counter_reports_every_query_of_the_request_in_headers() -> None:
    response = QueryCountMiddleware(_three_queries)(RequestFactory().get("/"))

    assert response["X-Bench-Queries"] == "3"
    assert float(response["X-Bench-DB-ms"]) >= 0


@pytest.mark.django_db
def test_the_read_floor_selects_one_order_by_primary_key(north: Any, django_assert_num_queries: Any) -> None:
    order = north.order()
    request = APIRequestFactory().get(f"/bench/floor/read/{order.pk}")
    force_authenticate(request, user=north.doctor)

    with django_assert_num_queries(1):
        response = FloorReadView.as_view()(request, order_id=order.pk)

    assert response.status_code == 200
    assert response.data == {"id": order.pk, "reference": order.reference, "status": order.status}


@pytest.mark.django_db
def test_the_read_floor_answers_404_in_the_envelope_for_an_unknown_order(north: Any) -> None:
    request = APIRequestFactory().get("/bench/floor/read/00000000-0000-4000-8000-000000000000")
    force_authenticate(request, user=north.doctor)

    response = FloorReadView.as_view()(request, order_id="00000000-0000-4000-8000-000000000000")

    assert response.status_code == 404
    assert response.data["error"]["code"] == "NOT_FOUND"


def test_percentiles_are_nearest_rank_over_successful_responses() -> None:
    samples = [Sample(seconds=ms / 1000, status=200, queries=5, database_ms=1.0) for ms in range(1, 101)]
    series = Series(samples=[*samples, Sample(seconds=9.0, status=500, queries=None, database_ms=None)], seconds=4.0)

    assert (series.percentile_ms(50), series.percentile_ms(95), series.percentile_ms(99)) == (50.0, 95.0, 99.0)
    assert series.errors == {500: 1}
    assert series.throughput == 25.0
    assert series.queries == {"median": 5, "min": 5, "max": 5}


def test_lock_waits_over_the_limit_are_counted_by_the_longest_time_seen() -> None:
    waits = [
        LockWait("transactionid", "ShareLock", seen_ms=49.0, ended_by_ms=54.0),
        LockWait("tuple", "ExclusiveLock", seen_ms=51.0, ended_by_ms=55.0),
    ]

    assert summarize(waits, limit_ms=50.0) == {
        "waits": 2,
        "longest_seen_ms": 51.0,
        "longest_ended_by_ms": 55.0,
        "over_limit": 1,
        "limit_ms": 50.0,
        "by_type": ["transactionid/ShareLock", "tuple/ExclusiveLock"],
    }


@pytest.mark.parametrize(("orders", "size"), [(10_000, "10k"), (1_000_000, "1m"), (2_500, "2500"), (250_000, "250k")])
def test_data_sets_are_named_by_their_size(orders: int, size: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_ORDERS", str(orders))

    assert Config.from_env().size == size
