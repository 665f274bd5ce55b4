"""Pharmacy endpoints: an order's prescriptions as FHIR R4, registering pharmacies, and their status callbacks."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.audit import access_record
from core.exceptions import AuthenticationFailed, PermissionDenied, ValidationFailed
from core.models import AccessChannel
from orders.selectors import order_get_for_user, order_phi_visible
from pharmacy import services
from pharmacy.connectors import REGISTRY, dispense_update
from pharmacy.fhir import FHIRInvalid, medication_dispense_validate, order_bundle, to_json
from pharmacy.models import DispenseStatus, LogOutcome, Pharmacy

from .renderers import FHIRJSONParser, FHIRJSONRenderer


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


class PharmacyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    connector = serializers.ChoiceField(choices=sorted(REGISTRY))
    base_url = serializers.URLField(max_length=200)
    credentials = serializers.DictField(
        child=serializers.CharField(max_length=500),
        required=False,
        default=dict,
        help_text='{"bearer_token": ...} or {"api_key": ..., "api_key_header": "X-Api-Key"}; never shown back.',
    )
    mapping = serializers.DictField(required=False, default=dict)
    territory_ids = serializers.ListField(child=serializers.UUIDField(), allow_empty=False, max_length=100)
    active = serializers.BooleanField(required=False, default=True)


class PharmacySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    connector = serializers.CharField()
    base_url = serializers.URLField()
    mapping = serializers.DictField()
    active = serializers.BooleanField()
    territory_ids = serializers.SerializerMethodField()
    credentials = serializers.SerializerMethodField(help_text="Masked: the last four characters of each secret.")
    callback_url = serializers.SerializerMethodField()

    def get_territory_ids(self, pharmacy: Pharmacy) -> list[str]:
        return sorted(str(pk) for pk in pharmacy.territories.values_list("pk", flat=True))

    def get_credentials(self, pharmacy: Pharmacy) -> dict[str, str]:
        return services.credentials_hint(pharmacy)

    def get_callback_url(self, pharmacy: Pharmacy) -> str:
        path = reverse("pharmacy-callback", args=[pharmacy.pk])
        return f"{str(settings.PUBLIC_BASE_URL).rstrip('/')}{path}"


class PharmacyCreatedSerializer(PharmacySerializer):
    callback_token = serializers.CharField(help_text="Shown this once: the pharmacy's bearer token for callbacks.")


class PharmacyCreateView(APIView):
    @extend_schema(request=PharmacyCreateSerializer, responses={201: PharmacyCreatedSerializer})
    def post(self, request: Request) -> Response:
        """Register a pharmacy (admins of every territory it serves); the callback token is returned once."""
        data = PharmacyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        pharmacy, token = services.pharmacy_create(actor=request.user, **fields)
        body = {**PharmacySerializer(pharmacy).data, "callback_token": token}
        return Response(body, status=status.HTTP_201_CREATED)


class DispenseStatusSerializer(serializers.Serializer):
    identifier = serializers.CharField(max_length=120, help_text="The prescription's order-scoped identifier.")
    status = serializers.ChoiceField(choices=[c for c in DispenseStatus.values if c])
    tracking_number = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    carrier = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CallbackReceiptSerializer(serializers.Serializer):
    received = serializers.BooleanField()
    outcome = serializers.CharField()


def _update_from_dispense(body: dict[str, Any]) -> services.DispenseUpdate:
    """A FHIR MedicationDispense (validated) as a dispense update; its prescription named by our identifier."""
    try:
        dispense: Any = medication_dispense_validate(body)
    except FHIRInvalid as error:
        raise ValidationFailed("Not a valid FHIR R4 MedicationDispense.", details={"fhir": error.errors}) from None
    update = dispense_update(dispense)
    if update is None:
        raise ValidationFailed(
            details={"authorizingPrescription": ["Name the prescription by its identifier in our system."]}
        )
    return update


class PharmacyCallbackView(APIView):
    """A pharmacy's status updates, authenticated by the pharmacy's own callback token."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    parser_classes = [JSONParser, FHIRJSONParser]

    @extend_schema(request=DispenseStatusSerializer, responses={200: CallbackReceiptSerializer})
    def post(self, request: Request, pharmacy_id: str) -> Response:
        """Accept a FHIR R4 MedicationDispense or a JSON status ``{identifier, status, tracking_number, carrier}``.

        ``Authorization: Bearer <callback token>``; a wrong token or pharmacy answers 401 and changes nothing.
        """
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        pharmacy = services.pharmacy_for_callback(pharmacy_id=pharmacy_id, token=token)
        if pharmacy is None:
            raise AuthenticationFailed("Unknown pharmacy or wrong callback token.")
        body = request.data if isinstance(request.data, dict) else {}
        if body.get("resourceType") == "MedicationDispense":
            update = _update_from_dispense(body)
        else:
            data = DispenseStatusSerializer(data=body)
            data.is_valid(raise_exception=True)
            update = services.DispenseUpdate(**data.validated_data)
        outcome = services.dispense_update_apply(pharmacy=pharmacy, update=update, channel=LogOutcome.CALLBACK)
        return Response({"received": True, "outcome": outcome})


class RefillRequestSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64, help_text="The prescribed line to refill.")


class RefillSerializer(serializers.Serializer):
    prescription_id = serializers.UUIDField()
    identifier = serializers.CharField()
    fill = serializers.IntegerField()
    refills_remaining = serializers.IntegerField()


class PortalRefillView(APIView):
    @extend_schema(request=RefillRequestSerializer, responses={201: RefillSerializer})
    def post(self, request: Request, order_id: str) -> Response:
        """Send the next refill of a prescribed line to its pharmacy (409 NO_REFILLS_LEFT when used up)."""
        data = RefillRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        refill = services.prescription_refill(order_id=order_id, sku=data.validated_data["sku"], actor=request.user)
        body = {
            "prescription_id": refill.pk,
            "identifier": refill.identifier,
            "fill": refill.fill,
            "refills_remaining": refill.item.refills - refill.fill,
        }
        return Response(RefillSerializer(body).data, status=status.HTTP_201_CREATED)
