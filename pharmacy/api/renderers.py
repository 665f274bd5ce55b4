"""FHIR's JSON media type for DRF responses."""

from __future__ import annotations

from rest_framework.renderers import JSONRenderer


class FHIRJSONRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir"
