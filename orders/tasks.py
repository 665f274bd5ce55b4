"""Order housekeeping on Celery beat."""

from __future__ import annotations

import logging

from celery import shared_task

from .drafts import drafts_purge_stale

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def purge_stale_drafts() -> int:
    """Daily: delete order drafts nobody has touched for ``ORDER_DRAFT_RETENTION_DAYS``."""
    deleted = drafts_purge_stale()
    logger.info("Purged %d stale order drafts", deleted)
    return deleted
