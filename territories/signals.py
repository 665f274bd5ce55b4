"""Keep the cached territory maps (``territories.access``) in step with the rows they are read from.

Cache coherence, not business flow: whichever way a membership, a user's groups, a guardian object
permission on a territory or a territory itself changes (the services, the admin, a shell, a
data migration), the users concerned get a new ``access_version`` in the same transaction.
Deletions are caught before they happen (``pre_delete``), while the rows that say who is affected
(a group's members) still exist. Bulk writes that send no signals call ``territory_access_changed``
themselves (``territories.services.territory_role_group``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from guardian.models import GroupObjectPermission, UserObjectPermission

from accounts.models import User

from .access import group_access_changed, territory_access_changed, territory_access_changed_in
from .models import Territory, TerritoryMembership


def _on_territory(permission: Any) -> bool:
    return bool(permission.content_type_id == ContentType.objects.get_for_model(Territory).pk)


def membership_changed(sender: Any, instance: TerritoryMembership, **kwargs: Any) -> None:
    users = [instance.user] if TerritoryMembership.user.is_cached(instance) else []
    territory_access_changed(users=users, user_ids=[instance.user_id])


def territory_changed(sender: Any, instance: Territory, **kwargs: Any) -> None:
    territory_access_changed_in(territory_id=instance.pk)


def user_permission_changed(sender: Any, instance: UserObjectPermission, **kwargs: Any) -> None:
    if _on_territory(instance):
        users = [instance.user] if UserObjectPermission.user.is_cached(instance) else []
        territory_access_changed(users=users, user_ids=[instance.user_id])


def group_permission_changed(sender: Any, instance: GroupObjectPermission, **kwargs: Any) -> None:
    if _on_territory(instance):
        group_access_changed(group_ids=[instance.group_id])


def group_deleted(sender: Any, instance: Group, **kwargs: Any) -> None:
    group_access_changed(group_ids=[instance.pk])


def groups_of_users_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[Any] | None, **kwargs: Any
) -> None:
    """``user.groups.add/remove/clear`` (``instance`` is the user) or ``group.user_set...`` (a group)."""
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if action != "pre_clear" and not pk_set:
        return  # nothing was added or removed
    if not reverse:
        territory_access_changed(users=[instance])
    elif action == "pre_clear":
        territory_access_changed(user_ids=list(instance.user_set.values_list("pk", flat=True)))
    else:
        territory_access_changed(user_ids=list(pk_set or ()))


def connect() -> None:
    """Connect the receivers (``TerritoriesConfig.ready``)."""
    post_save.connect(membership_changed, sender=TerritoryMembership, dispatch_uid="territory_access.membership_saved")
    post_delete.connect(
        membership_changed, sender=TerritoryMembership, dispatch_uid="territory_access.membership_deleted"
    )
    post_save.connect(territory_changed, sender=Territory, dispatch_uid="territory_access.territory_saved")
    pre_delete.connect(territory_changed, sender=Territory, dispatch_uid="territory_access.territory_deleted")
    post_save.connect(
        user_permission_changed, sender=UserObjectPermission, dispatch_uid="territory_access.user_permission_saved"
    )
    post_delete.connect(
        user_permission_changed, sender=UserObjectPermission, dispatch_uid="territory_access.user_permission_deleted"
    )
    post_save.connect(
        group_permission_changed, sender=GroupObjectPermission, dispatch_uid="territory_access.group_permission_saved"
    )
    pre_delete.connect(
        group_permission_changed,
        sender=GroupObjectPermission,
        dispatch_uid="territory_access.group_permission_deleted",
    )
    pre_delete.connect(group_deleted, sender=Group, dispatch_uid="territory_access.group_deleted")
    m2m_changed.connect(groups_of_users_changed, sender=User.groups.through, dispatch_uid="territory_access.groups")
