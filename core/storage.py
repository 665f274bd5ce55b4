"""The file storage seen by the rest of the code: signed download addresses and a reachability probe.

Files are written and read through Django's storage API (``FieldFile.save`` / ``.open``), so the
same code runs on the local media folder and on S3 (config/settings/file_storage.py). Only two
things differ, and they live here: how a download leaves the system (a short-lived signed address on
S3, the bytes themselves locally) and how readiness is checked.
"""

from __future__ import annotations

import os
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.core.files.storage import FileSystemStorage, Storage, default_storage
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage


def serves_signed_urls(storage: Storage) -> bool:
    """Whether ``storage`` hands out signed, expiring addresses (S3 with query-string auth on)."""
    return isinstance(storage, S3Storage) and bool(storage.querystring_auth)


def signed_download_url(*, storage: Storage, name: str, filename: str, content_type: str) -> str:
    """A signed address that downloads the object ``name`` for the storage's short lifetime
    (``AWS_QUERYSTRING_EXPIRE``) as an attachment called ``filename`` of type ``content_type``.

    The address carries the object key, the download name and the signature, so neither may hold
    PHI: keys are ids (``orders.models.attachment_path``), download names references and ids. Call
    only for a ``storage`` that ``serves_signed_urls``, after the reader's permission is checked and
    the access recorded.
    """
    if not isinstance(storage, S3Storage):
        raise TypeError("Signed download addresses need S3 storage.")
    disposition = content_disposition_header(as_attachment=True, filename=filename)
    url: str = storage.url(
        name, parameters={"ResponseContentDisposition": disposition, "ResponseContentType": content_type}
    )
    return url


def storage_problem(storage: Storage | None = None) -> str | None:
    """Why ``storage`` (default: the default storage) cannot take files now, or None when it can.

    S3: the bucket answers a HEAD request with these credentials (no object is written). Local: the
    media folder exists and this process may write to it. Any other storage: its root can be listed.
    The answer names no credentials, paths or keys, so a health page may show it.
    """
    storage = storage if storage is not None else default_storage
    if isinstance(storage, S3Storage):
        try:
            storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "unknown")
            return f"The file bucket refused the check ({code})."
        except BotoCoreError as error:
            return f"The file storage does not answer ({type(error).__name__})."
        return None
    if isinstance(storage, FileSystemStorage):
        location: Any = storage.location
        if not os.path.isdir(location):
            return "The media folder does not exist."
        if not os.access(location, os.W_OK | os.X_OK):
            return "The media folder is not writable."
        return None
    try:
        storage.listdir("")
    except Exception as error:  # any storage class: whatever it raises means it is not usable
        return f"The file storage does not answer ({type(error).__name__})."
    return None


def storage_is_reachable(storage: Storage | None = None) -> bool:
    """Whether ``storage`` (default: the default storage) can take files now (see ``storage_problem``)."""
    return storage_problem(storage) is None
