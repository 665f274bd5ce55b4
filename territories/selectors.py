"""Which territories a user may see or act in: the one place territory access is decided."""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_user

from .exceptions import TerritoryMismatch
from .models import Territory, TerritoryPermission

_CODE = re.compile(r"[-a-zA-Z0-9_]{1,50}")


def territories_for_user(
    *, user: Any, permission: TerritoryPermission = TerritoryPermission.ACCESS
) -> QuerySet[Territory]:
    """Active territories where ``user`` holds ``permission`` (all of them for a superuser)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Territory.objects.none()
    if user.is_superuser:
        return Territory.objects.filter(active=True)
    return get_objects_for_user(
        user,
        f"territories.{permission.value}",
        klass=Territory.objects.filter(active=True),
        accept_global_perms=False,
    )


def territory_ids_for_user(
    *, user: Any, permission: TerritoryPermission = TerritoryPermission.ACCESS
) -> set[uuid.UUID]:
    return set(territories_for_user(user=user, permission=permission).values_list("id", flat=True))


def territory_permits(*, user: Any, permission: TerritoryPermission, territory_id: uuid.UUID | str) -> bool:
    """True if ``user`` holds ``permission`` on the territory with ``territory_id``."""
    return territories_for_user(user=user, permission=permission).filter(pk=territory_id).exists()


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
