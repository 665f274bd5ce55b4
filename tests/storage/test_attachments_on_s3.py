"""Order documents on S3: stored encrypted and private under opaque keys, downloaded through a signed
address that expires, handed out only after the permission check and the access record.

The storage is the project's own (config/settings/file_storage.py through django-storages and boto3)
against a local S3 server (moto over HTTP, tests/storage/s3_server.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import User
from core.models import AccessRecord
from orders.models import SIGNATURE_ARTIFACT, Attachment, DraftDocument, Order
from tests.conftest import World
from tests.orders.reviews import PDF, needs_review_order
from tests.portal.test_order_decisions import signature_png
from tests.portal.test_wizard import start, url, walk

from .s3_server import ACCESS_KEY_ID, LocalS3Server

UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def fetch(url: str) -> tuple[int, bytes, Message]:
    """GET ``url`` as a browser following the redirect would: no credentials but what the URL carries."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def attach_through_the_api(world: World, api: Any, order: Order, *, upload_name: str) -> Attachment:
    response = api(world.doctor).post(
        f"/api/portal/orders/{order.pk}/attachments",
        {"artifact_type": "MEDICAL_NECESSITY", "file": SimpleUploadedFile(upload_name, PDF, "application/pdf")},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return Attachment.objects.get(pk=response.json()["id"])


def download_name(attachment: Attachment) -> str:
    return f"{attachment.order.reference}-medical_necessity-{str(attachment.pk)[:8]}.pdf"


def test_an_attachment_uploaded_through_the_api_is_stored_encrypted_private_and_under_an_opaque_key(
    north: World, api: Any, use_s3: Callable[..., str], s3_client: Any, s3_server: LocalS3Server
) -> None:
    bucket = use_s3()
    order = north.order()
    patient = north.patient
    upload_name = f"{patient.first_name} {patient.last_name} {patient.date_of_birth:%Y-%m-%d} necessity.pdf"

    attachment = attach_through_the_api(north, api, order, upload_name=upload_name)

    key = attachment.file.name
    assert key == f"attachments/{north.territory.pk}/{order.pk}/{attachment.pk}"
    assert re.fullmatch(rf"attachments/{UUID}/{UUID}/{UUID}", key)  # ids only: the uploaded name is not in it
    stored = s3_client.head_object(Bucket=bucket, Key=key)
    assert (stored["ServerSideEncryption"], stored["ContentLength"]) == ("AES256", len(PDF))
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == PDF
    grants = s3_client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    assert [(grant["Grantee"]["Type"], grant["Permission"]) for grant in grants] == [("CanonicalUser", "FULL_CONTROL")]
    assert fetch(f"{s3_server.endpoint_url}/{bucket}/{key}")[0] == 403  # anonymous: refused
    assert not (Path(settings.MEDIA_ROOT) / key).exists()  # nothing written to the local folder
    assert attachment.original_name == upload_name  # kept encrypted in the database, not in the key


def test_documents_of_a_new_order_go_to_the_bucket_under_kms_encryption_when_a_key_is_given(
    north: World, use_s3: Callable[..., str], s3_client: Any
) -> None:
    bucket = use_s3(AWS_S3_KMS_KEY_ID="alias/medorder-files")

    order = needs_review_order(north)  # order_create with a document, through the storage API

    (attachment,) = Attachment.objects.filter(order=order)
    stored = s3_client.head_object(Bucket=bucket, Key=attachment.file.name)
    assert (stored["ServerSideEncryption"], stored["SSEKMSKeyId"]) == ("aws:kms", "alias/medorder-files")
    listed = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == [f"attachments/{north.territory.pk}/{order.pk}/{attachment.pk}"]


def test_the_download_is_a_redirect_to_a_one_minute_signed_address_that_serves_the_exact_file(
    north: World, api: Any, use_s3: Callable[..., str], s3_server: LocalS3Server
) -> None:
    bucket = use_s3()
    attachment = attach_through_the_api(north, api, north.order(), upload_name="necessity.pdf")
    url = f"/portal/orders/{attachment.order_id}/documents/{attachment.pk}"

    response = signed_in(north.ops).get(url)

    assert response.status_code == 302
    assert (response["Cache-Control"], response["Referrer-Policy"]) == ("no-store", "no-referrer")
    records = AccessRecord.objects.filter(object_id=str(attachment.pk), user=north.ops, channel="portal")
    assert records.count() == 1
    location: str = response["Location"]
    address = urlsplit(location)
    query = {name: values[0] for name, values in parse_qs(address.query).items()}
    assert f"{address.scheme}://{address.netloc}{address.path}" == (
        f"{s3_server.endpoint_url}/{bucket}/{attachment.file.name}"
    )
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "60"
    assert query["X-Amz-Credential"].startswith(f"{ACCESS_KEY_ID}/")
    assert query["response-content-disposition"] == f'attachment; filename="{download_name(attachment)}"'
    assert query["response-content-type"] == "application/pdf"
    signed_at = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - signed_at).total_seconds()) < 60
    for phi in ("Zelda", "QuartermaineNorth", "1948-07-09", "necessity.pdf"):  # the fixture patient, the upload
        assert phi not in location

    status, body, headers = fetch(location)

    assert (status, body) == (200, PDF)
    assert headers["Content-Disposition"] == f'attachment; filename="{download_name(attachment)}"'
    assert headers["Content-Type"] == "application/pdf"
    # The signature covers the address: one changed character and S3 refuses it.
    altered = re.sub(r"X-Amz-Signature=(.)", lambda m: "X-Amz-Signature=" + ("0" if m[1] != "0" else "1"), location)
    assert fetch(altered)[0] == 403
    key = attachment.file.name or ""
    assert fetch(location.replace(key, key[:-1] + ("0" if key[-1] != "0" else "1")))[0] == 403


