"""Health endpoints for load balancers and orchestrators: ``/health/live`` and ``/health/ready``.

``/health/live``: the process answers (no database, no other service): restart it when this fails.
``/health/ready``: the services a request needs answer: the database always, Redis when
``REDIS_URL`` is set, and every check named in ``HEALTH_READY_CHECKS`` (django-health-check checks,
e.g. storage): send it no traffic while this fails.

Both answer JSON (``{"status": "ok"|"unavailable", "checks": {name: "ok"|"unavailable"}}``), or
plain text when the client asks for ``text/plain``: 200 when healthy, 503 when not. No
authentication, no session, no CSRF, never cached; nothing in them but check names and states (no
host names, no error text: the reasons go to the log). ``core.middleware.InfrastructureEndpointsMiddleware``
answers these paths before host validation and the HTTPS redirect, since a load balancer probes each
instance by its address over plain HTTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.files.storage import storages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.module_loading import import_string
from health_check.base import HealthCheck, HealthCheckResult
from health_check.checks import Database
from health_check.contrib.redis import Redis
from health_check.exceptions import ServiceUnavailable
from redis.asyncio import Redis as AsyncRedis

from .storage import storage_problem

OK = "ok"
UNAVAILABLE = "unavailable"
# A readiness probe must answer before the load balancer's own timeout (typically 5 s or more).
CHECK_TIMEOUT = datetime.timedelta(seconds=2)


@dataclasses.dataclass
class NamedCheck:
    """A check and the name it is reported under."""

    name: str
    check: HealthCheck


def _redis_client() -> AsyncRedis:
    # Read at probe time (not import time), so the check follows the settings in force.
    return AsyncRedis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=CHECK_TIMEOUT.total_seconds(),
        socket_timeout=CHECK_TIMEOUT.total_seconds(),
    )


def _configured_check(entry: str | tuple[str, dict[str, Any]]) -> NamedCheck:
    # A copy of the options: the name is taken out of them, never out of the settings' own dict.
    path, options = (entry, {}) if isinstance(entry, str) else (entry[0], dict(entry[1]))
    check_class = import_string(path)
    name = options.pop("name", None) or check_class.__name__.lower()
    return NamedCheck(name, check_class(**options))


def readiness_checks() -> list[NamedCheck]:
    """The checks ``/health/ready`` runs now: database, Redis when ``REDIS_URL`` is set, then
    ``HEALTH_READY_CHECKS`` (dotted paths of django-health-check classes, or ``(path, options)``
    pairs; an option ``name`` sets the reported name, which defaults to the lower-cased class name).
    """
    checks = [NamedCheck("database", Database(alias="default"))]
    if settings.REDIS_URL:
        redis_check = Redis(client_factory=_redis_client)
        redis_check.timeout = CHECK_TIMEOUT
        checks.append(NamedCheck("redis", redis_check))
    checks.extend(_configured_check(entry) for entry in settings.HEALTH_READY_CHECKS)
    return checks


async def _results(checks: Iterable[HealthCheck]) -> list[HealthCheckResult]:
    # Each check reports its own failure (HealthCheck.get_result never raises for a service fault).
    return list(await asyncio.gather(*(check.get_result() for check in checks)))


def _answer(request: HttpRequest, states: dict[str, str]) -> HttpResponse:
    healthy = all(state == OK for state in states.values())
    status = OK if healthy else UNAVAILABLE
    code = 200 if healthy else 503
    if "text/plain" in request.headers.get("Accept", "") and "json" not in request.headers.get("Accept", ""):
        lines = [status, *(f"{name}: {state}" for name, state in states.items())]
        response: HttpResponse = HttpResponse(
            "\n".join(lines) + "\n", status=code, content_type="text/plain; charset=utf-8"
        )
    else:
        response = JsonResponse({"status": status, "checks": states}, status=code)
    add_never_cache_headers(response)
    patch_vary_headers(response, ["Accept"])
    return response


def live(request: HttpRequest) -> HttpResponse:
    """200 whenever the process can answer a request: no database or other service is asked."""
    return _answer(request, {})


def ready(request: HttpRequest) -> HttpResponse:
    """200 when every readiness check passes, 503 naming the ones that do not."""
    named = readiness_checks()
    results = async_to_sync(_results)([entry.check for entry in named])
    states = {
        entry.name: OK if result.error is None else UNAVAILABLE for entry, result in zip(named, results, strict=True)
    }
    return _answer(request, states)


@dataclasses.dataclass
class FileStorageCheck(HealthCheck):
    """The file storage ``alias`` can take files: the S3 bucket answers (a HEAD, nothing written), or
    the media folder is writable. Unavailable otherwise, with a reason that names no secret or path."""

    alias: str = "default"
    # Under the S3 client's connect timeout and retries (config/settings/file_storage.py) a dead endpoint
    # is reported by the client first; this is the outer bound.
    timeout = datetime.timedelta(seconds=10)

    def run(self) -> None:
        problem = storage_problem(storages[self.alias])
        if problem is not None:
            raise ServiceUnavailable(problem)
