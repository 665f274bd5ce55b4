"""Payments agent (seed 000: "consumes order.approved to pre-stage claim reconciliation checkpoints";
cash pay: invoices, payment links and refunds). Tasks routed from the outbox (``agents.routes``);
each takes the event id only and calls one service of ``payments``, which is idempotent.
"""

from __future__ import annotations

from core.sms import SMSDeliveryFailed
from payments import claims, links, services

from .models import AgentName
from .runtime import agent_task, event_aggregate_id


@agent_task(AgentName.PAYMENTS)
def issue_invoice(*, event_id: str, topic: str) -> None:
    """``order.verified``: invoice a verified cash-pay order (idempotent)."""
    order_id = event_aggregate_id(event_id)
    if order_id is not None:
        services.invoice_issue(order_id=order_id)


@agent_task(AgentName.PAYMENTS)
def request_payment(*, event_id: str, topic: str) -> None:
    """``order.verified``: a verified cash-pay order moves to ``awaiting_payment``."""
    order_id = event_aggregate_id(event_id)
    if order_id is not None:
        services.order_payment_request(order_id=order_id)


@agent_task(AgentName.PAYMENTS, retry_on=(SMSDeliveryFailed,))
def send_payment_link(*, event_id: str, topic: str) -> None:
    """``order.awaiting_payment``: make sure the order has a usable link and the patient has it."""
    order_id = event_aggregate_id(event_id)
    if order_id is None:
        return
    link = links.payment_link_ensure(order_id=order_id)
    if link is not None:
        links.payment_link_notify(link_id=link.pk)


@agent_task(AgentName.PAYMENTS, retry_on=(services.PaymentProviderUnavailable,))
def expire_checkout_sessions(*, event_id: str, topic: str) -> None:
    """``payment_link.revoked``: expire the revoked link's open Checkout Sessions."""
    link_id = event_aggregate_id(event_id)
    if link_id is not None:
        links.checkout_sessions_expire(link_id=link_id)


@agent_task(AgentName.PAYMENTS)
def void_invoice(*, event_id: str, topic: str) -> None:
    """``order.cancelled``: void the open invoice of the cancelled order (idempotent)."""
    order_id = event_aggregate_id(event_id)
    if order_id is not None:
        services.invoice_void(order_id=order_id)


@agent_task(AgentName.PAYMENTS)
def withdraw_payment_links(*, event_id: str, topic: str) -> None:
    """``order.cancelled``: the cancelled order's payment links stop working."""
    order_id = event_aggregate_id(event_id)
    if order_id is not None:
        links.payment_links_withdraw(order_id=order_id)


@agent_task(AgentName.PAYMENTS, retry_on=(services.PaymentProviderUnavailable,))
def refund_cancelled_order(*, event_id: str, topic: str) -> None:
    """``order.cancelled``: refund the cancelled order's succeeded payments (once each)."""
    order_id = event_aggregate_id(event_id)
    if order_id is not None:
        services.refunds_for_cancelled_order(order_id=order_id)


@agent_task(AgentName.PAYMENTS, retry_on=(services.PaymentProviderUnavailable,))
def refund_duplicate_payment(*, event_id: str, topic: str) -> None:
    """``payment.refund_due``: refund a payment that arrived for an order already paid or cancelled."""
    payment_id = event_aggregate_id(event_id)
    if payment_id is not None:
        services.payment_refund(payment_id=payment_id, actor=None, reason="Duplicate or late payment")


@agent_task(AgentName.PAYMENTS)
def open_claim(*, event_id: str, topic: str) -> None:
    """``order.approved``: stage the claim of an approved insurance order (idempotent)."""
    order_id = event_aggregate_id(event_id)
    if order_id is not None:
        claims.claim_open(order_id=order_id)


@agent_task(AgentName.PAYMENTS)
def record_claim_delivery(*, event_id: str, topic: str) -> None:
    """``order.delivered``: the claim's date of service and its *delivered* and *ready to bill* steps."""
    order_id = event_aggregate_id(event_id)
    if order_id is not None:
        claims.claim_delivered(order_id=order_id)
