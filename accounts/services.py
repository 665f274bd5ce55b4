"""Sign-in services."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import authenticate
from django.db.models import F
from rest_framework_simplejwt.tokens import AccessToken

from core.exceptions import AuthenticationFailed

from .authentication import TOKEN_FINGERPRINT_CLAIM
from .models import User


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: dt.datetime
    expires_in: int


def token_issue(*, request: Any, username: str, password: str) -> IssuedToken:
    """Check a local user's password and issue an expiring bearer token.

    Raises AuthenticationFailed (without saying which part was wrong) for unknown users, wrong
    passwords and inactive accounts.
    """
    user = authenticate(request=request, username=username, password=password)
    if user is None or not user.is_active:
        raise AuthenticationFailed("Unknown user name or wrong password.")
    token = AccessToken.for_user(user)
    token[TOKEN_FINGERPRINT_CLAIM] = user.token_fingerprint()
    expires_at = dt.datetime.fromtimestamp(int(token["exp"]), tz=dt.UTC)
    lifetime = token.lifetime
    return IssuedToken(token=str(token), expires_at=expires_at, expires_in=int(lifetime.total_seconds()))


def user_tokens_revoke(*, user: Any) -> None:
    """End every bearer token issued to ``user`` so far (their roles or territories changed).

    Raises the stored ``token_version`` in the database (``F()``, so concurrent changes each
    count) and on ``user``. A password change needs no call: the fingerprint covers the password.
    """
    User.objects.filter(pk=user.pk).update(token_version=F("token_version") + 1)
    user.refresh_from_db(fields=["token_version"])
