"""The cached territory map: asked once, then served from the cache, and never stale.

Every request answers its permission checks from the user's territory map (``territories.access``),
read from the Django cache after the user's first request. A change of what the user may do — a
membership revoked, a role changed, a group's permission removed, a territory deactivated — takes
effect on the very next request, with the real cache backends: Redis (as deployed) and local memory.
Requests sign in with a session, so every request loads its user afresh, as in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import remove_perm
from rest_framework.test import APIClient

from accounts.models import User
from orders.models import Order
from territories.access import access_cache_key, territory_access
from territories.models import TerritoryPermission
from territories.selectors import territory_permits
from territories.services import membership_grant, membership_revoke, territory_role_group
from tests.conftest import World

pytestmark = pytest.mark.django_db

# The tables the map is read from: a request served from the cache touches none of them.
MAP_TABLES = ("guardian_", "territories_territorymembership", "auth_group")


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("locmem"),
    ]
)
def real_cache(request: Any, settings: Any) -> Iterator[str]:
    """The default cache as Redis (``REDIS_URL``) or local memory, emptied before and after."""
    if request.param == "redis":
        backend = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": django_settings.REDIS_URL}
    else:
        backend = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "territory-access-tests"}
    settings.CACHES = {"default": backend}
    cache.clear()
    yield request.param
    cache.clear()


def signed_in(user: User) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def fresh(user: User) -> User:
    """The user as the next request loads it."""
    return User.objects.get(pk=user.pk)


def map_queries(client: APIClient, url: str) -> tuple[int, list[str]]:
    """The status of GET ``url`` and the queries it made of the map's tables."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    return response.status_code, [
        query["sql"] for query in captured.captured_queries if any(table in query["sql"] for table in MAP_TABLES)
    ]


def test_the_map_is_read_once_then_served_from_the_cache(north: World, real_cache: str) -> None:
    order = north.order()
    cache.clear()  # creating the order read the doctor's map: start from an empty cache
    client = signed_in(north.doctor)
    url = f"/api/v1/orders/{order.pk}"

    first_status, first_reads = map_queries(client, url)
    second_status, second_reads = map_queries(client, url)

    assert (first_status, second_status) == (200, 200)
    assert len(first_reads) == 2  # the memberships, and the permissions held directly or through groups
    assert second_reads == []
    doctor = fresh(north.doctor)
    assert cache.get(access_cache_key(doctor)) == {
        "permissions": {
            str(north.territory.pk): sorted(
                p.value
                for p in (
                    TerritoryPermission.ACCESS,
                    TerritoryPermission.VIEW_PHI,
                    TerritoryPermission.CREATE_ORDER,
                    TerritoryPermission.CANCEL_ORDER,
                    TerritoryPermission.MANAGE_PATIENTS,
                    TerritoryPermission.SEND_PAYMENT_LINK,
                )
            )
        },
        "roles": {str(north.territory.pk): "doctor"},
    }


def test_a_revoked_membership_takes_effect_on_the_very_next_request(north: World, real_cache: str) -> None:
    # Given the doctor reading an order, their map cached
    order = north.order()
    client = signed_in(north.doctor)
    url = f"/api/v1/orders/{order.pk}"
    assert client.get(url).status_code == 200  # loads the map into the cache
    assert map_queries(client, url) == (200, [])  # and now reads it from there

    # When an admin revokes the membership (the admin's own copy of the user, not the request's)
    membership_revoke(user=fresh(north.doctor), territory=north.territory)

    # Then the next request no longer finds the order, and another territory's check agrees
    assert client.get(url).status_code == 404
    assert client.get(f"/api/v1/orders/territory/{north.territory.code}").status_code == 403
    assert (
        territory_permits(
            user=fresh(north.doctor), permission=TerritoryPermission.ACCESS, territory_id=north.territory.pk
        )
        is False
    )


