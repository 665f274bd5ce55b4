"""REST API tests, and the helpers they share: the error envelope and "nothing changed" snapshots."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from core.models import OutboxEvent
from orders.models import Order, OrderEvent, OrderItem
from patients.models import Patient
from territories.services import membership_grant
from tests.factories import UserFactory

ERROR_KEYS = {"code", "message", "details"}


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert ``response`` is the error envelope with ``status`` and ``code``; return its ``error``."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"status", "error"}
    assert body["status"] == "error"
    assert set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return dict(body["error"])


def assert_error(
    response: Any, status: int, code: str, message: str | None = None, details: Any = None
) -> dict[str, Any]:
    """``error_of`` plus exact message and details (``details=None`` means ``{}``)."""
    error = error_of(response, status, code)
    if message is not None:
        assert error["message"] == message
    assert error["details"] == ({} if details is None else details)
    return error


def assert_envelope_if_error(response: Any) -> None:
    """No 5xx, ever; and a 4xx always speaks the envelope."""
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"status", "error"}
        assert body["status"] == "error"
        assert set(body["error"]) == ERROR_KEYS
        assert isinstance(body["error"]["code"], str)
        assert isinstance(body["error"]["details"], dict)


@dataclass(frozen=True)
class State:
    """What a denied request must leave untouched."""

    orders: frozenset[tuple[uuid.UUID, str, Any]]
    order_items: int
    order_events: int
    order_history: int
    outbox_events: int
    patients: int


def snapshot() -> State:
    return State(
        orders=frozenset(Order.objects.values_list("id", "status", "updated_at")),
        order_items=OrderItem.objects.count(),
        order_events=OrderEvent.objects.count(),
        order_history=Order.history.count(),
        outbox_events=OutboxEvent.objects.count(),
        patients=Patient.objects.count(),
    )


def order_body(world: Any, **overrides: Any) -> dict[str, Any]:
    """A valid POST /api/v1/orders body for ``world``'s patient, provider and product (seed 002 + items)."""
    body: dict[str, Any] = {
        "patient_id": str(world.patient.pk),
        "provider_id": str(world.provider.pk),
        "service_type": "CPAP resupply",
        "diagnosis_codes": ["G47.33"],
        "notes": "Mask cushion worn",
        "insurance": {"carrier": "Medicare Part B", "policy_number": "1EG4TE5MK73", "group_number": "GRP-1"},
        "items": [{"sku": world.product.sku, "quantity": 2}],
        "delivery_mode": "ship_to_patient",
        "priority": "routine",
        "payer_type": "insurance",
    }
    body.update(overrides)
    return body


def member_of(*worlds: Any, role: str = "doctor", username: str = "multi") -> Any:
    """A user with ``role`` in each of ``worlds``' territories (password ``test-password``)."""
    user = UserFactory(username=username)
    for world in worlds:
        membership_grant(user=user, territory=world.territory, role=role)
    return user
