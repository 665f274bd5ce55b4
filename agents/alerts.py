"""Staff alerts (seed 000: "optional emails/SMS/Teams pings when high-risk orders stall"), raised by
the workforce agent's sweep (``staff_alerts_sweep``, on beat every five minutes):

- an order waiting past its ``AGENT_STALL_THRESHOLDS`` entry (its status and priority) alerts the
  territory's ops staff, once per order and status; past its ``AGENT_ESCALATION_THRESHOLDS`` entry,
  once more, the territory's admins;
- a warehouse day over capacity (``orders.StaffingPlan``, today or later) alerts the ops staff of
  the territories whose tasks do not fit, once per warehouse and day;
- a failing agent (``agents.selectors.agent_states``) alerts every admin, once per failed run.

Each alert goes by email, by SMS to each recipient's mobile, and to the Microsoft Teams channel of
``TEAMS_WEBHOOK_URL`` (an incoming webhook taking a MessageCard, as Microsoft's connector reference
describes it; read 2026-12, not checked against a live Teams tenant). A channel is stamped once it
went out; one that failed is tried again by the next sweep. Messages carry references, codes, times
and a link: no PHI.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from core.sms import sms_send
from orders.models import FulfillmentTask, Order, StaffingPlan
from territories.models import Role, TerritoryMembership

from .models import AgentRun, AlertKind, AlertLevel, RunOutcome, StaffAlert
from .selectors import agent_states, stalled_orders

logger = logging.getLogger(__name__)

# Orders looked at per level and sweep (the longest waiting first); the next sweep takes the rest.
SWEEP_LIMIT = 500
# Alerts whose channels are retried: those of the last week.
RETRY_DAYS = 7


@dataclass
class SweepResult:
    raised: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)


def staff_alerts_sweep(*, now: dt.datetime) -> SweepResult:
    """Raise the alerts due at ``now`` (each once) and send every alert not yet sent on a channel."""
    result = SweepResult()
    result.raised += _stalled_order_alerts(now, AlertLevel.ALERT, settings.AGENT_STALL_THRESHOLDS)
    result.raised += _stalled_order_alerts(now, AlertLevel.ESCALATION, settings.AGENT_ESCALATION_THRESHOLDS)
    result.raised += _over_capacity_alerts(now)
    result.raised += _agent_failure_alerts(now)
    staff_alerts_send(now=now, result=result)
    return result


def _raise(*, kind: AlertKind, level: AlertLevel, key: str, **fields: Any) -> bool:
    _alert, created = StaffAlert.objects.get_or_create(key=key, level=level, defaults={"kind": kind, **fields})
    return created


def _hours(hours: float) -> str:
    """Whole hours below two days, whole days from there: 4 → "4 h", 72 → "3 days"."""
    whole = int(hours)
    return f"{whole} h" if whole < 48 else f"{whole // 24} days"


def _threshold(thresholds: dict[str, dict[str, float]], order: Order) -> float:
    by_priority = thresholds[order.status]
    return by_priority.get(order.priority, by_priority.get("*", 0))


def _stalled_order_alerts(now: dt.datetime, level: AlertLevel, thresholds: dict[str, dict[str, float]]) -> int:
    raised = 0
    orders = stalled_orders(
        territory_ids=None, now=now, limit=SWEEP_LIMIT, thresholds=thresholds, waiting_for_person=True
    ).select_related("territory")
    for order in orders:
        waited = now - order.entered_at  # type: ignore[attr-defined]
        status = order.get_status_display().lower()
        limit = _hours(_threshold(thresholds, order))
        still = "still " if level == AlertLevel.ESCALATION else ""
        raised += _raise(
            kind=AlertKind.STALLED_ORDER,
            level=level,
            key=f"order:{order.pk}:{order.status}",
            territory_id=order.territory_id,
            subject=f"Order {order.reference} {still}{status} for {_hours(waited.total_seconds() / 3600)}",
            body=(
                f"Order {order.reference} ({order.get_priority_display().lower()}, {order.territory.name}) has been "
                f"{status} since {timezone.localtime(order.entered_at):%Y-%m-%d %H:%M}, "  # type: ignore[attr-defined]
                f"past the {limit} allowed{' before escalation' if still else ''}."
            ),
            url=f"/portal/orders/{order.pk}/",
        )
    return raised


def _over_capacity_alerts(now: dt.datetime) -> int:
    raised = 0
    plans = StaffingPlan.objects.filter(day__gte=timezone.localdate(now), open_tasks__gt=0).select_related("warehouse")
    for plan in plans.order_by("day", "pk"):
        if not plan.over_capacity:
            continue
        on_shift = f"{plan.available_minutes} min on shift" if plan.available_minutes else "nobody on shift"
        raised += _raise(
            kind=AlertKind.OVER_CAPACITY,
            level=AlertLevel.ALERT,
            key=f"staffing:{plan.warehouse_id}:{plan.day.isoformat()}",
            subject=f"{plan.warehouse} over capacity on {plan.day:%Y-%m-%d}",
            body=(
                f"{plan.warehouse} on {plan.day:%Y-%m-%d}: {plan.required_minutes} min of work due, {on_shift}; "
                f"{len(plan.unfitted_task_ids)} task(s) do not fit. Add shifts or move work."
            ),
            url=f"/admin/orders/staffingplan/{plan.pk}/change/",
        )
    return raised


def _agent_failure_alerts(now: dt.datetime) -> int:
    raised = 0
    for state in agent_states(now=now):
        if state.state != "failing":
            continue
        run = AgentRun.objects.filter(agent=state.name, outcome=RunOutcome.FAILED).order_by("-started_at").first()
        if run is None:
            continue
        raised += _raise(
            kind=AlertKind.AGENT_FAILING,
            level=AlertLevel.ALERT,
            key=f"agent:{state.name}:{run.pk}",
            subject=f"The {state.name} agent is failing",
            body=(
                f"The {state.name} agent's task {run.task} failed at "
                f"{timezone.localtime(run.started_at):%Y-%m-%d %H:%M} ({run.error_code or 'no code'}); "
                f"{state.failures_24h} failure(s) in the last 24 hours."
            ),
            url="/portal/agents/",
        )
    return raised


def alert_recipients(alert: StaffAlert) -> list[User]:
    """Who gets ``alert``: the territory's ops staff (an alert) or admins (an escalation); for a
    warehouse day, the ops staff of the territories of its tasks that do not fit; for an agent,
    every admin."""
    role = (
        Role.ADMIN if alert.level == AlertLevel.ESCALATION or alert.kind == AlertKind.AGENT_FAILING else Role.OPS_STAFF
    )
    memberships = TerritoryMembership.objects.filter(role=role, user__is_active=True)
    if alert.kind == AlertKind.STALLED_ORDER:
        if alert.territory_id is None:
            return []
        memberships = memberships.filter(territory_id=alert.territory_id)
    elif alert.kind == AlertKind.OVER_CAPACITY:
        plan = StaffingPlan.objects.filter(
            warehouse_id=alert.key.split(":")[1], day=dt.date.fromisoformat(alert.key.split(":")[2])
        ).first()
        task_ids = plan.unfitted_task_ids if plan is not None else []
        territories = FulfillmentTask.objects.filter(pk__in=task_ids).values("territory_id")
        memberships = memberships.filter(territory_id__in=territories)
    return list(User.objects.filter(pk__in=memberships.values("user_id")).order_by("username"))


def staff_alerts_send(*, now: dt.datetime, result: SweepResult | None = None) -> SweepResult:
    """Send every alert of the last ``RETRY_DAYS`` on each configured channel it has not gone out on."""
    result = result or SweepResult()
    channels = ["email", "sms", *(["teams"] if settings.TEAMS_WEBHOOK_URL else [])]
    pending = Q()
    for channel in channels:
        pending |= Q(**{f"{channel}_sent_at__isnull": True})
    alerts = StaffAlert.objects.filter(pending, created_at__gte=now - dt.timedelta(days=RETRY_DAYS))
    for alert in alerts.order_by("created_at", "pk"):
        people = alert_recipients(alert)
        for channel in channels:
            if getattr(alert, f"{channel}_sent_at") is not None:
                continue
            try:
                _send(channel, alert, people)
            except Exception as error:  # a channel that failed is tried again by the next sweep
                logger.warning("Staff alert %s not sent by %s: %s", alert.pk, channel, type(error).__name__)
                result.failed[channel] += 1
                continue
            StaffAlert.objects.filter(pk=alert.pk).update(**{f"{channel}_sent_at": timezone.now()})
            result.sent[channel] += 1
    return result


def _link(alert: StaffAlert) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}{alert.url}" if alert.url else ""


def _send(channel: str, alert: StaffAlert, people: Iterable[User]) -> None:
    link = _link(alert)
    if channel == "email":
        addresses = [person.email for person in people if person.email]
        if addresses:
            send_mail(alert.subject, f"{alert.body}\n\n{link}\n", None, addresses)
    elif channel == "sms":
        for person in people:
            if person.mobile:
                sms_send(to=person.mobile, body=f"{alert.subject}. {link}")
    else:
        card = {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": alert.subject,
            "themeColor": "9A2A12" if alert.level == AlertLevel.ESCALATION else "7A4B00",
            "title": alert.subject,
            "text": alert.body,
            "potentialAction": [{"@type": "OpenUri", "name": "Open", "targets": [{"os": "default", "uri": link}]}],
        }
        response = requests.post(settings.TEAMS_WEBHOOK_URL, json=card, timeout=settings.TEAMS_TIMEOUT_SECONDS)
        response.raise_for_status()
