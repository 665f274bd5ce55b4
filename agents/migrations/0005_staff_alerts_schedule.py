"""The staff-alert sweep on the beat schedule: ``staff-alerts-sweep`` every 5 minutes
(``agents.workforce.sweep_staff_alerts``)."""

from __future__ import annotations

from typing import Any

from django.db import migrations
from django.utils import timezone

NAME = "staff-alerts-sweep"


def create(apps: Any, schema_editor: Any) -> None:
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    interval, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=NAME, defaults={"task": "agents.workforce.sweep_staff_alerts", "interval": interval}
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove(apps: Any, schema_editor: Any) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("agents", "0004_staff_alerts")]

    operations = [migrations.RunPython(create, remove)]
