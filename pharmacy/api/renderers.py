"""FHIR's JSON media type for DRF responses and requests."""

from __future__ import annotations

from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer


class FHIRJSONRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir"


class FHIRJSONParser(JSONParser):
    """Accepts FHIR JSON bodies (``application/fhir+json``)."""

    media_type = "application/fhir+json"
