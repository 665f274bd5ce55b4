"""Payment endpoints under /payments/ (seed 003)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.fields import StrictUUIDField
from payments import services


class CreateIntentSerializer(serializers.Serializer):
    order_id = StrictUUIDField()


class IntentSerializer(serializers.Serializer):
    payment_intent_id = serializers.CharField()
    client_secret = serializers.CharField()
    amount = serializers.IntegerField(help_text="In cents.")
    currency = serializers.CharField()


class CreateIntentView(APIView):
    @extend_schema(request=CreateIntentSerializer, responses={200: IntentSerializer})
    def post(self, request: Request) -> Response:
        """Create or return the order's PaymentIntent (the same one for every retry of an attempt)."""
        data = CreateIntentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _payment, intent = services.payment_intent_for_order(
            actor=request.user, order_id=data.validated_data["order_id"]
        )
        return Response(
            IntentSerializer(
                {
                    "payment_intent_id": intent.payment_intent_id,
                    "client_secret": intent.client_secret,
                    "amount": intent.amount,
                    "currency": intent.currency,
                }
            ).data
        )
