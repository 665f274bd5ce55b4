"""The fulfillment work list in the admin: routing rules, task pages and their actions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog.models import Lot, PurchaseOrder, Vendor, Warehouse
from catalog.services import lot_receive
from orders import services as order_services
from orders.models import FulfillmentTask, Order, OrderEvent
from orders.routing import ROUTING_RULES
from tests.admin.conftest import messages_of, result_ids, signed_in
from tests.conftest import World
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def started_order(world: World, *, units: int = 2) -> Order:
    """A verified order of the world's product, in stock, with fulfillment started."""
    warehouse, _ = Warehouse.objects.get_or_create(code="main", defaults={"name": "Main warehouse"})
    lot_receive(
        actor=None,
        product=world.product,
        warehouse=warehouse,
        lot_number=f"L-{world.territory.code}",
        quantity=units,
        expiration_date=timezone.localdate() + dt.timedelta(days=200),
    )
    order = world.order()
    order_services.order_verify(order_id=order.pk, actor=world.ops)
    return order_services.order_transition(order_id=order.pk, actor=world.ops, transition="start_fulfillment")


def act_url(task: FulfillmentTask, action: str) -> str:
    return reverse("admin:orders_fulfillmenttask_act", args=(task.pk, action))


def test_work_list_shows_the_routing_rules_and_only_the_territorys_tasks(north: World, south: World) -> None:
    mine = FulfillmentTask.objects.get(order=started_order(north))
    started_order(south)

    response = signed_in(north.ops).get(reverse("admin:orders_fulfillmenttask_changelist"))

    assert response.status_code == 200
    assert result_ids(response) == {mine.pk}
    page = response.content.decode()
    for rule in ROUTING_RULES:
        assert rule.description in page
    assert page.index(ROUTING_RULES[0].description) < page.index(ROUTING_RULES[-1].description)


def test_ship_from_the_task_page_moves_the_order_to_shipped(north: World) -> None:
    order = started_order(north)
    task = FulfillmentTask.objects.get(order=order)
    client = signed_in(north.ops)

    page = client.get(reverse("admin:orders_fulfillmenttask_change", args=(task.pk,))).content.decode()
    assert act_url(task, "ship") in page
    assert act_url(task, "start") in page
    assert act_url(task, "training_done") not in page

    response = client.post(act_url(task, "ship"), {"carrier": "UPS", "tracking_number": "1Z999AA1"}, follow=True)

    assert response.status_code == 200
    assert messages_of(response) == [f"Picked, packed and shipped: done for order {order}."]
    task = FulfillmentTask.objects.get(pk=task.pk)
    assert (task.status, task.carrier, task.tracking_number, task.assignee) == ("done", "UPS", "1Z999AA1", north.ops)
    assert Order.objects.get(pk=order.pk).status == "shipped"
    # The expiring lot went first (FEFO); the world's undated lot is untouched
    assert Lot.objects.get(lot_number="L-north").quantity_on_hand == 0
    assert Lot.objects.get(lot_number="WORLD-NORTH").quantity_on_hand == 500


def test_a_shipment_without_tracking_is_refused_and_changes_nothing(north: World) -> None:
    order = started_order(north)
    task = FulfillmentTask.objects.get(order=order)
    events = OrderEvent.objects.filter(order=order).count()

    response = signed_in(north.ops).post(act_url(task, "ship"), {"carrier": "UPS", "tracking_number": ""})

    assert response.status_code == 200
    assert response.context["form"].errors == {"tracking_number": ["This field is required."]}
    assert FulfillmentTask.objects.get(pk=task.pk).status == "open"
    assert (Order.objects.get(pk=order.pk).status, OrderEvent.objects.filter(order=order).count()) == (
        "in_progress",
        events,
    )


def test_dropship_task_sends_acknowledges_and_records_the_vendor_shipment(north: World) -> None:
    vendor = Vendor.objects.create(code="acme", name="Acme DME")
    machine = ProductFactory.create(
        sku="CPAP-MACHINE", hcpcs_code="E0601", warehouse_fulfillment=False, dropship_fulfillment=True, vendor=vendor
    )
    order = north.order(items=[order_services.ItemRequest(sku=machine.sku, quantity=1)])
    order_services.order_verify(order_id=order.pk, actor=north.ops)
    order_services.order_transition(order_id=order.pk, actor=north.ops, transition="start_fulfillment")
    task = FulfillmentTask.objects.get(order=order)
    client = signed_in(north.ops)

    assert client.post(act_url(task, "send")).status_code == 302
    assert client.post(act_url(task, "acknowledge"), {"vendor_reference": "AC-77"}).status_code == 302
    response = client.post(act_url(task, "vendor_shipped"), {"carrier": "FedEx", "tracking_number": "7712"})
    assert response.status_code == 302

    purchase_order = PurchaseOrder.objects.get(order_id=order.pk)
    assert (purchase_order.status, purchase_order.vendor_reference) == ("shipped", "AC-77")
    assert Order.objects.get(pk=order.pk).status == "shipped"
    # Sending twice is refused with a message, changing nothing
    response = client.post(act_url(task, "send"), follow=True)
    assert messages_of(response)[-1] == "Send purchase order: The task is done."


def test_another_territorys_task_is_not_found_and_untouched(north: World, south: World) -> None:
    task = FulfillmentTask.objects.get(order=started_order(north))
    client: Any = signed_in(south.ops)
    assert client.get(reverse("admin:orders_fulfillmenttask_change", args=(task.pk,))).status_code == 404
    assert client.post(act_url(task, "ship"), {"carrier": "UPS", "tracking_number": "1Z"}).status_code == 404
    assert FulfillmentTask.objects.get(pk=task.pk).status == "open"
