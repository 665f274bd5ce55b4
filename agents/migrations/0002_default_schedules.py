"""The default beat schedule, written into django-celery-beat's tables, where ops see and change it in
the admin. Existing entries of the same name are left as they are (an edited schedule stays edited).

- outbox-sweep: every 30 s, the outbox events an after-commit enqueue missed (core.tasks.dispatch_outbox);
- stock-alerts-daily: 06:00, expiring lots and low stock (catalog.tasks.check_stock);
- order-drafts-purge: 03:30, order drafts untouched for ORDER_DRAFT_RETENTION_DAYS;
- pharmacy-poll-dispense-status: every 15 minutes, the pharmacies asked about open prescriptions;
- pharmacy-resupply-refills: 07:00, the refills that are due sent to the pharmacy.
Crontab times are in the site's time zone (TIME_ZONE).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import migrations
from django.utils import timezone

INTERVALS = {
    "outbox-sweep": ("core.tasks.dispatch_outbox", 30, "seconds"),
    "pharmacy-poll-dispense-status": ("agents.pharmacy.poll_dispense_status", 15, "minutes"),
}
DAILY = {
    "stock-alerts-daily": ("catalog.tasks.check_stock", 6, 0),
    "order-drafts-purge": ("orders.tasks.purge_stale_drafts", 3, 30),
    "pharmacy-resupply-refills": ("agents.pharmacy.send_due_refills", 7, 0),
}


def create_defaults(apps: Any, schema_editor: Any) -> None:
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    for name, (task, every, period) in INTERVALS.items():
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": interval})
    for name, (task, hour, minute) in DAILY.items():
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=str(minute),
            hour=str(hour),
            day_of_week="*",
            day_of_month="*",
            month_of_year="*",
            timezone=settings.TIME_ZONE,
        )
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "crontab": crontab})
    # Beat re-reads the schedule when this marker moves (what the admin does on every change).
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_defaults(apps: Any, schema_editor: Any) -> None:
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[*INTERVALS, *DAILY]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0001_agent_run"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_defaults, remove_defaults)]
