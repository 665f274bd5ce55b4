"""Staff alerts: an order waiting too long alerts the territory's ops staff once and escalates to its
admins once; an over-capacity warehouse day and a failing agent alert too. Each alert reaches a
real local SMTP server (aiosmtpd, through Django's SMTP backend), a local SMS provider (the HTTP
backend) and a local Teams incoming webhook; a channel that fails is sent again by the next sweep."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agents.alerts import staff_alerts_sweep
from agents.models import AgentRun, StaffAlert
from orders import services as order_services
from orders import staffing
from orders.models import FulfillmentTask, Order, OrderEvent
from tests.conftest import World
from tests.processes import free_port

pytestmark = pytest.mark.django_db


class Inbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.original_content)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp(settings: Any) -> Iterator[Inbox]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    try:
        yield inbox
    finally:
        controller.stop()


class Endpoint:
    """What a local HTTP endpoint received, and the status it answers with (settable)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200

    def __call__(self, request: Request) -> Response:
        self.bodies.append(json.loads(request.get_data()))
        return Response("{}", status=self.status, content_type="application/json")


@pytest.fixture
def sms(httpserver: HTTPServer, settings: Any) -> Endpoint:
    endpoint = Endpoint()
    httpserver.expect_request("/sms", method="POST").respond_with_handler(endpoint)
    settings.SMS_BACKEND = "core.sms.HTTPSMSBackend"
    settings.SMS_HTTP_URL = httpserver.url_for("/sms")
    settings.SMS_HTTP_TOKEN = "sms-token"
    return endpoint


@pytest.fixture
def teams(httpserver: HTTPServer, settings: Any) -> Endpoint:
    endpoint = Endpoint()
    httpserver.expect_request("/teams", method="POST").respond_with_handler(endpoint)
    settings.TEAMS_WEBHOOK_URL = httpserver.url_for("/teams")
    return endpoint


@pytest.fixture
def contacts(north: World, settings: Any) -> World:
    settings.PUBLIC_BASE_URL = "https://orders.example.org"
    for user, mobile in ((north.ops, "+16125550101"), (north.admin, "+16125550102"), (north.doctor, "+16125550103")):
        user.email, user.mobile = f"{user.username}@clinic.example.org", mobile
        user.save(update_fields=["email", "mobile"])
    return north


def held_urgent(world: World) -> tuple[Order, dt.datetime]:
    order = world.order(sign=False, priority="urgent")
    entered = OrderEvent.objects.filter(order=order, to_status="on_hold").latest("sequence").created_at
    return order, entered


def test_an_urgent_held_order_alerts_ops_after_four_hours_once_and_escalates_to_admins_once(
    contacts: World, smtp: Inbox, sms: Endpoint, teams: Endpoint
) -> None:
    order, entered = held_urgent(contacts)
    hours = dt.timedelta(hours=1)

    assert staff_alerts_sweep(now=entered + 4 * hours).raised == 0
    first = staff_alerts_sweep(now=entered + 4 * hours + dt.timedelta(seconds=1))
    again = staff_alerts_sweep(now=entered + 5 * hours)

    assert (first.raised, dict(first.sent)) == (1, {"email": 1, "sms": 1, "teams": 1})
    assert (again.raised, dict(again.sent)) == (0, {})
    link = f"https://orders.example.org/portal/orders/{order.pk}/"
    ((recipients, email),) = smtp.messages
    assert recipients == ["ops.north@clinic.example.org"]
    assert email["Subject"] == f"Order {order.reference} on hold for 4 h"
    assert str(email.get_payload()).replace("\r\n", "\n") == (
        f"Order {order.reference} (urgent, North) has been on hold since "
        f"{timezone.localtime(entered):%Y-%m-%d %H:%M}, past the 4 h allowed.\n\n{link}\n"
    )
    assert sms.bodies == [{"to": "+16125550101", "body": f"Order {order.reference} on hold for 4 h. {link}"}]
    (card,) = teams.bodies
    assert (card["@type"], card["title"], card["potentialAction"][0]["targets"][0]["uri"]) == (
        "MessageCard",
        f"Order {order.reference} on hold for 4 h",
        link,
    )

    assert staff_alerts_sweep(now=entered + 8 * hours).raised == 0
    escalated = staff_alerts_sweep(now=entered + 8 * hours + dt.timedelta(seconds=1))
    assert staff_alerts_sweep(now=entered + 9 * hours).raised == 0

    assert escalated.raised == 1
    assert [recipients for recipients, _email in smtp.messages] == [
        ["ops.north@clinic.example.org"],
        ["admin.north@clinic.example.org"],
    ]
    assert smtp.messages[1][1]["Subject"] == f"Order {order.reference} still on hold for 8 h"
    assert [body["to"] for body in sms.bodies] == ["+16125550101", "+16125550102"]
    assert len(teams.bodies) == 2
    # Nothing about the patient in any message
    patient = contacts.patient
    sent = json.dumps([*sms.bodies, *teams.bodies]) + "".join(str(m) for _r, m in smtp.messages)
    assert patient.last_name
    assert patient.first_name
    assert patient.last_name not in sent
    assert patient.first_name not in sent


