"""The API's one exception handler: every error leaves as the seed's envelope.

``{"status": "error", "error": {"code": ..., "message": ..., "details": {...}}}``
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import DataError
from django.http import Http404
from django_fsm import ConcurrentTransition
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from core.exceptions import DomainError

logger = logging.getLogger(__name__)


def envelope(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"status": "error", "error": {"code": code, "message": message, "details": details or {}}}


def _drf_details(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {str(k): v for k, v in detail.items()}
    if isinstance(detail, list):
        return {"non_field_errors": detail}
    return {}


# DRF and Django exceptions: (code, status, fixed message or None to keep DRF's message)
_MAPPING: list[tuple[type[Exception], str, int, str | None]] = [
    (InvalidToken, "AUTHENTICATION_FAILED", 401, "The token is invalid or expired."),
    (TokenError, "AUTHENTICATION_FAILED", 401, "The token is invalid or expired."),
    (drf.NotAuthenticated, "AUTHENTICATION_FAILED", 401, "Authentication credentials were not provided."),
    (drf.AuthenticationFailed, "AUTHENTICATION_FAILED", 401, None),
    (drf.PermissionDenied, "PERMISSION_DENIED", 403, None),
    (DjangoPermissionDenied, "PERMISSION_DENIED", 403, "You do not have permission to perform this action."),
    (drf.ParseError, "VALIDATION_ERROR", 400, "The request body is not valid JSON."),
    # Django raises these when DRF first reads the body (over DATA_UPLOAD_MAX_MEMORY_SIZE, and the like).
    (RequestDataTooBig, "PAYLOAD_TOO_LARGE", 413, "The request body is too large."),
    (SuspiciousOperation, "VALIDATION_ERROR", 400, "The request is malformed."),
    # The database refused a value no serializer caught (a NUL in a JSON object's text, a number out of
    # range): the request's fault, so a 400; the service's atomic block has rolled the write back.
    (DataError, "VALIDATION_ERROR", 400, "The request holds a value that cannot be stored (e.g. a NUL character)."),
    (drf.NotFound, "NOT_FOUND", 404, "Not found."),
    (Http404, "NOT_FOUND", 404, "Not found."),
    (drf.MethodNotAllowed, "METHOD_NOT_ALLOWED", 405, None),
    (drf.NotAcceptable, "NOT_ACCEPTABLE", 406, None),
    (drf.UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", 415, None),
    (drf.Throttled, "THROTTLED", 429, None),
    (
        ConcurrentTransition,
        "CONCURRENT_TRANSITION",
        409,
        "The order changed while this request ran; reload it.",
    ),
]


def _drf_message(detail: Any) -> str:
    """DRF's own message: simplejwt raises AuthenticationFailed with ``{"detail": ..., "code": ...}``."""
    if isinstance(detail, dict):
        detail = detail.get("detail", "")
    return str(detail) if isinstance(detail, str) else ""


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, DomainError):
        response = Response(envelope(exc.code, exc.message, exc.details), status=exc.http_status)
        if exc.http_status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    if isinstance(exc, drf.ValidationError):
        return Response(
            envelope("VALIDATION_ERROR", "The request has invalid fields.", _drf_details(exc.detail)),
            status=400,
        )
    for klass, code, status, message in _MAPPING:
        if isinstance(exc, klass):
            text = message or _drf_message(getattr(exc, "detail", "")) or code.replace("_", " ").capitalize()
            response = Response(envelope(code, text), status=status)
            wait = getattr(exc, "wait", None)
            if isinstance(exc, drf.Throttled) and wait:
                response["Retry-After"] = str(int(wait))
            if status == 401:
                response["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
    # Unexpected: log the type and traceback (our exceptions never carry PHI) and answer in the envelope.
    logger.exception("unhandled API error: %s", type(exc).__name__)
    return Response(envelope("INTERNAL_ERROR", "An unexpected error occurred."), status=500)
