"""Payment endpoints under /payments/ (seed 003)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import envelope
from core.api.fields import StrictUUIDField
from payments import links, services
from payments.webhooks import InvalidWebhook, webhook_receive


class CreateIntentSerializer(serializers.Serializer):
    order_id = StrictUUIDField()


class IntentSerializer(serializers.Serializer):
    payment_intent_id = serializers.CharField()
    client_secret = serializers.CharField()
    amount = serializers.IntegerField(help_text="In cents.")
    currency = serializers.CharField()


class PaymentLinkSerializer(serializers.Serializer):
    payment_link_id = serializers.UUIDField()
    url = serializers.URLField(help_text="The patient's /pay/<token> address.")
    expires_at = serializers.DateTimeField()


class PortalPaymentLinkView(APIView):
    @extend_schema(request=None, responses={201: PaymentLinkSerializer})
    def post(self, request: Request, order_id: str) -> Response:
        """Issue the order's payment link (doctor-assisted order); any earlier link stops working."""
        link = links.payment_link_issue(order_id=order_id, actor=request.user)
        body = {"payment_link_id": link.pk, "url": links.payment_link_url(link), "expires_at": link.expires_at}
        return Response(PaymentLinkSerializer(body).data, status=status.HTTP_201_CREATED)


class WebhookReceiptSerializer(serializers.Serializer):
    received = serializers.BooleanField()
    outcome = serializers.CharField(help_text="What the event did, or why it did nothing (e.g. duplicate).")


class CreateIntentView(APIView):
    # What the payments service raises for the order named in the body (core.api.schema documents these).
    error_responses = {
        "404": "ORDER_NOT_FOUND: no such order in the user's territories.",
        "409": "The order cannot be paid now (not awaiting payment, or already paid).",
    }

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

    @extend_schema(request=None, responses={200: WebhookReceiptSerializer})
    def post(self, request: Request) -> Response:
        """Verify ``Stripe-Signature`` over the raw body, then apply the event once (200 for a repeat)."""
        try:
            outcome = webhook_receive(payload=request.body, signature=request.headers.get("Stripe-Signature"))
        except InvalidWebhook as error:
            message = {
                "INVALID_SIGNATURE": "The webhook signature is missing, invalid or outside the allowed time window.",
                "VALIDATION_ERROR": "Not a Stripe event.",
            }[error.code]
            return Response(envelope(error.code, message, error.details), status=status.HTTP_400_BAD_REQUEST)
        return Response({"received": True, "outcome": outcome})
