"""Creating orders concurrently, each racer in its own thread and PostgreSQL connection.

A create locks its stock lots last and in primary-key order, so two orders of the same products
queue for them instead of deadlocking, and never reserve more than a lot holds. When another
order takes stock between a create's first read and its lock, the create runs again with the lots
locked first, so what it reserved and what its checks saw always agree. Two creates drawing the
same reference both succeed: the unique constraint decides, the later one draws again.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import Sum

from catalog.models import Lot, MovementKind, ReservationStatus, StockMovement, StockReservation
from catalog.services import ReservationLine, lot_receive, stock_reserve
from compliance.models import ComplianceSnapshot
from orders.models import EventKind, Order, OrderEvent, OrderItem, StockStatus
from orders.services import ItemRequest
from tests.conftest import World
from tests.factories import ProductFactory, WarehouseFactory

from .test_concurrency import BARRIER_TIMEOUT, _race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _products(count: int, *, units: int) -> list[Any]:
    warehouse = WarehouseFactory.create(code="wh-race")
    products = []
    for index in range(count):
        product = ProductFactory.create(sku=f"RACE-{index:02d}", hcpcs_code="")
        lot_receive(actor=None, product=product, warehouse=warehouse, lot_number=f"RACE-{index:02d}", quantity=units)
        products.append(product)
    return products


@pytest.mark.parametrize("attempt", range(3))
def test_two_ten_item_orders_of_the_same_products_in_opposite_order_neither_deadlock_nor_oversell(
    north: World, attempt: int
) -> None:
    # Given ten products with 15 units each, and two patients each ordering 10 of every one of
    # them, one in the catalog's order and one in reverse (20 wanted, 15 held, per product)
    products = _products(10, units=15)
    first_patient, second_patient = north.patient, north.other_patient()

    def order_for(patient: Any, ordered: list[Any]) -> Any:
        def work() -> Order:
            items = [ItemRequest(sku=product.sku, quantity=10) for product in ordered]
            return north.order(patient_id=patient.pk, items=items)

        return work

    # When both are submitted at the same moment
    results = _race(order_for(first_patient, products), order_for(second_patient, products[::-1]))

    # Then both orders exist (no deadlock, no error)
    assert all(isinstance(result, Order) for result in results), results
    # And each product's 15 units went to exactly one of them: one order reserved all ten lines,
    # the other none, its lines flagged with the 5 units left
    reserved = sorted(
        OrderItem.objects.filter(order=result, stock_status=StockStatus.RESERVED).count() for result in results
    )
    assert reserved == [0, 10]
    short = OrderItem.objects.filter(order__in=results, stock_status=StockStatus.INSUFFICIENT_STOCK)
    assert list(short.values_list("stock_available", flat=True)) == [5] * 10
    # And no lot holds more reservations than units, its counter equal to its reservations
    for lot in Lot.objects.filter(product__in=products):
        active = StockReservation.objects.filter(lot=lot, status=ReservationStatus.ACTIVE).aggregate(
            total=Sum("quantity")
        )["total"]
        assert (lot.quantity_on_hand, lot.quantity_reserved, active) == (15, 10, 10)
    assert StockMovement.objects.filter(kind=MovementKind.RESERVATION).count() == 10
    # And each order was written once (an attempt that lost the race left nothing behind)
    for result in results:
        assert OrderEvent.objects.filter(order=result, kind=EventKind.CREATED).count() == 1
        assert ComplianceSnapshot.objects.filter(order_id=result.pk).count() == 1
    assert Order.objects.count() == 2


def _wait_for_a_lock_wait(timeout: float = BARRIER_TIMEOUT) -> bool:
    """Whether another connection of this database is waiting for a row lock (within ``timeout``)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.02)
    return False


def test_stock_taken_between_the_read_and_the_lock_is_seen_by_the_checks(north: World) -> None:
    # Given a lot of 10 units, held locked by another transaction
    (product,) = _products(1, units=10)
    lot = Lot.objects.get(product=product)
    holding, waited = threading.Event(), threading.Event()

    def other_transaction() -> None:
        try:
            with transaction.atomic():
                Lot.objects.select_for_update().get(pk=lot.pk)
                holding.set()
                # Once the create, having read 10 units free, waits for this lock, take 8 of them
                if _wait_for_a_lock_wait():
                    waited.set()
                stock_reserve(order_id=uuid.uuid4(), lines=[ReservationLine(uuid.uuid4(), product.pk, 8)])
        finally:
            connection.close()

    holder = threading.Thread(target=other_transaction)
    holder.start()
    assert holding.wait(BARRIER_TIMEOUT)

    # When an order for 5 is created meanwhile
    order = north.order(items=[ItemRequest(sku=product.sku, quantity=5)])
    holder.join(timeout=30)

    # Then it did wait for the lot, and its line, its checks and its timeline all say 2 were left
    assert waited.is_set()
    line = OrderItem.objects.get(order=order)
    assert (line.stock_status, line.stock_available) == (StockStatus.INSUFFICIENT_STOCK, 2)
    snapshot = ComplianceSnapshot.objects.get(order_id=order.pk)
    assert [(item["stock_short"], item["stock_available"]) for item in snapshot.inputs["items"]] == [(True, 2)]
    assert "INVENTORY_SHORTFALL" in [finding["code"] for finding in snapshot.result["findings"]]
    created = OrderEvent.objects.get(order=order, kind=EventKind.CREATED)
    assert created.payload == {"inventory_flags": [{"sku": product.sku, "requested": 5, "available": 2}]}
    # And nothing was reserved for it: the lot holds the other transaction's 8 only
    lot.refresh_from_db()
    assert (lot.quantity_on_hand, lot.quantity_reserved) == (10, 8)
    assert not StockReservation.objects.filter(order_id=order.pk).exists()


def test_two_creates_drawing_the_same_reference_both_succeed(north: World) -> None:
    # Given two creates whose first draw is the same reference
    patients = [north.patient, north.other_patient()]

    def create(index: int) -> Any:
        def work() -> Order:
            return north.order(patient_id=patients[index].pk, references=iter(["SAME-REF1", f"NEXT-REF{index}"]))

        return work

    # When they run at the same moment
    results = _race(create(0), create(1))

    # Then both orders exist: one holds the reference, the other drew its next one
    assert all(isinstance(result, Order) for result in results), results
    references = sorted(Order.objects.values_list("reference", flat=True))
    assert references in (["NEXT-REF0", "SAME-REF1"], ["NEXT-REF1", "SAME-REF1"])
