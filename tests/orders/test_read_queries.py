"""Every read (API lists and details, portal pages, admin changelists) asks the database the same
number of questions with 3 orders as with 30.

The orders are a clinic's mix, made through the services: clear ones, held ones (placed unsigned
by staff), and ones in fulfillment. Each page is read once to warm per-process caches (content
types, permissions), measured, then 27 more orders are placed and it is measured again: both
counts must equal the page's budget below. A new query on one of these pages has to be a
deliberate change of its budget; a query per row would break the equality.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from core.keyset import Cursor
from orders import services
from orders.models import Order, OrderStatus
from tests.admin.conftest import signed_in
from tests.conftest import World

# Budgets: queries per request (authentication and session included) for each read.
API_BUDGETS = {
    "territory list": 6,  # token user, territory, membership, bounded count, page, items
    "territory list, deep page": 6,
    "territory list by status": 6,
    "order detail": 4,  # token user, order, items, access record (permissions: the cached access map)
    "timeline": 5,
    "fulfillment tasks": 5,
    "FHIR request": 7,
    "patients": 4,  # token user, bounded count, page, access record
    "providers": 3,
    "review queue": 6,  # token user, bounded count, page keys, page, items, latest results
}
PORTAL_BUDGETS = {
    # session and user (the session is not written: activity is recorded at most once a minute,
    # accounts.middleware); territories and permissions from the user's cached access map
    # (territories.access), no query; provider; the three tab counts; the tab's page (keys, rows);
    # the holds (keys, rows, latest results, documents); one access record
    "home of a doctor": 13,
    "home of a doctor, Preparing tab": 13,
    "home of a doctor, deeper page": 13,
    "home of staff": 13,
    # the order page: its parts and, since the engagement agent, the patient's message log (one query)
    "order page": 15,
    "order page of a held order, staff": 15,
    "order status (polled)": 9,
    "patients": 7,  # the recent patients: the provider, then one query for their orders
    "patient card": 10,
    "review queue": 11,
    "new order": 3,
}
ADMIN_BUDGETS = {
    "orders changelist": 8,
    "patients changelist": 9,
}


def _place(world: World, count: int) -> None:
    """``count`` orders, each for a patient of its own: clear, held and in fulfillment in turn."""
    for index in range(count):
        patient_id = world.other_patient().pk
        if index % 3 == 0:
            world.order(patient_id=patient_id)  # signed by the doctor: clear
        elif index % 3 == 1:
            world.order(actor=world.ops, patient_id=patient_id)  # unsigned: held
        else:
            order = world.order(patient_id=patient_id)
            services.order_verify(order_id=order.pk, actor=world.ops)
            services.order_transition(order_id=order.pk, actor=world.ops, transition="start_fulfillment")


def _queries(client: Any, url: str, query: dict[str, Any]) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, query)
    assert response.status_code == 200, (url, response.status_code)
    return len(captured.captured_queries)


Reads = dict[str, tuple[Any, str, dict[str, Any]]]


def _counts_with_3_and_30_orders(world: World, reads: Callable[[], Reads]) -> tuple[dict[str, int], dict[str, int]]:
    """The queries of each read with 3 orders, then with 30 (``reads`` names them once the orders exist)."""
    _place(world, 3)
    few = {}
    for name, (client, url, query) in reads().items():
        _queries(client, url, query)  # warm-up
        few[name] = _queries(client, url, query)
    _place(world, 27)
    assert Order.objects.filter(territory=world.territory).count() == 30
    many = {name: _queries(client, url, query) for name, (client, url, query) in reads().items()}
    return few, many


def _second_newest_cursor(world: World) -> str:
    """A cursor past the newest order: a page that is not the first, at any number of orders."""
    second = Order.objects.filter(territory=world.territory).order_by("-created_at", "-id")[1]
    return Cursor(position=(second.created_at.isoformat(), str(second.pk))).encode()


def test_api_reads_stay_flat(north: World, south: World, api: Any) -> None:
    doctor, ops = api(north.doctor), api(north.ops)

    def reads() -> Reads:
        order = Order.objects.filter(territory=north.territory).order_by("created_at").first()
        preparing = Order.objects.filter(territory=north.territory, status=OrderStatus.IN_PROGRESS).first()
        assert order is not None
        assert preparing is not None
        deep = {"page_size": 2, "cursor": _second_newest_cursor(north)}
        return {
            "territory list": (ops, "/api/v1/orders/territory/north", {}),
            "territory list, deep page": (ops, "/api/v1/orders/territory/north", deep),
            "territory list by status": (ops, "/api/v1/orders/territory/north", {"status": "on_hold"}),
            "order detail": (doctor, f"/api/v1/orders/{order.pk}", {}),
            "timeline": (ops, f"/api/orders/{order.pk}/timeline", {}),
            "fulfillment tasks": (ops, f"/api/v1/orders/{preparing.pk}/fulfillment", {}),
            "FHIR request": (doctor, f"/api/v1/orders/{order.pk}/fhir", {}),
            "patients": (doctor, "/api/v1/patients", {}),
            "providers": (doctor, "/api/v1/providers", {}),
            "review queue": (ops, "/api/portal/orders", {}),
        }

    few, many = _counts_with_3_and_30_orders(north, reads)

    assert few == many == API_BUDGETS


def test_portal_pages_stay_flat(north: World, south: World) -> None:
    doctor, ops = signed_in(north.doctor), signed_in(north.ops)

    def reads() -> Reads:
        order = Order.objects.filter(territory=north.territory).order_by("created_at").first()
        held = Order.objects.filter(territory=north.territory, status=OrderStatus.ON_HOLD).first()
        assert order is not None
        assert held is not None
        return {
            "home of a doctor": (doctor, "/portal/", {}),
            "home of a doctor, Preparing tab": (doctor, "/portal/", {"tab": "preparing"}),
            "home of a doctor, deeper page": (doctor, "/portal/", {"cursor": _second_newest_cursor(north)}),
            "home of staff": (ops, "/portal/", {}),
            "order page": (doctor, f"/portal/orders/{order.pk}/", {}),
            "order page of a held order, staff": (ops, f"/portal/orders/{held.pk}/", {}),
            "order status (polled)": (doctor, f"/portal/orders/{order.pk}/status", {}),
            "patients": (doctor, "/portal/patients/", {}),
            "patient card": (doctor, f"/portal/patients/{north.patient.pk}/", {}),
            "review queue": (ops, "/portal/review/", {}),
            "new order": (doctor, "/portal/orders/new", {}),
        }

    few, many = _counts_with_3_and_30_orders(north, reads)

    assert few == many == PORTAL_BUDGETS


@pytest.fixture
def superuser_client(db: Any) -> Client:
    return signed_in(User.objects.create_superuser(username="root", email="root@example.org", password="pw-test-1"))


def test_admin_changelists_stay_flat(north: World, south: World, superuser_client: Client) -> None:
    def reads() -> Reads:
        return {
            "orders changelist": (superuser_client, "/admin/orders/order/", {}),
            "patients changelist": (superuser_client, "/admin/patients/patient/", {}),
        }

    few, many = _counts_with_3_and_30_orders(north, reads)

    assert few == many == ADMIN_BUDGETS
