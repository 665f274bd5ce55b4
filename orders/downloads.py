"""How an order's document leaves the system: one response for the portal and the admin."""

from __future__ import annotations

from django.http import FileResponse, Http404

from .models import Attachment

_EXTENSIONS = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}


def attachment_download(attachment: Attachment) -> FileResponse:
    """The document as a download (``Content-Disposition: attachment``, ``nosniff``) under a name made
    of the order's reference and ids, never the uploaded file name, so no uploaded content is
    rendered in the site's origin. Http404 when the stored file is missing. The caller has checked
    the reader's permission and records the access."""
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404("Document not found.") from None
    extension = _EXTENSIONS.get(attachment.content_type, "bin")
    name = f"{attachment.order.reference}-{attachment.artifact_type.lower()}-{str(attachment.pk)[:8]}.{extension}"
    response = FileResponse(handle, as_attachment=True, filename=name, content_type=attachment.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    return response
