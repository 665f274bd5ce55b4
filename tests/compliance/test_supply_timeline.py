"""The supply timeline piece by piece (``supply_timeline``, ``months_later``, ``UsualMaximum``,
``usual_maximum_excess``), what the patient card shows (``supply_status``, ``usual_maximums``,
``insulin_treated``), how the usual-maximum finding words what it counted, and the refill rules by
date (the contact window before 2024, no refill rule before 2011-10-31). Real codes and dates."""

from __future__ import annotations

import datetime as dt
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from compliance.engine import (
    SupplyStatus,
    SupplyStep,
    UsualMaximum,
    evaluate,
    insulin_treated,
    months_later,
    supply_status,
    supply_timeline,
    usual_maximum_excess,
    usual_maximums,
)
from compliance.inputs import AttachedArtifact, ComplianceInput, Delivery, ItemFacts, OpenOrder, OpenOrderLine
from compliance.rulebook import RuleSet, load_rule_sets
from tests.compliance.builders import D, ffs_order, line

INTERFACES = (
    "PAP interface (combination oral/nasal mask, full face mask, or nasal mask or cannula type interface), each"
    " (shared by A7027, A7030, A7034)"
)

FILTERS = "Filter, disposable, used with positive airway pressure device"


def delivered_on(day: D, *items: ItemFacts, confirmed: D | None = None, **changes: Any) -> ComplianceInput:
    """A complete, signed Medicare FFS order placed and delivered on ``day``."""
    artifacts = (AttachedArtifact("PATIENT_REFILL_CONFIRMATION", confirmed),) if confirmed else ()
    return ffs_order(*items, order_date=day, **{"artifacts": artifacts, **changes})


def findings(facts: ComplianceInput) -> list[tuple[str, str]]:
    return [(f.code, f.message) for f in evaluate(facts).findings]


def codes(facts: ComplianceInput) -> list[str]:
    return [f.code for f in evaluate(facts).findings]


def allowance(code: str, *, dispense_months: int | None = None, diagnoses: tuple[str, ...] = ()) -> UsualMaximum:
    """The usual maximum of ``code`` in force on 2026-11-02 (for ``diagnoses``), optionally with
    another ``dispense_at_most_months``."""
    rule_sets = load_rule_sets()
    limits = rule_sets["quantity_limits"]
    applicable = "insulin_treated" if "Z79.4" in diagnoses else "not_insulin_treated"
    (row,) = [
        r for r in limits.rows_in_force(D(2026, 11, 2)) if code in r.codes and r.get("when") in ("any", applicable)
    ]
    usual = UsualMaximum.of(row, limits)
    return usual if dispense_months is None else UsualMaximum(row=row, dispense_months=dispense_months)


def mask_line(reference: str, *codes: str) -> OpenOrder:
    return OpenOrder(reference, "Pending", D(2026, 11, 9), tuple(OpenOrderLine(1, f"F-{c}", c) for c in codes))


# --- supply_timeline and months_later ------------------------------------------------------------


def ten_days_per_unit(anchor: D, amount: Fraction) -> D:
    return anchor + dt.timedelta(days=int(amount))


def test_the_timeline_lays_deliveries_end_to_end_and_starts_a_new_run_on_the_day_the_supply_runs_out() -> None:
    steps = supply_timeline(
        [
            (D(2026, 2, 10), 1, Fraction(10)),  # the day the supply runs out: a new run
            (D(2026, 1, 1), 2, Fraction(20)),
            (D(2026, 1, 25), 1, Fraction(10)),  # before it runs out: carried forward
            (D(2026, 1, 1), 1, Fraction(10)),  # the same day as another: counted together
        ],
        ten_days_per_unit,
    )
    assert steps == [
        SupplyStep(day=D(2026, 1, 1), units=3, runs_out_before=None, lasts_until=D(2026, 1, 31)),
        SupplyStep(day=D(2026, 1, 25), units=1, runs_out_before=D(2026, 1, 31), lasts_until=D(2026, 2, 10)),
        SupplyStep(day=D(2026, 2, 10), units=1, runs_out_before=D(2026, 2, 10), lasts_until=D(2026, 2, 20)),
    ]
    assert [step.starts for step in steps] == [D(2026, 1, 1), D(2026, 1, 31), D(2026, 2, 10)]


