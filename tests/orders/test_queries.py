"""Hot endpoints: the number of queries stays flat as rows grow.

Each endpoint is called once to warm per-process caches (content types, permissions), then
measured with few rows and again with many; the counts must be equal and within a small budget.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders import services
from tests.conftest import World
from tests.factories import PatientFactory, ProductFactory

# Today's counts (token user, territory scope, page count, page, prefetches, access records); a new
# query on these paths has to be a deliberate change of this budget.
ORDER_LIST_BUDGET = 6
PATIENT_LIST_BUDGET = 4
TIMELINE_BUDGET = 6  # includes the minimum-necessary check for reading PHI
ORDER_DETAIL_BUDGET = 5  # includes the minimum-necessary check for reading PHI


def _queries(client: Any, url: str, *, expected_rows: int) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    body = response.json()
    rows = body["count"] if isinstance(body, dict) else len(body)
    assert rows == expected_rows
    return len(captured.captured_queries)


def _orders_with_two_items(world: World, count: int) -> None:
    second = ProductFactory.create(sku=f"CPAP-TUBE-{world.territory.code.upper()}", price_cents=3000)
    for index in range(count):
        world.order(
            items=[
                services.ItemRequest(sku=world.product.sku, quantity=1 + index % 3),
                services.ItemRequest(sku=second.sku, quantity=1),
            ]
        )


def test_territory_order_list_queries_stay_flat(north: World, api: Any) -> None:
    client = api(north.ops)
    url = f"/api/v1/orders/territory/{north.territory.code}"
    _orders_with_two_items(north, 3)
    _queries(client, url, expected_rows=3)  # warm-up

    few = _queries(client, url, expected_rows=3)
    _orders_with_two_items(north, 12)
    many = _queries(client, url, expected_rows=15)

    assert few == many
    assert many <= ORDER_LIST_BUDGET


def test_patient_list_queries_stay_flat(north: World, api: Any) -> None:
    client = api(north.doctor)
    PatientFactory.create_batch(2, provider=north.provider, territory=north.territory)
    _queries(client, "/api/v1/patients", expected_rows=3)  # warm-up

    few = _queries(client, "/api/v1/patients", expected_rows=3)
    PatientFactory.create_batch(12, provider=north.provider, territory=north.territory)
    many = _queries(client, "/api/v1/patients", expected_rows=15)

    assert few == many
    assert many <= PATIENT_LIST_BUDGET


def test_timeline_queries_stay_flat(north: World, api: Any) -> None:
    # Events by several actors, so that reading each event's actor would show up as extra queries.
    order = north.order()
    actors = [north.doctor, north.ops, north.admin, north.distributor]
    services.order_add_note(order_id=order.pk, actor=north.ops, note="Checked coverage")
    client = api(north.ops)
    url = f"/api/orders/{order.pk}/timeline"
    # Created, the compliance check, the note.
    _queries(client, url, expected_rows=3)  # warm-up

    few = _queries(client, url, expected_rows=3)
    for index in range(8):
        services.order_add_note(order_id=order.pk, actor=actors[index % len(actors)], note=f"Note {index}")
    many = _queries(client, url, expected_rows=11)

    assert few == many
    assert many <= TIMELINE_BUDGET


def _detail_queries(client: Any, order_id: Any, *, expected_items: int) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/api/v1/orders/{order_id}")
    assert response.status_code == 200, response.content
    assert len(response.json()["items"]) == expected_items
    return len(captured.captured_queries)


def test_order_detail_queries_do_not_grow_with_items(north: World, api: Any) -> None:
    products = [ProductFactory.create(sku=f"SUPPLY-{index}", price_cents=100 + index) for index in range(6)]
    small = north.order(items=[services.ItemRequest(sku=products[0].sku, quantity=1)])
    large = north.order(items=[services.ItemRequest(sku=p.sku, quantity=2) for p in products])
    client = api(north.doctor)
    _detail_queries(client, small.pk, expected_items=1)  # warm-up

    few = _detail_queries(client, small.pk, expected_items=1)
    many = _detail_queries(client, large.pk, expected_items=6)

    assert few == many
    assert many <= ORDER_DETAIL_BUDGET
