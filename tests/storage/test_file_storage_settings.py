"""Which storage the settings build from the environment (config/settings/file_storage.py and base.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings.file_storage import file_storage

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def test_without_a_bucket_files_stay_in_the_local_media_folder() -> None:
    assert file_storage({}) == {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    assert file_storage({"AWS_STORAGE_BUCKET_NAME": "  "}) == {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    assert file_storage({"DEFAULT_FILE_STORAGE": "django.core.files.storage.InMemoryStorage"}) == {
        "BACKEND": "django.core.files.storage.InMemoryStorage"
    }


def test_a_bucket_gives_private_encrypted_never_overwritten_files_with_one_minute_signed_addresses() -> None:
    storage = file_storage({"AWS_STORAGE_BUCKET_NAME": "clinic-files", "AWS_S3_REGION_NAME": "eu-west-1"})

    options = storage["OPTIONS"]
    config = options.pop("client_config")
    assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
    assert options == {
        "bucket_name": "clinic-files",
        "endpoint_url": None,
        "region_name": "eu-west-1",
        "default_acl": "private",
        "file_overwrite": False,
        "object_parameters": {"ServerSideEncryption": "AES256"},
        "querystring_auth": True,
        "querystring_expire": 60,
        "custom_domain": None,
    }
    assert (config.signature_version, config.s3, config.connect_timeout, config.read_timeout) == ("s3v4", {}, 5, 30)
    assert config.retries == {"max_attempts": 3, "mode": "standard"}


def test_a_kms_key_an_endpoint_a_lifetime_and_an_addressing_style_are_taken_from_the_environment() -> None:
    storage = file_storage(
        {
            "AWS_STORAGE_BUCKET_NAME": "clinic-files",
            "AWS_S3_KMS_KEY_ID": "arn:aws:kms:eu-west-1:111122223333:key/abc",
            "AWS_S3_ENDPOINT_URL": "https://s3.example.net",
            "AWS_QUERYSTRING_EXPIRE": "30",
            "AWS_S3_ADDRESSING_STYLE": "path",
        }
    )

    options = storage["OPTIONS"]
    assert options["object_parameters"] == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "arn:aws:kms:eu-west-1:111122223333:key/abc",
    }
    assert (options["endpoint_url"], options["querystring_expire"]) == ("https://s3.example.net", 30)
    assert options["client_config"].s3 == {"addressing_style": "path"}
    assert options["default_acl"] == "private"
    assert (
        file_storage({"AWS_STORAGE_BUCKET_NAME": "clinic-files", "AWS_DEFAULT_ACL": ""})["OPTIONS"]["default_acl"]
        is None
    )


@pytest.mark.parametrize("expire", ["0", "-5", "soon", "1.5"])
def test_a_signed_address_lifetime_that_is_not_a_positive_number_of_seconds_is_refused(expire: str) -> None:
    with pytest.raises(ValueError) as refused:
        file_storage({"AWS_STORAGE_BUCKET_NAME": "clinic-files", "AWS_QUERYSTRING_EXPIRE": expire})
    assert str(refused.value) == "AWS_QUERYSTRING_EXPIRE must be a whole number of seconds, at least 1."


def test_the_settings_read_the_bucket_and_the_replica_from_the_environment() -> None:
    """config.settings (base) as a deployment loads it: S3 and a replica alias from the environment alone."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "DATABASE_", "DJANGO_"))
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DJANGO_SECRET_KEY="settings-test-secret-key-0123456789-0123456789",
        DATABASE_URL="postgres://app@primary.internal:5432/medorder",
        DATABASE_REPLICA_URL="postgres://reader@replica.internal:5432/medorder",
        AWS_STORAGE_BUCKET_NAME="clinic-files",
        AWS_S3_KMS_KEY_ID="alias/clinic-files",
    )
    script = (
        "import json; from django.conf import settings; "
        "d = settings.DATABASES; s = settings.STORAGES['default']; "
        "print(json.dumps({'aliases': sorted(d), 'replica_host': d['replica']['HOST'], "
        "'replica_user': d['replica']['USER'], 'replica_test': d['replica']['TEST'], "
        "'alias': settings.DATABASE_REPLICA_ALIAS, 'routers': settings.DATABASE_ROUTERS, "
        "'backend': s['BACKEND'], 'bucket': s['OPTIONS']['bucket_name'], "
        "'encryption': s['OPTIONS']['object_parameters']}))"
    )

    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=environment, capture_output=True, text=True, check=True
    )

    assert json.loads(completed.stdout) == {
        "aliases": ["default", "replica"],
        "replica_host": "replica.internal",
        "replica_user": "reader",
        "replica_test": {"MIRROR": "default"},
        "alias": "replica",
        "routers": ["core.db_routers.PrimaryReplicaRouter"],
        "backend": "storages.backends.s3.S3Storage",
        "bucket": "clinic-files",
        "encryption": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/clinic-files"},
    }
