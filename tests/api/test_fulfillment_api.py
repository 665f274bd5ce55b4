"""Fulfillment tasks over the API: an order's tasks, start, ship, training done."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.utils import timezone

from catalog.models import Lot, PurchaseOrder, Vendor, Warehouse
from catalog.services import lot_receive
from orders import services as order_services
from orders.fulfillment import dropship_send
from orders.models import FulfillmentTask, Order, OrderEvent
from tests.conftest import World
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def started(world: World, *items: order_services.ItemRequest) -> Order:
    order = world.order(items=list(items)) if items else world.order()
    order_services.order_verify(order_id=order.pk, actor=world.ops)
    return order_services.order_transition(order_id=order.pk, actor=world.ops, transition="start_fulfillment")


@pytest.fixture
def stocked(north: World) -> Lot:
    """A dated lot of the world's product in warehouse "main": FEFO reserves it before the world's undated lot."""
    warehouse = Warehouse.objects.create(code="main", name="Main warehouse")
    return lot_receive(
        actor=None,
        product=north.product,
        warehouse=warehouse,
        lot_number="M-1",
        quantity=5,
        expiration_date=timezone.localdate() + dt.timedelta(days=200),
    )


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["status"] == "error"
    assert response.json()["error"]["code"] == code


def test_an_orders_tasks_read_back_exactly(north: World, api: Any, stocked: Lot) -> None:
    order = started(north)
    task = FulfillmentTask.objects.get(order=order)

    response = api(north.distributor).get(f"/api/v1/orders/{order.pk}/fulfillment")

    assert response.status_code == 200
    assert response.json() == [
        {
            "id": str(task.pk),
            "order_id": str(order.pk),
            "kind": "pick_pack",
            "status": "open",
            "skus": [north.product.sku],
            "due_date": (timezone.localdate() + dt.timedelta(days=1)).isoformat(),
            "effort_minutes": 13,
            "assignee_id": None,
            "warehouse": "main",
            "purchase_order": None,
            "carrier": "",
            "tracking_number": "",
            "shipped_at": None,
            "delivered_at": None,
            "completed_at": None,
        }
    ]


def test_a_distributor_starts_and_ships_and_the_order_follows(north: World, api: Any, stocked: Lot) -> None:
    order = started(north)
    task = FulfillmentTask.objects.get(order=order)
    client = api(north.distributor)

    started_task = client.post(f"/api/v1/fulfillment-tasks/{task.pk}/start")
    assert started_task.status_code == 200
    assert (started_task.json()["status"], started_task.json()["assignee_id"]) == (
        "in_progress",
        str(north.distributor.pk),
    )

    shipped = client.post(
        f"/api/v1/fulfillment-tasks/{task.pk}/ship", {"carrier": "UPS", "tracking_number": "1Z999"}, format="json"
    )

    assert shipped.status_code == 200, shipped.content
    body = shipped.json()
    assert (body["status"], body["carrier"], body["tracking_number"]) == ("done", "UPS", "1Z999")
    assert Order.objects.get(pk=order.pk).status == "shipped"
    assert Lot.objects.get(pk=stocked.pk).quantity_on_hand == 3


def test_a_dropship_is_shipped_by_the_vendor_once_its_purchase_order_is_sent(north: World, api: Any) -> None:
    vendor = Vendor.objects.create(code="acme", name="Acme DME")
    machine = ProductFactory.create(
        sku="CPAP-MACHINE", hcpcs_code="E0601", warehouse_fulfillment=False, dropship_fulfillment=True, vendor=vendor
    )
    order = started(north, order_services.ItemRequest(sku=machine.sku, quantity=1))
    task = FulfillmentTask.objects.get(order=order)
    client = api(north.ops)
    url = f"/api/v1/fulfillment-tasks/{task.pk}/ship"

    assert_error(client.post(url, {"carrier": "FedEx", "tracking_number": "77"}, format="json"), 409, "CONFLICT")
    assert Order.objects.get(pk=order.pk).status == "in_progress"

    dropship_send(task_id=task.pk, actor=north.ops)
    response = client.post(url, {"carrier": "FedEx", "tracking_number": "77"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["purchase_order"] == PurchaseOrder.objects.get(order_id=order.pk).number
    assert Order.objects.get(pk=order.pk).status == "shipped"


def test_training_done_with_a_note(north: World, api: Any) -> None:
    pen = ProductFactory.create(sku="PEN", hcpcs_code="A4253", requires_training=True)
    # In stock, so the order clears its compliance checks (no INVENTORY_SHORTFALL hold).
    lot_receive(
        actor=None,
        product=pen,
        warehouse=Warehouse.objects.create(code="main", name="Main warehouse"),
        lot_number="PEN-1",
        quantity=5,
    )
    order = started(north, order_services.ItemRequest(sku=pen.sku, quantity=1))
    training = FulfillmentTask.objects.get(order=order, kind="patient_training")

    response = api(north.ops).post(
        f"/api/v1/fulfillment-tasks/{training.pk}/done", {"note": "Trained by phone"}, format="json"
    )

    assert (response.status_code, response.json()["status"]) == (200, "done")
    last = OrderEvent.objects.filter(order=order).order_by("-sequence").first()
    assert last is not None
    assert last.reason == "Trained by phone"


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"carrier": "UPS"}, {"tracking_number": ["This field is required."]}),
        ({"carrier": "", "tracking_number": "1Z"}, {"carrier": ["This field may not be blank."]}),
        ({"carrier": "UPS", "tracking_number": ["1Z"]}, {"tracking_number": ["Not a valid string."]}),
    ],
)
def test_bad_shipments_are_refused_and_change_nothing(
    north: World, api: Any, stocked: Lot, body: dict[str, Any], details: dict[str, Any]
) -> None:
    order = started(north)
    task = FulfillmentTask.objects.get(order=order)
    response = api(north.ops).post(f"/api/v1/fulfillment-tasks/{task.pk}/ship", body, format="json")
    assert_error(response, 400, "VALIDATION_ERROR")
    assert response.json()["error"]["details"] == details
    assert FulfillmentTask.objects.get(pk=task.pk).status == "open"
    stocked.refresh_from_db()
    assert (Order.objects.get(pk=order.pk).status, stocked.quantity_on_hand) == ("in_progress", 5)


def test_doctors_other_territories_and_unknown_tasks_are_refused(
    north: World, south: World, api: Any, stocked: Lot
) -> None:
    order = started(north)
    task = FulfillmentTask.objects.get(order=order)
    ship = {"carrier": "UPS", "tracking_number": "1Z"}

    assert_error(
        api(north.doctor).post(f"/api/v1/fulfillment-tasks/{task.pk}/ship", ship, format="json"),
        403,
        "PERMISSION_DENIED",
    )
    assert_error(
        api(south.ops).post(f"/api/v1/fulfillment-tasks/{task.pk}/ship", ship, format="json"),
        404,
        "NOT_FOUND",
    )
    assert_error(api(south.ops).get(f"/api/v1/orders/{order.pk}/fulfillment"), 404, "ORDER_NOT_FOUND")
    assert_error(api(north.ops).post("/api/v1/fulfillment-tasks/nope/start"), 404, "NOT_FOUND")
    assert_error(api(None).get(f"/api/v1/orders/{order.pk}/fulfillment"), 401, "AUTHENTICATION_FAILED")
    assert FulfillmentTask.objects.get(pk=task.pk).status == "open"
    assert Order.objects.get(pk=order.pk).status == "in_progress"


@pytest.mark.parametrize("action", ["start", "ship", "done"])
def test_another_territorys_task_reads_exactly_like_a_task_that_does_not_exist(
    north: World, south: World, api: Any, stocked: Lot, action: str
) -> None:
    """Issue 15, item 16: the answer must not tell a task id of another territory from a random one."""
    order = started(north)
    task = FulfillmentTask.objects.get(order=order)
    body = {"carrier": "UPS", "tracking_number": "1Z", "note": "Trained"}
    client = api(south.ops)

    theirs = client.post(f"/api/v1/fulfillment-tasks/{task.pk}/{action}", body, format="json")
    random = client.post(f"/api/v1/fulfillment-tasks/{uuid.uuid4()}/{action}", body, format="json")

    assert theirs.status_code == 404
    assert theirs.json() == {
        "status": "error",
        "error": {"code": "NOT_FOUND", "message": "No such fulfillment task.", "details": {}},
    }
    assert (theirs.status_code, theirs.content) == (random.status_code, random.content)
    # Every header alike but the date and the request's own id.
    per_request = {"Date", "X-Request-ID"}
    assert {k: v for k, v in theirs.items() if k not in per_request} == {
        k: v for k, v in random.items() if k not in per_request
    }
    assert FulfillmentTask.objects.get(pk=task.pk).status == "open"
    assert Order.objects.get(pk=order.pk).status == "in_progress"