def test_a_new_run_counts_its_months_from_its_own_first_day() -> None:
    # Filters (A7038, 2 per month): 2 on 2026-01-31 last until 2026-02-28; 2 more delivered that day
    # start a run of their own, one month to 2026-03-28 (not two months from 2026-01-31: 2026-03-31).
    filters = allowance("A7038")
    steps = supply_timeline([(D(2026, 1, 31), 2, Fraction(2)), (D(2026, 2, 28), 2, Fraction(2))], filters.lasts)
    assert [step.lasts_until for step in steps] == [D(2026, 2, 28), D(2026, 3, 28)]


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (D(2026, 1, 31), Fraction(3), D(2026, 4, 30)),  # whole months, clamped to April's 30 days
        (D(2026, 1, 31), Fraction(1, 2), D(2026, 2, 14)),  # half of the 28 days to 2026-02-28
        (D(2026, 6, 1), Fraction(3, 2), D(2026, 7, 16)),  # a month, then half of July's 31 days (15)
        (D(2026, 3, 1), Fraction(1, 3), D(2026, 3, 11)),  # a third of 31 days is 10.33: rounded down
        (D(2026, 3, 1), Fraction(0), D(2026, 3, 1)),
    ],
)
def test_months_later_counts_whole_calendar_months_then_a_fraction_of_the_next_months_days(
    day: D, months: Fraction, expected: D
) -> None:
    assert months_later(day, months) == expected


# --- UsualMaximum: how many at a time, and the usual order ----------------------------------------


@pytest.mark.parametrize(
    ("code", "diagnoses", "at_a_time", "usual_order"),
    [
        ("A7038", (), 6, 2),  # 2 per month: a three-month quantity is 6; one month's allowance is 2
        ("A7031", (), 3, 1),  # 1 per month
        ("A7030", (), 1, 1),  # 1 per 3 months
        ("A7035", (), 1, 1),  # 1 per 6 months: less than one unit per three months, so one unit
        ("A4253", (), 2, 2),  # 2 per 3 months without insulin
        ("A4253", ("Z79.4",), 6, 6),  # 6 per 3 months with insulin
    ],
)
def test_at_most_a_three_month_quantity_and_at_least_one_unit_may_be_dispensed_at_a_time(
    code: str, diagnoses: tuple[str, ...], at_a_time: int, usual_order: int
) -> None:
    usual = allowance(code, diagnoses=diagnoses)
    assert (usual.at_a_time, usual.usual_order) == (at_a_time, usual_order)


def test_the_usual_order_is_one_periods_allowance_unless_less_may_be_dispensed_at_a_time() -> None:
    # Were the dispensing limit one month, 6 strips-boxes per 3 months would go out 2 at a time.
    strips = allowance("A4253", dispense_months=1, diagnoses=("Z79.4",))
    assert (strips.at_a_time, strips.usual_order) == (2, 2)
    assert allowance("A7030", dispense_months=1).at_a_time == 1


def test_a_units_share_of_the_allowance_lasts_its_share_of_the_period() -> None:
    assert allowance("A7038").lasts(D(2026, 1, 31), Fraction(1)) == D(2026, 2, 14)  # half a month
    assert allowance("A7030").lasts(D(2026, 1, 31), Fraction(2)) == D(2026, 7, 31)  # six months


def edited_rules(tmp_path: Path, settings: Any, file: str, old: str, new: str) -> dict[str, RuleSet]:
    """The rule files with one edit in ``file``."""
    rules = tmp_path / "rules"
    shutil.copytree(Path(settings.COMPLIANCE_RULES_DIR), rules)
    path = rules / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    return load_rule_sets(rules)


