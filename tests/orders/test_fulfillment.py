"""Stock reservation on submission, fulfillment routing, tasks, shipping, delivery, and undoing it all."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core import mail
from django.db.models import Sum
from django.utils import timezone

from catalog import services as stock
from catalog.models import (
    Lot,
    MovementKind,
    Product,
    PurchaseOrder,
    PurchaseOrderStatus,
    ReservationStatus,
    StockMovement,
    StockReservation,
    Vendor,
    Warehouse,
)
from core.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from orders import fulfillment
from orders import services as order_services
from orders.models import FulfillmentTask, Order, OrderEvent, OrderItem, Shift
from orders.routing import ROUTING_RULES, RULES_BY_CODE, FulfillmentUnroutable, expected_path
from tests.conftest import World
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def mask() -> Product:
    """A warehouse product with no stock yet (the world's own product comes with stock)."""
    return ProductFactory.create(sku="MASK-NASAL", hcpcs_code="A7032", price_cents=12500)


@pytest.fixture
def main() -> Warehouse:
    return Warehouse.objects.create(code="main", name="Main warehouse")


@pytest.fixture
def east() -> Warehouse:
    return Warehouse.objects.create(code="east", name="East warehouse")


@pytest.fixture
def vendor() -> Vendor:
    return Vendor.objects.create(code="acme-dme", name="Acme DME", email="orders@acme.example")


def receive(product: Product, warehouse: Warehouse, number: str, quantity: int, days: int | None = 365) -> Lot:
    expires = None if days is None else timezone.localdate() + dt.timedelta(days=days)
    return stock.lot_receive(
        actor=None, product=product, warehouse=warehouse, lot_number=number, quantity=quantity, expiration_date=expires
    )


def place(world: World, *lines: tuple[Product, int], **overrides: Any) -> Order:
    items = [order_services.ItemRequest(sku=product.sku, quantity=quantity) for product, quantity in lines]
    return world.order(items=items, **overrides)


def start(world: World, order: Order) -> Order:
    """Verify the order (an admin overrides an inventory hold, as staff would for a backorder) and start it."""
    if Order.objects.get(pk=order.pk).ai_disposition == "clear":
        order_services.order_verify(order_id=order.pk, actor=world.ops)
    else:
        order_services.order_approve(order_id=order.pk, actor=world.admin, override_reason="Backorder accepted")
    return order_services.order_transition(order_id=order.pk, actor=world.ops, transition="start_fulfillment")


def item(order: Order, product: Product) -> OrderItem:
    return OrderItem.objects.get(order=order, product=product)


def tasks(order: Order) -> list[tuple[str, str, str | None, list[str]]]:
    """(kind, status, warehouse code, SKUs) of the order's tasks, in a stable order."""
    rows = []
    for task in FulfillmentTask.objects.filter(order=order).select_related("warehouse"):
        skus = sorted(task.items.values_list("sku", flat=True))
        rows.append((task.kind, task.status, task.warehouse.code if task.warehouse else None, skus))
    return sorted(rows, key=lambda row: (row[0], row[2] or "", row[3]))


def last_event(order: Order) -> OrderEvent:
    event = OrderEvent.objects.filter(order=order).order_by("-sequence").first()
    assert event is not None
    return event


def state(order: Order) -> dict[str, Any]:
    """Everything fulfillment may change, to show that a refused action changed nothing."""
    return {
        "status": Order.objects.get(pk=order.pk).status,
        "events": OrderEvent.objects.filter(order=order).count(),
        "tasks": sorted(FulfillmentTask.objects.filter(order=order).values_list("kind", "status", "carrier")),
        "reservations": sorted(
            StockReservation.objects.filter(order_id=order.pk).values_list("lot__lot_number", "quantity", "status")
        ),
        "lots": sorted(Lot.objects.values_list("lot_number", "quantity_on_hand", "quantity_reserved")),
        "purchase_orders": sorted(PurchaseOrder.objects.filter(order_id=order.pk).values_list("status", flat=True)),
        "items": sorted(OrderItem.objects.filter(order=order).values_list("sku", "fulfillment_path", "stock_status")),
    }


# --- reservation on submission -------------------------------------------------------------------


def test_submission_reserves_fefo_and_flags_the_line_it_cannot_cover(
    north: World, main: Warehouse, mask: Product
) -> None:
    # Given a mask in two lots (the sooner-expiring one first out) and filters with too little stock
    filters = ProductFactory.create(sku="CPAP-FILTER", price_cents=450, is_perishable=True)
    receive(mask, main, "M-LATE", 5, days=300)
    receive(mask, main, "M-SOON", 1, days=30)
    receive(filters, main, "F-1", 3)

    # When the doctor orders 2 masks and 4 filters
    order = place(north, (mask, 2), (filters, 4))

    # Then the masks are reserved first-expired-first-out and the filter line carries the flag, reserving nothing
    assert sorted(
        StockReservation.objects.filter(order_id=order.pk).values_list("lot__lot_number", "quantity", "status")
    ) == [("M-LATE", 1, "active"), ("M-SOON", 1, "active")]
    assert (item(order, mask).stock_status, item(order, mask).stock_available) == ("reserved", None)
    assert (item(order, filters).stock_status, item(order, filters).stock_available) == ("insufficient_stock", 3)
    assert order.inventory_flags == [{"sku": "CPAP-FILTER", "requested": 4, "available": 3}]
    assert Lot.objects.get(lot_number="F-1").quantity_reserved == 0
    assert OrderEvent.objects.get(order=order, sequence=1).payload == {
        "inventory_flags": [{"sku": "CPAP-FILTER", "requested": 4, "available": 3}]
    }


def test_a_lot_expiring_before_the_requested_delivery_is_not_reserved(
    north: World, main: Warehouse, mask: Product
) -> None:
    receive(mask, main, "M-10", 5, days=10)
    order = place(north, (mask, 1), requested_date=timezone.localdate() + dt.timedelta(days=20))
    assert item(order, mask).stock_status == "insufficient_stock"
    assert order.inventory_flags == [{"sku": mask.sku, "requested": 1, "available": 0}]
    assert not StockReservation.objects.exists()


def test_a_product_that_never_ships_from_the_warehouse_reserves_nothing(north: World, vendor: Vendor) -> None:
    bed = ProductFactory.create(
        sku="HOSP-BED", hcpcs_code="E0260", warehouse_fulfillment=False, dropship_fulfillment=True, vendor=vendor
    )
    order = place(north, (bed, 1))
    assert item(order, bed).stock_status == "not_warehoused"
    assert order.inventory_flags == []


# --- routing -------------------------------------------------------------------------------------


def test_the_rule_order_is_pharmacy_then_warehouse_reserved_then_reserved_now_then_dropship_then_backorder() -> None:
    assert [(rule.code, rule.path) for rule in ROUTING_RULES] == [
        ("pharmacy_prescription", "pharmacy"),
        ("warehouse_reserved", "warehouse"),
        ("warehouse_reserved_now", "warehouse"),
        ("dropship_vendor", "dropship"),
        ("warehouse_backorder", "backorder"),
    ]


def test_routing_each_case_and_the_work_it_creates(
    north: World, main: Warehouse, east: Warehouse, vendor: Vendor, mask: Product
) -> None:
    # Given four products, one per rule
    reserved = mask
    late = ProductFactory.create(sku="TUBING", hcpcs_code="A7037", price_cents=3000)
    dropped = ProductFactory.create(
        sku="CPAP-MACHINE", hcpcs_code="E0601", dropship_fulfillment=True, vendor=vendor, requires_training=True
    )
    waiting = ProductFactory.create(sku="CHINSTRAP", hcpcs_code="A7036", price_cents=1500)
    receive(reserved, main, "M-1", 1)
    receive(reserved, east, "E-1", 1)
    order = place(north, (reserved, 2), (late, 1), (dropped, 1), (waiting, 1))
    receive(late, east, "T-1", 5)  # arrives after submission
    events_before = OrderEvent.objects.filter(order=order).count()

    # When fulfillment starts
    start(north, order)

    # Then each line has its path and rule
    assert sorted(OrderItem.objects.filter(order=order).values_list("sku", "fulfillment_path", "fulfillment_rule")) == [
        ("CHINSTRAP", "backorder", "warehouse_backorder"),
        ("CPAP-MACHINE", "dropship", "dropship_vendor"),
        (reserved.sku, "warehouse", "warehouse_reserved"),
        ("TUBING", "warehouse", "warehouse_reserved_now"),
    ]
    assert item(order, late).stock_status == "reserved"
    # One pick/pack per warehouse holding reserved stock, one for the backorder, the dropship, and training
    assert tasks(order) == [
        ("dropship", "open", None, ["CPAP-MACHINE"]),
        ("patient_training", "open", None, ["CPAP-MACHINE"]),
        ("pick_pack", "open", None, ["CHINSTRAP"]),
        ("pick_pack", "open", "east", sorted([reserved.sku, "TUBING"])),
        ("pick_pack", "open", "main", [reserved.sku]),
    ]
    today = timezone.localdate()
    assert sorted(FulfillmentTask.objects.filter(order=order).values_list("kind", "effort_minutes", "due_date")) == [
        ("dropship", 10, today),
        ("patient_training", 30, today + dt.timedelta(days=3)),
        ("pick_pack", 13, today + dt.timedelta(days=1)),
        ("pick_pack", 13, today + dt.timedelta(days=1)),
        ("pick_pack", 16, today + dt.timedelta(days=1)),
    ]
    # A draft dropship purchase order to the vendor with the line
    purchase_order = PurchaseOrder.objects.get(order_id=order.pk)
    assert (purchase_order.vendor, purchase_order.kind, purchase_order.status) == (vendor, "dropship", "draft")
    assert list(purchase_order.lines.values_list("product__sku", "quantity", "order_line_id")) == [
        ("CPAP-MACHINE", 1, item(order, dropped).pk)
    ]
    assert FulfillmentTask.objects.get(order=order, kind="dropship").purchase_order == purchase_order
    # And the decisions and reasons are on the timeline, right after the status change
    transition, routing = list(OrderEvent.objects.filter(order=order, sequence__gt=events_before).order_by("sequence"))[
        -2:
    ]
    assert (transition.transition, routing.kind, routing.to_status) == (
        "start_fulfillment",
        "fulfillment",
        "in_progress",
    )
    assert routing.payload is not None
    assert sorted((d["sku"], d["path"], d["rule"], d["reason"]) for d in routing.payload["decisions"]) == sorted(
        [
            ("CHINSTRAP", "backorder", "warehouse_backorder", RULES_BY_CODE["warehouse_backorder"].description),
            ("CPAP-MACHINE", "dropship", "dropship_vendor", RULES_BY_CODE["dropship_vendor"].description),
            (reserved.sku, "warehouse", "warehouse_reserved", RULES_BY_CODE["warehouse_reserved"].description),
            ("TUBING", "warehouse", "warehouse_reserved_now", RULES_BY_CODE["warehouse_reserved_now"].description),
        ]
    )
    assert sorted(routing.payload["tasks"]) == ["dropship", "patient_training", "pick_pack", "pick_pack", "pick_pack"]
    assert f"CPAP-MACHINE: {RULES_BY_CODE['dropship_vendor'].description}" in (routing.reason or "")


def test_an_item_no_rule_can_route_keeps_the_order_verified_and_changes_nothing(north: World, vendor: Vendor) -> None:
    # Given a dropship-only product whose vendor stopped trading
    vendor.active = False
    vendor.save()
    bed = ProductFactory.create(
        sku="HOSP-BED", hcpcs_code="E0260", warehouse_fulfillment=False, dropship_fulfillment=True, vendor=vendor
    )
    order = place(north, (bed, 1))
    order_services.order_verify(order_id=order.pk, actor=north.ops)
    before = state(order)

    # When fulfillment is started, then it is refused naming the item, and nothing changed
    with pytest.raises(FulfillmentUnroutable) as refused:
        order_services.order_transition(order_id=order.pk, actor=north.ops, transition="start_fulfillment")
    assert refused.value.code == "FULFILLMENT_UNROUTABLE"
    assert refused.value.details == {
        "items": {"HOSP-BED": ["Not stocked in the warehouse and no active vendor dropships it."]}
    }
    assert state(order) == before
    assert before["status"] == "verified"


def test_the_expected_path_before_submission_follows_the_same_rules(
    north: World, main: Warehouse, mask: Product, vendor: Vendor
) -> None:
    """What the wizard's review shows: enough stock → warehouse; else dropship when the vendor can;
    else a backorder; a product nothing can fulfill has no path."""
    both = ProductFactory.create(sku="BOTH", hcpcs_code="E0260", dropship_fulfillment=True, vendor=vendor)
    dropship_only = ProductFactory.create(
        sku="DROP", hcpcs_code="E0260", warehouse_fulfillment=False, dropship_fulfillment=True, vendor=vendor
    )

    def path(product: Product, quantity: int, available: int) -> str | None:
        rule = expected_path(territory=north.territory, product=product, quantity=quantity, available=available)
        return rule.code if rule else None

    assert path(mask, 2, 2) == "warehouse_reserved"
    assert path(mask, 3, 2) == "warehouse_backorder"
    assert path(both, 3, 2) == "dropship_vendor"
    assert path(dropship_only, 1, 50) == "dropship_vendor"
    vendor.active = False
    vendor.save()
    dropship_only.refresh_from_db()
    assert path(dropship_only, 1, 50) is None


# --- shipping and delivery -----------------------------------------------------------------------


def test_warehouse_and_dropship_ship_the_order_once_both_are_on_their_way(
    north: World, main: Warehouse, vendor: Vendor, django_capture_on_commit_callbacks: Any, mask: Product
) -> None:
    machine = ProductFactory.create(
        sku="CPAP-MACHINE", hcpcs_code="E0601", warehouse_fulfillment=False, dropship_fulfillment=True, vendor=vendor
    )
    receive(mask, main, "M-1", 4)
    order = place(north, (mask, 2), (machine, 1))
    start(north, order)
    pick = FulfillmentTask.objects.get(order=order, kind="pick_pack")
    drop = FulfillmentTask.objects.get(order=order, kind="dropship")

    # The warehouse ships its part: stock leaves the shelf, the order is still being prepared
    fulfillment.pick_pack_ship(task_id=pick.pk, actor=north.distributor, carrier="UPS", tracking_number="1Z999")
    lot = Lot.objects.get(lot_number="M-1")
    assert (lot.quantity_on_hand, lot.quantity_reserved) == (2, 0)
    assert StockReservation.objects.get(order_id=order.pk).status == ReservationStatus.CONSUMED
    assert StockMovement.objects.filter(lot=lot, kind=MovementKind.PICK).values_list(
        "on_hand_delta", "reserved_delta", "order_id"
    ).get() == (-2, -2, order.pk)
    pick = FulfillmentTask.objects.get(pk=pick.pk)
    assert (pick.status, pick.carrier, pick.tracking_number, pick.assignee) == (
        "done",
        "UPS",
        "1Z999",
        north.distributor,
    )
    assert pick.shipped_at is not None
    assert Order.objects.get(pk=order.pk).status == "in_progress"
    assert last_event(order).reason == "Picked and packed 2 units; shipped with UPS."

    # A vendor shipment needs the purchase order sent first
    before = state(order)
    with pytest.raises(Conflict):
        fulfillment.dropship_ship(task_id=drop.pk, actor=north.ops, carrier="FedEx", tracking_number="7712")
    assert state(order) == before

    # The purchase order goes to the vendor (no PHI in it), who acknowledges and ships
    with django_capture_on_commit_callbacks(execute=True):
        fulfillment.dropship_send(task_id=drop.pk, actor=north.ops)
    purchase_order = PurchaseOrder.objects.get(order_id=order.pk)
    assert purchase_order.status == PurchaseOrderStatus.SENT
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["orders@acme.example"], f"Purchase order {purchase_order.number}")
    ]
    assert "1 x CPAP-MACHINE" in mail.outbox[0].body
    for phi in (str(north.patient.first_name), str(north.patient.last_name), order.reference, "G47.33"):
        assert phi not in mail.outbox[0].body
    fulfillment.dropship_acknowledge(task_id=drop.pk, actor=north.ops, vendor_reference="ACME-5521")
    fulfillment.dropship_ship(task_id=drop.pk, actor=north.ops, carrier="FedEx", tracking_number="7712")

    # Then the order has shipped through its transition, with both shipments on the event
    order = Order.objects.get(pk=order.pk)
    assert order.status == "shipped"
    shipped = OrderEvent.objects.get(order=order, transition="ship")
    assert shipped.payload == {
        "shipments": [{"carrier": "UPS", "tracking_number": "1Z999"}, {"carrier": "FedEx", "tracking_number": "7712"}]
    }
    purchase_order.refresh_from_db()
    assert (purchase_order.status, purchase_order.vendor_reference, purchase_order.tracking_number) == (
        "shipped",
        "ACME-5521",
        "7712",
    )

    # And confirming delivery completes it and stamps the shipments
    order_services.order_complete(order_id=order.pk, actor=north.distributor, notes="Signed for")
    assert Order.objects.get(pk=order.pk).status == "completed"
    assert not FulfillmentTask.objects.filter(order=order, delivered_at__isnull=True).exists()


