"""``GET /api/agents/status``: Agent Status for operations staff and administrators."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import selectors
from agents.models import AgentName


class AgentStateSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=AgentName.values)
    state = serializers.ChoiceField(choices=["ok", "degraded", "failing"])
    last_run_at = serializers.DateTimeField(allow_null=True)
    last_success_at = serializers.DateTimeField(allow_null=True)
    runs_24h = serializers.IntegerField()
    failures_24h = serializers.IntegerField()
    pending_events = serializers.IntegerField(help_text="Outbox events for its tasks not yet delivered.")
    oldest_pending_seconds = serializers.IntegerField(allow_null=True)


class OrderExceptionSerializer(serializers.Serializer):
    order_id = serializers.UUIDField()
    reference = serializers.CharField()
    territory_id = serializers.UUIDField()
    status = serializers.CharField()
    reasons = serializers.ListField(
        child=serializers.CharField(), help_text="Finding codes of its holds and reviews, or STALLED_<STATUS>."
    )
    required_artifacts = serializers.ListField(child=serializers.CharField())
    waiting_seconds = serializers.IntegerField(help_text="Since the order entered its status.")
    url = serializers.CharField(help_text="The order's page in the portal.")


class AgentStatusSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    agents = AgentStateSerializer(many=True)
    exceptions = OrderExceptionSerializer(many=True)


class AgentStatusView(APIView):
    @extend_schema(responses={200: AgentStatusSerializer})
    def get(self, request: Request) -> Response:
        """Each agent's state and the orders waiting for a person in the caller's territories, the
        longest waiting first (no PHI). Operations staff and administrators only (else 403)."""
        now = timezone.now()
        exceptions = selectors.agent_exceptions(user=request.user, now=now)  # PermissionDenied first
        body = {"generated_at": now, "agents": selectors.agent_states(now=now), "exceptions": exceptions}
        return Response(AgentStatusSerializer(body).data)
