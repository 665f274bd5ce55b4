"""Order services: creation and its validation, verification, cancellation, notes, status mapping."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import User
from core.exceptions import PermissionDenied, ValidationFailed
from core.models import OutboxEvent
from orders import services
from orders.exceptions import InvalidStatusTransition, OrderNotFound
from orders.models import Order, OrderEvent, OrderItem, OrderStatus
from patients.exceptions import PatientProviderMismatch
from territories.exceptions import TerritoryMismatch
from territories.services import membership_grant
from tests.conftest import World
from tests.factories import ProductFactory, UserFactory

REFERENCE = re.compile(r"^[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}$")


def _counts() -> dict[str, int]:
    return {
        "orders": Order.objects.count(),
        "items": OrderItem.objects.count(),
        "events": OrderEvent.objects.count(),
        "outbox": OutboxEvent.objects.count(),
    }


def _order_state(order_id: Any) -> dict[str, Any]:
    """Everything a refused service call must leave as it was, read fresh from the database."""
    return {
        "order": Order.objects.filter(pk=order_id).values().get(),
        "events": list(OrderEvent.objects.filter(order_id=order_id).order_by("sequence").values_list("id", flat=True)),
        "outbox": sorted(OutboxEvent.objects.filter(aggregate_id=str(order_id)).values_list("id", flat=True)),
    }


def _create_kwargs(world: World, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "actor": world.doctor,
        "patient_id": world.patient.pk,
        "provider_id": world.provider.pk,
        "items": [services.ItemRequest(sku=world.product.sku, quantity=2)],
        "payer_type": "insurance",
        "sign": True,
    }
    kwargs.update(overrides)
    return kwargs


@pytest.fixture
def doctor_in_both(north: World, south: World) -> User:
    """A doctor working in north and south: sees both territories' patients and providers."""
    user = UserFactory.create(username="dr.both", territory=north.territory, role="doctor")
    membership_grant(user=user, territory=south.territory, role="doctor")
    return user


# --- order_create: refusals -------------------------------------------------------------------


def test_create_with_unknown_provider_is_a_validation_error(north: World) -> None:
    before = _counts()
    with pytest.raises(ValidationFailed) as raised:
        services.order_create(**_create_kwargs(north, provider_id=uuid.uuid4()))
    assert raised.value.details == {"provider_id": ["Unknown provider."]}
    assert _counts() == before


def test_create_with_unknown_patient_is_a_mismatch_like_any_patient_outside_the_territory(north: World) -> None:
    before = _counts()
    with pytest.raises(PatientProviderMismatch) as raised:
        services.order_create(**_create_kwargs(north, patient_id=uuid.uuid4()))
    assert raised.value.code == "PATIENT_PROVIDER_MISMATCH"
    assert raised.value.details == {}
    assert _counts() == before


def test_create_with_a_patient_of_another_territory_is_a_mismatch(
    north: World, south: World, doctor_in_both: User
) -> None:
    # Given a doctor who sees both patients, when the north provider orders for the south patient
    before = _counts()
    with pytest.raises(PatientProviderMismatch) as raised:
        services.order_create(**_create_kwargs(north, actor=doctor_in_both, patient_id=south.patient.pk))
    # Then it is refused and nothing is written
    assert raised.value.code == "PATIENT_PROVIDER_MISMATCH"
    assert _counts() == before


def test_create_with_a_provider_outside_the_chosen_territory_is_a_mismatch(
    north: World, south: World, doctor_in_both: User
) -> None:
    # Given Territory-Id north, when the order names the south provider (and the south patient)
    before = _counts()
    with pytest.raises(PatientProviderMismatch) as raised:
        services.order_create(
            **_create_kwargs(
                north,
                actor=doctor_in_both,
                territory=north.territory,
                provider_id=south.provider.pk,
                patient_id=south.patient.pk,
            )
        )
    assert raised.value.message == "The provider does not belong to the order's territory."
    assert _counts() == before


