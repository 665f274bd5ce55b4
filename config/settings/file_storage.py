"""Where uploaded files live: the `STORAGES["default"]` entry built from the environment.

Without `AWS_STORAGE_BUCKET_NAME` the files stay in the local media folder (`MEDIA_ROOT`). With it,
they go to that S3 (or S3-compatible) bucket through django-storages, and every object is:

- encrypted at rest by the server: `AES256`, or `aws:kms` with the key `AWS_S3_KMS_KEY_ID` when one is given;
- private (canned ACL `private`, or none with `AWS_DEFAULT_ACL=` empty for a bucket whose ACLs are disabled;
  the bucket should also block public access): only signed requests read it;
- never overwritten (a name in use gets a suffix; attachment keys are ids, so none is ever reused);
- downloaded through a signed URL that expires after `AWS_QUERYSTRING_EXPIRE` seconds (default 60),
  handed out only by the views that check the reader's permission and record the access.

Credentials are boto3's usual chain: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and
`AWS_SESSION_TOKEN`) in the environment, or the host's instance or task role. `AWS_S3_ENDPOINT_URL`
points at an S3-compatible server instead of AWS, `AWS_S3_REGION_NAME` names the bucket's region, and
`AWS_S3_ADDRESSING_STYLE` (`path` or `virtual`) is for servers that need one.

This module reads a plain mapping (the environment) and imports nothing from Django, so the settings
and the tests build the storage from the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LOCAL_STORAGE_BACKEND = "django.core.files.storage.FileSystemStorage"
S3_STORAGE_BACKEND = "storages.backends.s3.S3Storage"
# Long enough to click through, short enough that a copied address is soon useless.
DEFAULT_SIGNED_URL_SECONDS = 60


def file_storage(environ: Mapping[str, str]) -> dict[str, Any]:
    """The `STORAGES["default"]` entry for ``environ``: S3 when `AWS_STORAGE_BUCKET_NAME` is set, else
    `DEFAULT_FILE_STORAGE` (a dotted storage class, default the local file system). Raises ValueError
    for a signed-URL lifetime that is not a positive whole number of seconds."""
    bucket = environ.get("AWS_STORAGE_BUCKET_NAME", "").strip()
    if not bucket:
        return {"BACKEND": environ.get("DEFAULT_FILE_STORAGE", "") or LOCAL_STORAGE_BACKEND}
    expire_text = environ.get("AWS_QUERYSTRING_EXPIRE", "") or str(DEFAULT_SIGNED_URL_SECONDS)
    if not expire_text.isdigit() or int(expire_text) < 1:
        raise ValueError("AWS_QUERYSTRING_EXPIRE must be a whole number of seconds, at least 1.")
    kms_key_id = environ.get("AWS_S3_KMS_KEY_ID", "").strip()
    encryption = (
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
        if kms_key_id
        else {"ServerSideEncryption": "AES256"}
    )
    # Imported here so that reading settings without S3 never loads botocore.
    from botocore.config import Config

    addressing_style = environ.get("AWS_S3_ADDRESSING_STYLE", "") or None
    return {
        "BACKEND": S3_STORAGE_BACKEND,
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": environ.get("AWS_S3_ENDPOINT_URL", "") or None,
            "region_name": environ.get("AWS_S3_REGION_NAME", "") or None,
            "default_acl": environ.get("AWS_DEFAULT_ACL", "private") or None,
            "file_overwrite": False,
            "object_parameters": encryption,
            "querystring_auth": True,
            "querystring_expire": int(expire_text),
            # A custom domain would make django-storages hand out unsigned URLs.
            "custom_domain": None,
            "client_config": Config(
                # SigV4: the only signature S3 accepts for objects under SSE-KMS, and for new regions.
                signature_version="s3v4",
                s3={"addressing_style": addressing_style} if addressing_style else {},
                # A request (and the readiness check) gives up in seconds, not boto3's default minute.
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        },
    }
