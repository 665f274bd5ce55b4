"""Territories and memberships in the back office: changes go through the membership services."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group

from accounts.models import User
from territories.models import Territory, TerritoryMembership
from territories.selectors import territories_for_user

from .conftest import result_ids, signed_in

MEMBERSHIPS = "/admin/territories/territorymembership/"


def new_user(username: str) -> User:
    return User.objects.create_user(username=username, password="test-password")


def test_adding_a_membership_grants_access(north: Any) -> None:
    newcomer = new_user("newcomer")
    assert list(territories_for_user(user=newcomer)) == []

    response = signed_in(north.admin).post(
        f"{MEMBERSHIPS}add/", {"user": str(newcomer.pk), "territory": str(north.territory.pk), "role": "ops_staff"}
    )

    assert response.status_code == 302
    newcomer = User.objects.get(pk=newcomer.pk)
    assert list(territories_for_user(user=newcomer)) == [north.territory]
    assert newcomer.is_staff is True
    assert newcomer.has_perm("orders.view_order") is True
    assert list(TerritoryMembership.objects.filter(user=newcomer).values_list("territory__code", "role")) == [
        ("north", "ops_staff")
    ]


def test_deleting_a_membership_revokes_access(north: Any) -> None:
    membership = TerritoryMembership.objects.get(user=north.ops, territory=north.territory)

    response = signed_in(north.admin).post(f"{MEMBERSHIPS}{membership.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    ops = User.objects.get(pk=north.ops.pk)
    assert list(territories_for_user(user=ops)) == []
    assert ops.has_perm("orders.view_order") is False
    assert not TerritoryMembership.objects.filter(pk=membership.pk).exists()


def test_bulk_delete_action_revokes_each_membership(north: Any) -> None:
    memberships = TerritoryMembership.objects.filter(user__in=[north.ops, north.doctor], territory=north.territory)

    response = signed_in(north.admin).post(
        MEMBERSHIPS,
        {"action": "delete_selected", "_selected_action": [str(m.pk) for m in memberships], "post": "yes"},
    )

    assert response.status_code == 302
    assert list(territories_for_user(user=User.objects.get(pk=north.ops.pk))) == []
    assert list(territories_for_user(user=User.objects.get(pk=north.doctor.pk))) == []
    assert list(territories_for_user(user=User.objects.get(pk=north.admin.pk))) == [north.territory]
    assert list(
        TerritoryMembership.objects.filter(territory=north.territory).values_list("user__username", flat=True)
    ) == [
        "admin.north",
        "md.north",
    ]


def test_changing_a_role_regrants_through_the_service(north: Any) -> None:
    membership = TerritoryMembership.objects.get(user=north.doctor, territory=north.territory)

    response = signed_in(north.admin).post(f"{MEMBERSHIPS}{membership.pk}/change/", {"role": "ops_staff"})

    assert response.status_code == 302
    doctor = User.objects.get(pk=north.doctor.pk)
    assert TerritoryMembership.objects.get(pk=membership.pk).role == "ops_staff"
    assert sorted(doctor.groups.values_list("name", flat=True)) == ["role:ops_staff", "territory:north:ops_staff"]


def test_admin_cannot_grant_access_to_another_territory(north: Any, south: Any) -> None:
    newcomer = new_user("newcomer")

    response = signed_in(north.admin).post(
        f"{MEMBERSHIPS}add/", {"user": str(newcomer.pk), "territory": str(south.territory.pk), "role": "admin"}
    )

    assert response.status_code == 200
    assert "territory" in response.context["adminform"].form.errors
    assert list(territories_for_user(user=newcomer)) == []
    assert not TerritoryMembership.objects.filter(user=newcomer).exists()


def test_membership_list_is_scoped(north: Any, south: Any) -> None:
    response = signed_in(north.admin).get(MEMBERSHIPS)

    assert result_ids(response) == set(
        TerritoryMembership.objects.filter(territory=north.territory).values_list("pk", flat=True)
    )
    assert len(result_ids(response)) == 4


def test_staff_see_their_territories_and_only_superusers_edit_them(north: Any, south: Any, superuser: Any) -> None:
    admin_view = signed_in(north.admin).get("/admin/territories/territory/")
    refused = signed_in(north.admin).post(
        f"/admin/territories/territory/{north.territory.pk}/change/", {"name": "Renamed", "active": "on"}
    )

    assert result_ids(admin_view) == {north.territory.pk}
    assert refused.status_code == 403
    assert Territory.objects.get(pk=north.territory.pk).name == "North"


def test_superuser_creates_a_territory_with_its_role_groups(superuser: Any) -> None:
    response = signed_in(superuser).post("/admin/territories/territory/add/", {"code": "east", "name": "East"})

    assert response.status_code == 302
    east = Territory.objects.get(code="east")
    assert east.name == "East"
    assert sorted(Group.objects.filter(name__startswith="territory:east:").values_list("name", flat=True)) == [
        "territory:east:admin",
        "territory:east:doctor",
        "territory:east:master_distributor",
        "territory:east:ops_staff",
    ]