def test_system_actor_is_held_to_the_patient_provider_rule(north: World, south: World) -> None:
    before = _counts()
    with pytest.raises(PatientProviderMismatch):
        services.order_create(**_create_kwargs(north, actor=None, patient_id=south.patient.pk))
    assert _counts() == before


def test_master_distributor_may_not_place_orders(north: World) -> None:
    before = _counts()
    with pytest.raises(PermissionDenied) as raised:
        services.order_create(**_create_kwargs(north, actor=north.distributor))
    assert raised.value.message == "You may not place orders in this territory."
    assert _counts() == before


def test_user_of_another_territory_gets_territory_mismatch(north: World, south: World) -> None:
    # Given a south doctor naming north as the order's territory (their own provider and patient)
    before = _counts()
    with pytest.raises(TerritoryMismatch) as raised:
        services.order_create(
            **_create_kwargs(
                south,
                actor=south.doctor,
                territory=north.territory,
            )
        )
    assert raised.value.details == {"territory_id": str(north.territory.pk)}
    assert _counts() == before


def test_unknown_sku_is_a_validation_error_naming_the_item(north: World) -> None:
    before = _counts()
    items = [
        services.ItemRequest(sku="NO-SUCH-SKU", quantity=1),
        services.ItemRequest(sku=north.product.sku, quantity=1),
    ]
    with pytest.raises(ValidationFailed) as raised:
        services.order_create(**_create_kwargs(north, items=items))
    assert raised.value.details == {"items": {"0": {"sku": ["Unknown or inactive product."]}}}
    assert _counts() == before


def test_inactive_product_is_a_validation_error(north: World) -> None:
    retired = ProductFactory.create(sku="RETIRED-1", active=False)
    before = _counts()
    items = [services.ItemRequest(sku=north.product.sku, quantity=1), services.ItemRequest(sku=retired.sku, quantity=1)]
    with pytest.raises(ValidationFailed) as raised:
        services.order_create(**_create_kwargs(north, items=items))
    assert raised.value.details == {"items": {"1": {"sku": ["Unknown or inactive product."]}}}
    assert _counts() == before


# --- order_create: success --------------------------------------------------------------------