def test_how_many_months_may_be_dispensed_at_a_time_is_read_from_the_rule_file(tmp_path: Path, settings: Any) -> None:
    one_month = edited_rules(
        tmp_path, settings, "quantity_limits.toml", "dispense_at_most_months = 3", "dispense_at_most_months = 1"
    )
    three_filters = delivered_on(D(2026, 11, 9), line("A7038", 3))
    assert [(f.code, f.message) for f in evaluate(three_filters, rule_sets=one_month).findings] == [
        (
            "QUANTITY_LIMIT_EXCEEDED",
            f"A7038: 3 ordered for delivery on 2026-11-09 exceed the usual maximum of 2 per 1 month for {FILTERS}:"
            " at most 2 may be dispensed at a time.",
        )
    ]
    assert evaluate(delivered_on(D(2026, 11, 9), line("A7038", 2)), rule_sets=one_month).findings == ()


def test_without_a_refill_rule_in_force_the_allowance_renews_only_when_the_supply_runs_out(
    tmp_path: Path, settings: Any
) -> None:
    # Were the 2024 refill row to start only in 2030, nothing would let a mask come 10 days early.
    no_refill_rule = edited_rules(
        tmp_path, settings, "refills.toml", "effective_from = 2024-01-01", "effective_from = 2030-01-01"
    )
    history = (Delivery("A7030", 1, D(2026, 8, 9)),)  # lasts until 2026-11-09

    def mask_on(day: D) -> list[tuple[str, str]]:
        facts = delivered_on(day, line("A7030"), supply_history=history)
        return [(f.code, f.message) for f in evaluate(facts, rule_sets=no_refill_rule).findings]

    assert mask_on(D(2026, 11, 8)) == [
        (
            "QUANTITY_LIMIT_EXCEEDED",
            f"A7030: 1 ordered for delivery on 2026-11-08 exceed the usual maximum of 1 per 3 months for {INTERFACES}:"
            " the supply delivered lasts until 2026-11-09, so more may be delivered from 2026-11-09.",
        )
    ]
    assert mask_on(D(2026, 11, 9)) == []
    assert supply_status(list(history), on=D(2026, 11, 2), rule_sets=no_refill_rule)[0].next_eligible == D(2026, 11, 9)


# --- usual_maximum_excess: what it counted ---------------------------------------------------------


def test_the_excess_names_the_first_day_over_the_allowance_and_what_was_counted_before_it() -> None:
    # A mask delivered 2026-01-01 (to 2026-04-01), one expected 2026-03-22 (to 2026-07-01), this one on
    # 2026-06-21 (to 2026-10-01): all in time; one more expected on 2026-09-20 comes a day too early.
    history = [Delivery("A7030", 1, D(2026, 1, 1))]
    open_orders = [
        OpenOrder("A-1", "Pending", D(2026, 3, 22), (OpenOrderLine(1, "F-A7034", "A7034"),)),
        OpenOrder("B-2", "Pending", D(2026, 9, 20), (OpenOrderLine(1, "F-A7027", "A7027"),)),
    ]
    excess = usual_maximum_excess(
        allowance("A7030"), deliveries=history, open_orders=open_orders, ordered=1, on=D(2026, 6, 21), early_days=10
    )
    assert excess is not None
    assert (excess.step, excess.too_many) == (
        SupplyStep(day=D(2026, 9, 20), units=1, runs_out_before=D(2026, 10, 1), lasts_until=D(2027, 1, 1)),
        False,
    )
    assert (excess.delivered_that_day, excess.pending_that_day, excess.orders_that_day) == (0, 1, ("B-2",))
    assert (excess.delivered_before, excess.orders_before) == (True, ("A-1",))
    on_time = [open_orders[0], OpenOrder("B-2", "Pending", D(2026, 9, 21), open_orders[1].lines)]
    assert (
        usual_maximum_excess(
            allowance("A7030"), deliveries=history, open_orders=on_time, ordered=1, on=D(2026, 6, 21), early_days=10
        )
        is None
    )


