"""OpenAPI generation: every operation also documents the error envelope it can answer with.

The responses views declare (200/201) stay as they are; this adds the error responses the API's
one exception handler produces, so clients see ``{"status": "error", "error": {...}}`` and the
codes of each status.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from .pagination import KeysetPagination

_WRITES = {"POST", "PUT", "PATCH"}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable error code, e.g. ORDER_NOT_FOUND or VALIDATION_ERROR.")
    message = serializers.CharField(help_text="A readable message; never carries PHI.")
    details = serializers.DictField(
        help_text="For VALIDATION_ERROR, field names to messages; otherwise ids and states (or empty)."
    )


class ErrorEnvelopeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["error"])
    error = ErrorDetailSerializer()


class EnvelopeAutoSchema(AutoSchema):
    """Adds the error responses every operation can give, from what the request pipeline does.

    The rules follow the code paths, not a list of views, so a view that changes its body or its
    permissions keeps them: the control-character middleware (400 for any path or query
    parameter), the parsers (400, 413 and 415 for any body), authentication and territory
    checks (401, 403), lookups by id (404), writes to orders and tasks, which have a state (409), and
    throttles (429). A view adds what its service alone raises in ``error_responses``
    (status code → description), e.g. a 404 for an id taken from the body.
    """

    def _error_responses(self) -> dict[str, str]:
        auths = self.get_auth()
        authenticated = bool(auths) and {} not in auths
        order_path = "{order_id}" in self.path
        path_parameters = "{" in self.path
        write = self.method in _WRITES
        paginated = self.method == "GET" and self._get_paginator() is not None
        query_parameters = paginated or any(
            parameter.get("in") == "query" for parameter in self._get_parameters() if isinstance(parameter, dict)
        )
        errors: dict[str, str] = {}
        if write or query_parameters or path_parameters:
            errors["400"] = (
                "VALIDATION_ERROR: the body, query or path is malformed (control characters included); "
                "details name the fields."
            )
        if authenticated or write:
            errors["401"] = "AUTHENTICATION_FAILED: missing, invalid, expired or revoked credentials."
        if authenticated:
            errors["403"] = "PERMISSION_DENIED (role) or TERRITORY_MISMATCH (a territory the user is not in)."
        if order_path:
            errors["404"] = "ORDER_NOT_FOUND: no such order in the user's territories."
        elif path_parameters:
            errors["404"] = "NOT_FOUND: nothing with that id in the user's territories."
        elif paginated and not isinstance(self._get_paginator(), KeysetPagination):
            errors["404"] = "NOT_FOUND: no such page."
        if write and (order_path or "{task_id}" in self.path):
            errors["409"] = (
                "INVALID_STATUS_TRANSITION (details name both statuses), CONCURRENT_TRANSITION or CONFLICT: "
                "the order's or task's current state does not allow this."
            )
        if self.method == "POST" and authenticated and not path_parameters:
            errors["422"] = "PATIENT_PROVIDER_MISMATCH: the patient is not assigned to the provider's territory."
        if write:
            errors["413"] = "PAYLOAD_TOO_LARGE: the request body is over the size limit."
            errors["415"] = "UNSUPPORTED_MEDIA_TYPE: the body's Content-Type is not one the operation reads."
        if getattr(self.view, "throttle_classes", None):
            errors["429"] = "THROTTLED: too many requests; retry after the seconds in Retry-After."
        errors.update(getattr(self.view, "error_responses", {}))
        return errors

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for status_code, description in self._error_responses().items():
            if status_code not in responses:
                response = self._get_response_for_code(ErrorEnvelopeSerializer, status_code, direction=direction)
                responses[status_code] = {**response, "description": description}
        return responses
