"""Readiness checks of this project for django-health-check (``/health/ready``)."""

from __future__ import annotations

import dataclasses
import datetime

from django.core.files.storage import storages
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

from .storage import storage_problem


@dataclasses.dataclass
class FileStorageCheck(HealthCheck):
    """The file storage ``alias`` can take files: the S3 bucket answers (a HEAD, nothing written), or
    the media folder is writable. Unavailable otherwise, with a reason that names no secret or path."""

    alias: str = "default"
    # Under the S3 client's connect timeout and retries (config/settings/file_storage.py) a dead endpoint
    # is reported by the client first; this is the outer bound.
    timeout = datetime.timedelta(seconds=10)

    def run(self) -> None:
        problem = storage_problem(storages[self.alias])
        if problem is not None:
            raise ServiceUnavailable(problem)
