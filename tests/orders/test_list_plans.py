"""Every list reads a bounded number of orders through an index, however many orders there are.

Thousands of orders are written at once (``bulk_create``), spread over three years, several
territories, providers and statuses as a clinic's history would be, with a few waiting for a
person; PostgreSQL's statistics are refreshed (ANALYZE), then the API's and the portal's lists are
requested. Each SELECT they sent that reads ``orders_order`` is run again under
``EXPLAIN (ANALYZE, FORMAT JSON)``: no node may read the orders table sequentially, and no node may
touch more orders rows than a page or a bounded count needs, although the territory holds far
more. So the cost of a page is the same at ten thousand orders as at a million. (No planner
setting is changed: the plans are the ones the planner chooses.)
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.api.pagination import COUNT_LIMIT
from core.keyset import Cursor
from orders.models import Order, OrderStatus
from orders.selectors import TAB_COUNT_LIMIT
from tests.admin.conftest import signed_in
from tests.conftest import World
from tests.factories import PatientFactory, ProviderFactory, TerritoryFactory, UserFactory

pytestmark = pytest.mark.postgres

HISTORY = 6000  # orders of the north territory
OTHER_TERRITORIES, OTHER_HISTORY = 12, 1500  # and of other territories: north holds a fifth of all orders
# The most orders rows any node of any list query may touch (read or filter out): a bounded count
# reads one more row than its limit.
MOST_ROWS_TOUCHED = COUNT_LIMIT + 1

# A clinic's history: mostly delivered, a few open, a few waiting for a person.
STATUS_MIX: list[tuple[str, str | None, int]] = [
    (OrderStatus.COMPLETED, "clear", 80),
    (OrderStatus.SHIPPED, "clear", 3),
    (OrderStatus.IN_PROGRESS, "clear", 3),
    (OrderStatus.CANCELLED, "hold", 3),
    (OrderStatus.REJECTED, "hold", 2),
    (OrderStatus.PENDING_VERIFICATION, "clear", 3),
    (OrderStatus.PENDING_VERIFICATION, "needs_review", 1),
    (OrderStatus.ON_HOLD, "hold", 2),
    (OrderStatus.VERIFIED, "clear", 1),
    (OrderStatus.AWAITING_PAYMENT, "clear", 1),
    (OrderStatus.IN_PROGRESS, "needs_review", 1),
]


def _history(world: World, *, count: int, seed: int) -> None:
    """``count`` orders in ``world``'s territory (half of them the doctor's), and more in other territories."""
    chance = random.Random(seed)
    others = [ProviderFactory.create(territory=world.territory) for _ in range(3)]
    providers = [world.provider, *others]
    patients = [world.patient, *(PatientFactory.create(provider=p, territory=world.territory) for p in others)]
    creators = [world.doctor, world.ops, None]
    statuses = [(status, disposition) for status, disposition, weight in STATUS_MIX for _ in range(weight)]
    now = timezone.now()

    def order(index: int, territory: Any, provider: Any, patient: Any, creator: Any) -> Order:
        status, disposition = chance.choice(statuses)
        return Order(
            reference=f"Z{seed % 10}{index:05d}",
            territory=territory,
            patient=patient,
            provider=provider,
            created_by=creator,
            status=status,
            ai_disposition=disposition,
            payer_type="insurance",
        )

    rows = []
    for index in range(count):
        which = 0 if index % 2 == 0 else chance.randrange(len(providers))
        rows.append(order(index, world.territory, providers[which], patients[which], chance.choice(creators)))
    elsewhere = [TerritoryFactory.create() for _ in range(OTHER_TERRITORIES)]
    far_providers = [ProviderFactory.create(territory=territory) for territory in elsewhere]
    far_patients = [PatientFactory.create(provider=p, territory=p.territory) for p in far_providers]
    for index in range(len(elsewhere) * OTHER_HISTORY):
        at = index % len(elsewhere)
        rows.append(order(count + index, elsewhere[at], far_providers[at], far_patients[at], None))
    Order.objects.bulk_create(rows, batch_size=2000)
    # Spread over three years (bulk_create stamps them all now), then fresh statistics.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE orders_order SET created_at = %s - (random() * interval '1095 days') WHERE reference LIKE 'Z%%'",
            [now - dt.timedelta(days=1)],
        )
        cursor.execute("ANALYZE orders_order")


def _json(value: Any) -> Any:
    """psycopg hands EXPLAIN's JSON over decoded or as text, depending on the column type it reports."""
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class Scan:
    node: str
    index: str | None
    touched: int  # rows returned plus rows removed by a filter, over all loops


