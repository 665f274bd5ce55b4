"""The Celery application: `celery -A config worker` / `celery -A config beat`."""

import logging
import logging.config
import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging

# Connects the signals that carry a request's id into the tasks it sends (and onto their log lines).
import core.request_id  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("medorder")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect(weak=False)
def configure_worker_logging(loglevel: int | str | None = None, **kwargs: Any) -> None:
    """Worker and beat log as the web processes do (``settings.LOGGING``: JSON in production, the
    request id, the PHI filters) instead of through Celery's own handlers; ``--loglevel`` sets the
    root level when given."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)
