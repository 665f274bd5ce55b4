"""The ``Territory-Id`` request header."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request

from .models import Territory
from .selectors import territory_from_header

TERRITORY_HEADER = OpenApiParameter(
    "Territory-Id",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Territory to act in (id or code), for users who work in more than one.",
)


def request_territory(request: Request) -> Territory | None:
    """The territory picked by the request's header, checked against the user's (or None)."""
    return territory_from_header(user=request.user, header=request.headers.get("Territory-Id"))
