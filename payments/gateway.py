"""The payment provider: Stripe through stripe-python, or the built-in sandbox when no key is set.

Only opaque ids travel: metadata ``order_id`` and ``invoice_id``, a generic description such as
"Order 2K7-XQ4", amounts and currency — never a product, code, name, email or date of birth.
``STRIPE_API_BASE`` points the library at another host (tests use a local HTTP server speaking
Stripe's API).

Every call that creates something takes an idempotency key, so a retry gets the same object.
The sandbox keeps that promise by deriving its ids from the key; its money moves nowhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Protocol

import stripe
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from .models import Payment, PaymentProvider, PaymentStatus


class PaymentGatewayError(Exception):
    """The provider refused or could not be reached; ``code`` is its error code when it gave one."""

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


@dataclass(frozen=True)
class SessionResult:
    checkout_session_id: str
    url: str
    expires_at: dt.datetime
    payment_intent_id: str | None


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    status: str


class Gateway(Protocol):
    provider: str

    def payment_intent_create(
        self, *, amount_cents: int, currency: str, reference: str, metadata: dict[str, str], idempotency_key: str
    ) -> IntentResult: ...

    def checkout_session_create(
        self,
        *,
        amount_cents: int,
        currency: str,
        reference: str,
        metadata: dict[str, str],
        success_url: str,
        cancel_url: str,
        expires_at: dt.datetime,
        idempotency_key: str,
    ) -> SessionResult: ...

    def checkout_session_expire(self, *, checkout_session_id: str) -> str: ...

    def refund_create(
        self, *, payment_intent_id: str, metadata: dict[str, str], idempotency_key: str
    ) -> RefundResult: ...


def gateway() -> Gateway:
    """Stripe when ``STRIPE_SECRET_KEY`` is set, otherwise the sandbox where it is allowed.

    Raises PaymentGatewayError("not_configured") when neither is available (production without keys).
    """
    if settings.STRIPE_SECRET_KEY:
        return StripeGateway()
    if settings.PAYMENTS_SANDBOX_ALLOWED:
        return SandboxGateway()
    raise PaymentGatewayError("not_configured")


def sandbox_active() -> bool:
    return not settings.STRIPE_SECRET_KEY and bool(settings.PAYMENTS_SANDBOX_ALLOWED)


def webhook_secret() -> str:
    """The secret webhook signatures are checked with: the configured endpoint secret, else the sandbox's own.

    With a Stripe key but no endpoint secret there is none, and every webhook is refused.
    """
    if not sandbox_active() or settings.STRIPE_WEBHOOK_SECRET:
        return str(settings.STRIPE_WEBHOOK_SECRET)
    return "whsec_sandbox_" + _keyed("webhook-secret")


def _keyed(value: str) -> str:
    """An HMAC of ``value`` under SECRET_KEY (sandbox ids cannot be guessed from the key alone)."""
    return hmac.new(settings.SECRET_KEY.encode(), f"payments.sandbox:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def _stripe_error(error: stripe.StripeError) -> PaymentGatewayError:
    return PaymentGatewayError(getattr(error, "code", None) or type(error).__name__)


class StripeGateway:
    provider: str = PaymentProvider.STRIPE

    def __init__(self) -> None:
        base = settings.STRIPE_API_BASE
        self.client = stripe.StripeClient(
            settings.STRIPE_SECRET_KEY,
            base_addresses={"api": base} if base else None,
            max_network_retries=2,
        )

    def payment_intent_create(
        self, *, amount_cents: int, currency: str, reference: str, metadata: dict[str, str], idempotency_key: str
    ) -> IntentResult:
        try:
            intent: Any = self.client.v1.payment_intents.create(
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
            raise _stripe_error(error) from error
        return IntentResult(
            payment_intent_id=intent.id,
            client_secret=intent.client_secret,
            amount=intent.amount,
            currency=intent.currency,
            status=intent.status,
        )

    def checkout_session_create(
        self,
        *,
        amount_cents: int,
        currency: str,
        reference: str,
        metadata: dict[str, str],
        success_url: str,
        cancel_url: str,
        expires_at: dt.datetime,
        idempotency_key: str,
    ) -> SessionResult:
        """One line, "Order <reference>", for the order's total: Stripe never sees what was ordered."""
        try:
            session: Any = self.client.v1.checkout.sessions.create(
                params={
                    "mode": "payment",
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": currency,
                                "unit_amount": amount_cents,
                                "product_data": {"name": f"Order {reference}"},
                            },
                        }
                    ],
                    "client_reference_id": metadata["order_id"],
                    "metadata": metadata,
                    "payment_intent_data": {"description": f"Order {reference}", "metadata": metadata},
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                    "expires_at": int(expires_at.timestamp()),
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as error:
            raise _stripe_error(error) from error
        return SessionResult(
            checkout_session_id=session.id,
            url=session.url,
            expires_at=dt.datetime.fromtimestamp(session.expires_at, tz=dt.UTC),
            payment_intent_id=getattr(session, "payment_intent", None) or None,
        )

    def checkout_session_expire(self, *, checkout_session_id: str) -> str:
        """Expire an open session; returns the session's status afterwards (``expired`` or ``complete``)."""
        sessions = self.client.v1.checkout.sessions
        try:
            return str(sessions.expire(checkout_session_id).status)
        except stripe.InvalidRequestError:
            # Only open sessions can be expired: this one already completed or expired.
            try:
                return str(sessions.retrieve(checkout_session_id).status)
            except stripe.StripeError as error:
                raise _stripe_error(error) from error
        except stripe.StripeError as error:
            raise _stripe_error(error) from error

    def refund_create(self, *, payment_intent_id: str, metadata: dict[str, str], idempotency_key: str) -> RefundResult:
        try:
            refund: Any = self.client.v1.refunds.create(
                params={"payment_intent": payment_intent_id, "metadata": metadata},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as error:
            raise _stripe_error(error) from error
        return RefundResult(refund_id=refund.id, status=refund.status)


class SandboxGateway:
    """Stands in for Stripe on a fresh clone: no network, no money, ids derived from idempotency keys.

    Its Checkout page is ours (``/pay/sandbox/<session>``, labelled as sandbox); the patient's
    choice there is sent as a Stripe-shaped event, signed with :func:`webhook_secret`, through
    the same webhook code as Stripe's own events.
    """

    provider: str = PaymentProvider.SANDBOX

    def payment_intent_create(
        self, *, amount_cents: int, currency: str, reference: str, metadata: dict[str, str], idempotency_key: str
    ) -> IntentResult:
        intent_id = f"pi_sandbox_{_keyed(idempotency_key)}"
        return IntentResult(
            payment_intent_id=intent_id,
            client_secret=f"{intent_id}_secret_{_keyed(intent_id)[:16]}",
            amount=amount_cents,
            currency=currency,
            status="requires_payment_method",
        )

    def checkout_session_create(
        self,
        *,
        amount_cents: int,
        currency: str,
        reference: str,
        metadata: dict[str, str],
        success_url: str,
        cancel_url: str,
        expires_at: dt.datetime,
        idempotency_key: str,
    ) -> SessionResult:
        session_id = f"cs_sandbox_{_keyed(idempotency_key)}"
        return SessionResult(
            checkout_session_id=session_id,
            url=settings.PUBLIC_BASE_URL.rstrip("/") + reverse("payments-sandbox-checkout", args=[session_id]),
            expires_at=expires_at,
            payment_intent_id=f"pi_sandbox_{_keyed(session_id)}",
        )

    def checkout_session_expire(self, *, checkout_session_id: str) -> str:
        payment = Payment.objects.filter(checkout_session_id=checkout_session_id).only("status").first()
        succeeded = payment is not None and payment.status in (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED)
        return "complete" if succeeded else "expired"

    def refund_create(self, *, payment_intent_id: str, metadata: dict[str, str], idempotency_key: str) -> RefundResult:
        return RefundResult(refund_id=f"re_sandbox_{_keyed(idempotency_key)}", status="succeeded")


def checkout_expiry(link_expires_at: dt.datetime) -> dt.datetime:
    """When a new Checkout Session should expire: with its link, within Stripe's 30 minutes to 24 hours."""
    now = timezone.now()
    return min(max(link_expires_at, now + dt.timedelta(minutes=31)), now + dt.timedelta(hours=23, minutes=59))