def test_an_order_pushing_a_later_open_order_too_early_names_every_supply_before_it() -> None:
    # The same dates through the check: the finding is about the open order's day.
    later = OpenOrder("B-2", "Pending", D(2026, 9, 20), (OpenOrderLine(1, "F-A7027", "A7027"),))
    earlier = OpenOrder("A-1", "Pending", D(2026, 3, 22), (OpenOrderLine(1, "F-A7034", "A7034"),))
    facts = delivered_on(
        D(2026, 6, 21),
        line("A7030"),
        confirmed=D(2026, 6, 15),
        supply_history=(Delivery("A7030", 1, D(2026, 1, 1)),),
        open_orders=(earlier, later),
    )
    assert findings(facts) == [
        (
            "QUANTITY_LIMIT_EXCEEDED",
            f"A7030: 1 on open orders (B-2) for delivery on 2026-09-20 exceed the usual maximum of 1 per 3 months for"
            f" {INTERFACES}: the supply delivered, ordered for 2026-06-21 and on open orders (A-1) lasts until"
            " 2026-10-01, so more may be delivered from 2026-09-21.",
        )
    ]


def test_an_order_too_early_after_a_delivery_and_an_open_order_names_both() -> None:
    # Delivered 2026-01-01 and expected 2026-03-22: the two masks last until 2026-07-01.
    earlier = OpenOrder("A-1", "Pending", D(2026, 3, 22), (OpenOrderLine(1, "F-A7034", "A7034"),))

    def mask_on(day: D) -> ComplianceInput:
        return delivered_on(
            day,
            line("A7030"),
            confirmed=D(2026, 5, 25),
            supply_history=(Delivery("A7030", 1, D(2026, 1, 1)),),
            open_orders=(earlier,),
        )

    assert findings(mask_on(D(2026, 6, 20))) == [
        (
            "QUANTITY_LIMIT_EXCEEDED",
            f"A7030: 1 ordered for delivery on 2026-06-20 exceed the usual maximum of 1 per 3 months for {INTERFACES}:"
            " the supply delivered and on open orders (A-1) lasts until 2026-07-01, so more may be delivered from"
            " 2026-06-21.",
        )
    ]
    assert findings(mask_on(D(2026, 6, 21))) == []


def test_a_usual_maximum_finding_with_medical_necessity_attached_is_for_review_and_cites_the_lcd() -> None:
    # Delivered 2026-01-01, then open orders expected 2026-03-22 and 2026-05-01 (B-2): the
    # three masks last until 2026-10-01. Documentation of medical necessity for more than the usual
    # maximum turns the hold into a review (L33718: quantities above the usual maximum need it).
    earlier = OpenOrder("A-1", "Pending", D(2026, 3, 22), (OpenOrderLine(1, "F-A7034", "A7034"),))
    later = OpenOrder("B-2", "Preparing", D(2026, 5, 1), (OpenOrderLine(1, "F-A7027", "A7027"),))
    facts = delivered_on(
        D(2026, 6, 20),
        line("A7030", key="mask"),
        supply_history=(Delivery("A7030", 1, D(2026, 1, 1)),),
        open_orders=(later, earlier),
        artifacts=(
            AttachedArtifact("PATIENT_REFILL_CONFIRMATION", D(2026, 6, 15)),
            AttachedArtifact("MEDICAL_NECESSITY", D(2026, 6, 1)),
        ),
    )
    quantity = [f.as_dict() for f in evaluate(facts).findings if f.code == "QUANTITY_LIMIT_EXCEEDED"]
    assert quantity == [
        {
            "code": "QUANTITY_LIMIT_EXCEEDED",
            "severity": "needs_review",
            "message": (
                f"A7030: 1 ordered for delivery on 2026-06-20 exceed the usual maximum of 1 per 3 months for"
                f" {INTERFACES}: the supply delivered and on open orders (A-1, B-2) lasts until 2026-10-01, so"
                " more may be delivered from 2026-09-21. Medical-necessity documentation is attached."
            ),
            "rule": "quantity_limits",
            "source": {
                "id": "L33718",
                "title": (
                    "LCD L33718 Positive Airway Pressure (PAP) Devices for the Treatment of Obstructive Sleep Apnea"
                    " (DME MACs; revision R11, effective 2024-01-01), Coverage Indications: ACCESSORIES"
                ),
                "url": "https://www.cms.gov/medicare-coverage-database/view/lcd.aspx?LCDId=33718",
            },
            "required_artifacts": ["MEDICAL_NECESSITY"],
            "field": "quantity",
            "item": "mask",
        }
    ]


