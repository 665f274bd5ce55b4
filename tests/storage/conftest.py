"""Fixtures for the file storage tests: a local S3 server (moto, real HTTP) and the project's storage on it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from config.settings.file_storage import file_storage

from .s3_server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, LocalS3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[LocalS3Server]:
    server = LocalS3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test credentials where boto3 looks for them (as on a host configured by environment)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)


@pytest.fixture
def s3_client(s3_server: LocalS3Server, s3_credentials: None) -> Any:
    """The operator's view of the server: a plain boto3 client, not the project's storage."""
    return boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """A new, empty bucket for this test."""
    name = f"medorder-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def use_s3(settings: Any, s3_server: LocalS3Server, s3_bucket: str, s3_credentials: None) -> Callable[..., str]:
    """Switch the default storage to ``s3_bucket`` through the settings code (``file_storage``), with
    any further environment (``AWS_QUERYSTRING_EXPIRE="2"``); returns the bucket's name."""

    def switch(**environment: str) -> str:
        settings.STORAGES = {
            **settings.STORAGES,
            "default": file_storage(
                {
                    "AWS_STORAGE_BUCKET_NAME": s3_bucket,
                    "AWS_S3_ENDPOINT_URL": s3_server.endpoint_url,
                    "AWS_S3_REGION_NAME": REGION,
                    "AWS_S3_ADDRESSING_STYLE": "path",
                    **environment,
                }
            ),
        }
        return s3_bucket

    return switch
