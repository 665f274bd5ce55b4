"""The beat schedule lives in the database (django-celery-beat): its defaults come from a migration,
ops change it in the admin, and a real beat process (the README's command) runs what was changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tests.admin.conftest import signed_in
from tests.conftest import World
from tests.processes import Process, deployment_environment

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BEAT = "celery -A config beat --loglevel=INFO"
TIME_ZONE = settings.TIME_ZONE
SWEEP_SENT = "Scheduler: Sending due task outbox-sweep (core.tasks.dispatch_outbox)"
DEFAULTS = {
    "outbox-sweep": ("core.tasks.dispatch_outbox", "every 30 seconds"),
    "pharmacy-poll-dispense-status": ("agents.pharmacy.poll_dispense_status", "every 15 minutes"),
    "staff-alerts-sweep": ("agents.workforce.sweep_staff_alerts", "every 5 minutes"),
    "engagement-messages-sweep": ("agents.engagement.send_due_messages", "every minute"),
    "stock-alerts-daily": ("catalog.tasks.check_stock", f"0 6 * * * (m/h/dM/MY/d) {TIME_ZONE}"),
    "order-drafts-purge": ("orders.tasks.purge_stale_drafts", f"30 3 * * * (m/h/dM/MY/d) {TIME_ZONE}"),
    "work-orders-nightly": ("agents.ordering.refresh_all_work_orders", f"0 2 * * * (m/h/dM/MY/d) {TIME_ZONE}"),
    "pharmacy-resupply-refills": ("agents.pharmacy.send_due_refills", f"0 7 * * * (m/h/dM/MY/d) {TIME_ZONE}"),
}


def change_form(task: PeriodicTask, **changes: Any) -> dict[str, Any]:
    """The admin's change form of ``task`` as posted, with ``changes``."""
    data = {
        "name": task.name,
        "regtask": "",
        "task": task.task,
        "enabled": "on",
        "description": task.description,
        "interval": task.interval_id or "",
        "crontab": task.crontab_id or "",
        "solar": "",
        "clocked": "",
        "start_time_0": "",
        "start_time_1": "",
        "args": "[]",
        "kwargs": "{}",
        "expires_0": "",
        "expires_1": "",
        "expire_seconds": "",
        "queue": "",
        "exchange": "",
        "routing_key": "",
        "priority": "",
        "headers": "{}",
    }
    return {**data, **changes}


@pytest.mark.usefixtures("beat_schedule")
def test_the_defaults_are_scheduled_in_the_sites_time_zone() -> None:
    scheduled = {
        task.name: (task.task, str(task.interval or task.crontab))
        for task in PeriodicTask.objects.select_related("interval", "crontab").filter(enabled=True)
    }
    assert scheduled == DEFAULTS


@pytest.mark.usefixtures("beat_schedule")
def test_ops_change_a_schedule_in_the_admin_and_beat_runs_it_as_changed(north: World, tmp_path: Path) -> None:
    client = signed_in(north.ops)
    sweep = PeriodicTask.objects.get(name="outbox-sweep")
    assert client.get("/admin/django_celery_beat/periodictask/").status_code == 200
    beat = Process(BEAT, tmp_path / "beat.log", deployment_environment(tmp_path))
    try:
        # Every 30 seconds: sent once, at start (it never ran)
        beat.wait_for(lambda: sends(beat) == 1, timeout=60)

        # When ops set it to every second in the admin
        every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
        response = client.post(
            f"/admin/django_celery_beat/periodictask/{sweep.pk}/change/", change_form(sweep, interval=every_second.pk)
        )
        assert response.status_code == 302, response.content.decode()[:2000]

        # Then beat notices the change and sends it every second
        beat.wait_for(lambda: sends(beat) >= 6, timeout=30)
    finally:
        beat.stop()
    assert PeriodicTask.objects.get(pk=sweep.pk).interval_id == every_second.pk


def sends(beat: Process) -> int:
    return sum(line["message"] == SWEEP_SENT for line in beat.json_lines())


def test_doctors_have_no_schedules(north: World) -> None:
    assert signed_in(north.doctor).get("/admin/django_celery_beat/periodictask/").status_code in (302, 403)