def test_training_does_not_hold_back_shipping(north: World, main: Warehouse) -> None:
    pen = ProductFactory.create(sku="PEN", hcpcs_code="A4253", requires_training=True)
    receive(pen, main, "P-1", 1)
    order = start(north, place(north, (pen, 1)))
    pick = FulfillmentTask.objects.get(order=order, kind="pick_pack")
    training = FulfillmentTask.objects.get(order=order, kind="patient_training")
    fulfillment.pick_pack_ship(task_id=pick.pk, actor=north.ops, carrier="USPS", tracking_number="9400")
    assert Order.objects.get(pk=order.pk).status == "shipped"
    fulfillment.patient_training_done(task_id=training.pk, actor=north.ops, note="Showed the pen by video call")
    training = FulfillmentTask.objects.get(pk=training.pk)
    assert (training.status, training.assignee) == ("done", north.ops)
    assert last_event(order).reason == "Showed the pen by video call"


def test_a_backorder_ships_only_once_stock_arrives(north: World, main: Warehouse, mask: Product) -> None:
    order = start(north, place(north, (mask, 2)))
    pick = FulfillmentTask.objects.get(order=order, kind="pick_pack")
    before = state(order)

    with pytest.raises(fulfillment.StockNotYetAvailable) as refused:
        fulfillment.pick_pack_ship(task_id=pick.pk, actor=north.ops, carrier="UPS", tracking_number="1Z1")
    assert (refused.value.code, refused.value.details) == ("STOCK_NOT_AVAILABLE", {"items": [mask.sku]})
    assert state(order) == before

    receive(mask, main, "M-NEW", 3)
    fulfillment.pick_pack_ship(task_id=pick.pk, actor=north.ops, carrier="UPS", tracking_number="1Z1")
    assert Order.objects.get(pk=order.pk).status == "shipped"
    lot = Lot.objects.get(lot_number="M-NEW")
    assert (lot.quantity_on_hand, lot.quantity_reserved) == (1, 0)


