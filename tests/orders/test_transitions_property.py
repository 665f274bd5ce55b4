"""Transition rules, property-based: random transition sequences by random actors.

The expected rules are written out here from the platform issue, independently of
``orders.models``: which edges exist (and for which payer type), which role may take each,
and which outbox topics each announces. Whatever the sequence, the order never reaches a
state outside ``OrderStatus``; every change moves along an allowed edge and leaves exactly one
timeline event and its outbox rows; every refusal leaves the order, its timeline and the
outbox exactly as they were.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.exceptions import DomainError, PermissionDenied
from core.models import OutboxEvent
from orders.exceptions import InvalidStatusTransition
from orders.models import Order, OrderEvent, OrderStatus
from orders.services import TRANSITIONS, order_transition
from tests.conftest import World
from tests.factories import PatientFactory

PENDING_VERIFICATION = "pending_verification"
ON_HOLD = "on_hold"
VERIFIED = "verified"
AWAITING_PAYMENT = "awaiting_payment"
PAID = "paid"
IN_PROGRESS = "in_progress"
SHIPPED = "shipped"
COMPLETED = "completed"
REJECTED = "rejected"
CANCELLED = "cancelled"

TERMINAL = {COMPLETED, REJECTED, CANCELLED}
NON_TERMINAL = {PENDING_VERIFICATION, ON_HOLD, VERIFIED, AWAITING_PAYMENT, PAID, IN_PROGRESS, SHIPPED}
# The display stage "Pending": where a doctor may still cancel.
PENDING_STAGE = {PENDING_VERIFICATION, ON_HOLD, VERIFIED, AWAITING_PAYMENT, PAID}

# transition -> {source: target}; payer-specific edges are added by ``expected_target``.
EDGES: dict[str, dict[str, str]] = {
    "hold": {PENDING_VERIFICATION: ON_HOLD},
    "release_hold": {ON_HOLD: PENDING_VERIFICATION},
    "verify": {PENDING_VERIFICATION: VERIFIED, ON_HOLD: VERIFIED},
    "reject": {PENDING_VERIFICATION: REJECTED, ON_HOLD: REJECTED},
    "request_payment": {},  # verified -> awaiting_payment, cash only
    "mark_paid": {AWAITING_PAYMENT: PAID},
    "start_fulfillment": {PAID: IN_PROGRESS},  # + verified -> in_progress, insurance only
    "ship": {IN_PROGRESS: SHIPPED},
    "complete": {SHIPPED: COMPLETED},
    "cancel": dict.fromkeys(NON_TERMINAL, CANCELLED),
}
TARGET: dict[str, str] = {
    "hold": ON_HOLD,
    "release_hold": PENDING_VERIFICATION,
    "verify": VERIFIED,
    "reject": REJECTED,
    "request_payment": AWAITING_PAYMENT,
    "mark_paid": PAID,
    "start_fulfillment": IN_PROGRESS,
    "ship": SHIPPED,
    "complete": COMPLETED,
    "cancel": CANCELLED,
}
TOPICS: dict[str, list[str]] = {
    "hold": ["order.held"],
    "release_hold": ["order.hold_released"],
    "verify": ["order.approved", "order.verified"],
    "reject": ["order.rejected"],
    "request_payment": ["order.awaiting_payment"],
    "mark_paid": ["order.paid"],
    "start_fulfillment": ["order.fulfillment.started"],
    "ship": ["order.shipped"],
    "complete": ["order.delivered"],
    "cancel": ["order.cancelled"],
}
ROLES = ["doctor", "ops", "admin", "distributor", "system"]
TRANSITION_NAMES = sorted(TRANSITIONS)


def expected_target(transition: str, status: str, payer_type: str) -> str | None:
    """The status ``transition`` leads to from ``status``, or None if the edge does not exist."""
    if transition == "request_payment" and status == VERIFIED and payer_type == "cash":
        return AWAITING_PAYMENT
    if transition == "start_fulfillment" and status == VERIFIED and payer_type == "insurance":
        return IN_PROGRESS
    return EDGES[transition].get(status)


def role_may(role: str, transition: str, status: str) -> bool:
    """Whether ``role`` may take ``transition`` (an existing edge) from ``status``."""
    if role in {"system", "admin"}:
        return True
    if role == "ops":
        return transition != "mark_paid"
    if role == "distributor":
        return transition in {"start_fulfillment", "ship", "complete"}
    assert role == "doctor"
    return transition == "cancel" and status in PENDING_STAGE


def test_expected_table_covers_every_transition_of_the_code() -> None:
    assert sorted(EDGES) == TRANSITION_NAMES
    assert {name: sorted(spec.topics) for name, spec in TRANSITIONS.items()} == TOPICS
    assert {name: spec.target.value for name, spec in TRANSITIONS.items()} == TARGET


def _actor(world: World, role: str) -> Any:
    return None if role == "system" else getattr(world, role)


Snapshot = tuple[str, Any, int, frozenset[Any]]


def _snapshot(order_id: Any) -> Snapshot:
    """Status and updated_at (a fresh read), timeline length and the order's outbox row ids."""
    status, updated_at = Order.objects.values_list("status", "updated_at").get(pk=order_id)
    events = OrderEvent.objects.filter(order_id=order_id).count()
    outbox = frozenset(OutboxEvent.objects.filter(aggregate_id=str(order_id)).values_list("id", flat=True))
    return status, updated_at, events, outbox


