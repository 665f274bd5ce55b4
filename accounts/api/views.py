from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from accounts import services

from .serializers import TokenCredentialsSerializer, TokenResponseSerializer


class TokenThrottle(AnonRateThrottle):
    scope = "auth_token"


class TokenView(APIView):
    """Exchange a local user name and password for an expiring bearer token."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenThrottle]

    @extend_schema(request=TokenCredentialsSerializer, responses={200: TokenResponseSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        data = TokenCredentialsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.token_issue(request=request._request, **data.validated_data)
        body = {
            "token": issued.token,
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "expires_at": issued.expires_at,
        }
        return Response(TokenResponseSerializer(body).data)
