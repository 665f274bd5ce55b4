"""Which territories a user may see or act in: the one place territory access is decided.

Every answer here comes from the user's territory map (``territories.access.territory_access``),
loaded once per request and cached per user: a check is a lookup, not a query. Querysets of
territories name the allowed ones by primary key, so callers can still compose them. Superusers
(every active territory) are answered from the territories themselves, as before.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.db.models import QuerySet

from .access import is_superuser, territory_access
from .exceptions import TerritoryMismatch
from .models import ROLE_MODEL_PERMISSIONS, STAFF_ROLES, Territory, TerritoryPermission

_CODE = re.compile(r"[-a-zA-Z0-9_]{1,50}")


def _territories(ids: frozenset[uuid.UUID] | set[uuid.UUID]) -> QuerySet[Territory]:
    # Sorted, so the same set gives the same SQL (and the same plan) every time.
    return Territory.objects.filter(pk__in=sorted(ids)) if ids else Territory.objects.none()


def territories_for_user(
    *, user: Any, permission: TerritoryPermission = TerritoryPermission.ACCESS
) -> QuerySet[Territory]:
    """Active territories where ``user`` holds ``permission`` (all of them for a superuser)."""
    if is_superuser(user):
        return Territory.objects.filter(active=True)
    return _territories(territory_access(user).territory_ids(permission.value))


def territory_ids_for_user(
    *, user: Any, permission: TerritoryPermission = TerritoryPermission.ACCESS
) -> set[uuid.UUID]:
    if is_superuser(user):
        return set(Territory.objects.filter(active=True).values_list("pk", flat=True))
    return set(territory_access(user).territory_ids(permission.value))


def territory_permits(*, user: Any, permission: TerritoryPermission, territory_id: uuid.UUID | str) -> bool:
    """True if ``user`` holds ``permission`` on the active territory with ``territory_id``."""
    if is_superuser(user):
        try:
            return Territory.objects.filter(pk=uuid.UUID(str(territory_id)), active=True).exists()
        except ValueError:
            return False
    return territory_access(user).permits(permission.value, territory_id)


def territory_lookup(*, key: str) -> Territory | None:
    """A territory by UUID or code, or None."""
    try:
        return Territory.objects.filter(pk=uuid.UUID(str(key))).first()
    except ValueError:
        # Codes are slugs; anything else (a NUL byte would make PostgreSQL raise) cannot name one.
        if not _CODE.fullmatch(key):
            return None
        return Territory.objects.filter(code=key).first()


def territory_from_header(*, user: Any, header: str | None) -> Territory | None:
    """The territory a request's ``Territory-Id`` header picks, checked against the user's.

    Returns None when there is no header (the caller then works across all of the user's
    territories). Raises TerritoryMismatch for a territory the user is not in, including one
    that does not exist, so the two cannot be told apart.
    """
    if header is None or not header.strip():
        return None
    territory = territory_lookup(key=header.strip())
    if territory is None or not territory_permits(
        user=user, permission=TerritoryPermission.ACCESS, territory_id=territory.pk
    ):
        raise TerritoryMismatch(details={"territory_id": header.strip()[:64]})
    return territory


def back_office_territories(
    *,
    user: Any,
    permission: TerritoryPermission = TerritoryPermission.ACCESS,
    model_permissions: tuple[str, ...] | None = None,
) -> QuerySet[Territory]:
    """Active territories whose rows the back office (Django admin) may show ``user``.

    A territory counts when the user holds ``permission`` on it (the same object permission the
    API asks: ``access_territory`` for rows, ``view_phi`` for pages showing PHI) **and** their
    role in it works in the back office: a staff role, or, given ``model_permissions``
    (``"app_label.codename"``; any one suffices), a role whose back-office permissions include
    one. A global model permission alone is not enough, so a master distributor in one territory
    who is ops staff in another sees and changes only the second in the admin. Every active
    territory for a superuser.
    """
    if is_superuser(user):
        return Territory.objects.filter(active=True)
    access = territory_access(user)
    allowed = access.territory_ids(permission.value)
    roles: set[str]
    if model_permissions is None:
        roles = set(STAFF_ROLES)
    else:
        roles = {
            role
            for role, granted in ROLE_MODEL_PERMISSIONS.items()
            if any(model_permission in granted for model_permission in model_permissions)
        }
    return _territories({pk for pk in allowed if access.roles.get(pk) in roles})