def test_tasks_start_assign_and_refuse_bad_input(north: World, main: Warehouse, mask: Product) -> None:
    receive(mask, main, "M-1", 2)
    order = start(north, place(north, (mask, 1)))
    pick = FulfillmentTask.objects.get(order=order, kind="pick_pack")

    fulfillment.fulfillment_task_start(task_id=pick.pk, actor=north.ops)
    pick = FulfillmentTask.objects.get(pk=pick.pk)
    assert (pick.status, pick.assignee) == ("in_progress", north.ops)
    Shift.objects.create(warehouse=main, person=north.distributor, day=pick.due_date, minutes=240)
    fulfillment.fulfillment_task_assign(task_id=pick.pk, actor=north.ops, assignee=north.distributor)
    assert FulfillmentTask.objects.get(pk=pick.pk).assignee == north.distributor

    before = state(order)
    with pytest.raises(ValidationFailed) as no_tracking:
        fulfillment.pick_pack_ship(task_id=pick.pk, actor=north.ops, carrier="UPS", tracking_number=" ")
    assert no_tracking.value.details == {"tracking_number": ["Required."]}
    with pytest.raises(ValidationFailed):
        fulfillment.fulfillment_task_assign(task_id=pick.pk, actor=north.ops, assignee=north.doctor)
    with pytest.raises(Conflict):
        fulfillment.patient_training_done(task_id=pick.pk, actor=north.ops)
    assert state(order) == before
    assert FulfillmentTask.objects.get(pk=pick.pk).assignee == north.distributor


