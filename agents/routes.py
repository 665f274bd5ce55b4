"""The route table: which agent tasks receive which outbox topics.

``core.outbox`` delivers each committed event to every task listed for its topic, with
``event_id`` and ``topic`` as keyword arguments; tasks load what they need by id and must be
idempotent (delivery is at least once). The agents that consume order events arrive with their
own issues and add their entries here.
"""

from __future__ import annotations

from importlib import import_module

from core.outbox import subscribe

ROUTES: dict[str, tuple[str, ...]] = {
    # Payments agent: a verified cash-pay order is invoiced and waits for payment; the patient gets
    # a payment link; a revoked link's Checkout Sessions are expired; a cancelled order's open
    # invoice is voided and its payments refunded, as is a payment that came in twice.
    "order.verified": (
        "payments.tasks.issue_invoice",
        "payments.tasks.request_payment",
        "pharmacy.tasks.submit_prescriptions",
    ),
    # Pharmacy agent: prescriptions go out once the order may be filled (insurance verified,
    # cash paid), and again when staff retry a dead-lettered one.
    "order.paid": ("pharmacy.tasks.submit_prescriptions",),
    "prescription.retry": ("pharmacy.tasks.submit_prescriptions",),
    "prescription.refill": ("pharmacy.tasks.submit_prescriptions",),
    "order.awaiting_payment": ("payments.tasks.send_payment_link",),
    "payment_link.revoked": ("payments.tasks.expire_checkout_sessions",),
    "order.cancelled": (
        "payments.tasks.void_invoice",
        "payments.tasks.withdraw_payment_links",
        "payments.tasks.refund_cancelled_order",
    ),
    "payment.refund_due": ("payments.tasks.refund_duplicate_payment",),
}


def register() -> None:
    """Subscribe every route (called once from ``AgentsConfig.ready``).

    Each task's module is imported here, so the task is registered in every process that
    publishes (a web process running Celery eagerly would otherwise send an unknown name to the
    broker instead of running it).
    """
    for topic, task_names in ROUTES.items():
        for task_name in task_names:
            import_module(task_name.rsplit(".", 1)[0])
            subscribe(topic, task_name)
