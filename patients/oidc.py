"""Single sign-on for practitioners: the claims-mapped sign-in of ``territories.oidc`` plus the
link from a doctor's account to their provider record.

The ``OIDC_NPI_CLAIM`` claim (default ``npi``) of a doctor names their provider record; it is
linked on sign-in (``patients.services.provider_link_account``) so the doctor can sign their
orders in the portal. A claim naming a provider of another territory or of another account links
nothing and is logged without the NPI.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from core.identifiers import is_valid_npi
from territories.models import Role
from territories.oidc import ClaimsMappedOIDCBackend, access_from_claims

from .services import provider_link_account

logger = logging.getLogger(__name__)


class PractitionerOIDCBackend(ClaimsMappedOIDCBackend):
    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        user = super().update_user(user, claims)
        npi = str(claims.get(settings.OIDC_NPI_CLAIM) or "")
        access = access_from_claims(claims)
        if user is None or access is None or access[0] != Role.DOCTOR or not is_valid_npi(npi):
            return user
        if provider_link_account(user=user, npi=npi) is None:
            logger.warning("OIDC sign-in: the NPI claim names no provider this doctor may be linked to")
        return user