def test_a_changed_role_takes_effect_on_the_very_next_request(north: World, real_cache: str) -> None:
    # Given ops staff who read an order's PHI and may place orders
    order = north.order()
    client = signed_in(north.ops)
    url = f"/api/v1/orders/{order.pk}"
    assert client.get(url).json()["diagnosis_codes"] == ["G47.33"]

    # When their role there becomes master distributor (no PHI, no ordering)
    membership_grant(user=fresh(north.ops), territory=north.territory, role="master_distributor")

    # Then the next request shows the order without its PHI, and a new order is refused
    after = client.get(url)
    assert after.status_code == 200
    assert after.json()["diagnosis_codes"] is None
    refused = client.post(
        "/api/v1/orders",
        {
            "patient_id": str(north.patient.pk),
            "provider_id": str(north.provider.pk),
            "payer_type": "insurance",
            "items": [{"sku": north.product.sku, "quantity": 1}],
        },
        format="json",
    )
    assert refused.status_code == 403
    assert Order.objects.count() == 1


def test_a_permission_taken_from_a_role_group_takes_effect_on_the_very_next_request(
    north: World, real_cache: str
) -> None:
    # Given a doctor reading an order's PHI
    order = north.order()
    client = signed_in(north.doctor)
    url = f"/api/v1/orders/{order.pk}"
    assert client.get(url).json()["notes"] == "Fixture order note"

    # When someone takes view_phi from the territory's doctor group directly (a shell, the admin)
    remove_perm("territories.view_phi", territory_role_group(territory=north.territory, role="doctor"), north.territory)

    # Then the next request hides the PHI
    assert client.get(url).json()["notes"] is None


def test_a_deactivated_territory_disappears_on_the_very_next_request(north: World, real_cache: str) -> None:
    order = north.order()
    client = signed_in(north.doctor)
    url = f"/api/v1/orders/{order.pk}"
    assert client.get(url).status_code == 200

    north.territory.active = False
    north.territory.save(update_fields=["active"])

    assert client.get(url).status_code == 404


def test_maps_do_not_leak_between_users(north: World, south: World, real_cache: str) -> None:
    # Given one doctor of each territory, their requests interleaved
    north_order, south_order = north.order(), south.order()
    north_client, south_client = signed_in(north.doctor), signed_in(south.doctor)

    statuses = [
        north_client.get(f"/api/v1/orders/{north_order.pk}").status_code,
        south_client.get(f"/api/v1/orders/{north_order.pk}").status_code,
        south_client.get(f"/api/v1/orders/{south_order.pk}").status_code,
        north_client.get(f"/api/v1/orders/{south_order.pk}").status_code,
    ]

    # Then each sees their own territory's order only
    assert statuses == [200, 404, 200, 404]
    assert territory_access(fresh(north.doctor)).territory_ids("access_territory") == {north.territory.pk}
    assert territory_access(fresh(south.doctor)).territory_ids("access_territory") == {south.territory.pk}


def test_a_user_object_keeps_its_map_and_a_fresh_one_reads_the_cache(north: World, real_cache: str) -> None:
    doctor = fresh(north.doctor)
    first = territory_access(doctor)

    with CaptureQueriesContext(connection) as same_object:
        again = territory_access(doctor)
    with CaptureQueriesContext(connection) as fresh_object:
        cached = territory_access(fresh(north.doctor))

    assert again is first
    assert len(same_object.captured_queries) == 0
    assert len(fresh_object.captured_queries) == 1  # the user row itself; the map comes from the cache
    assert cached == first


def test_a_grant_rolled_back_leaves_nothing_readable_behind(north: World, south: World, real_cache: str) -> None:
    # Given a doctor of north only
    doctor = fresh(north.doctor)

    # When south is granted, read (and so cached) inside a transaction that then fails
    seen_inside: list[bool] = []

    def grant_then_fail() -> None:
        with transaction.atomic():
            membership_grant(user=doctor, territory=south.territory, role="doctor")
            seen_inside.append(
                territory_permits(user=doctor, permission=TerritoryPermission.ACCESS, territory_id=south.territory.pk)
            )
            raise RuntimeError("the rest of the change failed")

    with pytest.raises(RuntimeError):
        grant_then_fail()
    assert seen_inside == [True]

    # Then the next request sees the access as it was, not what the failed change cached
    assert (
        territory_permits(
            user=fresh(north.doctor), permission=TerritoryPermission.ACCESS, territory_id=south.territory.pk
        )
        is False
    )
    assert territory_access(fresh(north.doctor)).territory_ids("access_territory") == {north.territory.pk}
