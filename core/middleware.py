"""Request checks that hold for every URL, before any view or database query sees the request."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views import defaults

from core.api.errors import envelope

# C0 and C1 control characters and DEL: no path segment or query parameter of this site means
# one. A NUL makes PostgreSQL refuse the query (a 500), CR/LF break the headers a response
# would echo the path into (htmx's HX-Redirect), the rest are injected only by tools and attackers.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CONTROL_MESSAGE = "Control characters are not allowed."
# Where the JSON API lives: errors there speak the envelope; elsewhere a plain 400 page.
API_PREFIXES = ("/api/", "/payments/")


TOO_MANY_PARAMETERS = "The query string has too many parameters."


def _malformed_part(request: HttpRequest) -> tuple[str, str] | None:
    """``("path" | "query", message)`` when that part of the request (decoded) cannot be served."""
    if _CONTROL.search(request.path_info) or _CONTROL.search(request.path):
        return "path", CONTROL_MESSAGE
    try:
        parameters = request.GET.lists()
    except SuspiciousOperation:  # over DATA_UPLOAD_MAX_NUMBER_FIELDS
        return "query", TOO_MANY_PARAMETERS
    for key, values in parameters:
        if _CONTROL.search(key) or any(_CONTROL.search(value) for value in values):
            return "query", CONTROL_MESSAGE
    return None


class RejectControlCharactersMiddleware:
    """Answers 400 to a request whose path or query string holds a control character (``%00``, ``%0D%0A``).

    One place for every view: the API answers with the error envelope
    (``VALIDATION_ERROR``, details naming ``path`` or ``query``), pages with the plain 400 page.
    A query string over ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` parameters is answered the same way.
    Put it first, so nothing (sessions, authentication, htmx redirects) handles such a request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        malformed = _malformed_part(request)
        if malformed is None:
            return self.get_response(request)
        part, message = malformed
        if request.path_info.startswith(API_PREFIXES):
            return JsonResponse(
                envelope("VALIDATION_ERROR", "The request has invalid fields.", {part: [message]}), status=400
            )
        return defaults.bad_request(request, exception=SuspiciousOperation(message))


class InfrastructureEndpointsMiddleware:
    """Answers ``/health/live``, ``/health/ready`` and ``/metrics`` itself, before the rest of the stack.

    Load balancers probe and Prometheus scrapes each instance by its own address, over plain HTTP and
    without cookies: these paths must not be redirected to HTTPS, refused for a host name outside
    ``ALLOWED_HOSTS`` (their answers never use the host), or given a session, CSRF checks or
    request metrics of their own. ``/metrics`` still refuses callers ``core.metrics`` does not allow.
    Put it after ``RejectControlCharactersMiddleware`` and before ``SecurityMiddleware``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from core import health, metrics

        self.get_response = get_response
        self.endpoints: dict[str, Callable[[HttpRequest], HttpResponse]] = {
            "/health/live": health.live,
            "/health/ready": health.ready,
            "/metrics": metrics.metrics,
        }

    def __call__(self, request: HttpRequest) -> HttpResponse:
        endpoint = self.endpoints.get(request.path_info)
        if endpoint is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        return endpoint(request)
