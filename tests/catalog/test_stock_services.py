"""Stock services: FEFO reservations, releases, picks, adjustments and the ledger."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum

from catalog import services
from catalog.models import Lot, MovementKind, Product, ReservationStatus, StockMovement, StockReservation, Warehouse
from catalog.selectors import available_quantity
from core.exceptions import ValidationFailed
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 11, 23)


@pytest.fixture
def warehouse() -> Warehouse:
    return Warehouse.objects.create(code="main", name="Main warehouse")


@pytest.fixture
def strips() -> Product:
    return ProductFactory.create(sku="STRIPS-50", hcpcs_code="A4253", is_perishable=True)


def receive(product: Product, warehouse: Warehouse, number: str, quantity: int, expires: dt.date | None) -> Lot:
    return services.lot_receive(
        actor=None, product=product, warehouse=warehouse, lot_number=number, quantity=quantity, expiration_date=expires
    )


def line(product: Product, quantity: int) -> services.ReservationLine:
    return services.ReservationLine(order_line_id=uuid.uuid4(), product_id=product.pk, quantity=quantity)


def counters(*lots: Lot) -> list[tuple[str, int, int]]:
    return [
        (lot.lot_number, fresh.quantity_on_hand, fresh.quantity_reserved)
        for lot in lots
        for fresh in [Lot.objects.get(pk=lot.pk)]
    ]


def assert_ledger_explains_counters() -> None:
    for lot in Lot.objects.all():
        sums = lot.movements.aggregate(on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta"))
        assert (sums["on_hand"] or 0, sums["reserved"] or 0) == (lot.quantity_on_hand, lot.quantity_reserved)


def test_reservation_takes_the_first_expiring_lot_first_and_never_an_expired_one(
    strips: Product, warehouse: Warehouse
) -> None:
    expired = receive(strips, warehouse, "EXPIRED", 50, TODAY - dt.timedelta(days=1))
    later = receive(strips, warehouse, "LATER", 10, TODAY + dt.timedelta(days=200))
    sooner = receive(strips, warehouse, "SOONER", 4, TODAY + dt.timedelta(days=30))
    order_id = uuid.uuid4()

    shortfalls = services.stock_reserve(order_id=order_id, lines=[line(strips, 6)], today=TODAY)

    assert shortfalls == []
    assert counters(expired, sooner, later) == [("EXPIRED", 50, 0), ("SOONER", 4, 4), ("LATER", 10, 2)]
    assert sorted(StockReservation.objects.filter(order_id=order_id).values_list("lot__lot_number", "quantity")) == [
        ("LATER", 2),
        ("SOONER", 4),
    ]
    assert available_quantity(product=strips, today=TODAY) == 8
    assert_ledger_explains_counters()


def test_a_lot_expiring_before_the_requested_delivery_is_skipped(strips: Product, warehouse: Warehouse) -> None:
    soon = receive(strips, warehouse, "SOON", 10, TODAY + dt.timedelta(days=5))
    late = receive(strips, warehouse, "LATE", 10, TODAY + dt.timedelta(days=90))

    shortfalls = services.stock_reserve(
        order_id=uuid.uuid4(), lines=[line(strips, 3)], needed_by=TODAY + dt.timedelta(days=10), today=TODAY
    )

    assert shortfalls == []
    assert counters(soon, late) == [("SOON", 10, 0), ("LATE", 10, 3)]


def test_a_line_that_cannot_be_covered_reserves_nothing_and_is_reported(strips: Product, warehouse: Warehouse) -> None:
    lot = receive(strips, warehouse, "ONLY", 5, TODAY + dt.timedelta(days=60))
    receive(strips, warehouse, "DEAD", 100, TODAY - dt.timedelta(days=2))
    other = ProductFactory.create(sku="LANCETS-100", hcpcs_code="A4259")
    covered, short = line(other, 1), line(strips, 6)
    receive(other, warehouse, "L1", 1, None)

    shortfalls = services.stock_reserve(order_id=uuid.uuid4(), lines=[covered, short], today=TODAY)

    assert shortfalls == [services.Shortfall(short.order_line_id, strips.pk, requested=6, available=5)]
    assert counters(lot) == [("ONLY", 5, 0)]
    assert StockReservation.objects.filter(order_line_id=covered.order_line_id).count() == 1
    assert available_quantity(product=other, today=TODAY) == 0


def test_release_gives_the_units_back_once(strips: Product, warehouse: Warehouse) -> None:
    lot = receive(strips, warehouse, "A", 10, TODAY + dt.timedelta(days=60))
    order_id = uuid.uuid4()
    services.stock_reserve(order_id=order_id, lines=[line(strips, 7)], today=TODAY)

    assert services.stock_release(order_id=order_id) == 7
    assert services.stock_release(order_id=order_id) == 0

    assert counters(lot) == [("A", 10, 0)]
    assert list(StockReservation.objects.values_list("status", flat=True)) == [ReservationStatus.RELEASED]
    assert list(lot.movements.order_by("created_at").values_list("kind", flat=True)) == [
        MovementKind.RECEIPT,
        MovementKind.RESERVATION,
        MovementKind.RELEASE,
    ]
    assert_ledger_explains_counters()


def test_pick_consumes_the_reservation_and_the_stock(strips: Product, warehouse: Warehouse) -> None:
    lot = receive(strips, warehouse, "A", 10, TODAY + dt.timedelta(days=60))
    order_id = uuid.uuid4()
    services.stock_reserve(order_id=order_id, lines=[line(strips, 4)], today=TODAY)

    assert services.stock_pick(order_id=order_id) == 4
    assert services.stock_release(order_id=order_id) == 0

    assert counters(lot) == [("A", 6, 0)]
    assert list(StockReservation.objects.values_list("status", flat=True)) == [ReservationStatus.CONSUMED]
    assert_ledger_explains_counters()


def test_an_adjustment_needs_a_reason_and_cannot_cut_into_reservations(strips: Product, warehouse: Warehouse) -> None:
    lot = receive(strips, warehouse, "A", 10, TODAY + dt.timedelta(days=60))
    services.stock_reserve(order_id=uuid.uuid4(), lines=[line(strips, 8)], today=TODAY)
    movements = StockMovement.objects.count()

    with pytest.raises(ValidationFailed) as no_reason:
        services.lot_adjust(actor=None, lot_id=lot.pk, delta=-1, reason=" ")
    with pytest.raises(ValidationFailed) as too_much:
        services.lot_adjust(actor=None, lot_id=lot.pk, delta=-3, reason="Damaged box")

    assert no_reason.value.details == {"reason": ["Say why the stock is adjusted."]}
    assert too_much.value.details == {"quantity": ["Stock cannot go below what is on hand or reserved."]}
    assert counters(lot) == [("A", 10, 8)]
    assert StockMovement.objects.count() == movements

    services.lot_adjust(actor=None, lot_id=lot.pk, delta=-2, reason="Damaged box")
    assert counters(lot) == [("A", 8, 8)]
    assert_ledger_explains_counters()


def test_a_perishable_receipt_needs_an_expiration_date(strips: Product, warehouse: Warehouse) -> None:
    with pytest.raises(ValidationFailed) as raised:
        receive(strips, warehouse, "A", 10, None)
    assert raised.value.details == {"expiration_date": ["A perishable product's lot needs an expiration date."]}
    assert Lot.objects.count() == 0


def test_movements_are_append_only(strips: Product, warehouse: Warehouse) -> None:
    receive(strips, warehouse, "A", 10, TODAY + dt.timedelta(days=60))
    movement = StockMovement.objects.get()
    with pytest.raises(TypeError, match="StockMovement rows are append-only"):
        movement.save()
    with pytest.raises(TypeError, match="StockMovement rows are append-only"):
        movement.delete()
    assert StockMovement.objects.get().on_hand_delta == 10


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_orders_racing_for_the_last_units_never_both_get_them(strips: Product, warehouse: Warehouse) -> None:
    for attempt in range(3):
        product = ProductFactory.create(sku=f"LAST-{attempt}", is_perishable=False)
        lot = receive(product, warehouse, "LAST", 5, None)
        barrier = threading.Barrier(2)
        results: dict[int, Any] = {}

        def reserve(
            slot: int,
            product: Product = product,
            barrier: threading.Barrier = barrier,
            results: dict[int, Any] = results,
        ) -> None:
            try:
                barrier.wait(timeout=5)
                results[slot] = services.stock_reserve(order_id=uuid.uuid4(), lines=[line(product, 5)], today=TODAY)
            finally:
                connection.close()

        threads = [threading.Thread(target=reserve, args=(slot,)) for slot in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)

        assert sorted(len(shortfalls) for shortfalls in results.values()) == [0, 1]
        assert counters(lot) == [("LAST", 5, 5)]
        assert StockReservation.objects.filter(lot=lot).count() == 1
    assert_ledger_explains_counters()


def test_an_expired_lot_is_written_off_except_what_is_reserved(strips: Product, warehouse: Warehouse) -> None:
    # Given a lot with 2 of its 5 units reserved (before it expired), now past its date
    lot = receive(strips, warehouse, "OLD", 5, TODAY + dt.timedelta(days=5))
    assert services.stock_reserve(order_id=uuid.uuid4(), lines=[line(strips, 2)], today=TODAY) == []
    later = TODAY + dt.timedelta(days=6)

    # When it is written off, twice
    first = services.lot_write_off_expired(actor=None, lot_id=lot.pk, today=later)
    second = services.lot_write_off_expired(actor=None, lot_id=lot.pk, today=later)

    # Then the 3 unreserved units leave the books once, with a ledger row
    assert (first, second) == (3, 0)
    assert counters(lot) == [("OLD", 2, 2)]
    assert list(
        StockMovement.objects.filter(lot=lot, kind=MovementKind.EXPIRY_WRITE_OFF).values_list(
            "on_hand_delta", "reserved_delta", "reason"
        )
    ) == [(-3, 0, f"expired {TODAY + dt.timedelta(days=5)}")]
    assert_ledger_explains_counters()


def test_a_lot_that_has_not_expired_is_not_written_off(strips: Product, warehouse: Warehouse) -> None:
    lot = receive(strips, warehouse, "FRESH", 5, TODAY)
    with pytest.raises(ValidationFailed) as refused:
        services.lot_write_off_expired(actor=None, lot_id=lot.pk, today=TODAY)
    assert refused.value.details == {"expiration_date": ["Only an expired lot is written off."]}
    assert counters(lot) == [("FRESH", 5, 0)]
    assert not StockMovement.objects.filter(kind=MovementKind.EXPIRY_WRITE_OFF).exists()