def test_create_writes_order_items_events_and_outbox_rows_and_runs_the_checks(north: World) -> None:
    # Given two products, the second one out of stock and not dropshipped
    second = ProductFactory.create(sku="CPAP-FILTER", hcpcs_code="A7038", price_cents=899)
    before = _counts()

    # When the doctor orders them
    order = services.order_create(
        **_create_kwargs(
            north,
            items=[
                services.ItemRequest(sku=north.product.sku, quantity=2),
                services.ItemRequest(sku=second.sku, quantity=6),
            ],
            diagnosis_codes=["g4733"],
            notes="Mask leaks at night",
            insurance={"carrier": "Medicare", "policy_number": "1EG4TE5MK73", "group_number": ""},
        )
    )

    # Then the order, its items, the created event, the compliance check (a hold: the filter cannot be
    # covered) and the hold itself are written, with order.created and order.held in the outbox
    assert _counts() == {
        "orders": before["orders"] + 1,
        "items": before["items"] + 2,
        "events": before["events"] + 3,
        "outbox": before["outbox"] + 2,
    }
    order = Order.objects.get(pk=order.pk)
    assert REFERENCE.match(order.reference), order.reference
    assert (order.status, order.territory_id, order.patient_id, order.provider_id, order.created_by_id) == (
        "on_hold",
        north.territory.pk,
        north.patient.pk,
        north.provider.pk,
        north.doctor.pk,
    )
    assert (order.source, order.priority, order.delivery_mode, order.payer_type) == (
        "api",
        "routine",
        "ship_to_patient",
        "insurance",
    )
    assert order.ai_disposition == "hold"
    assert order.approver_id is None
    assert (order.signed_by_id, order.order_date) == (north.doctor.pk, timezone.localdate())
    assert len(order.signature_hash) == 64
    assert order.diagnosis_codes == ["G47.33"]
    assert order.notes == "Mask leaks at night"
    assert order.insurance_details == {"carrier": "Medicare", "policy_number": "1EG4TE5MK73", "group_number": ""}
    assert list(order.items.order_by("sku").values_list("sku", "quantity", "unit_price_cents", "product_id")) == [
        ("CPAP-FILTER", 6, 899, second.pk),
        (north.product.sku, 2, 12500, north.product.pk),
    ]
    assert order.total_cents == 6 * 899 + 2 * 12500

    assert list(OrderEvent.objects.filter(order=order).values_list("sequence", "kind", "transition")) == [
        (1, "created", ""),
        (2, "compliance", ""),
        (3, "transition", "hold"),
    ]
    event = OrderEvent.objects.get(order=order, sequence=1)
    assert (event.kind, event.from_status, event.to_status, event.transition, event.sequence) == (
        "created",
        "",
        "pending_verification",
        "",
        1,
    )
    assert (event.actor_id, event.actor_kind, event.territory_id) == (north.doctor.pk, "staff", north.territory.pk)
    # The world's product is in stock; the filter is not, so its line carries the inventory flag.
    assert (event.reason, event.payload) == (
        None,
        {"inventory_flags": [{"sku": "CPAP-FILTER", "requested": 6, "available": 0}]},
    )
    hold = OrderEvent.objects.get(order=order, sequence=3)
    # Six disposable filters (A7038, two a month) are a three-month supply: within the usual maximum.
    assert (hold.actor_id, hold.actor_kind, hold.reason) == (None, "ai", "Compliance: INVENTORY_SHORTFALL")

    outbox = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.created")
    assert (outbox.topic, outbox.aggregate_type) == ("order.created", "orders.order")
    assert outbox.payload == {
        "order_id": str(order.pk),
        "territory_id": str(north.territory.pk),
        "event_id": str(event.pk),
        "from_status": None,
        "to_status": "pending_verification",
    }


def test_item_prices_are_a_snapshot(north: World) -> None:
    order = north.order()
    north.product.price_cents = 99999
    north.product.save()
    assert list(OrderItem.objects.filter(order=order).values_list("unit_price_cents", flat=True)) == [12500]


def test_references_differ_between_orders(north: World) -> None:
    references = {north.order().reference for _ in range(5)}
    assert len(references) == 5


def test_system_created_order_has_a_system_event(north: World) -> None:
    order = services.order_create(**_create_kwargs(north, actor=None, sign=False))
    event = OrderEvent.objects.get(order=order, sequence=1)
    assert (event.actor_id, event.actor_kind) == (None, "system")
    assert Order.objects.get(pk=order.pk).created_by_id is None


# --- transitions ------------------------------------------------------------------------------


def test_verify_sets_approver_verified_at_and_verification_data(north: World) -> None:
    order = north.order()
    started = timezone.now()
    services.order_verify(
        order_id=order.pk,
        actor=north.ops,
        notes="Coverage confirmed",
        verification_data={"verified_by": "ops", "verification_method": "portal"},
    )
    order = Order.objects.get(pk=order.pk)
    assert order.status == "verified"
    assert order.approver_id == north.ops.pk
    assert order.verified_at is not None
    assert started <= order.verified_at <= timezone.now()
    assert order.verification_data == {"verified_by": "ops", "verification_method": "portal"}
    event = OrderEvent.objects.get(order=order, transition="verify")
    assert (event.transition, event.reason, event.actor_id) == ("verify", "Coverage confirmed", north.ops.pk)
    assert sorted(OutboxEvent.objects.filter(aggregate_id=str(order.pk)).values_list("topic", flat=True)) == [
        "order.approved",
        "order.created",
        "order.verified",
    ]


