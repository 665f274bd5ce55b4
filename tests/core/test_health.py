"""/health/live and /health/ready for load balancers: real PostgreSQL and Redis, a real closed port
for a Redis that is down; answered without session, CSRF, host check or HTTPS redirect."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from core.models import AccessRecord

# Nothing listens on port 1: a connection is refused at once.
CLOSED_PORT_REDIS_URL = "redis://127.0.0.1:1/0"
NO_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"


def test_live_answers_without_asking_the_database() -> None:
    # No database access is allowed in this test (no db fixture): the view must not need one.
    response = Client().get("/health/live")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "checks": {}}
    assert response["Cache-Control"] == NO_CACHE


@pytest.mark.postgres
@pytest.mark.redis
def test_ready_with_postgresql_and_redis_answering(db: Any) -> None:
    response = Client().get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok", "storage": "ok"}}
    assert response["Cache-Control"] == NO_CACHE
    assert response["Vary"] == "Accept"


@pytest.mark.postgres
def test_ready_is_503_when_redis_does_not_answer(db: Any, settings: Any) -> None:
    settings.REDIS_URL = CLOSED_PORT_REDIS_URL

    response = Client().get("/health/ready")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "unavailable", "storage": "ok"},
    }
    # The reason is logged, never answered: no host, port or error text in the body.
    assert b"127.0.0.1" not in response.content


@pytest.mark.postgres
def test_without_redis_configured_ready_checks_the_database_only(db: Any, settings: Any) -> None:
    settings.REDIS_URL = ""

    response = Client().get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "storage": "ok"}}


@pytest.mark.postgres
def test_plain_text_when_asked_for(db: Any, settings: Any) -> None:
    settings.REDIS_URL = CLOSED_PORT_REDIS_URL

    ready = Client().get("/health/ready", HTTP_ACCEPT="text/plain")
    live = Client().get("/health/live", HTTP_ACCEPT="text/plain")

    assert (ready.status_code, ready["Content-Type"]) == (503, "text/plain; charset=utf-8")
    assert ready.content.decode() == "unavailable\ndatabase: ok\nredis: unavailable\nstorage: ok\n"
    assert (live.status_code, live.content.decode()) == (200, "ok\n")


@pytest.mark.postgres
@pytest.mark.redis
def test_further_checks_come_from_the_settings(db: Any, settings: Any, tmp_path: Any) -> None:
    # Given the storage check the file storage adds, under its own name (a file is written and removed)
    settings.HEALTH_READY_CHECKS = [("health_check.checks.Storage", {"name": "storage"})]
    settings.MEDIA_ROOT = str(tmp_path)

    response = Client().get("/health/ready")

    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok", "storage": "ok"}}
    assert settings.HEALTH_READY_CHECKS == [("health_check.checks.Storage", {"name": "storage"})]
    assert list(tmp_path.rglob("*.txt")) == []


@pytest.mark.postgres
def test_a_failing_further_check_makes_ready_fail(db: Any, settings: Any, tmp_path: Any) -> None:
    # Given storage that cannot be written (its folder is a file)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    settings.REDIS_URL = ""
    settings.MEDIA_ROOT = str(blocked)
    settings.HEALTH_READY_CHECKS = ["health_check.checks.Storage"]

    response = Client().get("/health/ready")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "ok", "storage": "unavailable"}}


@pytest.mark.postgres
def test_probes_get_no_session_no_csrf_cookie_and_write_nothing(db: Any, settings: Any) -> None:
    settings.REDIS_URL = ""
    users, access_records = User.objects.count(), AccessRecord.objects.count()
    client = Client(enforce_csrf_checks=True)

    responses = [client.get("/health/live"), client.get("/health/ready"), client.head("/health/ready")]

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert all(not response.cookies for response in responses)
    assert (User.objects.count(), AccessRecord.objects.count()) == (users, access_records)


def test_only_get_and_head_are_answered() -> None:
    response = Client().post("/health/live")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_a_probe_by_address_over_plain_http_is_answered_while_pages_are_not(settings: Any) -> None:
    # Given production's HTTPS redirect and host list, and a balancer probing the instance's address
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["medorder.example.org"]
    client = Client(HTTP_HOST="10.0.3.17:8000")

    # Then the probe is answered; a page from that address is refused (not a known host), and one
    # for the site's name over plain HTTP is sent to HTTPS
    assert client.get("/health/live").status_code == 200
    assert client.get("/accounts/login/").status_code == 400
    redirected = Client(HTTP_HOST="medorder.example.org").get("/accounts/login/")
    assert (redirected.status_code, redirected["Location"]) == (301, "https://medorder.example.org/accounts/login/")


def test_the_endpoints_have_names() -> None:
    assert (reverse("health-live"), reverse("health-ready"), reverse("metrics")) == (
        "/health/live",
        "/health/ready",
        "/metrics",
    )
