"""What the agents did: one ``AgentRun`` per run of an agent task (no PHI: ids, names and codes only)."""

from __future__ import annotations

import uuid

from django.db import models


class AgentName(models.TextChoices):
    ORDERING = "ordering", "Ordering"
    PAYMENTS = "payments", "Payments"
    WORKFORCE = "workforce", "Workforce"
    ENGAGEMENT = "engagement", "Engagement"
    PHARMACY = "pharmacy", "Pharmacy"


class RunOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    OK = "ok", "OK"
    RETRIED = "retried", "Retried"
    FAILED = "failed", "Failed"
    SKIPPED_DUPLICATE = "skipped-duplicate", "Skipped (duplicate delivery)"


class AgentRun(models.Model):
    """One run of an agent task: for an outbox event (``event_id`` and ``topic``) or on a schedule
    (neither). A run starts as ``running`` and ends ``ok``, ``retried`` (it failed and was sent
    again: the next attempt is another run), ``failed`` (with ``error_code``: the exception's code
    or class name, never its message) or ``skipped-duplicate`` (the event had already been handled
    by this task). A run left ``running`` by a worker that died is ended ``failed`` with
    ``WorkerLost`` when its message is delivered again (same ``celery_task_id``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.CharField(max_length=20, choices=AgentName.choices)
    task = models.CharField(max_length=200, help_text="The Celery task's name.")
    topic = models.CharField(max_length=100, blank=True, help_text="The outbox topic; blank for a scheduled run.")
    event_id = models.UUIDField(null=True, blank=True, help_text="The outbox event handled.")
    celery_task_id = models.CharField(max_length=64, blank=True)
    attempt = models.PositiveSmallIntegerField(default=0, help_text="0 for the first try, then one per retry.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=RunOutcome.choices, default=RunOutcome.RUNNING)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["agent", "-started_at"], name="agentrun_agent_started_idx"),
            models.Index(fields=["task", "event_id"], name="agentrun_task_event_idx"),
            models.Index(fields=["celery_task_id"], name="agentrun_celery_task_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task} {self.outcome}"