def test_units_of_one_day_are_counted_together_each_open_order_named_once() -> None:
    history = (Delivery("A7030", 1, D(2026, 11, 9)),)
    open_orders = (
        mask_line("B-2", "A7034"),
        mask_line("D-4", "A7030"),
        mask_line("A-1", "A7034", "A7027"),
        mask_line("C-3", "A7027"),
    )
    facts = delivered_on(D(2026, 11, 9), line("A7030"), supply_history=history, open_orders=open_orders)
    quantity = [message for code, message in findings(facts) if code == "QUANTITY_LIMIT_EXCEEDED"]
    assert quantity == [
        f"A7030: 1 ordered, 1 delivered and 5 on open orders (A-1, B-2, C-3, D-4) for delivery on 2026-11-09 exceed"
        f" the usual maximum of 1 per 3 months for {INTERFACES}: at most 1 may be dispensed at a time."
    ]


def test_a_supply_delivered_on_the_day_itself_is_not_named_as_delivered_before_it() -> None:
    # 6 filters on an open order expected 2026-01-01 last until 2026-04-01; one filter was delivered
    # on 2026-03-01 and one more is ordered for that day: both come before the open order's supply ends.
    pending = OpenOrder("A-1", "Preparing", D(2026, 1, 1), (OpenOrderLine(6, "F-A7038", "A7038"),))
    facts = delivered_on(
        D(2026, 3, 1),
        line("A7038"),
        confirmed=D(2026, 2, 25),
        supply_history=(Delivery("A7038", 1, D(2026, 3, 1)),),
        open_orders=(pending,),
    )
    assert [message for code, message in findings(facts) if code == "QUANTITY_LIMIT_EXCEEDED"] == [
        f"A7038: 1 ordered and 1 delivered for delivery on 2026-03-01 exceed the usual maximum of 2 per 1 month for"
        f" {FILTERS}: the supply on open orders (A-1) lasts until 2026-04-01, so more may be delivered from"
        " 2026-03-22."
    ]


def test_a_past_delivery_over_the_usual_maximum_does_not_hold_a_later_timely_order() -> None:
    # 7 cushions (A7032, 2 per month) went out at once on 2026-01-05 and lasted until 2026-04-20.
    history = (Delivery("A7032", 7, D(2026, 1, 5)),)
    assert codes(delivered_on(D(2026, 11, 9), line("A7032", 2), confirmed=D(2026, 11, 1), supply_history=history)) == []


# --- refills by date --------------------------------------------------------------------------------


def dressing(days_of_supply: int | None = 2) -> ItemFacts:
    # A6212 foam dressing with adhesive border, flagged recurring in the catalog.
    return line("A6212", 30, recurring=True, days_of_supply=days_of_supply)


