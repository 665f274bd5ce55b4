"""Typed domain errors with stable codes.

Every error an interface may show a caller derives from :class:`DomainError`. The API's
exception handler turns them into the envelope
``{"status": "error", "error": {"code", "message", "details"}}`` with ``http_status``.
Messages and details never carry PHI: they name fields, ids and states, not values.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "DOMAIN_ERROR"
    http_status = 400
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class ValidationFailed(DomainError):
    """Input is malformed or refers to things that do not exist; ``details`` maps fields to messages."""

    code = "VALIDATION_ERROR"
    http_status = 400
    default_message = "The request has invalid fields."


class PermissionDenied(DomainError):
    code = "PERMISSION_DENIED"
    http_status = 403
    default_message = "You do not have permission to perform this action."


class AuthenticationFailed(DomainError):
    code = "AUTHENTICATION_FAILED"
    http_status = 401
    default_message = "Authentication credentials were missing, invalid or expired."


class NotFound(DomainError):
    code = "NOT_FOUND"
    http_status = 404
    default_message = "Not found."


class Conflict(DomainError):
    code = "CONFLICT"
    http_status = 409
    default_message = "The object was changed by someone else; reload and try again."
