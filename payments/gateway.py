"""The Stripe API through stripe-python, and nothing else: no PHI ever goes in.

Only opaque ids travel: metadata ``order_id`` (and ``invoice_id``), a generic description such as
"Order 2K7-XQ4", amounts and currency. ``STRIPE_API_BASE`` points the library at another host
(tests use a local HTTP server speaking Stripe's API).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings


class PaymentGatewayError(Exception):
    """Stripe refused or could not be reached; ``code`` is Stripe's error code when it gave one."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class IntentResult:
    payment_intent_id: str
    client_secret: str
    amount: int
    currency: str
    status: str


def stripe_client() -> stripe.StripeClient:
    base = settings.STRIPE_API_BASE
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": base} if base else None,
        max_network_retries=2,
    )


def payment_intent_create(
    *, amount_cents: int, currency: str, reference: str, metadata: dict[str, str], idempotency_key: str
) -> IntentResult:
    """Create (or, with the same idempotency key, get back) a PaymentIntent. Raises PaymentGatewayError."""
    try:
        intent: Any = stripe_client().v1.payment_intents.create(
            params={
                "amount": amount_cents,
                "currency": currency,
                "description": f"Order {reference}",
                "metadata": metadata,
                "automatic_payment_methods": {"enabled": True},
            },
            options={"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as error:
        raise PaymentGatewayError(getattr(error, "code", None) or type(error).__name__) from error
    return IntentResult(
        payment_intent_id=intent.id,
        client_secret=intent.client_secret,
        amount=intent.amount,
        currency=intent.currency,
        status=intent.status,
    )
