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
    """Record that ``user`` read the PHI of ``objects`` (each must have ``territory_id``) in one view.

    One record per kind of object and territory, however many objects a page shows: a single
    object is named by ``object_id``, several (a list page) by ``object_ids`` in the order shown,
    each once. Nothing is written for no objects. One INSERT.
    """
    groups: dict[tuple[Any, Any], dict[str, None]] = {}
    for obj in objects:
        key = (ContentType.objects.get_for_model(obj), getattr(obj, "territory_id", None))
        groups.setdefault(key, {})[str(obj.pk)] = None
    reader = user if getattr(user, "is_authenticated", False) else None
    rows = [
        AccessRecord(
            user=reader,
            territory_id=territory_id,
            content_type=content_type,
            object_id=next(iter(ids)) if len(ids) == 1 else "",
            object_ids="" if len(ids) == 1 else "\n".join(ids),
            action=action,
            channel=channel,
        )
        for (content_type, territory_id), ids in groups.items()
    ]
    return AccessRecord.objects.bulk_create(rows) if rows else []
