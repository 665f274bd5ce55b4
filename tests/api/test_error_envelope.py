"""Every error code leaves as the seed's envelope: {"status": "error", "error": {code, message, details}}."""

from __future__ import annotations

import uuid
from typing import Any

from rest_framework.test import APIClient

from tests.api import assert_error, member_of, order_body, snapshot


def test_order_not_found(north: Any, api: Any) -> None:
    missing = uuid.uuid4()

    response = api(north.doctor).get(f"/api/v1/orders/{missing}")

    assert response.json() == {
        "status": "error",
        "error": {"code": "ORDER_NOT_FOUND", "message": "Order not found.", "details": {}},
    }
    assert_error(response, 404, "ORDER_NOT_FOUND")


def test_invalid_status_transition_names_both_statuses(north: Any, api: Any) -> None:
    order = north.order()
    before = snapshot()

    response = api(north.ops).put(f"/api/v1/orders/{order.pk}/status", {"status": "completed"}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "INVALID_STATUS_TRANSITION",
            "message": "Cannot transition from pending_verification to completed",
            "details": {
                "order_id": str(order.pk),
                "current_status": "pending_verification",
                "requested_status": "completed",
            },
        },
    }
    assert snapshot() == before


def test_territory_mismatch(north: Any, south: Any, api: Any) -> None:
    response = api(north.doctor).get(f"/api/v1/orders/territory/{south.territory.pk}")

    assert response.status_code == 403
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "TERRITORY_MISMATCH",
            "message": "You do not work in that territory.",
            "details": {"territory_id": str(south.territory.pk)},
        },
    }


def test_patient_provider_mismatch(north: Any, south: Any, api: Any) -> None:
    # A user who sees both the north provider and the south patient orders for them together.
    client = api(member_of(north, south))
    before = snapshot()

    response = client.post("/api/v1/orders", order_body(north, patient_id=str(south.patient.pk)), format="json")

    assert response.status_code == 422
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "PATIENT_PROVIDER_MISMATCH",
            "message": "The patient is not assigned to the provider's territory.",
            "details": {},
        },
    }
    assert snapshot() == before


def test_validation_error_names_the_fields(north: Any, api: Any) -> None:
    before = snapshot()

    response = api(north.doctor).post(
        "/api/v1/orders", order_body(north, patient_id="not-a-uuid", items=[{"sku": "X"}]), format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "VALIDATION_ERROR",
            "message": "The request has invalid fields.",
            "details": {
                "patient_id": ["Must be a valid UUID."],
                "items": {"0": {"quantity": ["This field is required."]}},
            },
        },
    }
    assert snapshot() == before


def test_authentication_failed(north: Any) -> None:
    response = APIClient().get(f"/api/v1/orders/{uuid.uuid4()}")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "AUTHENTICATION_FAILED",
            "message": "Authentication credentials were not provided.",
            "details": {},
        },
    }


def test_permission_denied(north: Any, api: Any) -> None:
    order = north.order()
    before = snapshot()

    response = api(north.doctor).put(f"/api/v1/orders/{order.pk}/verify", {}, format="json")

    assert response.status_code == 403
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "PERMISSION_DENIED",
            "message": "Your role may not make this change to the order.",
            "details": {},
        },
    }
    assert snapshot() == before


def test_unknown_url_under_api_is_a_json_404(north: Any, api: Any) -> None:
    for path in ["/api/v1/nothing-here", "/api/v2/orders", "/api/orders/", "/api/v1/orders/"]:
        response = api(north.doctor).get(path)

        assert response.status_code == 404, path
        assert response["Content-Type"].startswith("application/json")
        assert response.json() == {
            "status": "error",
            "error": {"code": "NOT_FOUND", "message": "No such endpoint.", "details": {}},
        }


def test_unknown_url_for_an_anonymous_caller_is_a_json_404(db: Any) -> None:
    response = APIClient().post("/api/v1/nothing-here", {}, format="json")

    assert_error(response, 404, "NOT_FOUND", "No such endpoint.")


def test_wrong_method_is_a_405_envelope(north: Any, api: Any) -> None:
    order = north.order()
    client = api(north.doctor)
    cases = [
        ("get", "/api/v1/orders"),
        ("delete", f"/api/v1/orders/{order.pk}"),
        ("post", f"/api/v1/orders/{order.pk}/status"),
        ("get", f"/api/v1/orders/{order.pk}/cancel"),
        ("put", f"/api/orders/{order.pk}/timeline"),
        ("get", f"/api/orders/{order.pk}/events"),
        ("put", "/api/v1/patients"),
        ("post", "/api/v1/providers"),
        ("get", "/api/v1/auth/token"),
    ]
    before = snapshot()

    for method, path in cases:
        response = getattr(client, method)(path, {}, format="json") if method != "get" else client.get(path)

        assert_error(response, 405, "METHOD_NOT_ALLOWED", f'Method "{method.upper()}" not allowed.')
        assert "Allow" in response
    assert snapshot() == before


def test_body_that_is_not_json_is_a_validation_error(north: Any, api: Any) -> None:
    response = api(north.doctor).generic("POST", "/api/v1/orders", "{not json", content_type="application/json")

    assert_error(response, 400, "VALIDATION_ERROR", "The request body is not valid JSON.")


def test_a_body_of_another_media_type_is_refused(north: Any, api: Any) -> None:
    response = api(north.doctor).generic("POST", "/api/v1/orders", "patient_id=1", content_type="text/plain")

    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE", 'Unsupported media type "text/plain" in request.')
