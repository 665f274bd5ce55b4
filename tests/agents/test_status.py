"""Agent Status: each agent's state from its runs and waiting events, and the orders that wait for a
person in the caller's territories (``GET /api/agents/status`` and ``agents.selectors``)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents import selectors
from agents.models import AgentRun
from core.exceptions import PermissionDenied
from core.models import OutboxEvent, OutboxStatus
from orders import services as order_services
from orders.models import OrderEvent
from orders.templatetags.portal import duration
from tests.admin.conftest import signed_in
from tests.conftest import World

pytestmark = pytest.mark.django_db

AGENTS = ["ordering", "payments", "workforce", "engagement", "pharmacy"]


def run(agent: str, outcome: str, *, hours_ago: float, now: dt.datetime, task: str = "") -> AgentRun:
    started = now - dt.timedelta(hours=hours_ago)
    return AgentRun.objects.create(
        agent=agent,
        task=task or f"agents.{agent}.some_task",
        started_at=started,
        finished_at=None if outcome == "running" else started + dt.timedelta(seconds=1),
        outcome=outcome,
        error_code="PHARMACY_UNAVAILABLE" if outcome == "failed" else "",
    )


def states(now: dt.datetime) -> dict[str, selectors.AgentState]:
    return {state.name: state for state in selectors.agent_states(now=now)}


def test_an_agent_whose_latest_finished_run_failed_is_failing_and_one_that_failed_earlier_degraded() -> None:
    now = timezone.now()
    run("pharmacy", "ok", hours_ago=3, now=now)
    run("pharmacy", "failed", hours_ago=2, now=now)
    run("pharmacy", "running", hours_ago=1, now=now)  # not finished: the failure is still the latest
    run("payments", "failed", hours_ago=30, now=now)  # a day and more ago
    run("payments", "ok", hours_ago=2, now=now)
    run("payments", "skipped-duplicate", hours_ago=1, now=now)
    run("workforce", "failed", hours_ago=5, now=now)
    last_ok = run("workforce", "ok", hours_ago=4, now=now)

    by_name = states(now)

    assert [state.name for state in selectors.agent_states(now=now)] == AGENTS
    assert by_name["pharmacy"] == selectors.AgentState(
        name="pharmacy",
        state="failing",
        last_run_at=now - dt.timedelta(hours=1),
        last_success_at=now - dt.timedelta(hours=3) + dt.timedelta(seconds=1),
        runs_24h=3,
        failures_24h=1,
        pending_events=0,
        oldest_pending_seconds=None,
    )
    assert (by_name["payments"].state, by_name["payments"].runs_24h, by_name["payments"].failures_24h) == ("ok", 2, 0)
    assert (by_name["workforce"].state, by_name["workforce"].failures_24h) == ("degraded", 1)
    assert by_name["workforce"].last_success_at == last_ok.finished_at
    assert by_name["ordering"] == selectors.AgentState(
        name="ordering",
        state="ok",
        last_run_at=None,
        last_success_at=None,
        runs_24h=0,
        failures_24h=0,
        pending_events=0,
        oldest_pending_seconds=None,
    )


def test_a_retry_in_the_last_day_degrades_an_agent() -> None:
    now = timezone.now()
    run("payments", "retried", hours_ago=2, now=now)
    run("payments", "ok", hours_ago=1.9, now=now)

    assert states(now)["payments"].state == "degraded"
    assert states(now + dt.timedelta(hours=22))["payments"].state == "degraded"  # 24 hours after the retry
    assert states(now + dt.timedelta(hours=22, seconds=1))["payments"].state == "ok"


def test_events_waiting_for_an_agents_tasks_are_counted_and_degrade_it_after_five_minutes(north: World) -> None:
    now = timezone.now()
    for topic in ("order.awaiting_payment", "payment_link.revoked", "prescription.retry"):
        OutboxEvent.objects.create(
            topic=topic, aggregate_type="orders.order", aggregate_id=str(uuid.uuid4()), available_at=now
        )
    OutboxEvent.objects.create(
        topic="order.paid",
        aggregate_type="orders.order",
        aggregate_id=str(uuid.uuid4()),
        available_at=now,
        status=OutboxStatus.DISPATCHED,
    )
    oldest = OutboxEvent.objects.get(topic="order.awaiting_payment").created_at

    at_five_minutes = states(oldest + dt.timedelta(seconds=300))
    later = states(oldest + dt.timedelta(seconds=301))

    assert (at_five_minutes["payments"].pending_events, at_five_minutes["payments"].oldest_pending_seconds) == (2, 300)
    assert at_five_minutes["payments"].state == "ok"
    assert later["payments"].state == "degraded"
    much_later = states(oldest + dt.timedelta(seconds=310))
    assert (much_later["pharmacy"].pending_events, much_later["pharmacy"].state) == (1, "degraded")
    assert (later["ordering"].pending_events, later["ordering"].oldest_pending_seconds) == (0, None)


def test_held_orders_are_exceptions_with_their_reasons_and_no_phi(north: World, south: World) -> None:
    held = north.order(sign=False)
    north.patient = north.other_patient()
    north.order()  # clear: waits for nothing but verification
    south.order(sign=False)  # another territory
    entered = OrderEvent.objects.filter(order=held, to_status="on_hold").latest("sequence").created_at
    now = entered + dt.timedelta(hours=2)

    exceptions = selectors.agent_exceptions(user=north.ops, now=now)

    assert exceptions == [
        selectors.OrderException(
            order_id=held.pk,
            reference=held.reference,
            territory_id=north.territory.pk,
            status="on_hold",
            reasons=["SWO_MISSING_SIGNATURE"],
            required_artifacts=["SWO"],
            waiting_seconds=7200,
            url=f"/portal/orders/{held.pk}/",
        )
    ]


def test_an_order_in_fulfillment_longer_than_three_days_is_stalled(north: World) -> None:
    order = north.order()
    order_services.order_verify(order_id=order.pk, actor=north.ops)
    order_services.order_transition(order_id=order.pk, actor=north.ops, transition="start_fulfillment")
    entered = OrderEvent.objects.filter(order=order, to_status="in_progress").latest("sequence").created_at

    assert selectors.agent_exceptions(user=north.ops, now=entered + dt.timedelta(hours=72)) == []
    (stalled,) = selectors.agent_exceptions(user=north.ops, now=entered + dt.timedelta(hours=72, seconds=1))
    assert (stalled.order_id, stalled.status, stalled.reasons, stalled.waiting_seconds) == (
        order.pk,
        "in_progress",
        ["STALLED_IN_PROGRESS"],
        72 * 3600 + 1,
    )


def test_doctors_and_distributors_may_not_see_agent_status(north: World, api: Any) -> None:
    for user in (north.doctor, north.distributor):
        with pytest.raises(PermissionDenied):
            selectors.agent_exceptions(user=user, now=timezone.now())
        response = api(user).get("/api/agents/status")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "PERMISSION_DENIED"


def test_the_status_endpoint_answers_ops_with_every_agent_and_the_oldest_exception_first(
    north: World, api: Any
) -> None:
    first = north.order(sign=False)
    north.patient = north.other_patient()
    second = north.order(sign=False)
    AgentRun.objects.create(
        agent="payments", task="agents.payments.issue_invoice", started_at=timezone.now(), outcome="failed"
    )

    response = api(north.ops).get("/api/agents/status")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"generated_at", "agents", "exceptions"}
    assert [(agent["name"], agent["state"]) for agent in body["agents"]] == [
        ("ordering", "ok"),
        ("payments", "failing"),
        ("workforce", "ok"),
        ("engagement", "ok"),
        ("pharmacy", "ok"),
    ]
    assert [entry["reference"] for entry in body["exceptions"]] == [first.reference, second.reference]
    assert body["exceptions"][0] == {
        "order_id": str(first.pk),
        "reference": first.reference,
        "territory_id": str(north.territory.pk),
        "status": "on_hold",
        "reasons": ["SWO_MISSING_SIGNATURE"],
        "required_artifacts": ["SWO"],
        "waiting_seconds": body["exceptions"][0]["waiting_seconds"],
        "url": f"/portal/orders/{first.pk}/",
    }
    assert body["exceptions"][0]["waiting_seconds"] >= body["exceptions"][1]["waiting_seconds"] >= 0


def test_the_status_endpoint_costs_the_same_queries_for_one_exception_or_many(north: World, api: Any) -> None:
    client = api(north.ops)
    north.order(sign=False)
    client.get("/api/agents/status")  # the user's first request loads their access map
    with CaptureQueriesContext(connection) as one:
        assert len(client.get("/api/agents/status").json()["exceptions"]) == 1
    for _ in range(4):
        north.patient = north.other_patient()
        north.order(sign=False)
    with CaptureQueriesContext(connection) as five:
        assert len(client.get("/api/agents/status").json()["exceptions"]) == 5

    assert len(one.captured_queries) == len(five.captured_queries)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(None, ""), (0, "0 s"), (50, "50 s"), (60, "1 min"), (3900, "1 h 5 min"), (3601, "1 h"), (190000, "2 d 4 h")],
)
def test_waiting_times_are_shown_in_their_two_largest_units(seconds: int | None, words: str) -> None:
    assert duration(seconds) == words


def test_the_admin_links_to_agent_status_and_lists_the_runs_read_only(north: World) -> None:
    AgentRun.objects.create(
        agent="payments", task="agents.payments.void_invoice", started_at=timezone.now(), outcome="ok"
    )
    client = signed_in(north.admin)

    index = client.get("/admin/")
    runs = client.get("/admin/agents/agentrun/")

    assert index.status_code == 200
    assert '<a href="/portal/agents/">Agent Status</a>' in index.content.decode()
    assert runs.status_code == 200
    assert "agents.payments.void_invoice" in runs.content.decode()
    assert client.get("/admin/agents/agentrun/add/").status_code == 403
