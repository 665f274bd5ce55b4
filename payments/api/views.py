"""Payment endpoints under /payments/ (seed 003)."""

from __future__ import annotations

import json

import stripe
from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import envelope
from core.api.fields import StrictUUIDField
from payments import services
from payments.webhooks import stripe_event_apply


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


class WebhookView(APIView):
    """Stripe's webhook: authenticated by its signature, not by a user."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    @extend_schema(request=None, responses={200: None})
    def post(self, request: Request) -> Response:
        """Verify ``Stripe-Signature`` over the raw body, then apply the event once (200 for a repeat)."""
        payload = request.body
        try:
            stripe.WebhookSignature.verify_header(
                payload, request.headers.get("Stripe-Signature"), settings.STRIPE_WEBHOOK_SECRET, tolerance=300
            )
            event = json.loads(payload)
        except (stripe.SignatureVerificationError, ValueError):
            return Response(
                envelope("INVALID_SIGNATURE", "The webhook signature is missing, invalid or too old."),
                status=status.HTTP_400_BAD_REQUEST,
            )
        if not isinstance(event, dict) or "id" not in event or "type" not in event:
            return Response(envelope("VALIDATION_ERROR", "Not a Stripe event."), status=status.HTTP_400_BAD_REQUEST)
        return Response({"received": True, "outcome": stripe_event_apply(event=event)})
