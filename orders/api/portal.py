"""Portal endpoints (seed 000) under /api/portal/: orders with their compliance decision, the review
queue, approval, attachments, and the inline compliance check of a draft."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.engine import evaluate
from compliance.inputs import ArtifactType, AttachedArtifact
from core.api.pagination import KeysetPagination
from core.api.schema import ErrorEnvelopeSerializer
from core.exceptions import ValidationFailed
from core.identifiers import is_valid_hcpcs, is_valid_npi, normalize_icd10
from orders import selectors, services
from orders.compliance_checks import Draft, DraftItem, facts_for_draft
from orders.models import MAX_DIAGNOSIS_CODES, Attachment, Order
from patients.models import PayerType
from territories.api import TERRITORY_HEADER, request_territory

from .serializers import OrderCreateSerializer, OrderSerializer, OrderSummarySerializer, validate_icd10_list
from .views import created_order_response, order_create_from_request, order_response

ARTIFACT_CHOICES = [t.value for t in ArtifactType]


class FindingSerializer(serializers.Serializer):
    code = serializers.CharField()
    severity = serializers.ChoiceField(choices=["hold", "needs_review", "info"])
    message = serializers.CharField()
    rule = serializers.CharField()
    source = serializers.DictField(  # type: ignore[assignment]
        allow_null=True, help_text="{id, title, url} of the rule's public source."
    )
    required_artifacts = serializers.ListField(child=serializers.ChoiceField(choices=ARTIFACT_CHOICES))
    field = serializers.CharField(allow_null=True, help_text="The order field the finding concerns.")
    item = serializers.CharField(allow_null=True, help_text="The position (from 0) of the line it concerns.")


class ResolutionSerializer(serializers.Serializer):
    by = serializers.ChoiceField(choices=["review", "override"])
    note = serializers.CharField(required=False, help_text="The review note (by review).")
    reason = serializers.CharField(required=False, help_text="The override reason (by override).")
    actor_id = serializers.UUIDField()
    findings = serializers.ListField(child=serializers.CharField(), help_text="The finding codes it resolved.")


class ComplianceResultSerializer(serializers.Serializer):
    disposition = serializers.ChoiceField(choices=["clear", "hold", "needs_review"])
    findings = FindingSerializer(many=True)
    required_artifacts = serializers.ListField(child=serializers.ChoiceField(choices=ARTIFACT_CHOICES))
    resolution = ResolutionSerializer(
        required=False, help_text="On an approval: how a person resolved the findings (absent otherwise)."
    )


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": ARTIFACT_CHOICES},
            {
                "type": "object",
                "properties": {
                    "artifact_type": {"type": "string", "enum": ARTIFACT_CHOICES},
                    "document_date": {"type": "string", "format": "date", "nullable": True},
                    "hcpcs_codes": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "For PRIOR_AUTH (required): the HCPCS code(s) the decision is for.",
                    },
                },
                "required": ["artifact_type"],
            },
        ]
    }
)
class ArtifactField(serializers.Field):
    """An attached artifact: its type (``"WOPD"``) or ``{artifact_type, document_date, hcpcs_codes}``;
    a ``PRIOR_AUTH`` names the HCPCS code(s) it is for (it clears only those)."""

    def to_internal_value(self, data: Any) -> AttachedArtifact:
        if isinstance(data, str):
            data = {"artifact_type": data}
        if not isinstance(data, dict):
            raise serializers.ValidationError("Give an artifact type or {artifact_type, document_date, hcpcs_codes}.")
        artifact = _ArtifactSerializer(data=data)
        artifact.is_valid(raise_exception=True)
        return AttachedArtifact(
            artifact.validated_data["artifact_type"],
            artifact.validated_data.get("document_date"),
            tuple(artifact.validated_data["hcpcs_codes"]),
        )

    def to_representation(self, value: AttachedArtifact) -> dict[str, Any]:
        return {
            "artifact_type": value.artifact_type,
            "document_date": value.document_date,
            "hcpcs_codes": list(value.hcpcs_codes),
        }


class HcpcsCodesField(serializers.ListField):
    """HCPCS codes a document names (upper-cased, each once); checked with the artifact type by
    ``services.hcpcs_codes_errors``. In a multipart upload, repeat the field once per code."""

    child = serializers.CharField(max_length=5)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", list)
        kwargs.setdefault("max_length", 20)
        kwargs.setdefault(
            "help_text", "For PRIOR_AUTH (required): the HCPCS code(s) of the order's items the decision is for."
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        return services.normalize_hcpcs_codes(super().to_internal_value(data))


def _codes_checked(attrs: dict[str, Any]) -> dict[str, Any]:
    errors = services.hcpcs_codes_errors(artifact_type=attrs["artifact_type"], hcpcs_codes=attrs["hcpcs_codes"])
    if errors:
        raise serializers.ValidationError({"hcpcs_codes": errors})
    return attrs


class _ArtifactSerializer(serializers.Serializer):
    artifact_type = serializers.ChoiceField(choices=ARTIFACT_CHOICES)
    document_date = serializers.DateField(required=False, allow_null=True)
    hcpcs_codes = HcpcsCodesField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return _codes_checked(attrs)


class DraftItemSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64, required=False)
    hcpcs = serializers.CharField(max_length=5, required=False, help_text="For an item not in the catalog.")
    quantity = serializers.IntegerField(min_value=1, max_value=9999, required=False, allow_null=True)

    def validate_hcpcs(self, value: str) -> str:
        if not is_valid_hcpcs(value):
            raise serializers.ValidationError("Enter a valid HCPCS Level II code: a letter and four digits.")
        return value.strip().upper()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("sku") and not attrs.get("hcpcs"):
            raise serializers.ValidationError("Give the item's sku, or its hcpcs code when it is not in the catalog.")
        return attrs


class ComplianceCheckSerializer(serializers.Serializer):
    """The same body as an order, every field optional: the draft as filled in so far."""

    items = serializers.ListField(child=DraftItemSerializer(), required=False, default=list, max_length=100)
    patient_id = serializers.UUIDField(required=False, allow_null=True)
    provider_id = serializers.UUIDField(required=False, allow_null=True)
    provider_npi = serializers.CharField(
        max_length=10,
        required=False,
        allow_null=True,
        help_text="The ordering provider by NPI, instead of provider_id.",
    )
    payer_type = serializers.ChoiceField(choices=PayerType.choices, required=False, allow_null=True)
    coverage_tier = serializers.CharField(max_length=50, required=False, allow_null=True)
    order_date = serializers.DateField(required=False, allow_null=True)
    requested_date = serializers.DateField(required=False, allow_null=True)
    f2f_date = serializers.DateField(required=False, allow_null=True)
    diagnosis_codes = serializers.ListField(
        child=serializers.CharField(max_length=10), required=False, default=list, max_length=MAX_DIAGNOSIS_CODES
    )
    artifacts = serializers.ListField(child=ArtifactField(), required=False, default=list, max_length=50)
    signed = serializers.BooleanField(required=False, default=False)

    def validate_diagnosis_codes(self, codes: list[str]) -> list[str]:
        return validate_icd10_list(codes)

    def validate_provider_npi(self, value: str | None) -> str | None:
        if value and not is_valid_npi(value):
            raise serializers.ValidationError("Enter a valid 10-digit NPI (its check digit does not match).")
        return value or None


class PortalOrderCreateSerializer(OrderCreateSerializer):
    """The same body as ``POST /api/v1/orders``."""


class ApproveSerializer(serializers.Serializer):
    notes = serializers.CharField(
        max_length=5000,
        required=False,
        allow_blank=True,
        default="",
        help_text="The review note. Required when the disposition is needs_review: the reviewer's decision,"
        " recorded on the timeline and in the compliance snapshot (400 REVIEW_NOTE_REQUIRED without it).",
    )
    override_reason = serializers.CharField(
        max_length=2000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Verify over open findings, such as a hold (needs the override_compliance permission;"
        " recorded on the timeline and in the compliance snapshot).",
    )


class AttachmentUploadSerializer(serializers.Serializer):
    artifact_type = serializers.ChoiceField(choices=ARTIFACT_CHOICES)
    document_date = serializers.DateField(required=False, allow_null=True)
    hcpcs_codes = HcpcsCodesField()
    file = serializers.FileField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return _codes_checked(attrs)


class AttachmentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    order_id = serializers.UUIDField()
    artifact_type = serializers.CharField()
    document_date = serializers.DateField(allow_null=True)
    hcpcs_codes = serializers.ListField(
        child=serializers.CharField(), help_text="For a prior authorization: the HCPCS code(s) it is for."
    )
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    created_at = serializers.DateTimeField()


class PortalOrderSerializer(OrderSerializer):
    compliance = serializers.SerializerMethodField()

    @extend_schema_field(ComplianceResultSerializer(allow_null=True))
    def get_compliance(self, order: Any) -> dict[str, Any] | None:
        return _compliance_of(order, dict(self.context))


class ReviewQueueEntrySerializer(OrderSummarySerializer):
    """A held or pending order with the reasons it waits (finding codes and messages)."""

    reasons = serializers.SerializerMethodField()

    @extend_schema_field(FindingSerializer(many=True))
    def get_reasons(self, order: Any) -> list[dict[str, Any]]:
        result = self.context["results"].get(order.pk)
        return [f for f in (result or {}).get("findings", []) if f["severity"] != "info"]


def _compliance_of(order: Any, context: dict[str, Any]) -> dict[str, Any] | None:
    """The latest decision on the order (findings can be clinical: only for readers of PHI)."""
    if not context.get("with_phi", True):
        return None
    result = selectors.order_compliance_result(order=order)
    if result is None:
        return None
    shown = ("disposition", "findings", "required_artifacts", "resolution")
    return {key: result[key] for key in shown if key in result}


def _portal_order_response(request: Request, order_id: Any, *, status_code: int = 200) -> Response:
    return order_response(request, order_id, status_code=status_code, serializer=PortalOrderSerializer)


class PortalOrdersView(GenericAPIView):
    serializer_class = ReviewQueueEntrySerializer

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status",
                OpenApiTypes.STR,
                enum=["pending"],
                description="pending: held orders and orders waiting for verification (the review queue).",
            ),
            OpenApiParameter("territory", OpenApiTypes.STR, description="Only this territory (id or code)."),
            OpenApiParameter("reason", OpenApiTypes.STR, description="Only orders with a finding of this code."),
            OpenApiParameter(
                "disposition",
                OpenApiTypes.STR,
                enum=["hold", "needs_review", "clear"],
                description="Only this disposition (default: hold and needs_review; clear lists orders that only"
                " wait for verification).",
            ),
        ],
        responses={200: ReviewQueueEntrySerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        """The review queue: holds and reviews of the reviewer's territories, oldest first, with their reasons."""
        wanted = request.query_params.get("status", "pending")
        if wanted != "pending":
            raise ValidationFailed(details={"status": ["Only status=pending (the review queue) is listed here."]})
        disposition = request.query_params.get("disposition") or None
        if disposition is not None and disposition not in ("hold", "needs_review", "clear"):
            raise ValidationFailed(details={"disposition": ["Choose hold, needs_review or clear."]})
        orders = selectors.review_queue_orders(
            user=request.user,
            territory_key=request.query_params.get("territory") or None,
            reason=request.query_params.get("reason") or None,
            dispositions=(disposition,) if disposition else selectors.REVIEW_DISPOSITIONS,
        )
        if not isinstance(self.paginator, KeysetPagination):
            raise ImproperlyConfigured("The review queue pages by key (KeysetPagination).")
        page: list[Order] = self.paginator.paginate_queryset(
            orders.shaped(selectors.orders_with_items(orders.rows)), request, view=self
        )
        context = {"results": selectors.latest_results(page)}
        return self.get_paginated_response(ReviewQueueEntrySerializer(page, many=True, context=context).data)

    @extend_schema(
        parameters=[TERRITORY_HEADER], request=PortalOrderCreateSerializer, responses={201: PortalOrderSerializer}
    )
    def post(self, request: Request) -> Response:
        """Create the order, run the compliance checks, and answer with the disposition and findings."""
        return created_order_response(request, order_create_from_request(request), serializer=PortalOrderSerializer)


