"""How an order's document leaves the system: one response for the portal and the admin."""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpResponseRedirect
from django.http.response import HttpResponseBase

from core.storage import serves_signed_urls, signed_download_url

from .models import Attachment

_EXTENSIONS = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}


def attachment_filename(attachment: Attachment) -> str:
    """The name a document downloads under: the order's reference and ids, never the uploaded file name."""
    extension = _EXTENSIONS.get(attachment.content_type, "bin")
    return f"{attachment.order.reference}-{attachment.artifact_type.lower()}-{str(attachment.pk)[:8]}.{extension}"


def attachment_download(attachment: Attachment) -> HttpResponseBase:
    """The document as a download (``Content-Disposition: attachment``) under ``attachment_filename``,
    so no uploaded content is rendered in the site's origin. Http404 when the stored file is missing.
    The caller has checked the reader's permission and recorded the access.

    On S3 (``core.storage.serves_signed_urls``) the answer is a redirect to a signed address of the
    object that expires after ``AWS_QUERYSTRING_EXPIRE`` seconds (60 by default) and names the same
    download name and type; the bytes come from the bucket, on its own origin. On local storage the
    bytes are streamed here, with ``nosniff``.
    """
    storage = attachment.file.storage
    name = attachment.file.name or ""
    filename = attachment_filename(attachment)
    if serves_signed_urls(storage):
        if not name or not storage.exists(name):
            raise Http404("Document not found.")
        redirect = HttpResponseRedirect(
            signed_download_url(storage=storage, name=name, filename=filename, content_type=attachment.content_type)
        )
        # The address is a credential for the next minute: no cache or proxy keeps it.
        redirect["Cache-Control"] = "no-store"
        redirect["Referrer-Policy"] = "no-referrer"
        return redirect
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404("Document not found.") from None
    response = FileResponse(handle, as_attachment=True, filename=filename, content_type=attachment.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    return response