def _attempt(*, world: World, order_id: Any, payer_type: str, before: Snapshot, transition: str, role: str) -> Snapshot:
    """Try ``transition`` as ``role`` and check the outcome against the expected rules."""
    status, updated_at, event_count, outbox_ids = before
    actor = _actor(world, role)
    target = expected_target(transition, status, payer_type)
    permitted = target is not None and role_may(role, transition, status)

    error: DomainError | None = None
    try:
        order_transition(order_id=order_id, actor=actor, transition=transition, reason="because")
    except DomainError as exc:
        error = exc

    after = _snapshot(order_id)
    new_status, new_updated_at, new_event_count, new_outbox_ids = after
    assert new_status in OrderStatus.values
    if not permitted:
        if target is None:
            assert type(error) is InvalidStatusTransition, (transition, role, status, error)
            assert error.details == {
                "order_id": str(order_id),
                "current_status": status,
                "requested_status": TARGET[transition],
            }
        else:
            assert type(error) is PermissionDenied, (transition, role, status, error)
        assert after == before, (transition, role, status)
        return after

    assert error is None, (transition, role, status, error)
    assert new_status == target
    assert new_updated_at > updated_at
    # Verifying first re-runs the compliance checks; then the status change, then (starting,
    # cancelling or rejecting) at most one fulfillment entry.
    added_events = list(OrderEvent.objects.filter(order_id=order_id, sequence__gt=event_count).order_by("sequence"))
    expected_kinds: tuple[list[str], ...] = (["transition"], ["transition", "fulfillment"])
    if transition == "verify":
        expected_kinds = (["compliance", "transition"],)
    assert [e.kind for e in added_events] in expected_kinds
    assert new_event_count == event_count + len(added_events)
    event = next(e for e in added_events if e.kind == "transition")
    assert event.sequence == event_count + len(added_events) - (1 if added_events[-1].kind == "fulfillment" else 0)
    assert (event.kind, event.from_status, event.to_status, event.transition) == (
        "transition",
        status,
        target,
        transition,
    )
    assert event.actor_id == (None if actor is None else actor.pk)
    assert event.actor_kind == ("system" if actor is None else "staff")
    assert event.reason == "because"
    added = OutboxEvent.objects.filter(pk__in=new_outbox_ids - outbox_ids)
    assert sorted(added.values_list("topic", flat=True)) == TOPICS[transition]
    for outbox_event in added:
        assert outbox_event.aggregate_type == "orders.order"
        assert outbox_event.payload == {
            "order_id": str(order_id),
            "territory_id": str(world.territory.pk),
            "event_id": str(event.pk),
            "from_status": status,
            "to_status": target,
        }
    return after


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), payer_type=st.sampled_from(["cash", "insurance"]))
def test_random_transition_sequences_follow_the_rules(north: World, data: st.DataObject, payer_type: str) -> None:
    # Given a fresh order (the World is shared by the examples of this test; each gets its own order,
    # for its own patient, so that earlier examples' deliveries are not this patient's supply history)
    patient = PatientFactory.create(provider=north.provider, territory=north.territory)
    order = north.order(payer_type=payer_type, patient_id=patient.pk)
    state = _snapshot(order.pk)
    assert (state[0], state[2], len(state[3])) == (PENDING_VERIFICATION, 2, 1)  # created, compliance check
    steps = data.draw(st.integers(min_value=0, max_value=12), label="steps")

    for _ in range(steps):
        # Half of the steps pick an edge that exists (other than cancel), so that deep states are reached too.
        status = state[0]
        existing = [name for name in TRANSITION_NAMES if expected_target(name, status, payer_type) is not None]
        forward = [name for name in existing if name != "cancel"] or existing
        follow_edge = bool(forward) and data.draw(st.booleans(), label="follow an existing edge")
        if follow_edge:
            transition = data.draw(st.sampled_from(forward), label="transition")
        else:
            transition = data.draw(st.sampled_from(TRANSITION_NAMES), label="transition")
        role = data.draw(st.sampled_from(ROLES), label="role")
        # When the actor tries it, then the outcome follows the rules
        state = _attempt(
            world=north, order_id=order.pk, payer_type=payer_type, before=state, transition=transition, role=role
        )

    # The timeline replays the walk: consecutive sequence numbers, each change starting where the last ended.
    timeline = list(OrderEvent.objects.filter(order_id=order.pk).order_by("sequence"))
    assert [e.sequence for e in timeline] == list(range(1, len(timeline) + 1))
    assert timeline[0].kind == "created"
    for previous, current in itertools.pairwise(timeline):
        assert current.from_status == previous.to_status
    assert timeline[-1].to_status == state[0]


