"""``manage.py check``: the payment provider is configured coherently for where the code runs."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register()
def payment_provider_configured(app_configs: Any, **kwargs: Any) -> list[Error]:
    errors = []
    if settings.STRIPE_SECRET_KEY and not settings.STRIPE_WEBHOOK_SECRET:
        errors.append(
            Error(
                "STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRET is not: every Stripe webhook would be refused.",
                hint="Set STRIPE_WEBHOOK_SECRET to the endpoint's signing secret (whsec_...).",
                id="payments.E001",
            )
        )
    if not settings.STRIPE_SECRET_KEY and not settings.PAYMENTS_SANDBOX_ALLOWED:
        errors.append(
            Error(
                "No STRIPE_SECRET_KEY and the sandbox provider is not allowed here: patients could not pay.",
                hint="Set the Stripe keys, or PAYMENTS_SANDBOX_ALLOWED=true outside production.",
                id="payments.E002",
            )
        )
    return errors
