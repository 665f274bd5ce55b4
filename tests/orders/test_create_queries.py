"""Creating an order and checking a draft cost the same number of queries for 1 item as for 10.

The work per extra line is a row in the same statements (bulk writes, one read per kind of fact),
not a round trip per line or per permission check. Counts are exact: a new query on these paths
has to be a deliberate change of the budget below. Before issue 18 a create cost 50 queries for one
item and 95 for ten (45 + 5 per line), a draft check 10 + 1 per line out of stock.

Each client makes one request first: a user's first request loads their territory map into the
cache (``territories.access``) and the process's content-type cache fills; the counts are those of
every later request.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.services import lot_receive
from compliance.models import ComplianceSnapshot
from core.models import AccessRecord, OutboxEvent
from orders.models import Attachment, Order, OrderEvent, OrderItem, StockStatus
from orders.services import DocumentUpload
from tests.conftest import World
from tests.factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db

# One of each PAP allowance (A7030 and A7034 share one), so ten lines of one unit each are clear.
CODES = ("A7030", "A7031", "A7032", "A7033", "A7035", "A7036", "A7037", "A7038", "A7039", "A7046")

# POST /api/v1/orders, signed, in stock, clear. Reads: the token's user, the provider (scoped), the
# patient (locked), the products, the coverage, the stock lots, the payer's rules, the provider's
# credential, the prior authorizations on file, the supply history and open orders. Writes: the order
# and its created history, the lines and theirs, the snapshot, the timeline, the outbox, the access
# record of the response; then the lots are locked and reserved (lock, counters, ledger,
# reservations). Plus the savepoint of the service's transaction inside the test's (2).
CREATE_QUERIES = 24
# The same for an order the checks hold: one more history row (the hold, written by the system).
CREATE_HELD_QUERIES = 25
# POST /api/portal/compliance/check with every line out of stock: the user, the provider, the
# patient, the products, their stock, their expected restock dates, the coverage, the payer's
# rules, the provider's credential, the prior authorizations, the supply history and open orders.
CHECK_QUERIES = 11


def stocked_products(world: World, *, quantity: int) -> list[str]:
    skus = []
    for code in CODES:
        product = ProductFactory.create(sku=f"PAP-{code}-{world.territory.code}", hcpcs_code=code)
        if quantity:
            lot_receive(
                actor=None,
                product=product,
                warehouse=WarehouseFactory.create(),
                lot_number=f"L-{code}",
                quantity=quantity,
            )
        skus.append(product.sku)
    return skus


def body(world: World, skus: list[str], *, sign: bool = True) -> dict[str, Any]:
    return {
        "patient_id": str(world.patient.pk),
        "provider_id": str(world.provider.pk),
        "payer_type": "insurance",
        "diagnosis_codes": ["G47.33"],
        "sign": sign,
        "items": [{"sku": sku, "quantity": 1} for sku in skus],
    }


def create(client: Any, payload: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/api/v1/orders", payload, format="json")
    assert response.status_code == 201, response.content
    return [query["sql"] for query in captured.captured_queries], response.json()


def test_creating_an_order_of_ten_items_costs_the_queries_of_one(north: World, api: Any) -> None:
    skus = stocked_products(north, quantity=50)
    client = api(north.doctor)
    create(client, body(north, skus[:1]))  # the user's first request (see above)
    # Each order for another patient of the provider: the checks would flag a second, identical
    # order for the same patient as a duplicate (and hold it).
    north.patient = north.other_patient()
    one_queries, one = create(client, body(north, skus[:1]))
    north.patient = north.other_patient()
    ten_queries, ten = create(client, body(north, skus))

    assert (one["status"], one["ai_disposition"]) == ("pending_verification", "clear")
    assert (ten["status"], ten["ai_disposition"]) == ("pending_verification", "clear")
    assert [item["stock_status"] for item in ten["items"]] == [StockStatus.RESERVED] * 10
    assert len(one_queries) == len(ten_queries) == CREATE_QUERIES
    # The response is built from the order in hand: nothing is read back after the writes.
    first_write = next(i for i, sql in enumerate(ten_queries) if sql.startswith("INSERT"))
    assert not [sql for sql in ten_queries[first_write:] if re.match(r'SELECT .* FROM "orders_', sql)]


def test_creating_a_held_order_costs_one_more_query_whatever_its_size(north: World, api: Any) -> None:
    skus = stocked_products(north, quantity=50)
    client = api(north.doctor)
    create(client, body(north, skus[:1]))
    north.patient = north.other_patient()
    one_queries, one = create(client, body(north, skus[:1], sign=False))
    north.patient = north.other_patient()
    ten_queries, ten = create(client, body(north, skus, sign=False))

    # Unsigned: the standard written order is missing, so the checks hold it.
    assert (one["status"], ten["status"]) == ("on_hold", "on_hold")
    assert len(one_queries) == len(ten_queries) == CREATE_HELD_QUERIES


def test_the_response_of_a_create_is_the_order_as_stored_and_its_read_is_recorded(north: World, api: Any) -> None:
    skus = stocked_products(north, quantity=50)
    client = api(north.doctor)

    _queries, created = create(client, body(north, skus[:3]))

    # The same body the detail endpoint answers with (read back from the database)
    stored = client.get(f"/api/v1/orders/{created['id']}").json()
    assert created == stored
    # And the create's own PHI read was recorded once, with the order, in its transaction
    order = Order.objects.get(pk=created["id"])
    assert list(
        AccessRecord.objects.filter(object_id=str(order.pk)).order_by("at").values_list("user_id", "channel")
    ) == [(north.doctor.pk, "api"), (north.doctor.pk, "api")]
    assert OrderItem.objects.filter(order=order).count() == 3


def check(client: Any, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/api/portal/compliance/check", payload, format="json")
    assert response.status_code == 200, response.content
    return len(captured.captured_queries), response.json()


def test_checking_a_draft_of_ten_items_out_of_stock_costs_the_queries_of_one(north: World, api: Any) -> None:
    skus = stocked_products(north, quantity=0)
    client = api(north.doctor)
    check(client, body(north, skus[:1]))

    one_queries, one = check(client, {**body(north, skus[:1]), "signed": True})
    ten_queries, ten = check(client, {**body(north, skus), "signed": True})

    assert [f["code"] for f in one["findings"]] == ["INVENTORY_SHORTFALL"]
    assert [f["code"] for f in ten["findings"]] == ["INVENTORY_SHORTFALL"] * 10
    assert one_queries == ten_queries == CHECK_QUERIES


def test_a_held_order_is_recorded_as_created_documented_checked_then_held(north: World) -> None:
    # When the doctor places an unsigned order with a document (written in bulk, in its final state)
    document = DocumentUpload(
        artifact_type="MEDICAL_NECESSITY",
        file=ContentFile(b"%PDF-1.4\n%%EOF\n", name="necessity.pdf"),
        content_type="application/pdf",
    )
    order = north.order(sign=False, documents=[document])

    # Then its timeline, history and outbox tell the same story, step by step, as ever:
    # created, documented and checked while pending, then held by the checks
    assert (order.status, order.ai_disposition) == ("on_hold", "hold")
    events = list(OrderEvent.objects.filter(order=order).order_by("sequence"))
    assert [(e.sequence, e.kind, e.from_status, e.to_status, e.actor_id, e.actor_kind) for e in events] == [
        (1, "created", "", "pending_verification", north.doctor.pk, "staff"),
        (2, "attachment", "pending_verification", "pending_verification", north.doctor.pk, "staff"),
        (3, "compliance", "pending_verification", "pending_verification", None, "ai"),
        (4, "transition", "pending_verification", "on_hold", None, "ai"),
    ]
    assert events[3].transition == "hold"
    assert events[3].reason == "Compliance: SWO_MISSING_SIGNATURE"
    assert events[2].payload["snapshot_id"] == str(ComplianceSnapshot.objects.get(order_id=order.pk).pk)
    assert events[1].payload == {
        "attachment_id": str(Attachment.objects.get(order=order).pk),
        "artifact_type": "MEDICAL_NECESSITY",
    }
    assert list(
        Order.history.filter(id=order.pk)
        .order_by("history_date", "history_id")
        .values_list("history_type", "history_user_id", "status", "ai_disposition")
    ) == [("+", north.doctor.pk, "pending_verification", None), ("~", None, "on_hold", "hold")]
    outbox = OutboxEvent.objects.filter(aggregate_id=str(order.pk)).order_by("topic")
    assert [(e.topic, e.payload["event_id"], e.payload["to_status"]) for e in outbox] == [
        ("order.created", str(events[0].pk), "pending_verification"),
        ("order.held", str(events[3].pk), "on_hold"),
    ]
    assert Order.objects.get(pk=order.pk).reference == order.reference
