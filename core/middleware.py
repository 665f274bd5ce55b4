"""Request checks that hold for every URL, before any view or database query sees the request."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from core.api.errors import envelope

# C0 and C1 control characters and DEL: no path segment or query parameter of this site means
# one. A NUL makes PostgreSQL refuse the query (a 500), CR/LF break the headers a response
# would echo the path into (htmx's HX-Redirect), the rest are injected only by tools and attackers.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CONTROL_MESSAGE = "Control characters are not allowed."
# Where the JSON API lives: errors there speak the envelope; elsewhere a plain 400 page.
API_PREFIXES = ("/api/", "/payments/")


def _control_characters_in(request: HttpRequest) -> str | None:
    """``"path"`` or ``"query"`` when that part of the request (decoded) holds a control character."""
    if _CONTROL.search(request.path_info) or _CONTROL.search(request.path):
        return "path"
    for key, values in request.GET.lists():
        if _CONTROL.search(key) or any(_CONTROL.search(value) for value in values):
            return "query"
    return None


class RejectControlCharactersMiddleware:
    """Answers 400 to a request whose path or query string holds a control character (``%00``, ``%0D%0A``).

    One place for every view: the API answers with the error envelope
    (``VALIDATION_ERROR``, details naming ``path`` or ``query``), pages with the plain 400 page.
    Put it first, so nothing (sessions, authentication, htmx redirects) handles such a request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        part = _control_characters_in(request)
        if part is None:
            return self.get_response(request)
        if request.path_info.startswith(API_PREFIXES):
            return JsonResponse(
                envelope("VALIDATION_ERROR", "The request has invalid fields.", {part: [CONTROL_MESSAGE]}),
                status=400,
            )
        return defaults.bad_request(request, exception=SuspiciousOperation(CONTROL_MESSAGE))
