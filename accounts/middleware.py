"""Automatic logoff: a signed-in session ends after ``SESSION_IDLE_SECONDS`` without activity.

Activity is a request the person made. Background refreshes (htmx polling, which sends
``BACKGROUND_HEADER``) are served while the session is alive but do not keep it alive, so a page
left open on a status view still signs out. Only session sign-ins are affected; API bearer
tokens carry their own expiry.

Activity is written to the session at most once per ``SESSION_ACTIVITY_RESOLUTION_SECONDS`` (the
first request of a session always): a page view inside that window costs no session write. The
idle clock therefore runs from the last *recorded* activity, so a session ends between
``SESSION_IDLE_SECONDS - SESSION_ACTIVITY_RESOLUTION_SECONDS`` and ``SESSION_IDLE_SECONDS`` after
the person's last request: never later than the configured limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

LAST_ACTIVITY_KEY = "last_activity"
IDLE_SIGNED_OUT_KEY = "signed_out_idle"
BACKGROUND_HEADER = "X-Background-Refresh"


def is_background(request: HttpRequest) -> bool:
    return request.headers.get(BACKGROUND_HEADER) == "1"


class IdleLogoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = int(time.time())
            last = request.session.get(LAST_ACTIVITY_KEY)
            if last is not None and now - int(last) > settings.SESSION_IDLE_SECONDS:
                logout(request)  # flushes the session; the new one only remembers why
                request.session[IDLE_SIGNED_OUT_KEY] = True
            elif last is None or (
                not is_background(request) and now - int(last) >= settings.SESSION_ACTIVITY_RESOLUTION_SECONDS
            ):
                request.session[LAST_ACTIVITY_KEY] = now
        return self.get_response(request)
