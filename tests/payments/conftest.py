"""A local HTTP server speaking enough of Stripe's API for the real stripe-python client, and helpers.

``FakeStripe`` answers PaymentIntents, Checkout Sessions (create, retrieve, expire) and Refunds
the way Stripe does — objects keyed by idempotency key, so a repeated key returns the same
object — and keeps every request it received (headers and decoded form) for inspection.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
import stripe
from django.test import override_settings
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from orders import services as order_services
from orders.models import Order
from tests.conftest import World

WEBHOOK_SECRET = "whsec_test_secret"


def _metadata(form: dict[str, str], prefix: str = "metadata") -> dict[str, str]:
    return {key[len(prefix) + 1 : -1]: value for key, value in form.items() if re.fullmatch(rf"{prefix}\[\w+\]", key)}


def _error(status: int, code: str, message: str) -> Response:
    body = {"error": {"type": "invalid_request_error", "code": code, "message": message}}
    return Response(json.dumps(body), status=status, content_type="application/json")


class FakeStripe:
    """Stripe's API for PaymentIntents, Checkout Sessions and Refunds; ``fail_next`` makes calls answer 500."""

    def __init__(self) -> None:
        self.by_key: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0

    def count(self, path: str) -> int:
        return sum(1 for request in self.requests if request["path"] == path)

    def handle(self, request: Request) -> Response:
        form = dict(parse_qsl(request.get_data(as_text=True)))
        self.requests.append(
            {"method": request.method, "path": request.path, "headers": dict(request.headers), "form": form}
        )
        if self.fail_next:
            self.fail_next -= 1
            return _error(500, "api_error", "Something went wrong on Stripe's end.")
        key = request.headers.get("Idempotency-Key", "")
        path = request.path
        if request.method == "POST" and path == "/v1/payment_intents":
            return self._once(key, lambda n: self._intent(n, form))
        if request.method == "POST" and path == "/v1/checkout/sessions":
            return self._once(key, lambda n: self._session(n, form))
        if request.method == "POST" and path == "/v1/refunds":
            return self._once(key, lambda n: self._refund(n, form))
        match = re.fullmatch(r"/v1/checkout/sessions/(\w+)(/expire)?", path)
        if match and match.group(1) in self.sessions:
            session = self.sessions[match.group(1)]
            if match.group(2):
                if session["status"] != "open":
                    return _error(400, "checkout_session_not_open", "Only open sessions can be expired.")
                session["status"] = "expired"
            return Response(json.dumps(session), status=200, content_type="application/json")
        return _error(404, "resource_missing", "No such resource.")

    def _once(self, key: str, build: Any) -> Response:
        if key not in self.by_key:
            self.by_key[key] = build(len(self.by_key) + 1)
        return Response(json.dumps(self.by_key[key]), status=200, content_type="application/json")

    def _intent(self, number: int, form: dict[str, str]) -> dict[str, Any]:
        return {
            "id": f"pi_test_{number}",
            "object": "payment_intent",
            "amount": int(form["amount"]),
            "currency": form["currency"],
            "client_secret": f"pi_test_{number}_secret_abc",
            "status": "requires_payment_method",
            "description": form.get("description"),
            "metadata": _metadata(form),
        }

    def _session(self, number: int, form: dict[str, str]) -> dict[str, Any]:
        session: dict[str, Any] = {
            "id": f"cs_test_{number}",
            "object": "checkout.session",
            "url": f"https://checkout.stripe.test/c/pay/cs_test_{number}",
            "status": "open",
            "payment_status": "unpaid",
            "payment_intent": None,
            "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
            "currency": form["line_items[0][price_data][currency]"],
            "expires_at": int(form["expires_at"]),
            "client_reference_id": form.get("client_reference_id"),
            "metadata": _metadata(form),
        }
        self.sessions[f"cs_test_{number}"] = session
        return session

    def _refund(self, number: int, form: dict[str, str]) -> dict[str, Any]:
        return {
            "id": f"re_test_{number}",
            "object": "refund",
            "payment_intent": form["payment_intent"],
            "status": "succeeded",
            "metadata": _metadata(form),
        }

    def complete(self, session_id: str, payment_intent_id: str) -> dict[str, Any]:
        """The patient paid: the session completes with its PaymentIntent (as Stripe does)."""
        session = self.sessions[session_id]
        session.update(status="complete", payment_status="paid", payment_intent=payment_intent_id)
        return dict(session)


@pytest.fixture
def stripe_server(httpserver: HTTPServer) -> Iterator[FakeStripe]:
    """Stripe configured (secret key, webhook secret) and pointed at the local fake."""
    fake = FakeStripe()
    httpserver.expect_request(re.compile(r"^/v1/.*")).respond_with_handler(fake.handle)
    with override_settings(
        STRIPE_SECRET_KEY="sk_test_local",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=httpserver.url_for("").rstrip("/"),
    ):
        yield fake


def awaiting_payment(world: World) -> Order:
    """A cash-pay order of ``world``, verified and awaiting payment (through the real services)."""
    order = world.order(payer_type="cash")
    order_services.order_verify(order_id=order.pk, actor=world.ops)
    return order_services.order_transition(order_id=order.pk, actor=world.ops, transition="request_payment")


def stripe_event(event_id: str, event_type: str, obj: dict[str, Any]) -> str:
    return json.dumps({"id": event_id, "object": "event", "type": event_type, "data": {"object": obj}})


def deliver(client: Any, body: str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> Any:
    """POST ``body`` to the webhook signed the way Stripe signs it (stripe-python's helper)."""
    signature = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp or int(time.time()))
    return client.post("/payments/webhook", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)
