"""Payments agent tasks, routed from the outbox (``agents.routes``). They take the event id only.

Each is idempotent (delivery is at least once) and retries with backoff and jitter while the
database or the payment provider is unavailable.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import OperationalError

from core.models import OutboxEvent
from core.sms import SMSDeliveryFailed

from . import links, services


def _aggregate_id(event_id: str) -> str | None:
    event = OutboxEvent.objects.filter(pk=event_id).only("aggregate_id").first()
    return event.aggregate_id if event is not None else None


def agent_task(*retry_on: type[Exception]) -> Any:
    """A payments agent task: acknowledged late, retried with backoff and jitter on the given errors."""
    return shared_task(
        autoretry_for=(OperationalError, *retry_on),
        acks_late=True,
        ignore_result=True,
        retry_backoff=True,
        retry_jitter=True,
        max_retries=8,
    )


@agent_task()
def issue_invoice(*, event_id: str, topic: str) -> None:
    """``order.verified``: invoice a verified cash-pay order (idempotent)."""
    order_id = _aggregate_id(event_id)
    if order_id is not None:
        services.invoice_issue(order_id=order_id)


@agent_task()
def request_payment(*, event_id: str, topic: str) -> None:
    """``order.verified``: a verified cash-pay order moves to ``awaiting_payment``."""
    order_id = _aggregate_id(event_id)
    if order_id is not None:
        services.order_payment_request(order_id=order_id)


@agent_task(SMSDeliveryFailed)
def send_payment_link(*, event_id: str, topic: str) -> None:
    """``order.awaiting_payment``: make sure the order has a usable link and the patient has it."""
    order_id = _aggregate_id(event_id)
    if order_id is None:
        return
    link = links.payment_link_ensure(order_id=order_id)
    if link is not None:
        links.payment_link_notify(link_id=link.pk)


@agent_task(services.PaymentProviderUnavailable)
def expire_checkout_sessions(*, event_id: str, topic: str) -> None:
    """``payment_link.revoked``: expire the revoked link's open Checkout Sessions."""
    link_id = _aggregate_id(event_id)
    if link_id is not None:
        links.checkout_sessions_expire(link_id=link_id)


@agent_task()
def void_invoice(*, event_id: str, topic: str) -> None:
    """``order.cancelled``: void the open invoice of the cancelled order (idempotent)."""
    order_id = _aggregate_id(event_id)
    if order_id is not None:
        services.invoice_void(order_id=order_id)


@agent_task()
def withdraw_payment_links(*, event_id: str, topic: str) -> None:
    """``order.cancelled``: the cancelled order's payment links stop working."""
    order_id = _aggregate_id(event_id)
    if order_id is not None:
        links.payment_links_withdraw(order_id=order_id)


@agent_task(services.PaymentProviderUnavailable)
def refund_cancelled_order(*, event_id: str, topic: str) -> None:
    """``order.cancelled``: refund the cancelled order's succeeded payments (once each)."""
    order_id = _aggregate_id(event_id)
    if order_id is not None:
        services.refunds_for_cancelled_order(order_id=order_id)


@agent_task(services.PaymentProviderUnavailable)
def refund_duplicate_payment(*, event_id: str, topic: str) -> None:
    """``payment.refund_due``: refund a payment that arrived for an order already paid or cancelled."""
    payment_id = _aggregate_id(event_id)
    if payment_id is not None:
        services.payment_refund(payment_id=payment_id, actor=None, reason="Duplicate or late payment")
