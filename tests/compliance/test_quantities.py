"""Usual maximums and refills on the supply timeline, and what the patient card and the wizard show
(``supply_status``, ``usual_maximums``): real HCPCS codes and dates, both sides of each boundary."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.engine import SupplyStatus, evaluate, supply_status, usual_maximums
from compliance.inputs import (
    AttachedArtifact,
    ComplianceInput,
    Delivery,
    ItemFacts,
    OpenOrder,
    OpenOrderLine,
)
from tests.compliance.builders import D, ffs_order, line

INTERFACES = ("A7027", "A7030", "A7034")


def order(*items: ItemFacts, on: D, confirmed: D | None = None, **changes: Any) -> ComplianceInput:
    """A complete, signed Medicare FFS order delivered on ``on`` (ordered the same day)."""
    artifacts = (AttachedArtifact("PATIENT_REFILL_CONFIRMATION", confirmed),) if confirmed else ()
    return ffs_order(*items, order_date=on, requested_date=on, **{"artifacts": artifacts, **changes})


item = line


def codes(facts: ComplianceInput) -> list[str]:
    return [f.code for f in evaluate(facts).findings]


# --- a dispense may cover up to three months -------------------------------------------------------


def test_six_disposable_filters_are_a_three_month_supply_and_seven_are_not() -> None:
    # A7038: 2 per 1 month (L33718); no more than a three-month quantity at a time.
    assert codes(order(item("A7038", 6), on=D(2026, 11, 9))) == []
    assert codes(order(item("A7038", 7), on=D(2026, 11, 9))) == ["QUANTITY_LIMIT_EXCEEDED"]


def test_a_six_month_item_is_dispensed_one_at_a_time() -> None:
    # A7035 headgear: 1 per 6 months; one unit may go out (more than a three-month quantity, but one unit).
    assert codes(order(item("A7035", 1), on=D(2026, 11, 9))) == []
    assert codes(order(item("A7035", 2), on=D(2026, 11, 9))) == ["QUANTITY_LIMIT_EXCEEDED"]


def test_one_interface_per_three_months_whichever_kind() -> None:
    # Noridian JD (2024-04-03): masks A7027, A7030 and A7034 are the same function.
    two_kinds = dataclasses.replace(
        order(item("A7030"), on=D(2026, 11, 9)),
        items=(item("A7030"), dataclasses.replace(item("A7034"), key="1")),
    )
    assert codes(two_kinds) == ["QUANTITY_LIMIT_EXCEEDED"]
    # A full face mask delivered on 2026-08-09 lasts until 2026-11-09: a nasal mask from 2026-10-30.
    history = (Delivery("A7030", 1, D(2026, 8, 9)),)
    confirmed = D(2026, 10, 15)
    early = order(item("A7034"), on=D(2026, 10, 29), confirmed=confirmed, supply_history=history)
    assert codes(early) == ["QUANTITY_LIMIT_EXCEEDED", "REFILL_TOO_EARLY"]
    assert codes(dataclasses.replace(early, order_date=D(2026, 10, 30), requested_date=D(2026, 10, 30))) == []


def test_an_order_delivered_on_the_day_the_allowance_renews_is_allowed_a_full_dispense() -> None:
    # 2 filters delivered on 2026-01-31 last one month (to 2026-02-28); on that day 6 more may come.
    history = (Delivery("A7038", 2, D(2026, 1, 31)),)
    assert codes(order(item("A7038", 6), on=D(2026, 2, 28), confirmed=D(2026, 2, 1), supply_history=history)) == []
    # ...and 10 days before it too, on top of what is left; 7 never.
    assert codes(order(item("A7038", 6), on=D(2026, 2, 18), confirmed=D(2026, 2, 1), supply_history=history)) == []
    assert codes(order(item("A7038", 6), on=D(2026, 2, 17), confirmed=D(2026, 2, 1), supply_history=history)) == [
        "QUANTITY_LIMIT_EXCEEDED",
        "REFILL_TOO_EARLY",
    ]


def test_an_early_refill_carries_the_rest_of_the_supply_forward() -> None:
    # 6 filters on 2026-01-01 last until 2026-04-01; 6 more on 2026-03-22 start then and last until
    # 2026-07-01, so the next refill may come from 2026-06-21 (not three months after 2026-03-22).
    history = (Delivery("A7038", 6, D(2026, 1, 1)), Delivery("A7038", 6, D(2026, 3, 22)))
    assert codes(order(item("A7038", 6), on=D(2026, 6, 20), confirmed=D(2026, 6, 1), supply_history=history)) == [
        "QUANTITY_LIMIT_EXCEEDED",
        "REFILL_TOO_EARLY",
    ]
    assert codes(order(item("A7038", 6), on=D(2026, 6, 21), confirmed=D(2026, 6, 1), supply_history=history)) == []


# --- supply_status and usual_maximums: what the card and the wizard show ---------------------------


def test_supply_status_counts_a_delivery_made_on_the_day_itself() -> None:
    history = [Delivery("A7030", 1, D(2026, 8, 9))]
    assert supply_status(history, on=D(2026, 8, 8)) == []
    assert supply_status(history, on=D(2026, 8, 9)) == [
        SupplyStatus("A7030", D(2026, 8, 9), 1, D(2026, 11, 9), D(2026, 10, 30), ("A7027", "A7034"))
    ]


def test_supply_status_counts_months_on_the_calendar_from_the_first_delivery() -> None:
    # 6 filters on 2026-01-31: three calendar months end on 2026-04-30 (April has 30 days).
    status = supply_status([Delivery("A7038", 6, D(2026, 1, 31))], on=D(2026, 2, 1))
    assert status == [SupplyStatus("A7038", D(2026, 1, 31), 6, D(2026, 4, 30), D(2026, 4, 20))]
    # Strips without insulin: 1 box of 50 is half of 2 per 3 months; with insulin (Z79.4), a sixth.
    strips = [Delivery("A4253", 1, D(2026, 6, 1))]
    assert supply_status(strips, on=D(2026, 6, 1))[0].supply_ends == D(2026, 7, 16)
    assert supply_status(strips, on=D(2026, 6, 1), diagnosis_codes=["Z79.4"])[0].supply_ends == D(2026, 6, 16)


def test_supply_status_waits_for_open_orders() -> None:
    # Delivered 2026-06-01 (lasts until 2026-09-01); an open order for a mask expected 2026-08-25
    # takes the next 3 months (to 2026-12-01): the next mask may come from 2026-11-21.
    history = [Delivery("A7030", 1, D(2026, 6, 1))]
    pending = OpenOrder("ABC-DEF", "Preparing", D(2026, 8, 25), (OpenOrderLine(1, "F30", "A7034"),))
    [status] = supply_status(history, on=D(2026, 8, 1), open_orders=[pending])
    assert (status.supply_ends, status.next_eligible) == (D(2026, 9, 1), D(2026, 11, 21))
    assert supply_status(history, on=D(2026, 8, 1))[0].next_eligible == D(2026, 8, 22)


def test_supply_status_of_an_item_without_a_rule_has_no_refill_limit() -> None:
    assert supply_status([Delivery("E0601", 1, D(2026, 3, 2))], on=D(2026, 11, 2)) == [
        SupplyStatus("E0601", D(2026, 3, 2), 1, None, None)
    ]


def test_supply_status_lists_every_code_after_one_counted_by_days_of_supply() -> None:
    # A6212 (foam dressing) has no usual maximum here: its 10 units of 30 days from 2026-09-01 last
    # 300 days, to 2027-06-28, and a refill may come 10 days before; E0601 after it has no limit.
    history = [
        Delivery("A6212", 10, D(2026, 9, 1), recurring=True, days_of_supply=30),
        Delivery("E0601", 1, D(2026, 3, 2)),
    ]
    assert supply_status(history, on=D(2026, 11, 2)) == [
        SupplyStatus("A6212", D(2026, 9, 1), 10, D(2027, 6, 28), D(2027, 6, 18)),
        SupplyStatus("E0601", D(2026, 3, 2), 1, None, None),
    ]


def test_usual_maximums_are_the_rows_in_force_with_pooled_codes_sharing_one() -> None:
    maximums = usual_maximums(on=D(2026, 11, 2))
    assert {code: maximums[code] for code in ("A4604", "A7027", "A7030", "A7034", "A7037", "A7038", "A4253")} == {
        "A4604": (1, 3),
        "A7027": (1, 3),
        "A7030": (1, 3),
        "A7034": (1, 3),
        "A7037": (1, 3),
        "A7038": (2, 1),
        "A4253": (2, 3),
    }
    assert usual_maximums(on=D(2026, 11, 2), diagnosis_codes=["E11.9", "Z79.4"])["A4253"] == (6, 3)
    # The PAP rows start on 2024-01-01 (L33718 R11), the glucose rows on 2024-10-01 (L33822 R16).
    assert "A7030" not in usual_maximums(on=D(2023, 12, 31))
    assert usual_maximums(on=D(2024, 1, 1))["A7030"] == (1, 3)
    assert "A4253" not in usual_maximums(on=D(2024, 9, 30))
    assert usual_maximums(on=D(2024, 10, 1))["A4253"] == (2, 3)


# --- recurring supplies without a usual maximum -----------------------------------------------------


def dressing(quantity: int, **changes: Any) -> ItemFacts:
    # A6212 foam dressing with adhesive border, flagged recurring in the catalog; one lasts 2 days.
    return item("A6212", quantity, recurring=True, days_of_supply=2, **changes)


def test_a_recurring_dressing_refill_needs_confirmation_and_may_not_come_too_early() -> None:
    # 30 dressings delivered on 2026-10-01 last 60 days, until 2026-11-30: a refill from 2026-11-20.
    history = (Delivery("A6212", 30, D(2026, 10, 1), recurring=True, days_of_supply=2),)
    early = evaluate(order(dressing(30), on=D(2026, 11, 19), supply_history=history))
    assert [(f.code, str(f.severity)) for f in early.findings] == [
        ("REFILL_TOO_EARLY", "hold"),
        ("REFILL_CONFIRMATION_REQUIRED", "hold"),
    ]
    assert early.findings[0].message == (
        "A6212: the supply delivered on 2026-10-01 lasts until 2026-11-30; a refill may be delivered from"
        " 2026-11-20, not on 2026-11-19."
    )
    # The confirmation may be no sooner than 30 days before the supply's end (2026-10-31).
    assert codes(order(dressing(30), on=D(2026, 11, 20), confirmed=D(2026, 10, 30), supply_history=history)) == [
        "REFILL_CONFIRMATION_REQUIRED"
    ]
    assert codes(order(dressing(30), on=D(2026, 11, 20), confirmed=D(2026, 10, 31), supply_history=history)) == []
    # A first delivery is not a refill; a product not flagged recurring gets no refill rules.
    assert codes(order(dressing(30), on=D(2026, 11, 19))) == []
    assert codes(order(item("A6212", 30), on=D(2026, 11, 19), supply_history=history)) == []
    assert supply_status(history, on=D(2026, 11, 2)) == [
        SupplyStatus("A6212", D(2026, 10, 1), 30, D(2026, 11, 30), D(2026, 11, 20))
    ]


def test_a_recurring_supply_of_unknown_duration_still_needs_the_refill_confirmation() -> None:
    history = (Delivery("A6212", 30, D(2026, 10, 1), recurring=True),)
    unknown = dataclasses.replace(dressing(30), days_of_supply=None)
    result = evaluate(order(unknown, on=D(2026, 10, 5), supply_history=history))
    assert [f.code for f in result.findings] == ["REFILL_CONFIRMATION_REQUIRED"]
    # without a known end, the contact window counts back from the delivery date (30 days)
    assert result.findings[0].message == (
        "A6212 is a refill: the patient must confirm the need on or after 2026-09-05 and before delivery on 2026-10-05."
    )


# --- the quantity and refill rules agree with the next eligible day --------------------------------

# (code ordered, diagnosis codes, most units of one delivery in the history)
SUPPLIES = [
    ("A7030", (), 1),
    ("A7034", (), 1),
    ("A7038", (), 6),
    ("A7032", (), 2),
    ("A7035", (), 1),
    ("A4253", (), 2),
    ("A4253", ("Z79.4",), 6),
    ("A4259", ("Z79.4",), 3),
]


@st.composite
def histories(draw: Any) -> tuple[str, tuple[str, ...], list[Delivery], list[OpenOrder], D]:
    code, diagnoses, at_most = draw(st.sampled_from(SUPPLIES))
    pool = INTERFACES if code in INTERFACES else (code,)
    day = D(2025, 1, 1) + dt.timedelta(days=draw(st.integers(0, 400)))
    deliveries = []
    for _ in range(draw(st.integers(1, 4))):
        deliveries.append(Delivery(draw(st.sampled_from(pool)), draw(st.integers(1, at_most)), day))
        day += dt.timedelta(days=draw(st.integers(0, 120)))
    on = deliveries[-1].delivered_on + dt.timedelta(days=draw(st.integers(0, 30)))
    open_orders = [
        OpenOrder(f"REF-{index}", "Pending", on + dt.timedelta(days=draw(st.integers(-20, 90))), (line,))
        for index, line in enumerate(
            OpenOrderLine(draw(st.integers(1, at_most)), None, draw(st.sampled_from(pool)))
            for _ in range(draw(st.integers(0, 2)))
        )
    ]
    return code, diagnoses, deliveries, open_orders, on


RULES = ("QUANTITY_LIMIT_EXCEEDED", "REFILL_TOO_EARLY")


@settings(max_examples=60, deadline=None)
@given(histories())
def test_the_next_eligible_day_passes_both_rules_and_the_day_before_does_not(case: Any) -> None:
    code, diagnoses, deliveries, open_orders, on = case
    pool = INTERFACES if code in INTERFACES else (code,)
    statuses = supply_status(deliveries, on=on, diagnosis_codes=diagnoses, open_orders=open_orders)
    status = next(s for s in statuses if s.hcpcs in pool)  # the codes of a pool share one allowance
    assert status.next_eligible is not None
    usual = usual_maximums(on=on, diagnosis_codes=diagnoses)[code][0]  # one period's allowance

    def findings_on(day: D) -> list[str]:
        facts = order(
            item(code, usual),
            on=day,
            confirmed=day,
            diagnosis_codes=diagnoses,
            supply_history=tuple(deliveries),
            open_orders=tuple(open_orders),
        )
        return [f.code for f in evaluate(facts).findings if f.code in RULES]

    assert findings_on(status.next_eligible) == []
    assert findings_on(status.next_eligible - dt.timedelta(days=1)) != []
