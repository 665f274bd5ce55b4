"""Bearer-token authentication that honours revocation.

simplejwt's tokens are stateless: on its own a token stays good until it expires, whatever
happens to its user meanwhile. Each token carries the user's ``token_fingerprint`` at issue
(``accounts.services.token_issue``), and every request compares it with the user's current one,
so a password change, or a change of roles or territories, ends the tokens issued before it.
"""

from __future__ import annotations

from typing import Any

from django.utils.crypto import constant_time_compare
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework import exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.tokens import Token

from .models import User

TOKEN_FINGERPRINT_CLAIM = "fpr"
REVOKED_MESSAGE = "The token was revoked (the password, roles or territories changed); request a new one."


class RevocableJWTAuthentication(JWTAuthentication):
    """``Authorization: Bearer <token>``, refused once the user's fingerprint no longer matches."""

    def get_user(self, validated_token: Token) -> Any:
        user = super().get_user(validated_token)
        assert isinstance(user, User)
        carried = validated_token.get(TOKEN_FINGERPRINT_CLAIM)
        if not isinstance(carried, str) or not constant_time_compare(carried, user.token_fingerprint()):
            raise exceptions.AuthenticationFailed(REVOKED_MESSAGE, code="token_revoked")
        return user


class RevocableJWTScheme(SimpleJWTScheme):
    """Documents the bearer scheme in the OpenAPI schema (drf-spectacular) as simplejwt's own."""

    target_class = "accounts.authentication.RevocableJWTAuthentication"
