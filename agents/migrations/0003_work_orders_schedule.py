"""The ordering agent's nightly run on the beat schedule: ``work-orders-nightly`` at 02:00 (TIME_ZONE)
refreshes every patient's work orders (``agents.ordering.refresh_all_work_orders``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import migrations
from django.utils import timezone

NAME = "work-orders-nightly"


def create(apps: Any, schema_editor: Any) -> None:
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="2", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
    )
    PeriodicTask.objects.get_or_create(
        name=NAME, defaults={"task": "agents.ordering.refresh_all_work_orders", "crontab": crontab}
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove(apps: Any, schema_editor: Any) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("agents", "0002_default_schedules")]

    operations = [migrations.RunPython(create, remove)]
