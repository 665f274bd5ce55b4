"""Fixtures for the outbox tests: isolated routes, an unreachable broker, and a real Celery worker."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.signals import setup_logging
from celery.worker import WorkController
from django.conf import settings

from config.celery import app as celery_app
from core import outbox

# Nothing listens on port 1: connecting is refused at once.
UNREACHABLE_BROKER_URL = "redis://127.0.0.1:1/0"


def _drop_producer_pools(app: Celery) -> None:
    # The app caches its broker connection pool and producer pool for the URL it first used;
    # dropping them makes the next publish connect to whatever ``broker_url`` says now.
    app._pool = None  # type: ignore[attr-defined]
    app.amqp._producer_pool = None  # type: ignore[attr-defined]


@contextmanager
def broker_unreachable(app: Celery = celery_app) -> Iterator[None]:
    """Within the block Celery is not eager and every publish fails fast, as when Redis is down.

    Restores the previous configuration afterwards, so the next publish reaches the real broker again.
    """
    keys = ("task_always_eager", "broker_url", "broker_transport_options", "broker_connection_timeout")
    saved = {key: app.conf[key] for key in keys}
    app.conf.update(
        task_always_eager=False,
        broker_url=UNREACHABLE_BROKER_URL,
        broker_transport_options={"max_retries": 0},  # fail on the first refused connection
        broker_connection_timeout=0.5,
    )
    _drop_producer_pools(app)
    try:
        yield
    finally:
        app.conf.update(saved)
        _drop_producer_pools(app)


@contextmanager
def only_routes(topic: str, *task_names: str) -> Iterator[None]:
    """Route ``topic`` to ``task_names`` only, for the block; the previous routes come back afterwards."""
    previous = outbox.routes_for(topic)
    for name in previous:
        outbox.unsubscribe(topic, name)
    for name in task_names:
        outbox.subscribe(topic, name)
    try:
        yield
    finally:
        for name in task_names:
            outbox.unsubscribe(topic, name)
        for name in previous:
            outbox.subscribe(topic, name)


def wait_until(condition: Callable[[], bool], *, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


def _keep_test_logging(**kwargs: Any) -> None:
    """A ``setup_logging`` receiver: its presence stops Celery from replacing the root log handlers."""


@pytest.fixture
def live_worker(transactional_db: None) -> Iterator[WorkController]:
    """A real Celery worker (solo pool, in a thread) consuming ``settings.REDIS_URL``, with Celery not eager.

    Leftover messages of earlier runs are purged first. On exit the worker is stopped (the thread
    joined) and ``task_always_eager`` restored, so later tests run as before.
    """
    saved_eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    # Starting a worker runs django.setup() again (Celery's Django fixup), whose dictConfig replaces
    # the root logger's handlers, pytest's among them: put them back once the worker is up.
    root = logging.getLogger()
    root_handlers, root_level = root.handlers[:], root.level
    setup_logging.connect(_keep_test_logging, weak=False)
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10.0) as worker:
            setup_logging.disconnect(_keep_test_logging)
            root.handlers[:] = root_handlers
            root.setLevel(root_level)
            yield worker
    finally:
        setup_logging.disconnect(_keep_test_logging)
        celery_app.conf.task_always_eager = saved_eager
