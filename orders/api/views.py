from typing import Any

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.pagination import KeysetPagination
from core.audit import access_record
from core.exceptions import ValidationFailed
from core.models import AccessChannel
from orders import fulfillment, selectors, services
from orders.models import FulfillmentTask, OrderStatus, TaskKind, WorkOrderState
from territories.api import TERRITORY_HEADER, request_territory

from .serializers import (
    FulfillmentTaskSerializer,
    NoteSerializer,
    OrderCancelSerializer,
    OrderCompleteSerializer,
    OrderCreateSerializer,
    OrderEventSerializer,
    OrderSerializer,
    OrderStatusUpdateSerializer,
    OrderSummarySerializer,
    OrderVerifySerializer,
    ShipmentSerializer,
    TaskNoteSerializer,
)


def order_response(
    request: Request, order_id: object, *, status_code: int = 200, serializer: type[OrderSerializer] = OrderSerializer
) -> Response:
    """Re-read the order through the user's scope and return it: with its PHI (recording the read)
    for users who may read PHI, without it for the others."""
    order = selectors.order_get_for_user(user=request.user, pk=order_id)
    with_phi = selectors.order_phi_visible(user=request.user, order=order)
    if with_phi:
        access_record(user=request.user, objects=[order], channel=AccessChannel.API)
    return Response(serializer(order, context={"with_phi": with_phi}).data, status=status_code)


def order_create_from_request(request: Request) -> Any:
    """Validate an order body (``OrderCreateSerializer``) and create the order through the service.

    The new order comes back to the caller in the response, so the service records that PHI read
    with the order (``read_channel``)."""
    data = OrderCreateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    fields = dict(data.validated_data)
    items = [services.ItemRequest(**item) for item in fields.pop("items")]
    return services.order_create(
        actor=request.user,
        territory=request_territory(request),
        items=items,
        read_channel=AccessChannel.API,
        **fields,
    )


def created_order_response(
    request: Request, order: Any, *, serializer: type[OrderSerializer] = OrderSerializer
) -> Response:
    """201 with the order just created by ``order_create_from_request``, built from the order in
    hand (its lines already on it): no second read, no second permission query. Its PHI only for
    users who may read it, as ``order_response``; the service has recorded that read."""
    with_phi = selectors.order_phi_visible(user=request.user, order=order)
    return Response(serializer(order, context={"with_phi": with_phi}).data, status=status.HTTP_201_CREATED)


class OrderCreateView(APIView):
    @extend_schema(parameters=[TERRITORY_HEADER], request=OrderCreateSerializer, responses={201: OrderSerializer})
    def post(self, request: Request) -> Response:
        return created_order_response(request, order_create_from_request(request))


class OrderDetailView(APIView):
    @extend_schema(responses={200: OrderSerializer})
    def get(self, request: Request, order_id: str) -> Response:
        return order_response(request, order_id)


class OrderTerritoryListView(GenericAPIView):
    serializer_class = OrderSummarySerializer

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status", OpenApiTypes.STR, enum=OrderStatus.values, description="Only orders in this status."
            )
        ],
        responses={200: OrderSummarySerializer(many=True)},
    )
    def get(self, request: Request, territory_id: str) -> Response:
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in OrderStatus.values:
            raise ValidationFailed(details={"status": ["Unknown status."]})
        orders = selectors.orders_in_territory(user=request.user, territory_key=territory_id, status=wanted)
        page = self.paginate_queryset(orders)
        return self.get_paginated_response(OrderSummarySerializer(page, many=True).data)


class OrderStatusView(APIView):
    @extend_schema(request=OrderStatusUpdateSerializer, responses={200: OrderSerializer})
    def put(self, request: Request, order_id: str) -> Response:
        data = OrderStatusUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.order_set_status(order_id=order_id, actor=request.user, **data.validated_data)
        return order_response(request, order_id)


class OrderVerifyView(APIView):
    @extend_schema(request=OrderVerifySerializer, responses={200: OrderSerializer})
    def put(self, request: Request, order_id: str) -> Response:
        data = OrderVerifySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.order_verify(order_id=order_id, actor=request.user, **data.validated_data)
        return order_response(request, order_id)


class OrderCompleteView(APIView):
    @extend_schema(request=OrderCompleteSerializer, responses={200: OrderSerializer})
    def put(self, request: Request, order_id: str) -> Response:
        data = OrderCompleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.order_complete(order_id=order_id, actor=request.user, **data.validated_data)
        return order_response(request, order_id)


class OrderCancelView(APIView):
    @extend_schema(request=OrderCancelSerializer, responses={200: OrderSerializer})
    def put(self, request: Request, order_id: str) -> Response:
        data = OrderCancelSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.order_cancel(order_id=order_id, actor=request.user, **data.validated_data)
        return order_response(request, order_id)


