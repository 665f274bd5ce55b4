"""OpenID Connect sign-in (mozilla-django-oidc) with roles and territories taken from the claims.

The issuer is the source of truth for an SSO user's access: on every sign-in the user's
territory memberships become exactly what the claims say. ``OIDC_ROLES_CLAIM`` (default
``roles``) must name exactly one role of this system (doctor, ops_staff, admin,
master_distributor) and ``OIDC_TERRITORIES_CLAIM`` (default ``territories``) the codes of one
or more existing territories; the user holds that role in each. Claims that name no known role,
several roles, or no known territory refuse the sign-in (the user is sent back to the sign-in
page) and change nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from .models import Role, Territory, TerritoryMembership
from .services import membership_grant, membership_revoke

logger = logging.getLogger(__name__)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return []


def access_from_claims(claims: dict[str, Any]) -> tuple[str, list[Territory]] | None:
    """The one role and the territories the claims grant, or None when they grant no clear access."""
    roles = {role for role in _as_list(claims.get(settings.OIDC_ROLES_CLAIM)) if role in Role.values}
    codes = _as_list(claims.get(settings.OIDC_TERRITORIES_CLAIM))
    territories = list(Territory.objects.filter(code__in=codes).order_by("code"))
    if len(roles) != 1 or not territories:
        return None
    return roles.pop(), territories


class ClaimsMappedOIDCBackend(OIDCAuthenticationBackend):
    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("email")) and access_from_claims(claims) is not None

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        user_info = self.get_userinfo(access_token, id_token, payload)
        if not self.verify_claims(user_info):
            # The claims' values are not logged: they may name the person.
            logger.warning("OIDC sign-in refused: the claims grant no single known role and territory")
            return None
        return super().get_or_create_user(access_token, id_token, payload)

    def create_user(self, claims: dict[str, Any]) -> Any:
        user = super().create_user(claims)
        return self.update_user(user, claims)

    @transaction.atomic
    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        access = access_from_claims(claims)
        if access is None:  # verify_claims ran first; the territories vanished meanwhile
            return None
        role, territories = access
        user.first_name = str(claims.get("given_name") or user.first_name)[:150]
        user.last_name = str(claims.get("family_name") or user.last_name)[:150]
        user.save(update_fields=["first_name", "last_name"])
        for territory in territories:
            membership_grant(user=user, territory=territory, role=role)
        granted = {territory.pk for territory in territories}
        for membership in TerritoryMembership.objects.filter(user=user).exclude(territory_id__in=granted):
            membership_revoke(user=user, territory=membership.territory)
        return user