def test_system_verification_has_no_approver(north: World) -> None:
    order = north.order()
    services.order_verify(order_id=order.pk, actor=None)
    order = Order.objects.get(pk=order.pk)
    assert (order.status, order.approver_id) == ("verified", None)
    assert order.verified_at is not None


@pytest.mark.parametrize("reason", ["", "   "])
def test_cancel_requires_a_reason(north: World, reason: str) -> None:
    order = north.order()
    before = _order_state(order.pk)
    with pytest.raises(ValidationFailed) as raised:
        services.order_cancel(order_id=order.pk, actor=north.doctor, reason=reason)
    assert raised.value.details == {"reason": ["A reason is required."]}
    assert _order_state(order.pk) == before


def test_cancel_records_reason_and_time(north: World) -> None:
    order = north.order()
    services.order_cancel(order_id=order.pk, actor=north.doctor, reason="  Patient moved away ")
    order = Order.objects.get(pk=order.pk)
    assert order.status == "cancelled"
    assert order.cancelled_at is not None
    event = OrderEvent.objects.get(order=order, transition="cancel")
    assert (event.transition, event.from_status, event.to_status, event.reason) == (
        "cancel",
        "pending_verification",
        "cancelled",
        "Patient moved away",
    )


def test_complete_sets_completed_at(north: World) -> None:
    order = north.order()
    for transition in ("verify", "start_fulfillment", "ship"):
        services.order_transition(order_id=order.pk, actor=north.ops, transition=transition)
    services.order_complete(order_id=order.pk, actor=north.distributor, notes="Signed for")
    order = Order.objects.get(pk=order.pk)
    assert order.status == "completed"
    assert order.completed_at is not None
    last = OrderEvent.objects.filter(order=order).order_by("-sequence").first()
    assert last is not None
    assert (last.transition, last.reason) == ("complete", "Signed for")


def test_invalid_transition_names_current_and_requested_status(north: World) -> None:
    order = north.order()
    before = _order_state(order.pk)
    with pytest.raises(InvalidStatusTransition) as raised:
        services.order_complete(order_id=order.pk, actor=north.ops)
    assert raised.value.code == "INVALID_STATUS_TRANSITION"
    assert raised.value.message == "Cannot transition from pending_verification to completed"
    assert raised.value.details == {
        "order_id": str(order.pk),
        "current_status": "pending_verification",
        "requested_status": "completed",
    }
    assert _order_state(order.pk) == before


def test_failed_condition_explains_itself(north: World) -> None:
    order = north.order(payer_type="insurance")
    services.order_verify(order_id=order.pk, actor=north.ops)
    before = _order_state(order.pk)
    with pytest.raises(InvalidStatusTransition) as raised:
        services.order_transition(order_id=order.pk, actor=north.ops, transition="request_payment")
    assert (
        raised.value.message
        == "Cannot transition from verified to awaiting_payment: only cash-pay orders wait for payment"
    )
    assert _order_state(order.pk) == before


