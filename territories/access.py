"""The user's territory → permissions map: asked once per request, cached per user.

Every territory check (``territories.selectors``: ``territory_permits``, ``territories_for_user``,
``back_office_territories``) reads one ``TerritoryAccess``: the active territories where the user
holds each object permission (django-guardian, directly or through their groups) and their
membership role in each territory. Guardian stays the source of truth; this module only decides
how often it is asked.

Where the map lives:

* on the user object, for the rest of its life (``_territory_access``). A request loads its user
  afresh (session or bearer token), so this is the per-request memo; nothing is kept in the
  process between requests or shared between users.
* in the Django cache (Redis in a real deployment), under a key naming the user and their
  ``access_version``: a random value that every change of what the user may do replaces, in the
  same transaction as the change (``territory_access_changed``). A change that commits makes the
  next request read a new key, so it takes effect at once everywhere; one that rolls back leaves
  the old value, and whatever was cached under the discarded one is never read again. The stored
  value expires after ``TERRITORY_ACCESS_CACHE_SECONDS`` (only to bound memory, not for
  correctness).

What changes the map (each calls ``territory_access_changed`` for the users concerned, through
the services or the receivers in ``territories.signals``): memberships granted, changed or
revoked; a user's groups; guardian object permissions of a user or of a group on a territory; a
territory deactivated or deleted (its members). A user's ``is_active`` and ``is_superuser`` flags
are read from the user object itself, never from the cache, and a superuser's territories (every
active one) are never cached at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db.models import Q
from guardian.models import GroupObjectPermission, UserObjectPermission

from accounts.models import User

from .models import Territory, TerritoryMembership, TerritoryPermission

# Raised when the shape of the cached value changes, so a deployment never reads the old shape.
ACCESS_CACHE_FORMAT = 1
_MEMO_ATTRIBUTE = "_territory_access"
_ALL_PERMISSIONS = frozenset(TerritoryPermission.values)


@dataclass(frozen=True)
class TerritoryAccess:
    """What one user may do where: permissions per active territory, roles per membership."""

    permissions: Mapping[uuid.UUID, frozenset[str]]
    roles: Mapping[uuid.UUID, str]

    def territory_ids(self, permission: str) -> frozenset[uuid.UUID]:
        """The active territories where the user holds ``permission`` (a codename)."""
        return frozenset(pk for pk, held in self.permissions.items() if permission in held)

    def permits(self, permission: str, territory_id: Any) -> bool:
        """Whether the user holds ``permission`` on the active territory ``territory_id`` (a UUID or its text)."""
        key = _as_uuid(territory_id)
        return key is not None and permission in self.permissions.get(key, ())

    def as_cached(self) -> dict[str, Any]:
        """Plain data for the cache (strings and lists only)."""
        return {
            "permissions": {str(pk): sorted(held) for pk, held in self.permissions.items()},
            "roles": {str(pk): role for pk, role in self.roles.items()},
        }

    @classmethod
    def from_cached(cls, value: Mapping[str, Any]) -> TerritoryAccess:
        return cls(
            permissions={uuid.UUID(pk): frozenset(held) for pk, held in value["permissions"].items()},
            roles={uuid.UUID(pk): role for pk, role in value["roles"].items()},
        )


NO_ACCESS = TerritoryAccess(permissions={}, roles={})


def _as_uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def access_cache_key(user: Any) -> str:
    """The cache key of ``user``'s map: their id and their current ``access_version``."""
    return f"territory-access:{ACCESS_CACHE_FORMAT}:{user.pk}:{user.access_version}"


def is_superuser(user: Any) -> bool:
    """An active, signed-in superuser: every active territory, every permission, asked of the
    territories themselves (``territories.selectors``), never cached: it changes with every territory."""
    return bool(getattr(user, "is_authenticated", False) and user.is_active and user.is_superuser)


