"""Catalog tasks: the daily stock check (beat entry ``stock-alerts-daily``)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.db import OperationalError

from . import alerts


@shared_task(
    name="catalog.tasks.check_stock",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(alerts.StockAlertNotificationFailed, OperationalError),
    retry_backoff=60,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=6,
)
def check_stock(today: str | None = None) -> dict[str, int]:
    """Run ``catalog.alerts.stock_alerts_check`` for ``today`` (ISO date; the local date by default).

    Idempotent: a second run raises and announces nothing new. When the announcement failed the
    task raises StockAlertNotificationFailed, so Celery retries it with backoff (the retry only
    re-sends the alerts still un-notified). Returns the run's counts.
    """
    run = alerts.stock_alerts_check(today=dt.date.fromisoformat(today) if today else None)
    if run.notification is not None and run.notification.failed:
        raise alerts.StockAlertNotificationFailed()
    return {
        "raised": run.raised,
        "resolved": run.resolved,
        "open": run.open,
        "notified": run.notification.notified if run.notification else 0,
    }