def test_before_2024_the_refill_contact_counted_back_14_days_from_delivery() -> None:
    # CR 7410: contact no sooner than 14 days before delivery. 30 dressings of 2023-05-01 last until
    # 2023-06-30; a refill delivered on 2023-06-25 may be confirmed from 2023-06-11.
    history = (Delivery("A6212", 30, D(2023, 5, 1), recurring=True, days_of_supply=2),)
    assert codes(delivered_on(D(2023, 6, 25), dressing(), confirmed=D(2023, 6, 11), supply_history=history)) == []
    too_soon = delivered_on(D(2023, 6, 25), dressing(), confirmed=D(2023, 6, 10), supply_history=history)
    assert findings(too_soon) == [
        (
            "REFILL_CONFIRMATION_REQUIRED",
            "A6212 is a refill: the patient must confirm the need on or after 2023-06-11 and before delivery on"
            " 2023-06-25.",
        )
    ]


def test_no_refill_rule_applies_before_cr_7410_took_effect_on_2011_10_31() -> None:
    # 30 dressings of 2011-10-01 last until 2011-11-30.
    history = (Delivery("A6212", 30, D(2011, 10, 1), recurring=True, days_of_supply=2),)
    assert codes(delivered_on(D(2011, 10, 30), dressing(), supply_history=history)) == []
    assert codes(delivered_on(D(2011, 10, 31), dressing(), supply_history=history)) == [
        "REFILL_TOO_EARLY",
        "REFILL_CONFIRMATION_REQUIRED",
    ]


def test_a_recurring_product_under_a_usual_maximum_is_checked_as_a_refill_once() -> None:
    mask = line("A7030", recurring=True, days_of_supply=90)
    history = (Delivery("A7030", 1, D(2026, 8, 9), recurring=True, days_of_supply=90),)
    assert codes(delivered_on(D(2026, 11, 9), mask, supply_history=history)) == ["REFILL_CONFIRMATION_REQUIRED"]


def test_a_delivery_lasts_its_own_days_of_supply_else_the_ordered_products() -> None:
    own = (Delivery("A6212", 30, D(2026, 10, 1), recurring=True, days_of_supply=3),)
    assert findings(delivered_on(D(2026, 12, 19), dressing(2), confirmed=D(2026, 12, 1), supply_history=own)) == [
        (
            "REFILL_TOO_EARLY",
            "A6212: the supply delivered on 2026-10-01 lasts until 2026-12-30; a refill may be delivered from"
            " 2026-12-20, not on 2026-12-19.",
        )
    ]
    unknown = (Delivery("A6212", 30, D(2026, 10, 1), recurring=True),)
    assert findings(delivered_on(D(2026, 11, 19), dressing(2), confirmed=D(2026, 11, 1), supply_history=unknown)) == [
        (
            "REFILL_TOO_EARLY",
            "A6212: the supply delivered on 2026-10-01 lasts until 2026-11-30; a refill may be delivered from"
            " 2026-11-20, not on 2026-11-19.",
        )
    ]


def test_a_history_with_a_delivery_of_unknown_duration_has_no_known_end() -> None:
    # How long the dressings of 2026-09-01 lasted is not recorded, so nothing says whether those of
    # 2026-10-20 started at once: only the confirmation is checked (30 days back from delivery).
    history = (
        Delivery("A6212", 30, D(2026, 9, 1), recurring=True),
        Delivery("A6212", 30, D(2026, 10, 20), recurring=True, days_of_supply=2),
    )
    unknown = dressing(None)
    assert codes(delivered_on(D(2026, 11, 5), unknown, confirmed=D(2026, 10, 6), supply_history=history)) == []
    assert codes(delivered_on(D(2026, 11, 5), unknown, confirmed=D(2026, 10, 5), supply_history=history)) == [
        "REFILL_CONFIRMATION_REQUIRED"
    ]
    assert supply_status(list(history), on=D(2026, 11, 5)) == [SupplyStatus("A6212", D(2026, 10, 20), 30, None, None)]


# --- supply_status: what the patient card shows ------------------------------------------------------