def territory_access(user: Any) -> TerritoryAccess:
    """``user``'s territory map: from the user object, else the cache, else the database (3 queries).

    Anonymous and inactive users have no access (nothing is loaded for them). A superuser's map is
    every active territory with every permission, read afresh on each call (``is_superuser``).
    The map on a user object is the one of its ``access_version`` when loaded (or as the services
    last set it): like Django's own permission cache on a user object, a change made elsewhere
    reaches the next object loaded, which for a request is the next request.
    """
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return NO_ACCESS
    if user.is_superuser:
        return _load(user)
    key = access_cache_key(user)
    memo = getattr(user, _MEMO_ATTRIBUTE, None)
    if memo is not None and memo[0] == key:
        access: TerritoryAccess = memo[1]
        return access
    cached = cache.get(key)
    if cached is not None:
        access = TerritoryAccess.from_cached(cached)
    else:
        access = _load(user)
        cache.set(key, access.as_cached(), timeout=settings.TERRITORY_ACCESS_CACHE_SECONDS)
    setattr(user, _MEMO_ATTRIBUTE, (key, access))
    return access


def _load(user: Any) -> TerritoryAccess:
    """Read the map from guardian's tables and the memberships."""
    roles = dict(TerritoryMembership.objects.filter(user_id=user.pk).values_list("territory_id", "role"))
    if user.is_superuser:
        active = Territory.objects.filter(active=True).values_list("pk", flat=True)
        return TerritoryAccess(permissions=dict.fromkeys(active, _ALL_PERMISSIONS), roles=roles)
    content_type = ContentType.objects.get_for_model(Territory)
    direct = UserObjectPermission.objects.filter(user_id=user.pk, content_type=content_type).values_list(
        "object_pk", "permission__codename"
    )
    through_groups = GroupObjectPermission.objects.filter(group__user=user.pk, content_type=content_type).values_list(
        "object_pk", "permission__codename"
    )
    held: dict[uuid.UUID, set[str]] = {}
    for object_pk, codename in direct.union(through_groups, all=True):
        territory_id = _as_uuid(object_pk)
        if territory_id is not None and codename in _ALL_PERMISSIONS:
            held.setdefault(territory_id, set()).add(codename)
    active_ids = Territory.objects.filter(active=True, pk__in=list(held)).values_list("pk", flat=True) if held else []
    return TerritoryAccess(permissions={pk: frozenset(held[pk]) for pk in active_ids}, roles=roles)


def territory_access_changed(*, users: Iterable[Any] = (), user_ids: Iterable[Any] = ()) -> None:
    """What ``users`` (objects) and ``user_ids`` may do changed: give each a new ``access_version``.

    One UPDATE, in the caller's transaction, so the new version commits (or rolls back) with the
    change itself. The given user objects take the new version and drop their memo, so a caller
    holding one sees the change at once. Their previous cache entries are dropped as well (a
    stale full save of a user object elsewhere would otherwise bring an old version back to life).
    """
    instances = [user for user in users if user is not None and user.pk is not None]
    ids: set[uuid.UUID] = {user.pk for user in instances}
    ids.update(pk for pk in (_as_uuid(value) for value in user_ids) if pk is not None)
    if not ids:
        return
    stale_keys = [access_cache_key(user) for user in instances]
    version = uuid.uuid4()
    User.objects.filter(pk__in=ids).update(access_version=version)
    for user in instances:
        user.access_version = version
        if hasattr(user, _MEMO_ATTRIBUTE):
            delattr(user, _MEMO_ATTRIBUTE)
    if stale_keys:
        cache.delete_many(stale_keys)


def territory_access_changed_in(*, territory_id: Any) -> None:
    """A territory changed its active flag or is going away: everyone whose map names it (its
    members, and users and groups holding permissions on it; superusers' maps are never cached)."""
    object_pk = str(territory_id)
    content_type = ContentType.objects.get_for_model(Territory)
    affected = User.objects.filter(
        Q(memberships__territory_id=territory_id)
        | Q(pk__in=UserObjectPermission.objects.filter(content_type=content_type, object_pk=object_pk).values("user"))
        | Q(
            groups__in=GroupObjectPermission.objects.filter(content_type=content_type, object_pk=object_pk).values(
                "group"
            )
        )
    ).values_list("pk", flat=True)
    territory_access_changed(user_ids=set(affected))


def group_access_changed(*, group_ids: Iterable[Any]) -> None:
    """The territory permissions of these groups changed: every member's map."""
    members = User.objects.filter(groups__in=list(group_ids)).values_list("pk", flat=True)
    territory_access_changed(user_ids=set(members))
