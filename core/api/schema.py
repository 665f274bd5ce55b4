"""OpenAPI generation: every operation also documents the error envelope it can answer with.

The responses views declare (200/201) stay as they are; this adds the error responses the API's
one exception handler produces, so clients see ``{"status": "error", "error": {...}}`` and the
codes of each status.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

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
    def _error_responses(self) -> dict[str, str]:
        auths = self.get_auth()
        authenticated = bool(auths) and {} not in auths
        order_path = "{order_id}" in self.path
        paginated = self.method == "GET" and self._get_paginator() is not None
        errors: dict[str, str] = {}
        if self.method in _WRITES or paginated:
            errors["400"] = "VALIDATION_ERROR: the body or query is malformed; details name the fields."
        if authenticated or self.method in _WRITES:
            errors["401"] = "AUTHENTICATION_FAILED: missing, invalid or expired credentials."
        if authenticated:
            errors["403"] = "PERMISSION_DENIED (role) or TERRITORY_MISMATCH (a territory the user is not in)."
        if order_path:
            errors["404"] = "ORDER_NOT_FOUND: no such order in the user's territories."
        elif paginated:
            errors["404"] = "NOT_FOUND: no such page."
        if self.method in {"PUT", "PATCH"} and order_path:
            errors["409"] = "INVALID_STATUS_TRANSITION (details name both statuses) or CONCURRENT_TRANSITION."
        if self.method == "POST" and authenticated and not order_path:
            errors["422"] = "PATIENT_PROVIDER_MISMATCH: the patient is not assigned to the provider's territory."
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
