"""Sign-in services."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import authenticate
from rest_framework_simplejwt.tokens import AccessToken

from core.exceptions import AuthenticationFailed


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
    expires_at = dt.datetime.fromtimestamp(int(token["exp"]), tz=dt.UTC)
    lifetime = token.lifetime
    return IssuedToken(token=str(token), expires_at=expires_at, expires_in=int(lifetime.total_seconds()))
