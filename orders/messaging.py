"""Patient messages about an order, scheduled and sent by the engagement agent (seed 000: "listens for
order.approved, order.shipped, order.delivered to schedule messaging").

- ``messages_schedule``: one message per channel (email, text) for an order and template, once
  (the log row is unique per order, template and channel). A channel the patient has not consented
  to, or has no contact for, is logged ``suppressed``. A message due in the patient's quiet hours
  (outside ``MESSAGE_HOURS``, 08:00 to 21:00 by default, in their time zone) waits for the morning.
- ``message_send``: writes the body from its template and sends it when due; consent is read again
  first (an opt-out in the meantime suppresses it). A failure is retried with backoff up to
  ``MESSAGE_MAX_ATTEMPTS``, then the message is ``failed``.

Content is the minimum necessary: the practice, the order's reference and what happened, a carrier
link for a shipment; no diagnosis and no product names. Emails carry an unsubscribe link and a
``List-Unsubscribe`` header (one click, RFC 8058); texts say how to stop them.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import zoneinfo
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from core.sms import sms_send
from core.tracking import tracking_url
from patients.models import Patient, PayerType

from .models import FulfillmentTask, Message, MessageChannel, MessageStatus, MessageTemplate, Order

logger = logging.getLogger(__name__)

_UNSUBSCRIBE_SALT = "orders.messaging.unsubscribe"


def patient_zone(patient: Patient) -> zoneinfo.ZoneInfo:
    """The patient's time zone (the site's when none or an unknown one is recorded)."""
    try:
        return zoneinfo.ZoneInfo(patient.time_zone or settings.TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def next_sending_time(now: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """``now`` when it is within the sending hours in ``zone``, else the next opening (08:00)."""
    start, end = settings.MESSAGE_HOURS
    local = now.astimezone(zone)
    if start <= local.hour < end:
        return now
    day = local.date() + dt.timedelta(days=1) if local.hour >= end else local.date()
    return dt.datetime.combine(day, dt.time(start), tzinfo=zone)


def messages_schedule(*, order_id: Any, template: MessageTemplate, now: dt.datetime) -> list[Message]:
    """Log the order's ``template`` message for each channel, once; returns the log rows."""
    order = Order.objects.select_related("patient").filter(pk=order_id).first()
    if order is None:
        return []
    patient = order.patient
    when = next_sending_time(now, patient_zone(patient))
    reachable = {
        MessageChannel.EMAIL: patient.consent_email and bool(patient.email),
        MessageChannel.SMS: patient.consent_sms and bool(patient.phone),
    }
    messages = []
    for channel, ok in reachable.items():
        message, _created = Message.objects.get_or_create(
            order=order,
            template=template,
            channel=channel,
            defaults={
                "territory_id": order.territory_id,
                "status": MessageStatus.SCHEDULED if ok else MessageStatus.SUPPRESSED,
                "scheduled_for": when,
            },
        )
        messages.append(message)
    return messages


def unsubscribe_token(message: Message) -> str:
    """The signed token of an email's unsubscribe link (it names the message, not the patient)."""
    return signing.Signer(salt=_UNSUBSCRIBE_SALT).sign(message.pk.hex)


def message_for_token(token: str) -> Message | None:
    try:
        message_id = uuid.UUID(hex=signing.Signer(salt=_UNSUBSCRIBE_SALT).unsign(token))
    except (signing.BadSignature, ValueError):
        return None
    return Message.objects.select_related("order__patient").filter(pk=message_id).first()


def email_unsubscribe(*, token: str) -> bool:
    """Withdraw email consent for the patient a message went to; False for a bad token."""
    message = message_for_token(token)
    if message is None:
        return False
    Patient.objects.filter(pk=message.order.patient_id).update(
        consent_email=False, consent_recorded_at=timezone.now(), consent_source="unsubscribe link"
    )
    return True


def _tracking(order: Order) -> str:
    links = [
        url
        for carrier, number in FulfillmentTask.objects.filter(order=order)
        .exclude(tracking_number="")
        .order_by("shipped_at", "pk")
        .values_list("carrier", "tracking_number")
        if (url := tracking_url(carrier, number))
    ]
    return f" Track it: {links[0]}" if links else ""


def message_text(message: Message) -> str:
    """The words of a message (the same for both channels): no clinical detail, no product names."""
    order = message.order
    reference = order.reference
    if message.template == MessageTemplate.CONFIRMATION:
        if order.payer_type == PayerType.CASH:  # its outstanding action: the payment link comes next
            return f"your order {reference} is confirmed. A link to pay for it follows; we will tell you when it ships."
        return f"your order {reference} is confirmed. We will tell you when it ships."
    if message.template == MessageTemplate.SHIPPED:
        return f"your order {reference} has shipped.{_tracking(order)}"
    return f"your order {reference} was delivered. Call us if anything is missing or damaged."


def message_send(*, message_id: Any, now: dt.datetime) -> Message | None:
    """Send a scheduled message that is due (once); returns it, or None when it is gone."""
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",))
            .select_related("order__patient", "territory")
            .filter(pk=message_id)
            .first()
        )
        if message is None or message.status != MessageStatus.SCHEDULED or message.scheduled_for > now:
            return message
        patient = message.order.patient
        consented = patient.consent_email if message.channel == MessageChannel.EMAIL else patient.consent_sms
        if not consented:
            message.status = MessageStatus.SUPPRESSED
            message.save(update_fields=["status"])
            return message
        text = f"{message.territory.name}: {message_text(message)}"
        message.attempts += 1
        try:
            if message.channel == MessageChannel.EMAIL:
                path = reverse("message-unsubscribe", args=(unsubscribe_token(message),))
                link = f"{settings.PUBLIC_BASE_URL.rstrip('/')}{path}"
                EmailMessage(
                    subject=f"Your order {message.order.reference}",
                    body=f"{text}\n\nTo stop these emails: {link}\n",
                    to=[str(patient.email)],
                    headers={"List-Unsubscribe": f"<{link}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
                ).send()
            else:
                sms_send(to=str(patient.phone), body=f"{text} Reply STOP to stop texts.")
        except Exception as error:  # the provider refused or was unreachable: try again later
            message.last_error = getattr(error, "code", None) or type(error).__name__
            if message.attempts >= settings.MESSAGE_MAX_ATTEMPTS:
                message.status = MessageStatus.FAILED
            else:
                message.scheduled_for = now + dt.timedelta(minutes=2**message.attempts)
            message.save(update_fields=["attempts", "last_error", "status", "scheduled_for"])
            logger.warning("Message %s not sent: %s", message.pk, message.last_error)
            return message
        message.status, message.sent_at, message.last_error = MessageStatus.SENT, timezone.now(), ""
        message.save(update_fields=["attempts", "status", "sent_at", "last_error"])
    return message


def messages_due(*, now: dt.datetime, limit: int) -> list[Any]:
    """Ids of the scheduled messages due at ``now``, the earliest first."""
    return list(
        Message.objects.filter(status=MessageStatus.SCHEDULED, scheduled_for__lte=now)
        .order_by("scheduled_for", "pk")
        .values_list("pk", flat=True)[:limit]
    )
