"""Prometheus metrics at ``/metrics``: django-prometheus's request, database and cache metrics plus
this system's own, read when Prometheus scrapes.

Own metrics (collected at scrape time, so they are right whichever process answers):

- ``medorder_celery_queue_length{queue}``: messages waiting in each Celery queue (the Redis lists
  of the broker, every priority level summed); only with a Redis broker.
- ``medorder_outbox_pending_events``: outbox events not yet delivered.
- ``medorder_outbox_oldest_pending_age_seconds``: how long the oldest of them has waited (0 when none).
- ``medorder_outbox_failed_events``: events parked after their last attempt, waiting for staff.
- ``medorder_metrics_source_up{source}``: 1 when the source above ("celery_broker", "database")
  answered this scrape, 0 when it did not (its metrics are then left out, not reported as zero).
- ``medorder_cache_operation_seconds{backend,operation}``: how long cache calls take (``TimedRedisCache``
  / ``TimedLocMemCache``).

Labels are view names, queue names, database aliases and operation names: never a path, an id or
anything typed by a person. Access: ``metrics_access_allowed``.

Under gunicorn each worker process counts its own requests; with ``PROMETHEUS_MULTIPROC_DIR`` set
(config/gunicorn.py sets it) the view adds up every worker's counts from that folder.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import prometheus_client
import redis
from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.db.models import Count, Min, Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django_prometheus.cache.metrics import django_cache_get_total, django_cache_hits_total, django_cache_misses_total
from prometheus_client import Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# How long a scrape waits for the broker before reporting it down.
BROKER_TIMEOUT_SECONDS = 1.0
# kombu's Redis transport keeps a queue's messages of priority p > 0 in the list "<queue>\x06\x16<p>"
# (priority_steps 0, 3, 6, 9; priority 0 is the plain name).
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)


def _queue_keys(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS]


def celery_queue_names() -> list[str]:
    """The queues whose depth is reported: ``METRICS_CELERY_QUEUES``, else Celery's default queue."""
    from config.celery import app

    return list(settings.METRICS_CELERY_QUEUES or [app.conf.task_default_queue])


def celery_queue_lengths(broker_url: str) -> dict[str, int]:
    """Messages waiting per queue in the Redis broker at ``broker_url``. Raises ``redis.RedisError``."""
    client = redis.Redis.from_url(
        broker_url, socket_connect_timeout=BROKER_TIMEOUT_SECONDS, socket_timeout=BROKER_TIMEOUT_SECONDS
    )
    try:
        queues = celery_queue_names()
        pipeline = client.pipeline(transaction=False)
        for queue in queues:
            for key in _queue_keys(queue):
                pipeline.llen(key)
        counts = pipeline.execute()
    finally:
        client.close()
    per_queue = len(_PRIORITY_STEPS)
    return {queue: sum(counts[index * per_queue : (index + 1) * per_queue]) for index, queue in enumerate(queues)}


def outbox_backlog() -> tuple[int, float, int]:
    """``(pending, age of the oldest pending in seconds, failed)`` in one query."""
    from .models import OutboxEvent, OutboxStatus

    # Only the waiting and failed rows are read (through the status index): delivered events, the
    # bulk of the table after a while, are never scanned.
    row = OutboxEvent.objects.filter(status__in=[OutboxStatus.PENDING, OutboxStatus.FAILED]).aggregate(
        pending=Count("pk", filter=Q(status=OutboxStatus.PENDING)),
        oldest=Min("created_at", filter=Q(status=OutboxStatus.PENDING)),
        failed=Count("pk", filter=Q(status=OutboxStatus.FAILED)),
    )
    age = max((timezone.now() - row["oldest"]).total_seconds(), 0.0) if row["oldest"] is not None else 0.0
    return row["pending"], age, row["failed"]