def test_the_signed_address_is_refused_once_it_has_expired(north: World, api: Any, use_s3: Callable[..., str]) -> None:
    use_s3(AWS_QUERYSTRING_EXPIRE="2")
    attachment = attach_through_the_api(north, api, north.order(), upload_name="necessity.pdf")

    location = signed_in(north.ops).get(f"/portal/orders/{attachment.order_id}/documents/{attachment.pk}")["Location"]
    query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    assert query["X-Amz-Expires"] == "2"
    assert fetch(location)[:2] == (200, PDF)

    signed_at = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    time.sleep(max(0.0, (signed_at + dt.timedelta(seconds=3) - dt.datetime.now(dt.UTC)).total_seconds()))
    status, body, _ = fetch(location)
    assert status == 403
    assert b"<Code>AccessDenied</Code>" in body


def test_the_admin_download_is_the_same_signed_redirect_after_its_access_record(
    north: World, api: Any, use_s3: Callable[..., str]
) -> None:
    use_s3()
    attachment = attach_through_the_api(north, api, north.order(), upload_name="necessity.pdf")

    response = signed_in(north.ops).get(f"/admin/orders/order/{attachment.order_id}/attachments/{attachment.pk}/")

    assert response.status_code == 302
    assert AccessRecord.objects.filter(object_id=str(attachment.pk), user=north.ops, channel="admin").count() == 1
    assert fetch(response["Location"])[:2] == (200, PDF)


def test_a_reader_without_access_gets_404_no_address_and_no_access_record(
    north: World, south: World, api: Any, use_s3: Callable[..., str]
) -> None:
    bucket = use_s3()
    attachment = attach_through_the_api(north, api, north.order(), upload_name="necessity.pdf")
    url = f"/portal/orders/{attachment.order_id}/documents/{attachment.pk}"

    for reader in (north.distributor, south.ops):  # sees the order but not its PHI; another territory
        response = signed_in(reader).get(url)
        assert response.status_code == 404
        assert not response.has_header("Location")
        assert bucket not in response.content.decode()
        assert "X-Amz-Signature" not in response.content.decode()
    admin_response = signed_in(south.admin).get(
        f"/admin/orders/order/{attachment.order_id}/attachments/{attachment.pk}/"
    )
    assert admin_response.status_code == 404
    assert not admin_response.has_header("Location")
    assert not AccessRecord.objects.filter(object_id=str(attachment.pk)).exists()


def test_a_document_missing_from_the_bucket_is_404_not_an_address(
    north: World, api: Any, use_s3: Callable[..., str], s3_client: Any
) -> None:
    bucket = use_s3()
    attachment = attach_through_the_api(north, api, north.order(), upload_name="necessity.pdf")
    s3_client.delete_object(Bucket=bucket, Key=attachment.file.name)

    response = signed_in(north.ops).get(f"/portal/orders/{attachment.order_id}/documents/{attachment.pk}")

    assert response.status_code == 404
    assert not response.has_header("Location")


def test_a_wizard_document_goes_to_the_bucket_and_becomes_the_orders_attachment_with_the_signature(
    north: World, use_s3: Callable[..., str], s3_client: Any
) -> None:
    bucket = use_s3()
    client = signed_in(north.doctor)
    draft = start(client, north)
    client.post(
        url(draft, "documents"),
        {"action": "upload", "artifact_type": "CMN", "file": SimpleUploadedFile("c.pdf", PDF, "application/pdf")},
    )
    document = DraftDocument.objects.get()
    assert document.file.name == f"drafts/{north.territory.pk}/{draft.pk}/{document.pk}"
    assert s3_client.head_object(Bucket=bucket, Key=document.file.name)["ServerSideEncryption"] == "AES256"
    walk(client, north, draft, sku=north.product.sku)
    png = signature_png()
    signature = "data:image/png;base64," + base64.b64encode(png).decode()

    submitted = client.post(url(draft, "review"), {"action": "submit", "sign": "on", "signature": signature})

    order = Order.objects.get()
    assert submitted["Location"] == f"/portal/orders/{order.pk}/"
    stored = {attachment.artifact_type: attachment for attachment in Attachment.objects.filter(order=order)}
    assert sorted(stored) == ["CMN", SIGNATURE_ARTIFACT]
    keys = sorted(item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket)["Contents"])
    assert f"attachments/{north.territory.pk}/{order.pk}/{stored['CMN'].pk}" in keys
    assert f"attachments/{north.territory.pk}/{order.pk}/{stored[SIGNATURE_ARTIFACT].pk}" in keys
    for attachment in stored.values():
        assert s3_client.head_object(Bucket=bucket, Key=attachment.file.name)["ServerSideEncryption"] == "AES256"
    assert s3_client.get_object(Bucket=bucket, Key=stored["CMN"].file.name)["Body"].read() == PDF
    assert s3_client.get_object(Bucket=bucket, Key=stored[SIGNATURE_ARTIFACT].file.name)["Body"].read() == png

    # The written order reads the drawn signature back from the bucket.
    written = client.get(f"/portal/orders/{order.pk}/written-order.pdf")
    assert written.status_code == 200
    assert b"/Subtype /Image" in written.content


def test_discarding_a_draft_deletes_its_document_from_the_bucket(
    north: World, use_s3: Callable[..., str], s3_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    bucket = use_s3()
    client = signed_in(north.doctor)
    draft = start(client, north)
    client.post(
        url(draft, "documents"),
        {"action": "upload", "artifact_type": "CMN", "file": SimpleUploadedFile("c.pdf", PDF, "application/pdf")},
    )
    assert s3_client.list_objects_v2(Bucket=bucket)["KeyCount"] == 1

    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/portal/drafts/{draft.pk}/discard")

    assert s3_client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
