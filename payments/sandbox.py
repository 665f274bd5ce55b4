"""The sandbox provider's Checkout: the patient's choice travels as a signed Stripe-shaped event.

Only used when no Stripe key is configured (see ``payments.gateway``). The events are the ones
Stripe sends for the same outcome — ``checkout.session.completed`` (paid) or
``payment_intent.payment_failed`` (declined) — signed with stripe-python's signature helper and
the sandbox's webhook secret, and applied through ``webhook_receive`` like any webhook.
"""

from __future__ import annotations

import json
import uuid

import stripe

from .gateway import sandbox_active, webhook_secret
from .models import Payment, PaymentProvider
from .services import payment_metadata
from .webhooks import webhook_receive

# The decline code a sandbox failure reports (Stripe's own for a generic card decline).
SANDBOX_DECLINE_CODE = "card_declined"


def sandbox_payment(*, checkout_session_id: str) -> Payment | None:
    """The sandbox payment behind a sandbox Checkout Session; None when Stripe is configured or it is unknown."""
    if not sandbox_active() or not checkout_session_id.startswith("cs_sandbox_"):
        return None
    return (
        Payment.objects.select_related("order", "link", "territory")
        .filter(provider=PaymentProvider.SANDBOX, checkout_session_id=checkout_session_id)
        .first()
    )


def sandbox_checkout_complete(*, payment: Payment, succeed: bool) -> str:
    """Deliver the outcome the patient chose as a signed webhook event; returns the event's outcome."""
    metadata = payment_metadata(payment.order)
    if succeed:
        event_type = "checkout.session.completed"
        obj = {
            "id": payment.checkout_session_id,
            "object": "checkout.session",
            "status": "complete",
            "payment_status": "paid",
            "payment_intent": payment.payment_intent_id,
            "amount_total": payment.amount_cents,
            "currency": payment.currency,
            "client_reference_id": metadata["order_id"],
            "metadata": metadata,
        }
    else:
        event_type = "payment_intent.payment_failed"
        obj = {
            "id": payment.payment_intent_id,
            "object": "payment_intent",
            "status": "requires_payment_method",
            "amount": payment.amount_cents,
            "currency": payment.currency,
            "metadata": metadata,
            "last_payment_error": {"code": SANDBOX_DECLINE_CODE, "type": "card_error"},
        }
    body = json.dumps(
        {"id": f"evt_sandbox_{uuid.uuid4().hex}", "object": "event", "type": event_type, "data": {"object": obj}}
    )
    signature = stripe.WebhookSignature.generate_signature_header(body, webhook_secret())
    return webhook_receive(payload=body.encode(), signature=signature)
