"""Bearer tokens end when their user's password, roles or territories change (issue 15, item 14).

A token is checked on every request against the user's current fingerprint (password hash and
``token_version``); each test proves the old token is refused in the envelope and a new one works.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.authentication import REVOKED_MESSAGE
from accounts.models import User
from territories.models import TerritoryMembership
from territories.services import membership_grant, membership_revoke
from tests.api import assert_error, member_of

PROVIDERS = "/api/v1/providers"


def assert_revoked(client: APIClient) -> None:
    response = client.get(PROVIDERS)
    assert_error(response, 401, "AUTHENTICATION_FAILED", REVOKED_MESSAGE)
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def provider_ids(client: APIClient) -> list[str]:
    response = client.get(PROVIDERS)
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def admin_client(superuser: User) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def make_superuser() -> User:
    return User.objects.create_superuser(username="root", email="root@example.org", password="test-password")


def test_a_password_change_ends_the_users_tokens(north: Any, api: Any) -> None:
    client = api(north.doctor)
    assert provider_ids(client) == [str(north.provider.pk)]

    north.doctor.set_password("test-password")  # even the same password, hashed anew with a new salt
    north.doctor.save()

    assert_revoked(client)
    assert provider_ids(api(north.doctor)) == [str(north.provider.pk)]


def test_a_password_changed_in_the_admin_ends_the_users_tokens(north: Any, api: Any) -> None:
    client = api(north.doctor)
    assert provider_ids(client) == [str(north.provider.pk)]

    response = admin_client(make_superuser()).post(
        f"/admin/accounts/user/{north.doctor.pk}/password/",
        {"password1": "another-password-1", "password2": "another-password-1", "usable_password": "true"},
    )

    assert response.status_code == 302, response.content
    assert_revoked(client)
    fresh = APIClient().post(
        "/api/v1/auth/token", {"username": "dr.north", "password": "another-password-1"}, format="json"
    )
    assert fresh.status_code == 200
    assert provider_ids(_bearer(fresh.json()["token"])) == [str(north.provider.pk)]


def test_a_role_change_ends_the_users_tokens(north: Any, api: Any) -> None:
    client = api(north.doctor)
    assert provider_ids(client) == [str(north.provider.pk)]

    membership_grant(user=north.doctor, territory=north.territory, role="master_distributor")

    assert_revoked(client)
    assert provider_ids(api(north.doctor)) == [str(north.provider.pk)]


def test_removing_the_users_only_role_ends_their_tokens(north: Any, api: Any) -> None:
    client = api(north.ops)
    assert provider_ids(client) == [str(north.provider.pk)]

    membership_revoke(user=north.ops, territory=north.territory)

    assert_revoked(client)
    assert provider_ids(api(north.ops)) == []


def test_removing_a_territory_membership_ends_the_users_tokens(north: Any, south: Any, api: Any) -> None:
    user = member_of(north, south)
    client = api(user)
    assert sorted(provider_ids(client)) == sorted([str(north.provider.pk), str(south.provider.pk)])

    membership_revoke(user=user, territory=south.territory)

    assert_revoked(client)
    assert provider_ids(api(user)) == [str(north.provider.pk)]


def test_a_membership_deleted_in_the_admin_ends_the_users_tokens(north: Any, south: Any, api: Any) -> None:
    user = member_of(north, south)
    client = api(user)
    membership = TerritoryMembership.objects.get(user=user, territory=south.territory)

    response = admin_client(make_superuser()).post(
        f"/admin/territories/territorymembership/{membership.pk}/delete/", {"post": "yes"}
    )

    assert response.status_code == 302, response.content
    assert not TerritoryMembership.objects.filter(pk=membership.pk).exists()
    assert_revoked(client)
    assert provider_ids(api(user)) == [str(north.provider.pk)]


def test_groups_changed_in_the_user_admin_end_the_users_tokens(north: Any, api: Any) -> None:
    client = api(north.doctor)
    doctor = north.doctor
    extra = Group.objects.create(name="extra")
    form = {
        "username": doctor.username,
        "first_name": doctor.first_name,
        "last_name": doctor.last_name,
        "email": doctor.email,
        "is_active": "on",
        "groups": [str(pk) for pk in doctor.groups.values_list("pk", flat=True)] + [str(extra.pk)],
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": doctor.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": doctor.date_joined.strftime("%H:%M:%S"),
    }

    response = admin_client(make_superuser()).post(f"/admin/accounts/user/{doctor.pk}/change/", form)

    assert response.status_code == 302, response.content
    assert doctor.groups.filter(pk=extra.pk).exists()
    assert_revoked(client)
    assert provider_ids(api(doctor)) == [str(north.provider.pk)]


def test_granting_what_the_user_already_holds_keeps_their_tokens(north: Any, api: Any) -> None:
    """An SSO sign-in repeats the same grants every time: that must not sign the user's API clients out."""
    client = api(north.doctor)

    membership_grant(user=north.doctor, territory=north.territory, role="doctor")

    assert provider_ids(client) == [str(north.provider.pk)]


def test_a_token_without_the_fingerprint_is_refused(north: Any) -> None:
    """A token minted without going through token_issue (no fingerprint claim) cannot be revoked, so it is refused."""
    assert_revoked(_bearer(str(AccessToken.for_user(north.doctor))))


def test_a_token_of_another_user_with_a_copied_fingerprint_is_refused(north: Any, api: Any) -> None:
    token = AccessToken.for_user(north.ops)
    token["fpr"] = north.doctor.token_fingerprint()

    assert_revoked(_bearer(str(token)))


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client
