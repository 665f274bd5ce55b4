"""Memberships grant exactly their role's object permissions on their territory, and no more."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from guardian.shortcuts import get_perms, remove_perm

from accounts.models import User
from territories.models import Role, Territory, TerritoryMembership, TerritoryPermission
from territories.selectors import territories_for_user, territory_permits
from territories.services import (
    membership_grant,
    membership_revoke,
    role_permissions_sync,
    territory_create,
    territory_role_group,
)
from tests.factories import TerritoryFactory, UserFactory

pytestmark = pytest.mark.django_db

ACCESS = "access_territory"
VIEW_PHI = "view_phi"
CREATE_ORDER = "create_order"
REVIEW_ORDER = "review_order"
FULFILL_ORDER = "fulfill_order"
CANCEL_ORDER = "cancel_order"
RECORD_PAYMENT = "record_payment"
MANAGE_PATIENTS = "manage_patients"
OVERRIDE_COMPLIANCE = "override_compliance"
SEND_PAYMENT_LINK = "send_payment_link"
REVOKE_PAYMENT_LINK = "revoke_payment_link"
REFUND_PAYMENT = "refund_payment"
MANAGE_PHARMACIES = "manage_pharmacies"

# Written out from the platform issue's roles, independently of territories.models.ROLE_PERMISSIONS.
EXPECTED_PERMISSIONS: dict[str, set[str]] = {
    "doctor": {ACCESS, VIEW_PHI, CREATE_ORDER, CANCEL_ORDER, MANAGE_PATIENTS, SEND_PAYMENT_LINK},
    "ops_staff": {
        ACCESS,
        VIEW_PHI,
        CREATE_ORDER,
        REVIEW_ORDER,
        FULFILL_ORDER,
        CANCEL_ORDER,
        MANAGE_PATIENTS,
        SEND_PAYMENT_LINK,
        REVOKE_PAYMENT_LINK,
    },
    "admin": {
        ACCESS,
        VIEW_PHI,
        CREATE_ORDER,
        REVIEW_ORDER,
        FULFILL_ORDER,
        CANCEL_ORDER,
        RECORD_PAYMENT,
        MANAGE_PATIENTS,
        OVERRIDE_COMPLIANCE,
        SEND_PAYMENT_LINK,
        REVOKE_PAYMENT_LINK,
        REFUND_PAYMENT,
        MANAGE_PHARMACIES,
    },
    # Minimum necessary: a distributor moves orders along without reading PHI.
    "master_distributor": {ACCESS, FULFILL_ORDER},
}


def _permissions_on(user: Any, territory: Territory) -> set[str]:
    """The territory permissions ``user`` holds on ``territory``, asked through the selector."""
    return {
        permission.value
        for permission in TerritoryPermission
        if territories_for_user(user=user, permission=permission).filter(pk=territory.pk).exists()
    }


def _codes(user: Any, permission: TerritoryPermission = TerritoryPermission.ACCESS) -> list[str]:
    return list(territories_for_user(user=user, permission=permission).values_list("code", flat=True))


def _fresh(user: User) -> User:
    """Reload the user, so that cached permissions do not hide a change."""
    return User.objects.get(pk=user.pk)


@pytest.fixture
def east() -> Territory:
    return territory_create(code="east", name="East")


@pytest.fixture
def west() -> Territory:
    return territory_create(code="west", name="West")


def test_expected_permissions_name_every_territory_permission() -> None:
    assert EXPECTED_PERMISSIONS["admin"] == set(TerritoryPermission.values)


@pytest.mark.parametrize("role", sorted(EXPECTED_PERMISSIONS))
def test_grant_gives_exactly_the_roles_permissions_on_that_territory(
    east: Territory, west: Territory, role: str
) -> None:
    # Given a user without memberships
    user = UserFactory.create(username="member")
    assert _permissions_on(user, east) == set()

    # When they are granted the role in east
    membership = membership_grant(user=user, territory=east, role=role)

    # Then they hold exactly that role's permissions there, and nothing in west
    user = _fresh(user)
    assert _permissions_on(user, east) == EXPECTED_PERMISSIONS[role]
    assert _permissions_on(user, west) == set()
    assert list(TerritoryMembership.objects.filter(user=user).values_list("territory__code", "role")) == [
        ("east", role)
    ]
    assert membership.role == role
    for permission in TerritoryPermission:
        assert territory_permits(user=user, permission=permission, territory_id=east.pk) is (
            permission.value in EXPECTED_PERMISSIONS[role]
        )


def test_changing_the_role_replaces_the_permissions(east: Territory) -> None:
    user = UserFactory.create(username="member")
    membership_grant(user=user, territory=east, role="ops_staff")
    assert _permissions_on(_fresh(user), east) == EXPECTED_PERMISSIONS["ops_staff"]

    membership_grant(user=user, territory=east, role="master_distributor")

    user = _fresh(user)
    assert _permissions_on(user, east) == EXPECTED_PERMISSIONS["master_distributor"]
    assert list(TerritoryMembership.objects.filter(user=user).values_list("role", flat=True)) == ["master_distributor"]
    assert sorted(user.groups.values_list("name", flat=True)) == [
        "role:master_distributor",
        "territory:east:master_distributor",
    ]


def test_granting_the_same_role_twice_changes_nothing(east: Territory) -> None:
    user = UserFactory.create(username="member")
    first = membership_grant(user=user, territory=east, role="doctor")
    groups = sorted(user.groups.values_list("name", flat=True))

    second = membership_grant(user=user, territory=east, role="doctor")

    assert second.pk == first.pk
    assert TerritoryMembership.objects.filter(user=user).count() == 1
    assert (
        sorted(_fresh(user).groups.values_list("name", flat=True)) == groups == ["role:doctor", "territory:east:doctor"]
    )


def test_revoke_removes_all_access_to_that_territory_only(east: Territory, west: Territory) -> None:
    # Given ops staff in east and a doctor in west
    user = UserFactory.create(username="member")
    membership_grant(user=user, territory=east, role="ops_staff")
    membership_grant(user=user, territory=west, role="doctor")

    # When east is revoked
    membership_revoke(user=user, territory=east)

    # Then nothing of east remains, and west is untouched
    user = _fresh(user)
    assert _permissions_on(user, east) == set()
    assert _permissions_on(user, west) == EXPECTED_PERMISSIONS["doctor"]
    assert list(TerritoryMembership.objects.filter(user=user).values_list("territory__code", flat=True)) == ["west"]
    assert sorted(user.groups.values_list("name", flat=True)) == ["role:doctor", "territory:west:doctor"]
    assert not user.has_perm("orders.view_order")


def test_revoke_of_the_last_membership_leaves_no_access(east: Territory) -> None:
    user = UserFactory.create(username="member")
    membership_grant(user=user, territory=east, role="doctor")

    membership_revoke(user=user, territory=east)

    user = _fresh(user)
    assert all(_codes(user, permission) == [] for permission in TerritoryPermission)
    assert list(user.groups.values_list("name", flat=True)) == []
    assert TerritoryMembership.objects.filter(user=user).count() == 0


def test_user_in_two_territories_sees_both_with_each_roles_permissions(east: Territory, west: Territory) -> None:
    TerritoryFactory.create(code="north")
    user = UserFactory.create(username="member")
    membership_grant(user=user, territory=east, role="doctor")
    membership_grant(user=user, territory=west, role="ops_staff")

    user = _fresh(user)
    assert _codes(user) == ["east", "west"]
    assert _codes(user, TerritoryPermission.REVIEW_ORDER) == ["west"]
    assert _codes(user, TerritoryPermission.CREATE_ORDER) == ["east", "west"]
    assert _codes(user, TerritoryPermission.RECORD_PAYMENT) == []


def test_inactive_user_sees_no_territory(east: Territory) -> None:
    user = UserFactory.create(username="member", territory=east, role="admin")
    user.is_active = False
    user.save(update_fields=["is_active"])

    user = _fresh(user)
    assert all(_codes(user, permission) == [] for permission in TerritoryPermission)
    assert territory_permits(user=user, permission=TerritoryPermission.ACCESS, territory_id=east.pk) is False


def test_anonymous_user_sees_no_territory(east: Territory) -> None:
    assert _codes(AnonymousUser()) == []


def test_inactive_territory_is_hidden_from_its_members(east: Territory, west: Territory) -> None:
    user = UserFactory.create(username="member", territory=east, role="admin")
    membership_grant(user=user, territory=west, role="admin")
    west.active = False
    west.save(update_fields=["active"])

    assert _codes(_fresh(user)) == ["east"]
    assert _permissions_on(_fresh(user), west) == set()


def test_superuser_sees_every_active_territory_without_memberships(east: Territory, west: Territory) -> None:
    TerritoryFactory.create(code="closed", active=False)
    superuser = UserFactory.create(username="root", is_superuser=True)

    for permission in TerritoryPermission:
        assert _codes(superuser, permission) == ["east", "west"]


@pytest.mark.parametrize(
    ("role", "is_staff", "back_office"),
    [("doctor", False, False), ("master_distributor", False, False), ("ops_staff", True, True), ("admin", True, True)],
)
def test_staff_roles_work_in_the_back_office(east: Territory, role: str, is_staff: bool, back_office: bool) -> None:
    user = UserFactory.create(username="member")
    assert user.is_staff is False

    membership_grant(user=user, territory=east, role=role)

    user = _fresh(user)
    assert user.is_staff is is_staff
    assert user.has_perm("orders.view_order") is back_office
    assert user.has_perm("territories.add_territorymembership") is (role == "admin")


def test_losing_the_last_staff_role_ends_back_office_access(east: Territory, west: Territory) -> None:
    user = UserFactory.create(username="member")
    membership_grant(user=user, territory=east, role="ops_staff")
    membership_grant(user=user, territory=west, role="admin")

    membership_grant(user=user, territory=east, role="doctor")
    assert _fresh(user).is_staff is True  # still admin in west

    membership_revoke(user=user, territory=west)
    user = _fresh(user)
    assert user.is_staff is False
    assert user.has_perm("orders.view_order") is False


def test_superusers_keep_the_staff_flag_whatever_their_memberships(east: Territory) -> None:
    root = UserFactory.create(username="root", is_superuser=True, is_staff=True)
    membership_grant(user=root, territory=east, role="doctor")
    membership_revoke(user=root, territory=east)
    assert _fresh(root).is_staff is True


def test_a_permission_added_to_a_role_reaches_existing_groups_on_sync(north: Any) -> None:
    # Given an admin group that predates a permission (as after an upgrade)
    group = territory_role_group(territory=north.territory, role="admin")
    remove_perm("territories.override_compliance", group, north.territory)
    assert "override_compliance" not in get_perms(group, north.territory)

    # When the roles are synced (migrate does this after every run)
    checked = role_permissions_sync()

    # Then the admin role holds it again, and a second sync changes nothing
    assert "override_compliance" in get_perms(group, north.territory)
    assert checked == Territory.objects.count() * len(Role)
    assert role_permissions_sync() == checked
