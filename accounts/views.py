"""Sign-in pages: local accounts (locked after repeated failures by django-axes) and, when an
issuer is configured, OpenID Connect single sign-on (mozilla-django-oidc)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from core.api.errors import envelope

from .context_processors import lockout_minutes
from .middleware import IDLE_SIGNED_OUT_KEY


class SignInView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["sso_enabled"] = bool(settings.OIDC_OP_ISSUER)
        context["signed_out_idle"] = self.request.session.pop(IDLE_SIGNED_OUT_KEY, False)
        context["idle_minutes"] = settings.SESSION_IDLE_SECONDS // 60
        return context


def locked_out(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """django-axes' answer to a locked-out sign-in: the lockout page, or for the API (its token
    endpoint) the error envelope with ``ACCOUNT_LOCKED`` — the same 429 either way."""
    if request.path.startswith("/api/"):
        message = f"Too many failed sign-ins for this user name; try again in {lockout_minutes()} minutes."
        return JsonResponse(envelope("ACCOUNT_LOCKED", message), status=429)
    return render(request, "accounts/locked_out.html", status=429)
