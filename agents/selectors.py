"""Agent Status (seed 000: "dashboard 'Agent Status' highlights portal-derived holds"): how each agent
is doing, from its recorded runs and the outbox events waiting for it, and the orders that wait for a
person in the caller's territories. Nothing here carries PHI: ids, references, codes and times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery
from django.urls import reverse

from core.exceptions import PermissionDenied
from core.models import OutboxEvent, OutboxStatus
from orders import selectors as order_selectors
from orders.models import Order, OrderEvent, OrderStatus
from territories.models import TerritoryPermission
from territories.selectors import territory_ids_for_user

from .models import AgentName, AgentRun, RunOutcome
from .routes import ROUTES

# How many orders the exceptions list shows at most (the oldest waits first).
EXCEPTIONS_LIMIT = 50
DAY = dt.timedelta(hours=24)


@dataclass(frozen=True)
class AgentState:
    """One agent as ops see it. ``state``: ``failing`` when its latest finished run failed,
    ``degraded`` when it failed or retried in the last 24 hours or an event has waited for it longer
    than ``AGENT_PENDING_DEGRADED_SECONDS``, else ``ok``."""

    name: str
    state: str
    last_run_at: dt.datetime | None
    last_success_at: dt.datetime | None
    runs_24h: int
    failures_24h: int
    pending_events: int
    oldest_pending_seconds: int | None

    @property
    def failure_percent(self) -> int:
        """The failed runs of the last 24 hours, in percent of its runs (0 without runs)."""
        return round(100 * self.failures_24h / self.runs_24h) if self.runs_24h else 0


@dataclass(frozen=True)
class OrderException:
    """An order waiting for a person: held, in review, or stalled in a status for longer than its
    threshold (``AGENT_STALL_THRESHOLDS``). ``reasons``: the codes of its hold and review findings, or
    ``STALLED_<STATUS>``; ``waiting_seconds``: since it entered its status."""

    order_id: Any
    reference: str
    territory_id: Any
    status: str
    reasons: list[str]
    required_artifacts: list[str]
    waiting_seconds: int
    url: str


def topics_of_agent() -> dict[str, set[str]]:
    """The outbox topics routed to each agent's tasks (``agents.<agent>.<task>`` in the route table)."""
    topics: dict[str, set[str]] = {agent.value: set() for agent in AgentName}
    for topic, task_names in ROUTES.items():
        for task_name in task_names:
            topics[task_name.split(".")[1]].add(topic)
    return topics


def agent_states(*, now: dt.datetime) -> list[AgentState]:
    """Every agent, in the order of ``AgentName``. A constant number of queries, each reading an index
    range (the last day's runs, each agent's newest runs, the pending events)."""
    counts: dict[str, dict[str, Any]] = {
        row["agent"]: dict(row)
        for row in AgentRun.objects.filter(started_at__gte=now - DAY)
        .values("agent")
        .annotate(
            runs=Count("id"),
            failures=Count("id", filter=Q(outcome=RunOutcome.FAILED)),
            retries=Count("id", filter=Q(outcome=RunOutcome.RETRIED)),
        )
    }
    pending = {
        row["topic"]: row
        for row in OutboxEvent.objects.filter(status=OutboxStatus.PENDING)
        .values("topic")
        .annotate(events=Count("id"), oldest=Min("created_at"))
    }
    degraded_after = settings.AGENT_PENDING_DEGRADED_SECONDS
    states = []
    for agent, topics in topics_of_agent().items():
        runs = AgentRun.objects.filter(agent=agent).order_by("-started_at")
        last_run = runs.values_list("started_at", flat=True).first()
        last_success = runs.filter(outcome=RunOutcome.OK).values_list("finished_at", flat=True).first()
        last_outcome = runs.filter(outcome__in=(RunOutcome.OK, RunOutcome.FAILED)).values_list("outcome", flat=True)
        waiting = [pending[topic] for topic in topics if topic in pending]
        oldest = min((row["oldest"] for row in waiting), default=None)
        oldest_seconds = max(0, int((now - oldest).total_seconds())) if oldest is not None else None
        day = counts.get(agent, {})
        if last_outcome.first() == RunOutcome.FAILED:
            state = "failing"
        elif day.get("failures") or day.get("retries") or (oldest_seconds or 0) > degraded_after:
            state = "degraded"
        else:
            state = "ok"
        states.append(
            AgentState(
                name=agent,
                state=state,
                last_run_at=last_run,
                last_success_at=last_success,
                runs_24h=day.get("runs", 0),
                failures_24h=day.get("failures", 0),
                pending_events=sum(row["events"] for row in waiting),
                oldest_pending_seconds=oldest_seconds,
            )
        )
    return states


