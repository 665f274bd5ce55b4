"""The storage readiness probe (core.storage.storage_problem, core.health.FileStorageCheck) on real storage:
a bucket on the local S3 server, and a local folder."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from django.core.files.storage import FileSystemStorage, storages
from django.test import RequestFactory
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

from config.settings.file_storage import file_storage
from core.health import FileStorageCheck
from core.storage import storage_is_reachable, storage_problem

from .s3_server import REGION


def check_error(check: FileStorageCheck) -> Any:
    """What django-health-check records for ``check``: None when it passed, else its exception."""
    return asyncio.run(check.get_result()).error


def test_an_answering_bucket_is_ready_and_the_probe_writes_nothing(use_s3: Callable[..., str], s3_client: Any) -> None:
    bucket = use_s3()

    assert storage_problem() is None
    assert storage_is_reachable() is True
    assert check_error(FileStorageCheck()) is None
    assert s3_client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_a_missing_bucket_is_not_ready(use_s3: Callable[..., str], s3_client: Any) -> None:
    bucket = use_s3()
    s3_client.delete_bucket(Bucket=bucket)

    assert storage_problem() == "The file bucket refused the check (404)."
    assert storage_is_reachable() is False
    error = check_error(FileStorageCheck())
    assert isinstance(error, ServiceUnavailable)
    assert error.message == "The file bucket refused the check (404)."


def test_an_endpoint_that_does_not_answer_is_not_ready(settings: Any, s3_credentials: None) -> None:
    # Nothing listens on port 1: the connection is refused at once (and retried three times).
    settings.STORAGES = {
        **settings.STORAGES,
        "default": file_storage(
            {
                "AWS_STORAGE_BUCKET_NAME": "clinic-files",
                "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:1",
                "AWS_S3_REGION_NAME": REGION,
                "AWS_S3_ADDRESSING_STYLE": "path",
            }
        ),
    }

    assert storage_problem() == "The file storage does not answer (EndpointConnectionError)."
    error = check_error(FileStorageCheck())
    assert isinstance(error, ServiceUnavailable)
    assert error.message == "The file storage does not answer (EndpointConnectionError)."


def test_a_local_media_folder_is_ready_while_it_exists(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    (tmp_path / "media").mkdir()

    assert storage_problem(storages["default"]) is None
    assert check_error(FileStorageCheck()) is None

    (tmp_path / "media").rmdir()

    assert storage_problem(FileSystemStorage(location=tmp_path / "media")) == "The media folder does not exist."
    assert storage_is_reachable() is False
    error = check_error(FileStorageCheck())
    assert isinstance(error, ServiceUnavailable)
    assert error.message == "The media folder does not exist."


def test_the_check_in_django_health_checks_view_answers_500_with_its_reason_when_the_bucket_is_gone(
    use_s3: Callable[..., str], s3_client: Any
) -> None:
    """How ``/health/ready`` lists it: ``HealthCheckView.as_view(checks=[..., "core.health.FileStorageCheck"])``."""
    bucket = use_s3()
    view = HealthCheckView.as_view(checks=["core.health.FileStorageCheck"])
    request = RequestFactory().get("/health/ready", HTTP_ACCEPT="application/json")

    ready = async_to_sync(view)(request)
    s3_client.delete_bucket(Bucket=bucket)
    gone = async_to_sync(view)(request)

    assert (ready.status_code, json.loads(ready.content)) == (200, {"FileStorageCheck(alias='default')": "OK"})
    assert (gone.status_code, json.loads(gone.content)) == (
        500,
        {"FileStorageCheck(alias='default')": "Unavailable: The file bucket refused the check (404)."},
    )
