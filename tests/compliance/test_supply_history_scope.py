"""An order's checks load only the deliveries they can read, however long the patient's history.

Only the usual-maximum and refill checks read past deliveries, only for Medicare FFS insurance
orders, and only those of the ordered codes and the codes sharing a usual maximum with them
(``compliance.engine.supply_history_codes``). Deliveries of any other supply are not loaded, and the
result is exactly what the whole history gives.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from catalog.services import lot_receive
from compliance.engine import evaluate, supply_history_codes, usual_maximums
from compliance.inputs import Delivery
from compliance.models import ComplianceSnapshot
from compliance.rulebook import load_rule_sets
from orders.compliance_checks import facts_for_order, patient_supply_facts
from orders.models import Order, OrderStatus
from orders.services import ItemRequest
from tests.compliance.builders import D, ffs_order, line
from tests.conftest import World
from tests.factories import OrderFactory, OrderItemFactory, ProductFactory, WarehouseFactory


def delivered(world: World, product: Any, *, quantity: int, days_ago: int) -> None:
    """A completed (delivered) order of ``product`` for the world's patient, ``days_ago`` days ago."""
    completed_at = timezone.now() - dt.timedelta(days=days_ago)
    order = OrderFactory.create(
        provider=world.provider,
        territory=world.territory,
        patient=world.patient,
        status=OrderStatus.COMPLETED,
        order_date=timezone.localdate(completed_at),
        completed_at=completed_at,
    )
    OrderItemFactory.create(order=order, product=product, quantity=quantity)


@pytest.fixture
def history(north: World) -> dict[str, Any]:
    """Years of glucose strips and filters, and a full-face mask (A7030's allowance) 30 days ago."""
    strips = ProductFactory.create(sku="STRIPS-50", hcpcs_code="A4253")
    filters = ProductFactory.create(sku="PAP-FILTER", hcpcs_code="A7038")
    full_face = ProductFactory.create(sku="PAP-FULL-FACE", hcpcs_code="A7030")
    nasal = ProductFactory.create(sku="PAP-NASAL", hcpcs_code="A7034")
    lot_receive(actor=None, product=full_face, warehouse=WarehouseFactory.create(), lot_number="FF-1", quantity=20)
    for months in range(1, 25):
        delivered(north, strips, quantity=3, days_ago=30 * months + 5)
        delivered(north, filters, quantity=2, days_ago=30 * months + 9)
    delivered(north, nasal, quantity=1, days_ago=30)
    return {"full_face": full_face}


def recorded(order: Order) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The supply history the order's checks were given, and their result (its snapshot)."""
    snapshot = ComplianceSnapshot.objects.get(order_id=order.pk)
    return snapshot.inputs["supply_history"], snapshot.result


@pytest.mark.django_db
def test_an_ffs_order_loads_only_its_allowances_deliveries_and_decides_as_with_all(
    north: World, history: dict[str, Any]
) -> None:
    # When a Medicare FFS order for a full-face mask is placed (its allowance is shared with the
    # nasal mask delivered 30 days ago)
    order = north.order(items=[ItemRequest(sku=history["full_face"].sku, quantity=1)])

    # Then only the nasal mask's delivery was loaded: none of the 48 strips and filters
    supply_history, result = recorded(order)
    day = timezone.localdate(timezone.now() - dt.timedelta(days=30)).isoformat()
    assert supply_history == [
        {"hcpcs": "A7034", "quantity": 1, "delivered_on": day, "recurring": False, "days_of_supply": None}
    ]
    # And it is held for it, exactly as the whole history decides
    assert [f["code"] for f in result["findings"]] == [
        "QUANTITY_LIMIT_EXCEEDED",
        "REFILL_TOO_EARLY",
        "REFILL_CONFIRMATION_REQUIRED",
    ]
    assert result == whole_history_result(order)


@pytest.mark.django_db
def test_a_cash_order_loads_no_deliveries_and_decides_as_with_all(north: World, history: dict[str, Any]) -> None:
    order = north.order(items=[ItemRequest(sku=history["full_face"].sku, quantity=1)], payer_type="cash")

    supply_history, result = recorded(order)

    assert supply_history == []
    assert result == whole_history_result(order)


def whole_history_result(order: Order) -> dict[str, Any]:
    """The order's checks again, on the same facts but with every delivery the patient ever had."""
    facts = facts_for_order(Order.objects.get(pk=order.pk))
    whole = patient_supply_facts(patient=order.patient).deliveries
    assert len(whole) == 24 + 24 + 1
    assert all(isinstance(delivery, Delivery) for delivery in whole)
    return evaluate(dataclasses.replace(facts, supply_history=whole)).as_dict()