class PortalOrderApproveView(APIView):
    @extend_schema(
        request=ApproveSerializer,
        responses={
            200: PortalOrderSerializer,
            400: OpenApiResponse(
                ErrorEnvelopeSerializer,
                description="REVIEW_NOTE_REQUIRED: the order needs review and no notes were given (details:"
                " notes, disposition, findings); VALIDATION_ERROR: the body is malformed.",
            ),
            403: OpenApiResponse(
                ErrorEnvelopeSerializer,
                description="PERMISSION_DENIED: the user does not review orders here, or an override_reason"
                " without the override_compliance permission.",
            ),
            409: OpenApiResponse(
                ErrorEnvelopeSerializer,
                description="COMPLIANCE_NOT_CLEAR: the checks hold the order and no override was given;"
                " INVALID_STATUS_TRANSITION: the order cannot be verified in its status.",
            ),
        },
    )
    def post(self, request: Request, order_id: str) -> Response:
        """Re-run the checks and verify the order: at once when clear; with a review note (``notes``) when
        it needs review; over a hold only with ``override_reason`` and the override permission. Nothing
        changes on a refusal."""
        data = ApproveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.order_approve(order_id=order_id, actor=request.user, **data.validated_data)
        return _portal_order_response(request, order_id)


class PortalOrderAttachmentsView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": AttachmentUploadSerializer},
        responses={
            201: AttachmentSerializer,
            400: OpenApiResponse(
                ErrorEnvelopeSerializer,
                description="VALIDATION_ERROR: an unknown artifact type; a file that is not a PDF, PNG or JPEG, or"
                " is empty or too large; a PRIOR_AUTH without hcpcs_codes, or naming a code that is not an item"
                " of the order; hcpcs_codes on another document type. Nothing is stored.",
            ),
        },
    )
    def post(self, request: Request, order_id: str) -> Response:
        """Attach a document (PDF, PNG or JPEG); a held or pending order is checked again. A prior
        authorization names the HCPCS code(s) of the order's items it is for (``hcpcs_codes``, repeated
        once per code): it clears only those."""
        data = AttachmentUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        attachment = services.order_attach(order_id=order_id, actor=request.user, **data.validated_data)
        saved = Attachment.objects.get(pk=attachment.pk)
        return Response(AttachmentSerializer(saved).data, status=status.HTTP_201_CREATED)


