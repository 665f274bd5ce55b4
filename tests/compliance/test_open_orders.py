"""Items not yet delivered count: open orders against the usual maximum, identical open orders as
duplicates (``DUPLICATE_ORDER``, needs review), through submission, approval and the inline check."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.services import lot_receive
from compliance.engine import already_on_its_way, evaluate, same_items
from compliance.inputs import (
    AttachedArtifact,
    ComplianceInput,
    Delivery,
    ItemFacts,
    OpenOrder,
    OpenOrderLine,
    PatientFacts,
    ProviderFacts,
)
from compliance.models import ComplianceSnapshot
from orders import services
from orders.compliance_checks import facts_for_order
from orders.models import Order
from tests.conftest import World
from tests.factories import PatientFactory, ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def mask(north: World) -> Any:
    """A CPAP full face mask (A7030: usual maximum 1 per 3 months, LCD L33718), in stock."""
    product = ProductFactory.create(sku="RESMED-F20-M", name="AirFit F20 full face mask", hcpcs_code="A7030")
    lot_receive(actor=None, product=product, warehouse=WarehouseFactory.create(), lot_number="F20-1", quantity=40)
    return product


def mask_order(world: World, mask: Any, **overrides: Any) -> Order:
    return world.order(items=[services.ItemRequest(sku=mask.sku, quantity=1)], **overrides)


def findings(order: Order) -> list[tuple[str, str, str]]:
    snapshot = ComplianceSnapshot.objects.filter(order_id=order.pk).order_by("-created_at").first()
    assert snapshot is not None
    result = snapshot.result
    return [(f["code"], f["severity"], f["message"]) for f in result["findings"]]


INTERFACES = (
    "PAP interface (combination oral/nasal mask, full face mask, or nasal mask or cannula type interface), each"
    " (shared by A7027, A7030, A7034)"
)


def limit_message(first: Order) -> str:
    today = timezone.localdate().isoformat()
    return (
        f"A7030: 1 ordered and 1 on open orders ({first.reference}) for delivery on {today} exceed the usual"
        f" maximum of 1 per 3 months for {INTERFACES}: at most 1 may be dispensed at a time."
    )


def test_an_identical_order_while_the_first_is_open_is_a_duplicate_over_the_limit(north: World, mask: Any) -> None:
    # Given a mask order, signed and clear, waiting for verification
    first = mask_order(north, mask)
    assert (first.status, first.ai_disposition) == ("pending_verification", "clear")

    # When the doctor orders the same mask again for the same patient
    second = mask_order(north, mask)

    # Then the open order counts against the allowance, and the second is flagged as its duplicate
    second = Order.objects.get(pk=second.pk)
    assert (second.status, second.ai_disposition) == ("on_hold", "hold")
    assert findings(second) == [
        ("QUANTITY_LIMIT_EXCEEDED", "hold", limit_message(first)),
        (
            "DUPLICATE_ORDER",
            "needs_review",
            f"An order for this item is already on its way: {first.reference}, Pending.",
        ),
    ]
    snapshot = ComplianceSnapshot.objects.get(order_id=second.pk)
    assert snapshot.inputs["open_orders"] == [
        {
            "reference": first.reference,
            "stage": "Pending",
            "expected_on": timezone.localdate().isoformat(),
            "lines": [{"quantity": 1, "sku": mask.sku, "hcpcs": "A7030"}],
        }
    ]


def test_a_duplicate_of_an_order_being_prepared_names_its_stage_and_needs_review_for_cash(
    north: World, mask: Any
) -> None:
    # Given a cash mask order verified and in fulfillment (Preparing)
    first = mask_order(north, mask, payer_type="cash")
    services.order_verify(order_id=first.pk, actor=north.ops)
    services.order_transition(order_id=first.pk, actor=north.ops, transition="request_payment")
    services.order_transition(order_id=first.pk, actor=None, transition="mark_paid")  # the payment webhook
    services.order_transition(order_id=first.pk, actor=north.ops, transition="start_fulfillment")

    # When the same order is placed again (cash: the Medicare quantity rules do not apply)
    second = Order.objects.get(pk=mask_order(north, mask, payer_type="cash").pk)

    # Then it waits for a person, naming the order on its way
    assert (second.status, second.ai_disposition) == ("pending_verification", "needs_review")
    assert findings(second) == [
        (
            "DUPLICATE_ORDER",
            "needs_review",
            f"An order for this item is already on its way: {first.reference}, Preparing.",
        )
    ]


@pytest.mark.parametrize("ending", ["cancel", "reject"])
def test_a_cancelled_or_rejected_order_does_not_count(north: World, mask: Any, ending: str) -> None:
    first = mask_order(north, mask)
    services.order_transition(order_id=first.pk, actor=north.ops, transition=ending, reason="Entered twice")

    second = Order.objects.get(pk=mask_order(north, mask).pk)

    assert (second.status, second.ai_disposition) == ("pending_verification", "clear")
    assert findings(second) == []


def test_a_delivered_order_counts_as_history_not_as_a_duplicate(north: World, mask: Any) -> None:
    first = mask_order(north, mask)
    services.order_verify(order_id=first.pk, actor=north.ops)
    services.order_transition(order_id=first.pk, actor=north.ops, transition="start_fulfillment")
    services.order_transition(order_id=first.pk, actor=north.ops, transition="ship")
    services.order_complete(order_id=first.pk, actor=north.ops)

    second = Order.objects.get(pk=mask_order(north, mask).pk)

    today = timezone.localdate().isoformat()
    assert [code for code, _severity, _message in findings(second)] == [
        "QUANTITY_LIMIT_EXCEEDED",
        "REFILL_TOO_EARLY",
        "REFILL_CONFIRMATION_REQUIRED",
    ]
    # delivered today: the same day's delivery and order together are more than one dispense
    assert findings(second)[0][2] == (
        f"A7030: 1 ordered and 1 delivered for delivery on {today} exceed the usual maximum of 1 per 3 months for"
        f" {INTERFACES}: at most 1 may be dispensed at a time."
    )
    assert facts_for_order(second).open_orders == ()


def test_different_items_or_another_patient_are_no_duplicate(north: World, mask: Any) -> None:
    first = mask_order(north, mask)
    # another patient: nothing of the first order counts
    other = PatientFactory.create(provider=north.provider, territory=north.territory)
    assert findings(mask_order(north, mask, patient_id=other.pk)) == []
    # the mask and something else: not identical, but the mask still counts against its allowance
    both = north.order(
        items=[services.ItemRequest(sku=mask.sku, quantity=1), services.ItemRequest(sku=north.product.sku, quantity=1)]
    )
    assert [code for code, _severity, _message in findings(both)] == ["QUANTITY_LIMIT_EXCEEDED"]
    assert first.reference in findings(both)[0][2]


def test_re_checking_the_first_order_at_approval_is_not_flagged_by_the_second(north: World, mask: Any) -> None:
    first = mask_order(north, mask)
    mask_order(north, mask)

    verified = services.order_verify(order_id=first.pk, actor=north.ops)

    assert verified.status == "verified"
    assert findings(first) == []


def test_the_inline_check_flags_the_duplicate_too(north: World, mask: Any, api: Any) -> None:
    first = mask_order(north, mask)
    response = api(north.doctor).post(
        "/api/portal/compliance/check",
        {
            "patient_id": str(north.patient.pk),
            "provider_id": str(north.provider.pk),
            "payer_type": "insurance",
            "signed": True,
            "items": [{"sku": mask.sku, "quantity": 1}],
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert [(f["code"], f["severity"], f["message"]) for f in body["findings"]] == [
        ("QUANTITY_LIMIT_EXCEEDED", "hold", limit_message(first)),
        (
            "DUPLICATE_ORDER",
            "needs_review",
            f"An order for this item is already on its way: {first.reference}, Pending.",
        ),
    ]


def test_open_orders_are_read_in_one_query_whatever_their_number(north: World, mask: Any) -> None:
    def queries_for_facts() -> int:
        latest = Order.objects.order_by("-created_at").first()
        with CaptureQueriesContext(connection) as captured:
            facts_for_order(latest)
        return len(captured.captured_queries)

    lines = [services.ItemRequest(sku=mask.sku, quantity=1), services.ItemRequest(sku=north.product.sku, quantity=1)]
    north.order(items=lines)
    north.order(items=lines)
    few = queries_for_facts()
    for _ in range(4):
        north.order(items=lines)
    many = queries_for_facts()

    assert few == many
    assert len(facts_for_order(Order.objects.order_by("-created_at").first()).open_orders) == 5


# --- the engine alone ---------------------------------------------------------------------------


def facts(*items: ItemFacts, open_orders: tuple[OpenOrder, ...]) -> ComplianceInput:
    return ComplianceInput(
        order_date=dt.date(2026, 3, 2),
        requested_date=None,
        payer_type="insurance",
        payer_kind="medicare_ffs",
        patient=PatientFacts(known=True, has_name=True, in_territory=True),
        provider=ProviderFacts(known=True, name="Dr. Who", npi="1245319599", credentialed_in_territory=True),
        items=items,
        signed_on=dt.date(2026, 3, 2),
        open_orders=open_orders,
    )


def test_an_open_order_counts_on_the_day_it_is_expected() -> None:
    # A mask delivered on 2026-03-02 lasts until 2026-06-02 (1 per 3 months). An open order for
    # another mask expected from 2026-05-23 (10 days before) is a timely refill after it; one expected
    # on 2026-05-22 would come too early. (The old rolling window counted an open order up to a
    # period either side: it held the order for any open mask expected before 2026-06-02.)
    mask = ItemFacts(key="0", sku="F20", hcpcs="A7030", description="Mask", quantity=1)
    timely = OpenOrder("ABC-DEF", "Pending", dt.date(2026, 5, 23), (OpenOrderLine(1, "F30", "A7030"),))
    early = OpenOrder("GHJ-KLM", "Pending", dt.date(2026, 5, 22), (OpenOrderLine(1, "F30", "A7030"),))

    assert evaluate(facts(mask, open_orders=(timely,))).findings == ()
    held = evaluate(facts(mask, open_orders=(early,))).findings
    assert [(f.code, str(f.severity)) for f in held] == [("QUANTITY_LIMIT_EXCEEDED", "hold")]
    assert held[0].message == (
        "A7030: 1 on open orders (GHJ-KLM) for delivery on 2026-05-22 exceed the usual maximum of 1 per 3 months"
        f" for {INTERFACES}: the supply ordered for 2026-03-02 lasts until 2026-06-02, so more may be delivered"
        " from 2026-05-23."
    )


def test_an_order_between_a_delivery_and_an_open_order_holds_only_if_one_of_them_is_too_early() -> None:
    # Delivered 2026-01-01 (lasts until 2026-04-01), this order for 2026-03-22 (lasts until
    # 2026-07-01), an open order expected 2026-06-21: each comes 10 days before the supply ends.
    # The rolling window added all three (3 masks around one 3-month window) and held the order.
    mask = ItemFacts(key="0", sku="F20", hcpcs="A7030", description="Mask", quantity=1)
    later = OpenOrder("ABC-DEF", "Pending", dt.date(2026, 6, 21), (OpenOrderLine(1, "F30", "A7030"),))
    delivered = (Delivery(hcpcs="A7030", quantity=1, delivered_on=dt.date(2026, 1, 1)),)
    confirmed = (AttachedArtifact("PATIENT_REFILL_CONFIRMATION", dt.date(2026, 3, 20)),)
    on_time = dataclasses.replace(
        facts(mask, open_orders=(later,)),
        order_date=dt.date(2026, 3, 22),
        supply_history=delivered,
        artifacts=confirmed,
    )
    assert evaluate(on_time).findings == ()
    pushes_the_open_order = dataclasses.replace(
        on_time, open_orders=(dataclasses.replace(later, expected_on=dt.date(2026, 6, 20)),)
    )
    assert [f.code for f in evaluate(pushes_the_open_order).findings] == ["QUANTITY_LIMIT_EXCEEDED"]


@pytest.mark.parametrize(
    ("items", "lines", "identical"),
    [
        ([("F20", "A7030")], [("F20", "A7030")], True),
        ([("F20", "A7030"), ("TUBE", "A7037")], [("TUBE", "A7037"), ("F20", "A7030")], True),
        ([("F20", "A7030")], [("F20", "A7030"), ("TUBE", "A7037")], False),
        ([("F20", "A7030")], [("F30", "A7030")], False),  # another mask of the same code
        ([(None, "A7030")], [("F30", "A7030")], True),  # a line named by its code only
        ([(None, None)], [("F30", "A7030")], False),
        ([(None, None)], [("F30", None)], False),  # a line with neither matches nothing, not even a line without a code
        ([], [("F30", "A7030")], False),
    ],
)
def test_identical_means_the_same_set_of_skus_or_codes(
    items: list[tuple[str | None, str | None]], lines: list[tuple[str, str]], identical: bool
) -> None:
    assert (
        same_items(
            [ItemFacts(key=str(i), sku=sku, hcpcs=code, quantity=1) for i, (sku, code) in enumerate(items)],
            [OpenOrderLine(2, sku, code) for sku, code in lines],
        )
        is identical
    )


def test_the_words_for_an_open_order_speak_of_one_item_unless_told_more() -> None:
    open_order = OpenOrder("2K7-XQ4", "Preparing", dt.date(2026, 11, 20), (OpenOrderLine(1, "F30", "A7030"),))
    assert already_on_its_way(open_order) == "An order for this item is already on its way: 2K7-XQ4, Preparing."
    assert already_on_its_way(open_order, items=2) == (
        "An order for these items is already on its way: 2K7-XQ4, Preparing."
    )


@pytest.mark.parametrize("withdraw", ["cancel", "reject"])
def test_withdrawing_the_first_order_releases_the_second_it_held(north: World, mask: Any, withdraw: str) -> None:
    # Given two identical mask orders: the second held (over the limit) and flagged as a duplicate
    first = mask_order(north, mask)
    second = mask_order(north, mask)
    other_patients = mask_order(north, mask, patient_id=north.other_patient().pk)
    assert Order.objects.get(pk=second.pk).ai_disposition == "hold"
    snapshots_of_other = ComplianceSnapshot.objects.filter(order_id=other_patients.pk).count()

    # When the first is withdrawn
    services.order_transition(order_id=first.pk, actor=north.ops, transition=withdraw, reason="Entered twice")

    # Then the second is checked again without it: clear, released from its hold, and on the timeline
    second = Order.objects.get(pk=second.pk)
    assert (second.status, second.ai_disposition) == ("pending_verification", "clear")
    recheck = ComplianceSnapshot.objects.filter(order_id=second.pk).order_by("-created_at").first()
    assert recheck is not None
    assert (recheck.kind, recheck.disposition, recheck.result["findings"]) == ("recheck", "clear", [])
    assert second.events.filter(transition="release_hold").count() == 1
    # another patient's order is not touched
    assert ComplianceSnapshot.objects.filter(order_id=other_patients.pk).count() == snapshots_of_other
