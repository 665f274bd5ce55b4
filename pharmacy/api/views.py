"""Pharmacy endpoints: an order's prescriptions as FHIR R4."""

from __future__ import annotations

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.audit import access_record
from core.exceptions import PermissionDenied
from core.models import AccessChannel
from orders.selectors import order_get_for_user, order_phi_visible
from pharmacy.fhir import order_bundle, to_json

from .renderers import FHIRJSONRenderer


class OrderFHIRView(APIView):
    renderer_classes = [FHIRJSONRenderer, JSONRenderer]

    @extend_schema(responses={(200, "application/fhir+json"): OpenApiTypes.OBJECT})
    def get(self, request: Request, order_id: str) -> Response:
        """The order's prescriptions as a FHIR R4 Bundle: the patient, the prescriber, a MedicationRequest per line.

        Territory-scoped like every order endpoint (404 outside it); the Bundle is PHI, so it needs
        the view_phi permission (403 otherwise) and the read is recorded.
        """
        order = order_get_for_user(user=request.user, pk=order_id)
        if not order_phi_visible(user=request.user, order=order):
            raise PermissionDenied("Your role may not read this order's prescriptions.")
        access_record(user=request.user, objects=[order], channel=AccessChannel.API)
        return Response(json.loads(to_json(order_bundle(order))), content_type="application/fhir+json")
