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


class AlertKind(models.TextChoices):
    STALLED_ORDER = "stalled_order", "Order waiting too long"
    OVER_CAPACITY = "over_capacity", "Warehouse over capacity"
    AGENT_FAILING = "agent_failing", "Agent failing"


class AlertLevel(models.TextChoices):
    ALERT = "alert", "Alert (ops staff)"
    ESCALATION = "escalation", "Escalation (admins)"


class StaffAlert(models.Model):
    """One alert to staff, raised once per subject, condition and level (``key``): an order waiting
    too long in a status, a warehouse day over capacity, a failing agent. Each channel is stamped
    when it went out; a failed channel is tried again by the next sweep. No PHI: references, codes,
    times and a link."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    level = models.CharField(max_length=20, choices=AlertLevel.choices, default=AlertLevel.ALERT)
    key = models.CharField(
        max_length=200, help_text="What the alert is about and the condition, e.g. order:<id>:on_hold."
    )
    territory = models.ForeignKey(
        "territories.Territory", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    subject = models.CharField(max_length=200)
    body = models.TextField()
    url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    sms_sent_at = models.DateTimeField(null=True, blank=True)
    teams_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["key", "level"], name="staff_alert_once")]

    def __str__(self) -> str:
        return self.subject