def _entered_status() -> Subquery:
    """When an order entered its current status: its newest timeline entry to that status."""
    return Subquery(
        OrderEvent.objects.filter(order_id=OuterRef("pk"), to_status=OuterRef("status"))
        .order_by("-sequence")
        .values("created_at")[:1]
    )


def stalled_orders(
    *,
    territory_ids: set[Any] | None,
    now: dt.datetime,
    limit: int,
    thresholds: dict[str, dict[str, float]] | None = None,
    waiting_for_person: bool = False,
) -> QuerySet[Order]:
    """Orders of ``territory_ids`` (None: every territory) in a status of ``thresholds`` (default
    ``AGENT_STALL_THRESHOLDS``, hours per status and priority, "*" for any other priority) for longer
    than its threshold, longest first, at most ``limit``; each annotated with ``entered_at``. The
    holds and reviews (``on_hold``, ``pending_verification``) are left out unless
    ``waiting_for_person``: Agent Status lists them from the start. Reads the open orders of those
    statuses only (created before the threshold: an order enters a status after it is created)."""
    stalled = Q(pk__in=[])
    for status, by_priority in (thresholds or settings.AGENT_STALL_THRESHOLDS).items():
        if not waiting_for_person and status in (OrderStatus.ON_HOLD, OrderStatus.PENDING_VERIFICATION):
            continue
        for priority, hours in by_priority.items():
            cutoff = now - dt.timedelta(hours=hours)
            condition = Q(status=status, created_at__lt=cutoff, entered_at__lt=cutoff)
            if priority != "*":
                condition &= Q(priority=priority)
            else:
                condition &= ~Q(priority__in=[p for p in by_priority if p != "*"])
            stalled |= condition
    orders = Order.objects.all() if territory_ids is None else Order.objects.filter(territory_id__in=territory_ids)
    return orders.annotate(entered_at=_entered_status()).filter(stalled).order_by("entered_at", "pk")[:limit]


def agent_exceptions(*, user: Any, now: dt.datetime, limit: int = EXCEPTIONS_LIMIT) -> list[OrderException]:
    """The held, in-review and stalled orders of the territories the user reviews, the longest waiting
    first, at most ``limit``. Raises PermissionDenied for a user who reviews no territory (a doctor)."""
    reviewing = territory_ids_for_user(user=user, permission=TerritoryPermission.REVIEW_ORDER)
    if not reviewing:
        raise PermissionDenied("Agent Status is for operations staff and administrators.")
    waiting_keys = order_selectors.review_queue_orders(user=user).values("pk", "status", limit=limit)
    waiting = list(
        Order.objects.filter(pk__in=[pk for pk, _status in waiting_keys]).annotate(entered_at=_entered_status())
    )
    results = order_selectors.latest_results(waiting)
    entries = [_held_or_in_review(order, results.get(order.pk), now) for order in waiting]
    for order in stalled_orders(territory_ids=reviewing, now=now, limit=limit):
        entries.append((_since(order), _entry(order, [f"STALLED_{order.status.upper()}"], [], now)))
    entries.sort(key=lambda pair: (pair[0], pair[1].reference))
    return [entry for _since_at, entry in entries[:limit]]


def _since(order: Order) -> dt.datetime:
    entered: dt.datetime | None = getattr(order, "entered_at", None)
    return entered or order.created_at


def _held_or_in_review(
    order: Order, result: dict[str, Any] | None, now: dt.datetime
) -> tuple[dt.datetime, OrderException]:
    findings: Sequence[dict[str, Any]] = (result or {}).get("findings", [])
    reasons = sorted({f["code"] for f in findings if f.get("severity") != "info"})
    return _since(order), _entry(order, reasons, sorted((result or {}).get("required_artifacts", [])), now)


def _entry(order: Order, reasons: list[str], required_artifacts: list[str], now: dt.datetime) -> OrderException:
    since = _since(order)
    return OrderException(
        order_id=order.pk,
        reference=order.reference,
        territory_id=order.territory_id,
        status=order.status,
        reasons=reasons,
        required_artifacts=required_artifacts,
        waiting_seconds=max(0, int((now - since).total_seconds())),
        url=reverse("portal:order_detail", kwargs={"pk": order.pk}),
    )
