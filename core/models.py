"""Shared records: the transactional outbox and PHI access records."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models


class AppendOnlyMixin:
    """For ledger and timeline rows: they are inserted, never updated or deleted through the ORM.

    Put it before ``models.Model`` (or a model base) in the class's bases.
    """

    _state: Any

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError(f"{type(self).__name__} rows are append-only")
        super().save(*args, **kwargs)  # type: ignore[misc]

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} rows are append-only")


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DISPATCHED = "dispatched", "Dispatched"
    FAILED = "failed", "Failed (retries exhausted)"


class OutboxEvent(models.Model):
    """A domain event written in the same transaction as the change it announces.

    The payload holds ids and codes only, never PHI. A Celery task delivers it to the routes
    subscribed to its topic after commit; a beat sweep delivers whatever an after-commit
    enqueue missed, so an event committed with its change is never lost.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    topic = models.CharField(max_length=100, db_index=True)
    aggregate_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=64, db_index=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=OutboxStatus.choices, default=OutboxStatus.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    available_at = models.DateTimeField(db_index=True, help_text="Not delivered before this time (backoff).")
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["status", "available_at"], name="outbox_due_idx")]

    def __str__(self) -> str:
        return f"{self.topic} {self.aggregate_type}:{self.aggregate_id}"


class AccessAction(models.TextChoices):
    VIEW = "view", "View"


class AccessChannel(models.TextChoices):
    API = "api", "REST API"
    ADMIN = "admin", "Django admin"
    PORTAL = "portal", "Portal"


class AccessRecordQuerySet(models.QuerySet["AccessRecord"]):
    def naming(self, object_id: Any) -> AccessRecordQuerySet:
        """The records that name the object with ``object_id``: its own page, or a list that showed it."""
        text = str(object_id)
        return self.filter(models.Q(object_id=text) | models.Q(object_ids__contains=text))


class AccessRecord(models.Model):
    """One read of PHI: who saw which objects of one kind and one territory, through what, and when.

    A page showing one object names it in ``object_id``; a list page names every object it showed
    in ``object_ids`` (one record per page view, not one per row; ``object_id`` is then empty).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    territory_id = models.UUIDField(null=True, db_index=True)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.CharField(max_length=64, blank=True)
    object_ids = models.TextField(
        blank=True, default="", help_text="The ids of the objects a list showed, one per line (empty for one object)."
    )
    action = models.CharField(max_length=20, choices=AccessAction.choices, default=AccessAction.VIEW)
    channel = models.CharField(max_length=20, choices=AccessChannel.choices)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AccessRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["content_type", "object_id"], name="access_object_idx")]

    def __str__(self) -> str:
        shown = self.object_id or f"{len(self.shown_ids)} objects"
        return f"{self.action} {self.content_type.model}:{shown}"

    @property
    def shown_ids(self) -> list[str]:
        """Every object id this record names: ``object_id``, or the ids of the list it records."""
        return [self.object_id] if self.object_id else self.object_ids.split()