def _scans(plan: dict[str, Any]) -> Iterator[Scan]:
    children = plan.get("Plans", [])
    if plan.get("Relation Name") == "orders_order":
        loops = plan.get("Actual Loops", 1)
        touched = (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
        # a bitmap heap scan reads the rows its bitmap index scans found
        index = plan.get("Index Name") or "+".join(c["Index Name"] for c in children if "Index Name" in c) or None
        yield Scan(node=plan["Node Type"], index=index, touched=touched)
    for child in children:
        yield from _scans(child)


def _order_scans(captured: CaptureQueriesContext) -> list[tuple[str, list[Scan]]]:
    """The scans of ``orders_order`` in the plan of each SELECT captured that reads it."""
    found = []
    for query in captured.captured_queries:
        sql = query["sql"]
        # a union of arms starts with its first arm's "(SELECT"
        if not sql.lstrip("(").startswith("SELECT") or '"orders_order"' not in sql:
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
            (plan,) = _json(cursor.fetchone()[0])
        found.append((sql, list(_scans(plan["Plan"]))))
    return found


def _assert_bounded_index_reads(captured: CaptureQueriesContext, *, label: str) -> int:
    """Every orders scan an index scan touching at most MOST_ROWS_TOUCHED rows; returns the queries checked."""
    checked = _order_scans(captured)
    assert checked, f"{label}: no query read orders_order"
    for sql, scans in checked:
        assert scans, f"{label}: {sql[:200]}"
        for scan in scans:
            assert scan.node in {"Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan"}, (
                f"{label}: {scan} in {sql}"
            )
            assert scan.touched <= MOST_ROWS_TOUCHED, f"{label}: {scan} in {sql[:300]}"
    return len(checked)


def _get(client: Any, url: str, **extra: Any) -> tuple[Any, CaptureQueriesContext]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **extra)
    assert response.status_code == 200, (url, response.content[:300])
    return response, captured


def test_every_list_reads_a_bounded_number_of_orders_through_an_index(north: World, south: World, api: Any) -> None:
    # Given a long history: thousands of orders in north, half of them the doctor's, and more elsewhere
    _history(north, count=HISTORY, seed=1)
    total = Order.objects.filter(territory=north.territory).count()
    assert total == HISTORY
    deep = Order.objects.filter(territory=north.territory).order_by("-created_at", "-id")[HISTORY - 40]
    deep_cursor = Cursor(position=(deep.created_at.isoformat(), str(deep.pk))).encode()
    reviewer = UserFactory.create(username="ops.north.2", territory=north.territory, role="ops_staff")
    doctor, ops = signed_in(north.doctor), signed_in(reviewer)
    client = api(north.ops)

    requests = [
        ("API territory list, first page", client, "/api/v1/orders/territory/north", {}),
        ("API territory list, deep page", client, "/api/v1/orders/territory/north", {"cursor": deep_cursor}),
        ("API territory list by status", client, "/api/v1/orders/territory/north", {"status": "on_hold"}),
        ("API order detail", client, f"/api/v1/orders/{deep.pk}", {}),
        ("API review queue", client, "/api/portal/orders", {}),
        ("portal home, a doctor", doctor, "/portal/", {}),
        ("portal home, Shipped tab of a doctor", doctor, "/portal/", {"tab": "shipped"}),
        ("portal home, Preparing tab of staff", ops, "/portal/", {"tab": "preparing"}),
        ("portal home, Shipped tab of staff", ops, "/portal/", {"tab": "shipped"}),
        ("portal review queue", ops, "/portal/review/", {}),
        ("portal recent patients of a doctor", doctor, "/portal/patients/", {}),
    ]
    checked = 0
    for label, who, url, query in requests:
        # When each list is read
        response, captured = _get(who, url, data=query)
        # Then its orders are read through an index, a bounded number of them
        checked += _assert_bounded_index_reads(captured, label=label)
        if label == "portal home, Shipped tab of a doctor":
            # and a deeper page of a tab costs the same
            older = response.context["older"]
            assert older is not None
            _response, captured = _get(who, f"/portal/{older}")
            checked += _assert_bounded_index_reads(captured, label="portal home, older page")
    assert checked >= len(requests)

    # The counts are bounded too: more than their limits, they say so.
    body = client.get("/api/v1/orders/territory/north").json()
    assert (body["count"], body["count_capped"]) == (COUNT_LIMIT, True)
    shipped_tab = {key: count for key, _label, count in doctor.get("/portal/").context["tabs"]}["shipped"]
    assert str(shipped_tab) == f"{TAB_COUNT_LIMIT}+"
