"""The agents on a real Celery worker and Redis, with nothing run in the test's own thread: an
approved insurance order gets its claim, its patient's work orders refreshed and the confirmation
message by email and text; starting its fulfillment plans the warehouse's day. Delivering the same
events again does nothing more (each run recorded ``skipped-duplicate``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core import mail
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agents.models import AgentRun
from agents.routes import ROUTES
from config.celery import app as celery_app
from core.models import OutboxEvent
from orders import services as order_services
from orders.models import FulfillmentTask, Message, StaffingPlan
from payments.models import Claim
from tests.conftest import World
from tests.core.conftest import live_worker, wait_until  # noqa: F401 - the worker fixture

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def texts(httpserver: HTTPServer, settings: Any) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []

    def provider(request: Request) -> Response:
        received.append(json.loads(request.get_data()))
        return Response("{}", status=202, content_type="application/json")

    httpserver.expect_request("/sms", method="POST").respond_with_handler(provider)
    settings.SMS_BACKEND = "core.sms.HTTPSMSBackend"
    settings.SMS_HTTP_URL = httpserver.url_for("/sms")
    settings.SMS_HTTP_TOKEN = "sms-token"
    settings.MESSAGE_HOURS = (0, 24)  # whatever the time of day the test runs at
    return received


def runs(topic: str) -> list[tuple[str, str]]:
    return sorted(AgentRun.objects.filter(topic=topic).values_list("task", "outcome"))


@pytest.mark.usefixtures("live_worker")
def test_an_approved_order_is_claimed_refreshed_confirmed_and_planned_once(
    north: World, texts: list[dict[str, Any]]
) -> None:
    order = north.order()
    order_services.order_verify(order_id=order.pk, actor=north.ops)

    assert wait_until(lambda: Message.objects.filter(order=order, status="sent").count() == 2, timeout=30)
    assert wait_until(lambda: len(runs("order.approved")) == 3, timeout=30)
    assert runs("order.approved") == [
        ("agents.engagement.schedule_messages", "ok"),
        ("agents.ordering.refresh_work_orders", "ok"),
        ("agents.payments.open_claim", "ok"),
    ]
    assert Claim.objects.get(order=order).status == "open"
    assert (len(texts), len(mail.outbox)) == (1, 1)

    order_services.order_transition(order_id=order.pk, actor=north.ops, transition="start_fulfillment")
    task = FulfillmentTask.objects.get(order=order, kind="pick_pack")
    assert wait_until(lambda: StaffingPlan.objects.filter(warehouse=task.warehouse, day=task.due_date).exists())
    assert StaffingPlan.objects.get().required_minutes == task.effort_minutes

    # The approval delivered again, to every task routed for it
    approved = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.approved")
    for task_name in ROUTES["order.approved"]:
        celery_app.send_task(task_name, kwargs={"event_id": str(approved.pk), "topic": "order.approved"})
    assert wait_until(lambda: len(runs("order.approved")) == 6, timeout=30)
    assert [outcome for _task, outcome in runs("order.approved")].count("skipped-duplicate") == 3
    assert Claim.objects.filter(order=order).count() == 1
    assert Message.objects.filter(order=order).count() == 2
    assert (len(texts), len(mail.outbox)) == (1, 1)
