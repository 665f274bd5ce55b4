"""Recording agent runs (``AgentRun``). Called by the agent runtime (``agents.runtime``), outside any
transaction of the task's own work, so a run is visible while it runs and stays recorded when the
work rolls back."""

from __future__ import annotations

import uuid

from django.utils import timezone

from .models import AgentName, AgentRun, RunOutcome

# The error code of a run whose worker died before it ended (its message came back).
WORKER_LOST = "WorkerLost"


def agent_run_already_done(*, task: str, event_id: str | uuid.UUID) -> bool:
    """Whether ``task`` has already handled the outbox event ``event_id`` (a run of it ended ``ok``)."""
    return AgentRun.objects.filter(task=task, event_id=event_id, outcome=RunOutcome.OK).exists()


def agent_run_start(
    *,
    agent: AgentName,
    task: str,
    topic: str = "",
    event_id: str | uuid.UUID | None = None,
    celery_task_id: str = "",
    attempt: int = 0,
    outcome: RunOutcome = RunOutcome.RUNNING,
) -> AgentRun:
    """Record a run starting now (or, with another ``outcome``, one that ends as it starts).

    Runs of the same Celery message still ``running`` are ended ``failed`` with ``WorkerLost``
    first: the message is only delivered again when the worker running it died.
    """
    now = timezone.now()
    if celery_task_id:
        AgentRun.objects.filter(celery_task_id=celery_task_id, outcome=RunOutcome.RUNNING).update(
            outcome=RunOutcome.FAILED, error_code=WORKER_LOST, finished_at=now
        )
    ended = outcome != RunOutcome.RUNNING
    return AgentRun.objects.create(
        agent=agent,
        task=task,
        topic=topic,
        event_id=event_id,
        celery_task_id=celery_task_id,
        attempt=attempt,
        started_at=now,
        finished_at=now if ended else None,
        duration_ms=0 if ended else None,
        outcome=outcome,
    )


def agent_run_finish(*, run: AgentRun, outcome: RunOutcome, error_code: str = "") -> None:
    """End ``run`` now with ``outcome`` (and ``error_code``, a code or class name: never a message)."""
    run.finished_at = timezone.now()
    run.duration_ms = max(0, round((run.finished_at - run.started_at).total_seconds() * 1000))
    run.outcome = outcome
    run.error_code = error_code[:100]
    run.save(update_fields=["finished_at", "duration_ms", "outcome", "error_code"])