class BacklogCollector(Collector):
    """The Celery queue depth and the outbox backlog, read at each scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "medorder_metrics_source_up", "1 when the source answered this scrape, else 0.", labels=["source"]
        )
        broker_url = settings.CELERY_BROKER_URL
        if broker_url.startswith(("redis://", "rediss://")):
            try:
                lengths = celery_queue_lengths(broker_url)
            except redis.RedisError:
                logger.warning("metrics: the Celery broker did not answer")
                up.add_metric(["celery_broker"], 0)
            else:
                up.add_metric(["celery_broker"], 1)
                queue_length = GaugeMetricFamily(
                    "medorder_celery_queue_length", "Messages waiting in the Celery queue.", labels=["queue"]
                )
                for queue, length in lengths.items():
                    queue_length.add_metric([queue], length)
                yield queue_length
        try:
            pending, oldest_age, failed = outbox_backlog()
        except Exception:  # a scrape must answer even when the database does not
            logger.warning("metrics: the outbox backlog could not be read", exc_info=True)
            up.add_metric(["database"], 0)
        else:
            up.add_metric(["database"], 1)
            yield GaugeMetricFamily("medorder_outbox_pending_events", "Outbox events not yet delivered.", pending)
            yield GaugeMetricFamily(
                "medorder_outbox_oldest_pending_age_seconds",
                "Seconds the oldest undelivered outbox event has waited (0 when none waits).",
                oldest_age,
            )
            yield GaugeMetricFamily(
                "medorder_outbox_failed_events", "Outbox events parked after their last delivery attempt.", failed
            )
        yield up


class _Scrape:
    """What one scrape exposes: every process's counts (or this process's registry) and the backlog."""

    def __init__(self, sources: Iterable[Any]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[Any]:
        for source in self.sources:
            yield from source.collect()


def _process_metrics() -> Any:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return prometheus_client.REGISTRY


def metrics_access_allowed(request: HttpRequest) -> bool:
    """True for a scrape with ``Authorization: Bearer <METRICS_BEARER_TOKEN>`` (when that is set), or
    one made directly (no ``X-Forwarded-For``: it did not come through a proxy or the load balancer)
    from an address in ``METRICS_ALLOWED_IPS`` (addresses or networks, e.g. ``10.0.0.0/8``).
    """
    token = settings.METRICS_BEARER_TOKEN
    authorization = request.headers.get("Authorization", "")
    if token and authorization.startswith("Bearer "):
        return hmac.compare_digest(authorization.removeprefix("Bearer ").encode(), token.encode())
    if "X-Forwarded-For" in request.headers:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_IPS)


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition; 403 for a caller ``metrics_access_allowed`` refuses."""
    if not metrics_access_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain; charset=utf-8")
    body = prometheus_client.generate_latest(_Scrape([_process_metrics(), BacklogCollector()]))
    response = HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


# --- Cache timings -----------------------------------------------------------------------------
cache_operation_seconds = Histogram(
    "medorder_cache_operation_seconds",
    "Time taken by cache calls.",
    ["backend", "operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, float("inf")),
)
_MISSING = object()


class _TimedCacheMixin:
    """Times the cache calls (``medorder_cache_operation_seconds``) and counts gets, hits and misses
    with django-prometheus's ``django_cache_get_*`` counters."""

    metrics_backend = "cache"

    @contextmanager
    def _timed(self, operation: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            cache_operation_seconds.labels(self.metrics_backend, operation).observe(time.perf_counter() - started)

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        django_cache_get_total.labels(backend=self.metrics_backend).inc()
        with self._timed("get"):
            value = super().get(key, _MISSING, version=version)  # type: ignore[misc]
        if value is _MISSING:
            django_cache_misses_total.labels(backend=self.metrics_backend).inc()
            return default
        django_cache_hits_total.labels(backend=self.metrics_backend).inc()
        return value

    def set(self, *args: Any, **kwargs: Any) -> None:
        with self._timed("set"):
            super().set(*args, **kwargs)  # type: ignore[misc]

    def add(self, *args: Any, **kwargs: Any) -> bool:
        with self._timed("add"):
            return bool(super().add(*args, **kwargs))  # type: ignore[misc]

    def delete(self, *args: Any, **kwargs: Any) -> bool:
        with self._timed("delete"):
            return bool(super().delete(*args, **kwargs))  # type: ignore[misc]

    def get_many(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        with self._timed("get_many"):
            return dict(super().get_many(*args, **kwargs))  # type: ignore[misc]

    def set_many(self, *args: Any, **kwargs: Any) -> list[Any]:
        with self._timed("set_many"):
            return list(super().set_many(*args, **kwargs))  # type: ignore[misc]

    def delete_many(self, *args: Any, **kwargs: Any) -> None:
        with self._timed("delete_many"):
            super().delete_many(*args, **kwargs)  # type: ignore[misc]

    def incr(self, *args: Any, **kwargs: Any) -> int:
        with self._timed("incr"):
            return int(super().incr(*args, **kwargs))  # type: ignore[misc]


class TimedRedisCache(_TimedCacheMixin, RedisCache):
    """Django's Redis cache with timings and hit/miss counts."""

    metrics_backend = "redis"


class TimedLocMemCache(_TimedCacheMixin, LocMemCache):
    """Django's local-memory cache with timings and hit/miss counts."""

    metrics_backend = "locmem"
