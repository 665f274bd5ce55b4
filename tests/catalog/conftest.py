"""Catalog test fixtures: the real Celery worker of the core tests, for the beat-scheduled stock check."""

from tests.core.conftest import live_worker, redis_client  # noqa: F401
