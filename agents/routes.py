"""The route table: which agent tasks receive which outbox topics.

``core.outbox`` delivers each committed event to every task listed for its topic, with
``event_id`` and ``topic`` as keyword arguments. The tasks are the agents' (one module per agent in
this package, built with ``agents.runtime.agent_task``): they load what they need by id, record
each run, and do nothing for an event they have already handled (delivery is at least once).
"""

from __future__ import annotations

from importlib import import_module

from core.outbox import subscribe

ROUTES: dict[str, tuple[str, ...]] = {
    # Ordering agent: a patient's work orders follow their orders.
    "order.created": ("agents.ordering.refresh_work_orders",),
    # Engagement agent: the patient's messages on approval, shipment and delivery.
    "order.approved": (
        "agents.ordering.refresh_work_orders",
        "agents.payments.open_claim",
        "agents.engagement.schedule_messages",
    ),
    "order.shipped": ("agents.engagement.schedule_messages",),
    "order.delivered": (
        "agents.ordering.refresh_work_orders",
        "agents.payments.record_claim_delivery",
        "agents.engagement.schedule_messages",
    ),
    # Payments agent: a verified cash-pay order is invoiced and waits for payment; the patient gets
    # a payment link; a revoked link's Checkout Sessions are expired; a cancelled order's open
    # invoice is voided and its payments refunded, as is a payment that came in twice.
    "order.verified": (
        "agents.payments.issue_invoice",
        "agents.payments.request_payment",
        "agents.pharmacy.submit_prescriptions",
    ),
    # Pharmacy agent: prescriptions go out once the order may be filled (insurance verified,
    # cash paid), and again when staff retry a dead-lettered one.
    "order.paid": ("agents.pharmacy.submit_prescriptions",),
    "prescription.retry": ("agents.pharmacy.submit_prescriptions",),
    "prescription.refill": ("agents.pharmacy.submit_prescriptions",),
    "order.awaiting_payment": ("agents.payments.send_payment_link",),
    "payment_link.revoked": ("agents.payments.expire_checkout_sessions",),
    "order.cancelled": (
        "agents.ordering.refresh_work_orders",
        "agents.payments.void_invoice",
        "agents.payments.withdraw_payment_links",
        "agents.payments.refund_cancelled_order",
    ),
    "payment.refund_due": ("agents.payments.refund_duplicate_payment",),
    # Workforce agent: a warehouse's day is planned again when its tasks or shifts change.
    "staffing.changed": ("agents.workforce.recalculate_staffing",),
}


# Every agent module: imported at start-up, so each agent task (routed or run by beat) is registered
# in every process (a web process running Celery eagerly would otherwise send an unknown name to
# the broker instead of running it, and a worker would refuse a beat task it does not know).
AGENT_MODULES = ("agents.engagement", "agents.ordering", "agents.payments", "agents.pharmacy", "agents.workforce")


def register() -> None:
    """Import every agent module and subscribe every route (called once from ``AgentsConfig.ready``)."""
    for module in AGENT_MODULES:
        import_module(module)
    for topic, task_names in ROUTES.items():
        for task_name in task_names:
            subscribe(topic, task_name)
