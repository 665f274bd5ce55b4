"""Patient work orders (the ordering agent's): the next refill of each recurring supply, from the
same rules as the checks and the patient card, its state through a refill cycle, the agent that
keeps them, and ``GET /api/v1/work-orders``."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import AgentRun
from compliance.engine import months_later
from core.models import OutboxEvent
from core.outbox import outbox_deliver
from orders import services
from orders.compliance_checks import patient_supply_status
from orders.models import Order, PatientWorkOrder
from orders.work_orders import work_orders_refresh
from tests.conftest import World

pytestmark = pytest.mark.django_db


def delivered(world: World) -> Order:
    """The world's order (two A7032 nasal cushions, 2 per month) delivered today."""
    order = world.order()
    services.order_verify(order_id=order.pk, actor=world.ops)
    services.order_transition(order_id=order.pk, actor=world.ops, transition="start_fulfillment")
    services.order_transition(order_id=order.pk, actor=world.ops, transition="ship")
    return services.order_complete(order_id=order.pk, actor=world.ops)


def eligible_after_today() -> dt.date:
    """Two cushions delivered today last a month (L33718: 2 per 1 month); a refill may come 10 days
    before they run out (the refill rule's deliver-no-sooner-than days)."""
    return months_later(timezone.localdate(), Fraction(1)) - dt.timedelta(days=10)


def test_a_delivered_supply_has_a_work_order_eligible_when_the_checks_allow_its_refill(north: World) -> None:
    delivered(north)
    today = timezone.localdate()

    (work_order,) = work_orders_refresh(patient_id=north.patient.pk, on=today)

    (status,) = patient_supply_status(patient=north.patient, on=today)
    assert (work_order.hcpcs_code, work_order.eligible_on) == ("A7032", status.next_eligible)
    assert work_order.eligible_on == eligible_after_today()
    assert (work_order.last_delivered_on, work_order.last_quantity, work_order.territory_id) == (
        today,
        2,
        north.territory.pk,
    )
    assert work_order.supply_ends == months_later(today, Fraction(1))
    # 20 or so days ahead: more than 14, so upcoming
    assert work_order.state == "upcoming"


def test_a_work_order_is_due_from_fourteen_days_before_and_ordered_while_an_order_holds_it(north: World) -> None:
    delivered(north)
    eligible = eligible_after_today()

    assert work_orders_refresh(patient_id=north.patient.pk, on=eligible - dt.timedelta(days=15))[0].state == "upcoming"
    assert work_orders_refresh(patient_id=north.patient.pk, on=eligible - dt.timedelta(days=14))[0].state == "due"

    reorder = north.order()  # the next cushions, ordered early: it is open
    assert work_orders_refresh(patient_id=north.patient.pk, on=eligible)[0].state == "ordered"
    services.order_cancel(order_id=reorder.pk, actor=north.ops, reason="Patient will call back")
    assert work_orders_refresh(patient_id=north.patient.pk, on=eligible)[0].state == "due"


def test_a_state_a_person_set_lasts_for_its_refill_cycle_only(north: World) -> None:
    delivered(north)
    eligible = eligible_after_today()
    (work_order,) = work_orders_refresh(patient_id=north.patient.pk, on=eligible)
    PatientWorkOrder.objects.filter(pk=work_order.pk).update(state="contacted")

    assert work_orders_refresh(patient_id=north.patient.pk, on=eligible)[0].state == "contacted"

    # A new delivery moves the eligible day: a new cycle starts over
    moved = timezone.now() + dt.timedelta(days=20)
    Order.objects.filter(patient=north.patient).update(completed_at=moved)
    (refreshed,) = work_orders_refresh(patient_id=north.patient.pk, on=eligible)
    assert refreshed.pk == work_order.pk
    assert refreshed.eligible_on == months_later(timezone.localdate(moved), Fraction(1)) - dt.timedelta(days=10)
    assert refreshed.state == "upcoming"  # about 20 days ahead of ``eligible``


def test_a_patient_without_deliveries_has_no_work_orders_and_stale_ones_go(north: World) -> None:
    north.order()  # open, not delivered
    PatientWorkOrder.objects.create(
        patient=north.patient,
        territory=north.territory,
        hcpcs_code="A7030",
        last_delivered_on=dt.date(2026, 1, 1),
        last_quantity=1,
        eligible_on=dt.date(2026, 3, 22),
    )

    assert work_orders_refresh(patient_id=north.patient.pk, on=timezone.localdate()) == []
    assert not PatientWorkOrder.objects.exists()


def test_the_ordering_agent_refreshes_the_patients_work_orders_when_an_order_is_delivered(
    north: World, django_capture_on_commit_callbacks: Any
) -> None:
    order = delivered(north)
    event = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.delivered")

    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_deliver(event_id=event.pk) is True

    assert list(PatientWorkOrder.objects.values_list("hcpcs_code", "eligible_on")) == [
        ("A7032", eligible_after_today())
    ]
    ordering = AgentRun.objects.filter(event_id=event.pk, agent="ordering")
    assert list(ordering.values_list("task", "outcome")) == [("agents.ordering.refresh_work_orders", "ok")]


def test_the_work_orders_api_lists_the_callers_territories_soonest_first(north: World, south: World, api: Any) -> None:
    delivered(north)
    delivered(south)
    work_orders_refresh(patient_id=north.patient.pk, on=timezone.localdate())
    work_orders_refresh(patient_id=south.patient.pk, on=timezone.localdate())
    mine = PatientWorkOrder.objects.get(patient=north.patient)
    client = api(north.ops)

    body = client.get("/api/v1/work-orders").json()

    assert body["count"] == 1
    assert body["results"] == [
        {
            "id": str(mine.pk),
            "patient_id": str(north.patient.pk),
            "territory_id": str(north.territory.pk),
            "hcpcs_code": "A7032",
            "last_delivered_on": mine.last_delivered_on.isoformat(),
            "last_quantity": 2,
            "supply_ends": mine.supply_ends.isoformat() if mine.supply_ends else None,
            "eligible_on": mine.eligible_on.isoformat(),
            "state": "upcoming",
        }
    ]
    assert client.get("/api/v1/work-orders?state=due").json()["results"] == []
    refused = client.get("/api/v1/work-orders?state=soon")
    assert refused.status_code == 400
    assert refused.json()["error"]["details"] == {
        "state": ["Choose one of upcoming, due, contacted, confirmed, ordered, skipped."]
    }
    assert client.get(f"/api/v1/work-orders?territory={south.territory.code}").status_code == 403


def test_the_work_orders_api_costs_the_same_queries_for_one_or_many(north: World, api: Any) -> None:
    client = api(north.ops)
    client.get("/api/v1/work-orders")
    for code in ("A7030", "A7031"):
        PatientWorkOrder.objects.create(
            patient=north.patient,
            territory=north.territory,
            hcpcs_code=code,
            last_delivered_on=dt.date(2026, 1, 1),
            last_quantity=1,
            eligible_on=dt.date(2026, 3, 22),
        )
    with CaptureQueriesContext(connection) as two:
        assert len(client.get("/api/v1/work-orders").json()["results"]) == 2
    for _ in range(8):
        patient = north.other_patient()
        PatientWorkOrder.objects.create(
            patient=patient,
            territory=north.territory,
            hcpcs_code="A7030",
            last_delivered_on=dt.date(2026, 1, 1),
            last_quantity=1,
            eligible_on=dt.date(2026, 3, 22),
        )
    with CaptureQueriesContext(connection) as ten:
        assert len(client.get("/api/v1/work-orders").json()["results"]) == 10

    assert len(two.captured_queries) == len(ten.captured_queries)
