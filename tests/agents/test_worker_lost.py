"""A worker killed in the middle of an agent task: the message comes back (acknowledged late, rejected
when the worker is lost), the next delivery does the work, and its effect happens once.

A real worker process (the README's command, prefork pool) against this run's database and Redis.
The task is held mid-way by a row lock that the test keeps on the order, the pool process running it
is killed with SIGKILL, then the lock is let go."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from agents.models import AgentRun
from config.celery import app as celery_app
from core.models import OutboxEvent
from orders import services as order_services
from payments.models import Invoice
from tests.conftest import World
from tests.core.conftest import only_routes, wait_until
from tests.processes import Process, database_url_of_this_run, deployment_environment

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

WORKER = "celery -A config worker --loglevel=INFO --concurrency=1"


@pytest.fixture
def empty_queue() -> Iterator[None]:
    celery_app.control.purge()
    try:
        yield
    finally:
        celery_app.control.purge()


def send_to_the_worker(task_name: str, **kwargs: str) -> None:
    """Publish ``task_name`` to the broker (this process runs Celery eagerly otherwise)."""
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        celery_app.send_task(task_name, kwargs=kwargs)
    finally:
        celery_app.conf.task_always_eager = eager


def pool_processes(group: int) -> list[int]:
    """The worker's pool processes: Celery processes of process group ``group`` whose parent is one too
    (the shell that started the worker is in the group, with the command in its arguments)."""
    parents: dict[int, int] = {}
    celery: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == group:
            parents[int(entry.name)] = int(fields[1])
            if b"celery" in command and Path(command.split(b"\0")[0].decode()).name not in ("sh", "bash", "dash"):
                celery.add(int(entry.name))
    return [pid for pid in celery if parents[pid] in celery]


def test_a_worker_killed_mid_task_leaves_the_event_to_the_next_delivery_and_invoices_once(
    north: World, tmp_path: Path, empty_queue: None
) -> None:
    order = north.order(payer_type="cash")
    with only_routes("order.verified"):  # the event is not sent to any task from here
        order_services.order_verify(order_id=order.pk, actor=north.ops)
    event = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.verified")
    worker = Process(WORKER, tmp_path / "worker.log", deployment_environment(tmp_path))
    try:
        worker.wait_for(lambda: any(line["message"].endswith(" ready.") for line in worker.json_lines()))
        with psycopg.connect(database_url_of_this_run()) as holder:
            holder.execute("SELECT 1 FROM orders_order WHERE id = %s FOR UPDATE", [order.pk])
            # When the payments agent's task for the event starts and waits on the order
            send_to_the_worker("agents.payments.issue_invoice", event_id=str(event.pk), topic="order.verified")
            assert wait_until(lambda: AgentRun.objects.filter(event_id=event.pk).exists(), timeout=60)
            # and the process running it dies
            (pool_process,) = pool_processes(worker.popen.pid)
            os.kill(pool_process, signal.SIGKILL)
            assert wait_until(lambda: pool_processes(worker.popen.pid) not in ([], [pool_process]), timeout=30)
            assert not Invoice.objects.filter(order=order).exists()
            holder.rollback()  # the order's lock is let go

        # Then the message comes back and the invoice is issued, once
        assert wait_until(lambda: AgentRun.objects.filter(event_id=event.pk, outcome="ok").exists(), timeout=60)
        assert Invoice.objects.filter(order=order).count() == 1
        runs = list(AgentRun.objects.filter(event_id=event.pk).order_by("started_at"))
        assert [(run.outcome, run.error_code) for run in runs] == [("failed", "WorkerLost"), ("ok", "")]
        assert runs[0].celery_task_id == runs[1].celery_task_id != ""
        assert "WorkerLostError" in worker.text()
    finally:
        worker.stop()
