from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from core.audit import access_record
from core.models import AccessChannel
from patients import selectors, services
from territories.api import TERRITORY_HEADER, request_territory

from .serializers import PatientCreateSerializer, PatientSerializer, ProviderSerializer


class PatientListCreateView(GenericAPIView):
    serializer_class = PatientSerializer

    @extend_schema(
        parameters=[
            TERRITORY_HEADER,
            OpenApiParameter(
                "search",
                OpenApiTypes.STR,
                description="A name ('First Last', 'Last, First') and/or a date of birth.",
            ),
        ],
        responses={200: PatientSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        territory = request_territory(request)
        query = request.query_params.get("search", "").strip()
        if query:
            patients = selectors.patient_search(user=request.user, query=query, territory=territory)
        else:
            patients = selectors.patients_for_user(user=request.user, territory=territory)
        page = self.paginate_queryset(patients.order_by("-created_at", "-id"))
        access_record(user=request.user, objects=page or [], channel=AccessChannel.API)
        return self.get_paginated_response(PatientSerializer(page, many=True).data)

    @extend_schema(parameters=[TERRITORY_HEADER], request=PatientCreateSerializer, responses={201: PatientSerializer})
    def post(self, request: Request) -> Response:
        data = PatientCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        patient = services.patient_create(
            actor=request.user, territory=request_territory(request), **data.validated_data
        )
        return Response(PatientSerializer(patient).data, status=status.HTTP_201_CREATED)


class ProviderListView(GenericAPIView):
    serializer_class = ProviderSerializer

    @extend_schema(parameters=[TERRITORY_HEADER], responses={200: ProviderSerializer(many=True)})
    def get(self, request: Request) -> Response:
        providers = selectors.providers_for_user(user=request.user, territory=request_territory(request))
        page = self.paginate_queryset(providers.filter(active=True).order_by("name", "id"))
        return self.get_paginated_response(ProviderSerializer(page, many=True).data)
