"""The patient's unsubscribe page for order emails (``/messages/unsubscribe/<token>``): GET asks, POST
records it (also the one-click POST a mail client sends for ``List-Unsubscribe-Post``, RFC 8058,
which carries no CSRF token: the signed token is what authorizes it). Never cached."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from .messaging import email_unsubscribe, message_for_token


@never_cache
@csrf_exempt
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    if request.method == "POST":
        done = email_unsubscribe(token=token)
        return render(
            request, "messages/unsubscribe.html", {"done": done, "invalid": not done}, status=200 if done else 404
        )
    invalid = message_for_token(token) is None
    return render(request, "messages/unsubscribe.html", {"invalid": invalid}, status=404 if invalid else 200)
