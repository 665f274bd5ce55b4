"""The engagement agent's sweep on the beat schedule: ``engagement-messages-sweep`` every minute
(``agents.engagement.send_due_messages``) sends the messages quiet hours held and retries failed ones."""

from __future__ import annotations

from typing import Any

from django.db import migrations
from django.utils import timezone

NAME = "engagement-messages-sweep"


def create(apps: Any, schema_editor: Any) -> None:
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    interval, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=NAME, defaults={"task": "agents.engagement.send_due_messages", "interval": interval}
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove(apps: Any, schema_editor: Any) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("agents", "0005_staff_alerts_schedule")]

    operations = [migrations.RunPython(create, remove)]
