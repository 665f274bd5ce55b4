"""Territory and membership writes; keep guardian groups in step with memberships."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from guardian.models import GroupObjectPermission
from guardian.shortcuts import get_perms, remove_perm

from accounts.services import user_tokens_revoke

from .access import group_access_changed, territory_access_changed
from .models import (
    ROLE_MODEL_PERMISSIONS,
    ROLE_PERMISSIONS,
    STAFF_ROLES,
    Role,
    Territory,
    TerritoryMembership,
)


def territory_role_group(*, territory: Territory, role: str) -> Group:
    """The group holding exactly ``role``'s object permissions on ``territory`` (created on first use).

    Permissions are brought in line on every call, so a role that gains a permission in a
    release gains it in existing territories the next time a membership is granted.
    """
    group, _ = Group.objects.get_or_create(name=f"territory:{territory.code}:{role}")
    wanted = {permission.value for permission in ROLE_PERMISSIONS[role]}
    held = set(get_perms(group, territory))
    missing = wanted - held
    if missing:
        # One insert for all of them (guardian's assign_perm takes one permission at a time).
        content_type = ContentType.objects.get_for_model(Territory)
        GroupObjectPermission.objects.bulk_create(
            [
                GroupObjectPermission(
                    group=group, permission=permission, content_type=content_type, object_pk=str(territory.pk)
                )
                for permission in Permission.objects.filter(content_type=content_type, codename__in=missing)
            ],
            ignore_conflicts=True,
        )
        # bulk_create sends no signals: the members' cached maps are renewed here.
        group_access_changed(group_ids=[group.pk])
    for codename in held - wanted:
        remove_perm(f"territories.{codename}", group, territory)
    return group


def role_back_office_group(*, role: str) -> Group:
    """The global group carrying ``role``'s model permissions for the Django admin."""
    group, _ = Group.objects.get_or_create(name=f"role:{role}")
    wanted = ROLE_MODEL_PERMISSIONS[role]
    if wanted:
        app_labels = {label.split(".")[0] for label in wanted}
        available = {
            f"{p.content_type.app_label}.{p.codename}": p
            for p in Permission.objects.filter(content_type__app_label__in=app_labels).select_related("content_type")
        }
        group.permissions.set([available[label] for label in wanted if label in available])
    return group


def role_permissions_sync() -> int:
    """Bring every role's groups in line with ROLE_PERMISSIONS and ROLE_MODEL_PERMISSIONS.

    Runs after every ``migrate``, so a permission a release adds to a role (``override_compliance``
    for admins, say) reaches existing territories at deployment, not at the next membership
    grant. Idempotent; returns the number of territory groups checked.
    """
    checked = 0
    with transaction.atomic():
        for role in Role:
            role_back_office_group(role=role)
        for territory in Territory.objects.all():
            for role in Role:
                territory_role_group(territory=territory, role=role)
                checked += 1
    return checked


def territory_create(*, code: str, name: str) -> Territory:
    with transaction.atomic():
        territory = Territory.objects.create(code=code, name=name)
        for role in Role:
            territory_role_group(territory=territory, role=role)
    return territory


@transaction.atomic
def membership_grant(*, user: Any, territory: Territory, role: str) -> TerritoryMembership:
    """Give ``user`` exactly ``role`` in ``territory`` (replacing any other role there).

    When this changes what the user holds (a new territory, another role), the user's bearer
    tokens are revoked: a token carries the access of the moment it was issued. Granting what
    the user already holds (an SSO sign-in repeating its claims) changes nothing and revokes nothing.
    The user's cached territory map is renewed (``territories.access``), on ``user`` as well.
    """
    previous_role = (
        TerritoryMembership.objects.filter(user=user, territory=territory).values_list("role", flat=True).first()
    )
    membership, _ = TerritoryMembership.objects.update_or_create(
        user=user, territory=territory, defaults={"role": role}
    )
    if previous_role != role:
        user_tokens_revoke(user=user)
    for other in Role:
        group = territory_role_group(territory=territory, role=other)
        if other == role:
            user.groups.add(group)
        else:
            user.groups.remove(group)
    user.groups.add(role_back_office_group(role=role))
    held_roles = set(TerritoryMembership.objects.filter(user=user).values_list("role", flat=True))
    for other in Role:
        if other not in held_roles:
            user.groups.remove(role_back_office_group(role=other))
    _sync_staff_flag(user=user, held_roles=held_roles)
    territory_access_changed(users=[user])
    return membership


@transaction.atomic
def membership_revoke(*, user: Any, territory: Territory) -> None:
    """Remove ``user`` from ``territory``: every role group of it and the membership row.

    Revokes the user's bearer tokens when they held a membership there, and renews their cached
    territory map (``territories.access``), on ``user`` as well.
    """
    removed, _ = TerritoryMembership.objects.filter(user=user, territory=territory).delete()
    if removed:
        user_tokens_revoke(user=user)
    held_roles = set(TerritoryMembership.objects.filter(user=user).values_list("role", flat=True))
    for role in Role:
        user.groups.remove(territory_role_group(territory=territory, role=role))
        if role not in held_roles:
            user.groups.remove(role_back_office_group(role=role))
    _sync_staff_flag(user=user, held_roles=held_roles)
    territory_access_changed(users=[user])


def _sync_staff_flag(*, user: Any, held_roles: set[str]) -> None:
    """Back-office access follows the roles held: staff while any membership is a staff role.

    Superusers keep their flag whatever their memberships.
    """
    is_staff = user.is_superuser or bool(held_roles & STAFF_ROLES)
    if user.is_staff != is_staff:
        user.is_staff = is_staff
        user.save(update_fields=["is_staff"])