# How the system reaches each status from pending_verification.
PATH_TO: dict[str, list[str]] = {
    PENDING_VERIFICATION: [],
    ON_HOLD: ["hold"],
    VERIFIED: ["verify"],
    AWAITING_PAYMENT: ["verify", "request_payment"],
    PAID: ["verify", "request_payment", "mark_paid"],
    IN_PROGRESS: ["verify", "request_payment", "mark_paid", "start_fulfillment"],
    SHIPPED: ["verify", "request_payment", "mark_paid", "start_fulfillment", "ship"],
    COMPLETED: ["verify", "request_payment", "mark_paid", "start_fulfillment", "ship", "complete"],
    REJECTED: ["reject"],
    CANCELLED: ["cancel"],
}


@pytest.mark.parametrize(
    ("payer_type", "status"),
    [("cash", status) for status in PATH_TO] + [("insurance", VERIFIED), ("insurance", IN_PROGRESS)],
)
def test_every_transition_by_every_role_from_every_status(north: World, payer_type: str, status: str) -> None:
    """The exhaustive complement of the random walks: each (status, transition, role) once."""
    # Given an order in ``status``
    order = north.order(payer_type=payer_type)
    path = ["verify", "start_fulfillment"] if (payer_type, status) == ("insurance", IN_PROGRESS) else PATH_TO[status]
    for transition in path:
        order_transition(order_id=order.pk, actor=None, transition=transition, reason="because")
    state = _snapshot(order.pk)
    assert state[0] == status

    for transition in TRANSITION_NAMES:
        for role in ROLES:
            # When each actor tries each transition (a success is rolled back so the next try starts from status)
            with transaction.atomic():
                _attempt(
                    world=north,
                    order_id=order.pk,
                    payer_type=payer_type,
                    before=state,
                    transition=transition,
                    role=role,
                )
                transaction.set_rollback(True)
            # Then the rules hold, and the rollback restored the order
            assert _snapshot(order.pk) == state