def test_only_fulfillers_of_the_territory_touch_tasks(
    north: World, south: World, main: Warehouse, mask: Product
) -> None:
    receive(mask, main, "M-1", 2)
    order = start(north, place(north, (mask, 1)))
    pick = FulfillmentTask.objects.get(order=order, kind="pick_pack")
    before = state(order)

    with pytest.raises(PermissionDenied):
        fulfillment.pick_pack_ship(task_id=pick.pk, actor=north.doctor, carrier="UPS", tracking_number="1Z")
    with pytest.raises(NotFound, match=r"^No such fulfillment task\.$"):
        fulfillment.pick_pack_ship(task_id=pick.pk, actor=south.ops, carrier="UPS", tracking_number="1Z")
    with pytest.raises(Exception, match="No such fulfillment task"):
        fulfillment.fulfillment_task_start(task_id="not-a-uuid", actor=north.ops)
    assert state(order) == before


# --- undoing -------------------------------------------------------------------------------------


def test_cancel_releases_stock_cancels_tasks_and_the_dropship(
    north: World, main: Warehouse, vendor: Vendor, mask: Product
) -> None:
    machine = ProductFactory.create(
        sku="CPAP-MACHINE", hcpcs_code="E0601", warehouse_fulfillment=False, dropship_fulfillment=True, vendor=vendor
    )
    receive(mask, main, "M-1", 3)
    order = start(north, place(north, (mask, 2), (machine, 1)))
    fulfillment.dropship_send(task_id=FulfillmentTask.objects.get(order=order, kind="dropship").pk, actor=north.ops)

    order_services.order_cancel(order_id=order.pk, actor=north.ops, reason="Patient declined")

    lot = Lot.objects.get(lot_number="M-1")
    assert (lot.quantity_on_hand, lot.quantity_reserved) == (3, 0)
    assert StockReservation.objects.get(order_id=order.pk).status == ReservationStatus.RELEASED
    assert list(StockMovement.objects.filter(lot=lot).order_by("created_at").values_list("kind", "reserved_delta")) == [
        ("receipt", 0),
        ("reservation", 2),
        ("release", -2),
    ]
    assert tasks(order) == [
        ("dropship", "cancelled", None, ["CPAP-MACHINE"]),
        ("pick_pack", "cancelled", "main", [mask.sku]),
    ]
    purchase_order = PurchaseOrder.objects.get(order_id=order.pk)
    assert purchase_order.status == "cancelled"
    assert last_event(order).reason == (
        f"Fulfillment stopped: released 2 reserved units; cancelled 2 fulfillment tasks; "
        f"cancelled purchase orders {purchase_order.number}."
    )


def test_cancel_and_reject_before_fulfillment_release_the_reservation(
    north: World, main: Warehouse, mask: Product
) -> None:
    receive(mask, main, "M-1", 5)
    cancelled = place(north, (mask, 2))
    rejected = place(north, (mask, 3))
    assert Lot.objects.get(lot_number="M-1").quantity_reserved == 5

    order_services.order_cancel(order_id=cancelled.pk, actor=north.doctor, reason="Duplicate")
    order_services.order_transition(order_id=rejected.pk, actor=north.ops, transition="reject", reason="No coverage")

    assert Lot.objects.aggregate(reserved=Sum("quantity_reserved"))["reserved"] == 0
    assert last_event(cancelled).reason == "Fulfillment stopped: released 2 reserved units."
    assert last_event(rejected).reason == "Fulfillment stopped: released 3 reserved units."
    # A new order can now have the units
    assert place(north, (mask, 5)).inventory_flags == []
