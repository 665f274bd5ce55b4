"""Home page, health check and error handlers."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from core.api.errors import envelope


def health(request: HttpRequest) -> JsonResponse:
    """Liveness and database reachability, for load balancers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def not_found(request: HttpRequest, exception: Any = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(envelope("NOT_FOUND", "No such endpoint."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(envelope("INTERNAL_ERROR", "An unexpected error occurred."), status=500)
    return defaults.server_error(request)
