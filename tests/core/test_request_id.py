"""Request ids: taken from X-Request-ID when well formed, else made; on the response, on every log line
of the request (JSON lines included, with the PHI filters still applied), and carried into the Celery
tasks the request causes — through a real worker and a real Redis broker, two hops deep."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import shared_task
from celery.worker import WorkController
from django.conf import settings
from django.test import Client

from config.celery import app as celery_app
from core.logging import JsonFormatter, StripQueryStringFilter
from core.models import OutboxEvent, OutboxStatus
from core.request_id import (
    NO_REQUEST_ID,
    RequestIdFilter,
    current_request_id,
    is_valid_request_id,
    request_id_bound,
)

from .conftest import only_routes, wait_until

NEW_ID = re.compile(r"[0-9a-f]{32}")


# --- The id of a request ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "incoming",
    [
        "3f1c9a6e-2b7d-4c1e-9a55-0e6f1d2c3b4a",  # a UUID
        "0123456789abcdef0123456789abcdef",  # nginx's $request_id
        "Root-1.5f84c7a9_e4b2",  # letters, digits, "-", "_", "."
        "a" * 8,  # the shortest
        "b" * 64,  # the longest
    ],
)
def test_a_well_formed_incoming_id_is_kept(db: Any, incoming: str) -> None:
    response = Client().get("/accounts/login/", HTTP_X_REQUEST_ID=incoming)

    assert response.status_code == 200
    assert response["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        "",
        "short",  # 5 characters
        "a" * 7,
        "c" * 65,  # too long
        "has space inside it",
        "quote'or\"double",
        "semi;colon;id",
        "Marisol Vandermeulen",
        "ünïcödé-chars",
        "new\\nline-inject",
    ],
)
def test_a_malformed_incoming_id_is_replaced_by_a_new_one(db: Any, incoming: str) -> None:
    response = Client().get("/accounts/login/", HTTP_X_REQUEST_ID=incoming)

    assert response.status_code == 200
    assert NEW_ID.fullmatch(response["X-Request-ID"])
    assert response["X-Request-ID"] != incoming


def test_without_an_incoming_id_each_request_gets_its_own(db: Any) -> None:
    client = Client()

    first, second = client.get("/accounts/login/"), client.get("/accounts/login/")

    assert NEW_ID.fullmatch(first["X-Request-ID"])
    assert NEW_ID.fullmatch(second["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_request_refused_for_a_control_character_still_has_an_id(db: Any) -> None:
    response = Client().get("/api/v1/orders?search=%00", HTTP_X_REQUEST_ID="refused-request-0001")

    assert response.status_code == 400
    assert response["X-Request-ID"] == "refused-request-0001"


def test_validity_rules() -> None:
    assert [is_valid_request_id(value) for value in (None, "", "abcdefg", "abcdefgh", "x" * 64, "x" * 65)] == [
        False,
        False,
        False,
        True,
        True,
        False,
    ]


# --- Log lines -----------------------------------------------------------------------------------


@pytest.fixture
def json_console() -> Iterator[io.StringIO]:
    """The console handler configured by settings.LOGGING, writing JSON lines into a buffer."""
    handler = next(h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler)
    assert [type(f) for f in handler.filters] == [RequestIdFilter, StripQueryStringFilter]
    buffer = io.StringIO()
    previous_stream, previous_formatter = handler.setStream(buffer), handler.formatter
    handler.setFormatter(JsonFormatter())
    assert handler in logging.getLogger("django.request").handlers  # the same handler writes request lines
    try:
        yield buffer
    finally:
        handler.setStream(previous_stream)
        handler.setFormatter(previous_formatter)


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_json_line_of_a_payment_link_request_masks_the_token_and_names_the_request(
    db: Any, json_console: io.StringIO
) -> None:
    # Given a payment link's token in the path and a patient's name in the query string
    token = "tok_7Hq2ZsLm9PkWx4Rb8Vn3Yc"

    # When the request is answered 404 (an unknown link): Django logs "Not Found: <path>"
    response = Client().get(f"/pay/{token}?name=Vandermeulen", HTTP_X_REQUEST_ID="pay-link-request-01")

    # Then the one JSON line names the request and shows neither the token nor the query
    assert response.status_code == 404
    (line,) = [entry for entry in _lines(json_console) if entry["logger"] == "django.request"]
    assert set(line) == {"timestamp", "level", "logger", "message", "request_id"}
    assert (line["level"], line["message"], line["request_id"]) == (
        "WARNING",
        "Not Found: /pay/****n3Yc",
        "pay-link-request-01",
    )
    assert token not in json_console.getvalue()
    assert "Vandermeulen" not in json_console.getvalue()


def test_a_line_written_inside_a_request_carries_its_id(db: Any, json_console: io.StringIO, settings: Any) -> None:
    # Given Redis unreachable, so the readiness check logs why it fails while answering the request
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = Client().get("/health/ready", HTTP_X_REQUEST_ID="readiness-probe-0042")

    assert response.status_code == 503
    failures = [entry for entry in _lines(json_console) if entry["logger"] == "health_check"]
    assert [entry["message"] for entry in failures] == ["Health check Redis(db=0, host='127.0.0.1', port=1) failed"]
    assert failures[0]["request_id"] == "readiness-probe-0042"
    assert failures[0]["level"] == "WARNING"
    assert "Unable to connect to Redis" in failures[0]["exception"]


def test_a_json_traceback_is_cleaned_like_the_message() -> None:
    # Given an exception whose text holds a link token and a query string
    record: logging.LogRecord | None = None
    try:
        raise ValueError("while reading /p/tok_SecretPatientLink9 for ?dob=1948-07-09")
    except ValueError:
        args = ("/pay/tok_abcdefWXYZ?x=1",)
        record = logging.LogRecord("tests", logging.ERROR, __file__, 1, "failed: %s", args, sys.exc_info())
    assert record is not None

    # When it is written through the filters and the JSON formatter
    assert RequestIdFilter().filter(record)
    assert StripQueryStringFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))

    # Then neither the message nor the traceback shows the token or the query
    assert line["message"] == "failed: /pay/****WXYZ?…"
    assert line["request_id"] == NO_REQUEST_ID
    assert "ValueError: while reading /p/****ink9 for ?…" in line["exception"]
    assert "SecretPatientLink" not in line["exception"]
    assert "1948" not in line["exception"]


def test_outside_a_request_the_filter_writes_a_dash_and_inside_the_bound_id() -> None:
    def filtered() -> str:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "message", None, None)
        RequestIdFilter().filter(record)
        return str(record.request_id)  # type: ignore[attr-defined]

    assert filtered() == "-"
    with request_id_bound("bound-request-0001"):
        assert filtered() == "bound-request-0001"
    assert filtered() == "-"


def test_a_gunicorn_access_line_takes_the_id_from_the_response_header_it_logs() -> None:
    # gunicorn logs the access line after the response has gone, with the atoms as a mapping.
    atoms = {"r": "GET /pay/tok_abcdefWXYZ HTTP/1.1", "s": "200", "{x-request-id}o": "access-line-0001"}
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(r)s %(s)s", None, None)
    record.args = atoms

    assert RequestIdFilter().filter(record)
    assert StripQueryStringFilter().filter(record)

    assert (record.request_id, record.getMessage()) == ("access-line-0001", "GET /pay/****WXYZ HTTP/1.1 200")  # type: ignore[attr-defined]


# --- Celery tasks ----------------------------------------------------------------------------------

SEEN_KEY = "tests.core.request_ids_seen"
ROUTE = "tests.core.record_request_id"


@shared_task(name=ROUTE, ignore_result=True)
def record_request_id(event_id: str, topic: str) -> None:
    """The test route: appends the request id its run sees (and a log line's) to a Redis list."""
    record = logging.LogRecord("tests", logging.INFO, __file__, 1, "route ran", None, None)
    RequestIdFilter().filter(record)
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        client.rpush(SEEN_KEY, f"{topic} context={current_request_id()} log={record.request_id}")  # type: ignore[attr-defined]


@shared_task(name="tests.core.echo_request_id")
def echo_request_id() -> str | None:
    return current_request_id()


@pytest.fixture
def seen(redis_client: redis.Redis) -> Iterator[Any]:
    redis_client.delete(SEEN_KEY)
    with only_routes("order.created", ROUTE):
        yield lambda: [str(item) for item in redis_client.lrange(SEEN_KEY, 0, -1)]
    redis_client.delete(SEEN_KEY)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_requests_id_reaches_the_tasks_it_causes_through_a_real_worker(
    north: Any, api: Any, live_worker: WorkController, seen: Any
) -> None:
    # Given a running worker, when a doctor places an order with a request id
    response = api(north.doctor).post(
        "/api/v1/orders",
        {
            "patient_id": str(north.patient.pk),
            "provider_id": str(north.provider.pk),
            "items": [{"sku": north.product.sku, "quantity": 1}],
            "payer_type": "insurance",
            "diagnosis_codes": ["G47.33"],
            "sign": True,
        },
        format="json",
        HTTP_X_REQUEST_ID="order-request-00042",
    )
    assert response.status_code == 201, response.content
    assert response["X-Request-ID"] == "order-request-00042"
    event = OutboxEvent.objects.get(aggregate_id=response.json()["id"], topic="order.created")

    # Then the worker delivers the event (first task) and runs its route (second task, sent by the
    # first): both under the request's id, on their log lines too
    assert wait_until(lambda: seen() != [])
    assert seen() == ["order.created context=order-request-00042 log=order-request-00042"]
    assert OutboxEvent.objects.get(pk=event.pk).status == OutboxStatus.DISPATCHED


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_task_sent_outside_any_request_runs_under_an_id_of_its_own(live_worker: WorkController) -> None:
    first, second = echo_request_id.delay().get(timeout=10), echo_request_id.delay().get(timeout=10)

    assert NEW_ID.fullmatch(first or "")
    assert NEW_ID.fullmatch(second or "")
    assert first != second


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_task_sent_inside_a_request_context_runs_under_that_id(live_worker: WorkController) -> None:
    with request_id_bound("sent-from-request-7"):
        result = echo_request_id.delay()

    assert result.get(timeout=10) == "sent-from-request-7"
    assert current_request_id() is None


def test_an_eager_task_keeps_the_id_of_the_request_that_runs_it() -> None:
    assert celery_app.conf.task_always_eager is True
    with request_id_bound("eager-request-0009"):
        assert echo_request_id.delay().get() == "eager-request-0009"
        assert current_request_id() == "eager-request-0009"
    assert current_request_id() is None
