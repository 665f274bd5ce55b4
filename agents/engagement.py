"""Engagement agent (seed 000: "listens for order.approved, order.shipped, order.delivered to schedule
messaging"): the patient's order messages (``orders.messaging``), scheduled on the order's events
and sent when due, and every minute by beat, so a message held by quiet hours or a failed send goes
out later."""

from __future__ import annotations

from django.utils import timezone

from orders import messaging
from orders.models import MessageTemplate

from .models import AgentName
from .runtime import agent_task, event_aggregate_id

TEMPLATE_OF_TOPIC = {
    "order.approved": MessageTemplate.CONFIRMATION,
    "order.shipped": MessageTemplate.SHIPPED,
    "order.delivered": MessageTemplate.DELIVERED,
}
SWEEP_BATCH = 200


@agent_task(AgentName.ENGAGEMENT)
def schedule_messages(*, event_id: str, topic: str) -> None:
    """``order.approved`` / ``order.shipped`` / ``order.delivered``: log the order's message for each
    channel and send those that are due now."""
    order_id = event_aggregate_id(event_id)
    if order_id is None:
        return
    now = timezone.now()
    for message in messaging.messages_schedule(order_id=order_id, template=TEMPLATE_OF_TOPIC[topic], now=now):
        messaging.message_send(message_id=message.pk, now=now)


@agent_task(AgentName.ENGAGEMENT, max_retries=3)
def send_due_messages() -> dict[str, int]:
    """Beat, every minute: send the scheduled messages that are due, in batches."""
    now, sent = timezone.now(), 0
    for message_id in messaging.messages_due(now=now, limit=SWEEP_BATCH):
        messaging.message_send(message_id=message_id, now=now)
        sent += 1
    return {"due": sent}