def test_supply_status_is_as_of_the_day_asked_about() -> None:
    # A CPAP device (no usual maximum) delivered again after 2026-11-02 is not yet delivered that day.
    history = [Delivery("E0601", 1, D(2026, 3, 2)), Delivery("E0601", 1, D(2026, 11, 20))]
    assert supply_status(history, on=D(2026, 11, 2)) == [SupplyStatus("E0601", D(2026, 3, 2), 1, None, None)]


def test_supply_status_counts_the_last_days_deliveries_and_a_new_run_from_the_renewal_day() -> None:
    history = [
        Delivery("A7038", 2, D(2026, 1, 31)),
        Delivery("A7038", 1, D(2026, 2, 28)),
        Delivery("A7038", 1, D(2026, 2, 28)),
        Delivery("A7032", 2, D(2026, 2, 1)),  # cushions: their own allowance
    ]
    assert supply_status(history, on=D(2026, 3, 1)) == [
        SupplyStatus("A7032", D(2026, 2, 1), 2, D(2026, 3, 1), D(2026, 2, 19)),
        SupplyStatus("A7038", D(2026, 2, 28), 2, D(2026, 3, 28), D(2026, 3, 18)),
    ]


def test_supply_status_of_pooled_tubing_names_the_other_code_of_its_allowance() -> None:
    [status] = supply_status([Delivery("A4604", 1, D(2026, 10, 1))], on=D(2026, 11, 2))
    assert status == SupplyStatus("A4604", D(2026, 10, 1), 1, D(2027, 1, 1), D(2026, 12, 22), ("A7037",))


@pytest.mark.parametrize(
    ("delivery", "on", "supply_ends", "next_eligible"),
    [
        # a recurring product with known days: from the refill rule's first day (2011-10-31)
        (Delivery("A6212", 30, D(2011, 10, 1), recurring=True, days_of_supply=2), D(2011, 10, 30), None, None),
        (
            Delivery("A6212", 30, D(2011, 10, 1), recurring=True, days_of_supply=2),
            D(2011, 10, 31),
            D(2011, 11, 30),
            D(2011, 11, 20),
        ),
        # not recurring, or of unknown days: no refill timing
        (Delivery("A6212", 30, D(2026, 10, 1), recurring=False, days_of_supply=2), D(2026, 11, 2), None, None),
        (Delivery("A6212", 30, D(2026, 10, 1), recurring=True), D(2026, 11, 2), None, None),
    ],
)
def test_supply_status_of_a_product_without_a_usual_maximum(
    delivery: Delivery, on: D, supply_ends: D | None, next_eligible: D | None
) -> None:
    assert supply_status([delivery], on=on) == [
        SupplyStatus("A6212", delivery.delivered_on, 30, supply_ends, next_eligible)
    ]


# --- usual_maximums and insulin treatment ------------------------------------------------------------


def test_usual_maximums_name_only_codes_under_a_row_for_the_patient() -> None:
    plain = usual_maximums(on=D(2026, 11, 2))
    assert (plain["A4259"], plain["A7035"], "E0601" in plain, "A6212" in plain) == ((1, 3), (1, 6), False, False)
    assert usual_maximums(on=D(2026, 11, 2), diagnosis_codes=["Z79.4"])["A4259"] == (3, 3)


@pytest.mark.parametrize(
    ("diagnoses", "treated"),
    [
        ((" z79.4 ",), True),  # written loosely: the code as recorded, case and spaces aside
        (("e10.9",), True),  # type 1 diabetes
        (("E11.65",), False),  # type 2 with hyperglycemia, no insulin code
        (("Z79.84",), False),  # long-term use of oral hypoglycemic drugs
        ((), False),
    ],
)
def test_insulin_treatment_is_read_from_the_diagnoses_on_the_order(diagnoses: tuple[str, ...], treated: bool) -> None:
    assert insulin_treated(load_rule_sets(), diagnoses) is treated