# --- why the history is not cut at a date -----------------------------------------------------
# A time window, even the longest period in the rule files (6 months), would change decisions: the
# checks read deliveries older than any period. These pin that down, so that bounding the history by
# date can only come with a deliberate change of the rules.


def test_a_delivery_older_than_every_usual_maximum_period_still_makes_the_next_one_a_refill() -> None:
    # Headgear (A7035): 1 per 6 months, the longest period of the PAP rows; delivered 7 months ago
    order = ffs_order(line("A7035"), order_date=D(2026, 11, 2))
    old_delivery = (Delivery("A7035", 1, D(2026, 4, 1)),)

    # The old delivery makes this one a refill, which needs the patient's confirmation
    assert codes(dataclasses.replace(order, supply_history=old_delivery)) == ["REFILL_CONFIRMATION_REQUIRED"]
    assert codes(order) == []


def test_a_years_long_run_of_early_refills_counts_from_its_first_day() -> None:
    # A mask delivered every 81 days for three and a half years (each refill some 10 days before the
    # 3-month supply ran out): one run, its supply carried forward from delivery to delivery; the
    # next mask asked for 90 days after the last
    deliveries = tuple(Delivery("A7030", 1, D(2023, 1, 5) + dt.timedelta(days=81 * index)) for index in range(15))
    order_on = deliveries[-1].delivered_on + dt.timedelta(days=90)
    order = ffs_order(line("A7030"), order_date=order_on)
    recent = tuple(d for d in deliveries if d.delivered_on >= order_on - dt.timedelta(days=183))

    # With the whole run the next mask is still too early; the last six months alone would clear it
    assert codes(dataclasses.replace(order, supply_history=deliveries)) == [
        "QUANTITY_LIMIT_EXCEEDED",
        "REFILL_TOO_EARLY",
        "REFILL_CONFIRMATION_REQUIRED",
    ]
    assert codes(dataclasses.replace(order, supply_history=recent)) == ["REFILL_CONFIRMATION_REQUIRED"]


def codes(facts: Any) -> list[str]:
    return [finding.code for finding in evaluate(facts).findings]


# --- which codes: pooled allowances in force on the date of service -----------------------------------
#
# Heated (A4604) and plain (A7037) tubing share one allowance from 2024-01-01 (quantity_limits.toml,
# pap-tubing-a7037-a4604): an order of A7037 reads A4604's deliveries only on or after that day.
POOLED = frozenset({"A4604", "A7037"})


def tubing_order(**dates: Any) -> Any:
    order = ffs_order(line("A7037"), order_date=D(2024, 1, 10))
    return dataclasses.replace(order, **{"delivered_on": None, "requested_date": None, **dates})


@pytest.mark.parametrize(
    ("dates", "codes"),
    [
        # the delivery date first, then the requested date, then the order date
        ({"delivered_on": D(2023, 12, 15), "requested_date": D(2024, 2, 1)}, {"A7037"}),
        ({"delivered_on": D(2024, 1, 2), "requested_date": D(2023, 12, 20)}, POOLED),
        ({"requested_date": D(2023, 12, 15)}, {"A7037"}),
        ({"requested_date": D(2024, 1, 1)}, POOLED),
        ({"order_date": D(2023, 12, 31)}, {"A7037"}),
        ({"order_date": D(2024, 1, 1)}, POOLED),
        # no date at all: today (after 2024-01-01)
        ({"order_date": None}, POOLED),
    ],
)
def test_the_codes_read_are_those_pooled_on_the_date_of_service(dates: dict[str, Any], codes: set[str]) -> None:
    assert supply_history_codes(tubing_order(**dates)) == codes


def test_the_codes_come_from_the_rule_sets_given() -> None:
    rule_sets = load_rule_sets()
    limits = rule_sets["quantity_limits"]
    unpooled = tuple(
        dataclasses.replace(row, fields={**row.fields, "codes": ["A7037"]})
        if row.fields.get("id") == "pap-tubing-a7037-a4604"
        else row
        for row in limits.rows
    )
    changed = {**rule_sets, "quantity_limits": dataclasses.replace(limits, rows=unpooled)}
    order = tubing_order(requested_date=D(2026, 11, 9))
    assert supply_history_codes(order) == POOLED
    assert supply_history_codes(order, rule_sets=changed) == {"A7037"}
    assert usual_maximums(on=D(2026, 11, 9))["A4604"] == (1, 3)
    assert "A4604" not in usual_maximums(on=D(2026, 11, 9), rule_sets=changed)
