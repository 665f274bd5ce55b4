"""Patient order messages (the engagement agent's): one per channel and template, consent and quiet
hours respected, minimum necessary content, one-click unsubscribe, retries, and the agent on the
order's events. Texts reach a local SMS provider through the real HTTP backend; emails Django's
test outbox."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import Any

import pytest
from django.core import mail
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agents.engagement import schedule_messages
from agents.models import AgentRun
from core.models import OutboxEvent
from core.outbox import outbox_deliver
from orders import messaging
from orders import services as order_services
from orders.models import Message, MessageTemplate, Order
from patients.models import Patient
from tests.conftest import World

pytestmark = pytest.mark.django_db

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
NOON = dt.datetime(2026, 12, 3, 12, 0, tzinfo=CHICAGO)


class Provider:
    def __init__(self) -> None:
        self.texts: list[dict[str, Any]] = []
        self.status = 202

    def __call__(self, request: Request) -> Response:
        self.texts.append(json.loads(request.get_data()))
        return Response("{}", status=self.status, content_type="application/json")


@pytest.fixture
def sms(httpserver: HTTPServer, settings: Any) -> Provider:
    provider = Provider()
    httpserver.expect_request("/sms", method="POST").respond_with_handler(provider)
    settings.SMS_BACKEND = "core.sms.HTTPSMSBackend"
    settings.SMS_HTTP_URL = httpserver.url_for("/sms")
    settings.SMS_HTTP_TOKEN = "sms-token"
    settings.PUBLIC_BASE_URL = "https://orders.example.org"
    return provider


def approved(world: World) -> Order:
    Patient.objects.filter(pk=world.patient.pk).update(time_zone="America/Chicago")
    order = world.order()
    order_services.order_verify(order_id=order.pk, actor=world.ops)
    return Order.objects.get(pk=order.pk)


def log(order: Order) -> list[tuple[str, str, str]]:
    return list(Message.objects.filter(order=order).order_by("channel").values_list("channel", "template", "status"))


def test_a_confirmation_goes_by_email_and_text_with_no_clinical_detail(north: World, sms: Provider) -> None:
    order = approved(north)

    for message in messaging.messages_schedule(order_id=order.pk, template=MessageTemplate.CONFIRMATION, now=NOON):
        messaging.message_send(message_id=message.pk, now=NOON)

    assert log(order) == [("email", "confirmation", "sent"), ("sms", "confirmation", "sent")]
    words = f"North: your order {order.reference} is confirmed. We will tell you when it ships."
    assert sms.texts == [{"to": north.patient.phone, "body": f"{words} Reply STOP to stop texts."}]
    (email,) = mail.outbox
    token = messaging.unsubscribe_token(Message.objects.get(order=order, channel="email"))
    link = f"https://orders.example.org/messages/unsubscribe/{token}"
    assert (email.to, email.subject, email.body) == (
        [north.patient.email],
        f"Your order {order.reference}",
        f"{words}\n\nTo stop these emails: {link}\n",
    )
    assert email.extra_headers == {
        "List-Unsubscribe": f"<{link}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    product = north.product.name
    assert product not in email.body
    assert product not in sms.texts[0]["body"]
    assert "G47.33" not in email.body


def test_a_message_due_in_quiet_hours_waits_for_eight_in_the_morning_of_the_patients_zone(
    north: World, sms: Provider, settings: Any
) -> None:
    settings.MESSAGE_HOURS = (8, 21)
    order = approved(north)
    late_evening = dt.datetime(2026, 12, 3, 21, 30, tzinfo=CHICAGO)
    morning = dt.datetime(2026, 12, 4, 8, 0, tzinfo=CHICAGO)

    scheduled = messaging.messages_schedule(order_id=order.pk, template=MessageTemplate.CONFIRMATION, now=late_evening)
    for message in scheduled:
        messaging.message_send(message_id=message.pk, now=morning - dt.timedelta(seconds=1))

    assert [message.scheduled_for for message in scheduled] == [morning, morning]
    assert log(order) == [("email", "confirmation", "scheduled"), ("sms", "confirmation", "scheduled")]
    assert (sms.texts, mail.outbox) == ([], [])
    assert set(messaging.messages_due(now=morning, limit=10)) == {m.pk for m in scheduled}
    for message_id in messaging.messages_due(now=morning, limit=10):
        messaging.message_send(message_id=message_id, now=morning)
    assert log(order) == [("email", "confirmation", "sent"), ("sms", "confirmation", "sent")]


@pytest.mark.parametrize(
    ("local", "expected"),
    [((7, 59), (8, 0)), ((8, 0), None), ((20, 59), None), ((21, 0), (8, 0))],
)
def test_sending_hours_are_eight_to_nine(
    local: tuple[int, int], expected: tuple[int, int] | None, settings: Any
) -> None:
    settings.MESSAGE_HOURS = (8, 21)  # the default (the test settings send at any hour)
    now = dt.datetime(2026, 12, 3, *local, tzinfo=CHICAGO)
    when = messaging.next_sending_time(now, CHICAGO)
    if expected is None:
        assert when == now
    else:
        day = 3 if local[0] < 8 else 4
        assert when == dt.datetime(2026, 12, day, *expected, tzinfo=CHICAGO)


def test_no_consent_or_no_contact_logs_the_message_as_not_sent(north: World, sms: Provider) -> None:
    Patient.objects.filter(pk=north.patient.pk).update(consent_sms=False)
    order = approved(north)

    for message in messaging.messages_schedule(order_id=order.pk, template=MessageTemplate.SHIPPED, now=NOON):
        messaging.message_send(message_id=message.pk, now=NOON)

    assert log(order) == [("email", "shipped", "sent"), ("sms", "shipped", "suppressed")]
    assert sms.texts == []


def test_one_click_unsubscribe_stops_later_emails(north: World, sms: Provider, client: Any) -> None:
    order = approved(north)
    (email_message, _text) = messaging.messages_schedule(
        order_id=order.pk, template=MessageTemplate.CONFIRMATION, now=NOON
    )
    token = messaging.unsubscribe_token(email_message)

    page = client.get(f"/messages/unsubscribe/{token}")
    done = client.post(f"/messages/unsubscribe/{token}", {"List-Unsubscribe": "One-Click"})
    bad = client.post("/messages/unsubscribe/not-a-token")

    assert (page.status_code, done.status_code, bad.status_code) == (200, 200, 404)
    assert page["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    patient = Patient.objects.get(pk=north.patient.pk)
    assert (patient.consent_email, patient.consent_sms, patient.consent_source) == (False, True, "unsubscribe link")
    messaging.message_send(message_id=email_message.pk, now=NOON)
    assert Message.objects.get(pk=email_message.pk).status == "suppressed"
    assert mail.outbox == []


def test_a_refused_text_is_retried_with_backoff_then_failed(north: World, sms: Provider, settings: Any) -> None:
    settings.MESSAGE_MAX_ATTEMPTS = 2
    sms.status = 500
    order = approved(north)
    (_email, text) = messaging.messages_schedule(order_id=order.pk, template=MessageTemplate.DELIVERED, now=NOON)

    first = messaging.message_send(message_id=text.pk, now=NOON)
    assert first is not None
    assert (first.status, first.attempts, first.last_error, first.scheduled_for) == (
        "scheduled",
        1,
        "SMS_DELIVERY_FAILED",
        NOON + dt.timedelta(minutes=2),
    )
    second = messaging.message_send(message_id=text.pk, now=NOON + dt.timedelta(minutes=2))
    assert second is not None
    assert (second.status, second.attempts) == ("failed", 2)


def test_the_engagement_agent_confirms_an_approved_order_once_even_when_delivered_twice(
    north: World, sms: Provider, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.MESSAGE_HOURS = (0, 24)
    order = approved(north)
    event = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.approved")

    with django_capture_on_commit_callbacks(execute=True):
        outbox_deliver(event_id=event.pk)
    schedule_messages.apply(kwargs={"event_id": str(event.pk), "topic": "order.approved"})

    assert log(order) == [("email", "confirmation", "sent"), ("sms", "confirmation", "sent")]
    assert (len(sms.texts), len(mail.outbox)) == (1, 1)
    assert list(
        AgentRun.objects.filter(task="agents.engagement.schedule_messages")
        .order_by("started_at")
        .values_list("outcome", flat=True)
    ) == ["ok", "skipped-duplicate"]