@pytest.mark.parametrize("order_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_transition_of_a_missing_order_is_not_found(north: World, order_id: str) -> None:
    before = _counts()
    with pytest.raises(OrderNotFound):
        services.order_verify(order_id=order_id, actor=north.ops)
    assert _counts() == before


def test_transition_of_another_territorys_order_is_not_found(north: World, south: World) -> None:
    order = south.order()
    before = _order_state(order.pk)
    with pytest.raises(OrderNotFound):
        services.order_verify(order_id=order.pk, actor=north.ops)
    with pytest.raises(OrderNotFound):
        services.order_add_note(order_id=order.pk, actor=north.ops, note="probe")
    assert _order_state(order.pk) == before


# --- notes ------------------------------------------------------------------------------------


def test_add_note_appends_a_note_event(north: World) -> None:
    order = north.order()
    services.order_verify(order_id=order.pk, actor=north.ops)
    before = _order_state(order.pk)

    event = services.order_add_note(order_id=order.pk, actor=north.doctor, note="  Patient prefers mornings ")

    after = _order_state(order.pk)
    assert after["order"] == before["order"]
    assert after["outbox"] == before["outbox"]
    assert after["events"] == [*before["events"], event.pk]
    event = OrderEvent.objects.get(pk=event.pk)
    assert (event.kind, event.from_status, event.to_status, event.transition, event.sequence) == (
        "note",
        "verified",
        "verified",
        "",
        len(before["events"]) + 1,
    )
    assert (event.reason, event.actor_id, event.actor_kind) == ("Patient prefers mornings", north.doctor.pk, "staff")


@pytest.mark.parametrize("note", ["", "  \n "])
def test_empty_note_is_refused(north: World, note: str) -> None:
    order = north.order()
    before = _order_state(order.pk)
    with pytest.raises(ValidationFailed) as raised:
        services.order_add_note(order_id=order.pk, actor=north.doctor, note=note)
    assert raised.value.details == {"note": ["A note cannot be empty."]}
    assert _order_state(order.pk) == before


# --- order_set_status ---------------------------------------------------------------------------

# target status -> (payer type, the system's path to the source state, the transition expected)
SET_STATUS_CASES: dict[str, tuple[str, list[str], str]] = {
    "on_hold": ("insurance", [], "hold"),
    "pending_verification": ("insurance", ["hold"], "release_hold"),
    "verified": ("insurance", [], "verify"),
    "rejected": ("insurance", ["hold"], "reject"),
    "awaiting_payment": ("cash", ["verify"], "request_payment"),
    "paid": ("cash", ["verify", "request_payment"], "mark_paid"),
    "in_progress": ("insurance", ["verify"], "start_fulfillment"),
    "shipped": ("insurance", ["verify", "start_fulfillment"], "ship"),
    "completed": ("insurance", ["verify", "start_fulfillment", "ship"], "complete"),
    "cancelled": ("insurance", ["verify", "start_fulfillment"], "cancel"),
}


def test_set_status_cases_cover_every_status() -> None:
    assert sorted(SET_STATUS_CASES) == sorted(OrderStatus.values)


@pytest.mark.parametrize("status", sorted(SET_STATUS_CASES))
def test_set_status_maps_every_status_to_its_transition(north: World, status: str) -> None:
    payer_type, path, transition = SET_STATUS_CASES[status]
    order = north.order(payer_type=payer_type)
    for step in path:
        services.order_transition(order_id=order.pk, actor=None, transition=step)

    services.order_set_status(
        order_id=order.pk, actor=north.admin, status=status, notes="By status", verification_data={"method": "fax"}
    )

    order = Order.objects.get(pk=order.pk)
    assert order.status == status
    # The last status change (cancelling and starting fulfillment add a fulfillment entry after it).
    event = OrderEvent.objects.filter(order=order, kind="transition").order_by("-sequence").first()
    assert event is not None
    assert (event.transition, event.to_status, event.reason, event.actor_id) == (
        transition,
        status,
        "By status",
        north.admin.pk,
    )
    # verification_data is only taken by verification
    assert order.verification_data == ({"method": "fax"} if transition == "verify" else None)


def test_set_status_to_an_unknown_status_is_a_validation_error(north: World) -> None:
    order = north.order()
    before = _order_state(order.pk)
    with pytest.raises(ValidationFailed) as raised:
        services.order_set_status(order_id=order.pk, actor=north.admin, status="teleported")
    assert raised.value.details == {"status": ["Unknown status."]}
    assert _order_state(order.pk) == before


def test_set_status_refuses_an_illegal_jump(north: World) -> None:
    order = north.order()
    before = _order_state(order.pk)
    with pytest.raises(InvalidStatusTransition):
        services.order_set_status(order_id=order.pk, actor=north.admin, status="shipped")
    assert _order_state(order.pk) == before