def test_a_routine_hold_waits_two_days_and_a_cleared_order_is_not_alerted(
    contacts: World, smtp: Inbox, sms: Endpoint
) -> None:
    routine = contacts.order(sign=False)
    entered = OrderEvent.objects.filter(order=routine, to_status="on_hold").latest("sequence").created_at

    assert staff_alerts_sweep(now=entered + dt.timedelta(hours=47)).raised == 0
    order_services.order_approve(order_id=routine.pk, actor=contacts.admin, override_reason="Signed copy on file")
    assert staff_alerts_sweep(now=entered + dt.timedelta(hours=49)).raised == 0
    assert not StaffAlert.objects.exists()


def test_a_failed_channel_is_sent_again_by_the_next_sweep_and_only_that_channel(
    contacts: World, smtp: Inbox, sms: Endpoint, teams: Endpoint
) -> None:
    _order, entered = held_urgent(contacts)
    teams.status = 500

    failing = staff_alerts_sweep(now=entered + dt.timedelta(hours=5))
    alert = StaffAlert.objects.get()
    teams.status = 200
    recovered = staff_alerts_sweep(now=entered + dt.timedelta(hours=5, minutes=5))

    assert (dict(failing.sent), dict(failing.failed)) == ({"email": 1, "sms": 1}, {"teams": 1})
    assert (alert.email_sent_at is not None, alert.sms_sent_at is not None, alert.teams_sent_at) == (True, True, None)
    assert (dict(recovered.sent), dict(recovered.failed)) == ({"teams": 1}, {})
    assert (len(smtp.messages), len(sms.bodies), len(teams.bodies)) == (1, 1, 2)


def test_a_failing_agent_alerts_the_admins_once_per_failed_run(contacts: World, smtp: Inbox, sms: Endpoint) -> None:
    now = timezone.now()
    AgentRun.objects.create(
        agent="pharmacy",
        task="agents.pharmacy.submit_prescriptions",
        started_at=now,
        finished_at=now,
        outcome="failed",
        error_code="PHARMACY_UNAVAILABLE",
    )

    first = staff_alerts_sweep(now=now)
    second = staff_alerts_sweep(now=now + dt.timedelta(minutes=5))

    assert (first.raised, second.raised) == (1, 0)
    ((recipients, email),) = smtp.messages
    assert recipients == ["admin.north@clinic.example.org"]
    assert email["Subject"] == "The pharmacy agent is failing"
    assert "PHARMACY_UNAVAILABLE" in str(email.get_payload())


def test_a_warehouse_day_over_capacity_alerts_the_ops_staff_of_its_tasks_once(
    contacts: World, smtp: Inbox, sms: Endpoint
) -> None:
    order = contacts.order()
    order_services.order_verify(order_id=order.pk, actor=contacts.ops)
    order_services.order_transition(order_id=order.pk, actor=contacts.ops, transition="start_fulfillment")
    task = FulfillmentTask.objects.get(order=order, kind="pick_pack")
    plan = staffing.staffing_plan_recalculate(warehouse_id=task.warehouse_id, day=task.due_date)  # nobody on shift

    first = staff_alerts_sweep(now=timezone.now())
    second = staff_alerts_sweep(now=timezone.now())

    assert (first.raised, second.raised) == (1, 0)
    ((recipients, email),) = smtp.messages
    assert recipients == ["ops.north@clinic.example.org"]
    assert email["Subject"] == f"{task.warehouse} over capacity on {task.due_date:%Y-%m-%d}"
    assert str(email.get_payload()).replace("\r\n", "\n") == (
        f"{task.warehouse} on {task.due_date:%Y-%m-%d}: {plan.required_minutes} min of work due, nobody on shift;"
        f" 1 task(s) do not fit. Add shifts or move work.\n\n"
        f"https://orders.example.org/admin/orders/staffingplan/{plan.pk}/change/\n"
    )
