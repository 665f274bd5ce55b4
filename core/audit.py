"""PHI access records."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from .models import AccessAction, AccessChannel, AccessRecord


def with_history_user(instance: models.Model, user: Any) -> None:
    """Name ``user`` as the actor on the history row the next save of ``instance`` writes."""
    if getattr(user, "is_authenticated", False):
        instance._history_user = user  # type: ignore[attr-defined]


def access_record(
    *,
    user: Any,
    objects: Iterable[models.Model],
    channel: AccessChannel,
    action: AccessAction = AccessAction.VIEW,
) -> list[AccessRecord]:
    """Record that ``user`` read the PHI of each object (each must have ``territory_id``)."""
    rows = [
        AccessRecord(
            user=user if getattr(user, "is_authenticated", False) else None,
            territory_id=getattr(obj, "territory_id", None),
            content_type=ContentType.objects.get_for_model(obj),
            object_id=str(obj.pk),
            action=action,
            channel=channel,
        )
        for obj in objects
    ]
    return AccessRecord.objects.bulk_create(rows)