class OrderTimelineView(APIView):
    @extend_schema(responses={200: OrderEventSerializer(many=True)})
    def get(self, request: Request, order_id: str) -> Response:
        order = selectors.order_get_for_user(user=request.user, pk=order_id)
        events = selectors.order_timeline(order=order)
        with_phi = selectors.order_phi_visible(user=request.user, order=order)
        if with_phi:
            access_record(user=request.user, objects=[order], channel=AccessChannel.API)
        return Response(OrderEventSerializer(events, many=True, context={"with_phi": with_phi}).data)


class OrderEventCreateView(APIView):
    @extend_schema(request=NoteSerializer, responses={201: OrderEventSerializer})
    def post(self, request: Request, order_id: str) -> Response:
        data = NoteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = services.order_add_note(order_id=order_id, actor=request.user, note=data.validated_data["note"])
        with_phi = selectors.order_phi_visible(user=request.user, order=event.order)
        return Response(
            OrderEventSerializer(event, context={"with_phi": with_phi}).data, status=status.HTTP_201_CREATED
        )


class OrderFulfillmentView(APIView):
    @extend_schema(responses={200: FulfillmentTaskSerializer(many=True)})
    def get(self, request: Request, order_id: str) -> Response:
        """The order's fulfillment tasks, soonest due first (empty until fulfillment starts)."""
        order = selectors.order_get_for_user(user=request.user, pk=order_id)
        return Response(FulfillmentTaskSerializer(selectors.fulfillment_tasks_of(order=order), many=True).data)


def _task_response(task_id: Any) -> Response:
    task = FulfillmentTask.objects.select_related("warehouse", "purchase_order").get(pk=task_id)
    return Response(FulfillmentTaskSerializer(task).data)


class FulfillmentTaskStartView(APIView):
    @extend_schema(request=None, responses={200: FulfillmentTaskSerializer})
    def post(self, request: Request, task_id: str) -> Response:
        """Start an open task; the caller becomes its assignee unless it has one."""
        task = fulfillment.fulfillment_task_start(task_id=task_id, actor=request.user)
        return _task_response(task.pk)


class FulfillmentTaskShipView(APIView):
    @extend_schema(request=ShipmentSerializer, responses={200: FulfillmentTaskSerializer})
    def post(self, request: Request, task_id: str) -> Response:
        """A pick/pack task shipped by the warehouse, or a dropship shipped by its vendor.

        The order moves to ``shipped`` once every shipping task is done.
        """
        data = ShipmentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        kind = fulfillment.fulfillment_task_kind(task_id=task_id, actor=request.user)
        ship = fulfillment.dropship_ship if kind == TaskKind.DROPSHIP else fulfillment.pick_pack_ship
        task = ship(task_id=task_id, actor=request.user, **data.validated_data)
        return _task_response(task.pk)


class FulfillmentTaskDoneView(APIView):
    @extend_schema(request=TaskNoteSerializer, responses={200: FulfillmentTaskSerializer})
    def post(self, request: Request, task_id: str) -> Response:
        """A patient-training task is done (the note goes on the order's timeline)."""
        data = TaskNoteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        task = fulfillment.patient_training_done(task_id=task_id, actor=request.user, note=data.validated_data["note"])
        return _task_response(task.pk)


class WorkOrderSerializer(serializers.Serializer):
    """A patient's next refill of one supply (no PHI: the patient by id)."""

    id = serializers.UUIDField()
    patient_id = serializers.UUIDField()
    territory_id = serializers.UUIDField()
    hcpcs_code = serializers.CharField()
    last_delivered_on = serializers.DateField()
    last_quantity = serializers.IntegerField()
    supply_ends = serializers.DateField(allow_null=True)
    eligible_on = serializers.DateField(help_text="The first day an order of the usual quantity may be delivered.")
    state = serializers.ChoiceField(choices=WorkOrderState.choices)


class WorkOrderListView(GenericAPIView):
    serializer_class = WorkOrderSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("state", OpenApiTypes.STR, enum=WorkOrderState.values, description="Only this state."),
            OpenApiParameter("territory", OpenApiTypes.STR, description="Only this territory (id or code)."),
        ],
        responses={200: WorkOrderSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        """The work orders of the caller's territories (the ordering agent's), soonest eligible first."""
        state = request.query_params.get("state") or None
        if state is not None and state not in WorkOrderState.values:
            raise ValidationFailed(details={"state": [f"Choose one of {', '.join(WorkOrderState.values)}."]})
        listing = selectors.work_orders_for_user(
            user=request.user, state=state, territory_key=request.query_params.get("territory") or None
        )
        if not isinstance(self.paginator, KeysetPagination):
            raise ImproperlyConfigured("Work orders are paged by key (KeysetPagination).")
        page = self.paginator.paginate_queryset(listing, request, view=self)
        return self.get_paginated_response(WorkOrderSerializer(page, many=True).data)
