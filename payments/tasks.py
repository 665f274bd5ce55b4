"""Payments agent tasks, routed from the outbox (``agents.routes``). They take the event id only."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from core.models import OutboxEvent

from . import services


def _order_id(event_id: str) -> str | None:
    event = OutboxEvent.objects.filter(pk=event_id).only("aggregate_id").first()
    return event.aggregate_id if event is not None else None


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=8,
)
def issue_invoice(*, event_id: str, topic: str) -> None:
    """``order.verified``: invoice a verified cash-pay order (idempotent)."""
    order_id = _order_id(event_id)
    if order_id is not None:
        services.invoice_issue(order_id=order_id)


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=8,
)
def void_invoice(*, event_id: str, topic: str) -> None:
    """``order.cancelled``: void the open invoice of the cancelled order (idempotent)."""
    order_id = _order_id(event_id)
    if order_id is not None:
        services.invoice_void(order_id=order_id)
