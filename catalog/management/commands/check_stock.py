"""``manage.py check_stock [--date YYYY-MM-DD]``: the daily stock check, run by hand or by cron.

Runs the same service as the Celery beat entry (``catalog.alerts.stock_alerts_check``): raises
low-stock and expiring-lot alerts, resolves cleared ones and announces the new ones to the admins.
Prints one summary line; exits with an error when the announcement failed (the alerts stay
pending and the next run sends them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog import alerts


def _iso_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as error:
        raise CommandError(f"--date must be YYYY-MM-DD, not {value!r}.") from error


class Command(BaseCommand):
    help = "Check stock: alert the admins about low stock and expiring lots, with reorder suggestions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="Check as of this day (YYYY-MM-DD); today by default.")

    def handle(self, *args: Any, **options: Any) -> None:
        today = _iso_date(options["date"]) if options["date"] else None
        run = alerts.stock_alerts_check(today=today)
        notification = run.notification
        notified = notification.notified if notification else 0
        self.stdout.write(
            f"Stock check {run.today.isoformat()}: {run.raised} raised, {run.resolved} resolved, "
            f"{run.open} open; {notified} notified."
        )
        if notification is not None and notification.failed:
            raise CommandError("Sending the stock alerts failed; they stay pending and the next run sends them.")