class ComplianceCheckView(APIView):
    @extend_schema(
        parameters=[TERRITORY_HEADER], request=ComplianceCheckSerializer, responses={200: ComplianceResultSerializer}
    )
    def post(self, request: Request) -> Response:
        """Evaluate a draft order without saving anything: the live answer while a clinician fills it in."""
        data = ComplianceCheckSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        territory = request_territory(request)
        draft = Draft(
            items=[
                DraftItem(sku=i.get("sku"), hcpcs=i.get("hcpcs"), quantity=i.get("quantity")) for i in fields["items"]
            ],
            patient_id=fields.get("patient_id"),
            provider_id=fields.get("provider_id"),
            provider_npi=fields.get("provider_npi"),
            payer_type=fields.get("payer_type"),
            coverage_tier=fields.get("coverage_tier"),
            order_date=fields.get("order_date"),
            requested_date=fields.get("requested_date"),
            f2f_date=fields.get("f2f_date"),
            diagnosis_codes=[normalize_icd10(code) for code in fields["diagnosis_codes"]],
            artifacts=fields["artifacts"],
            signed=fields["signed"],
        )
        facts = facts_for_draft(actor=request.user, draft=draft, territory_id=territory.pk if territory else None)
        result = evaluate(facts).as_dict()
        return Response({key: result[key] for key in ("disposition", "findings", "required_artifacts")})
