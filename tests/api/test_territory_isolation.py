"""A user of one territory tries every id of the other: nothing is seen, nothing changes, nothing can be probed.

Each endpoint that takes an order id answers a south order exactly as it answers an id that does not
exist (404 ORDER_NOT_FOUND), for every north role, with a request that would succeed for the owner.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from orders import services
from orders.models import Order
from tests.api import assert_error, order_body, snapshot
from tests.factories import PatientFactory, ProviderFactory

NOT_FOUND = {"status": "error", "error": {"code": "ORDER_NOT_FOUND", "message": "Order not found.", "details": {}}}
NORTH_ROLES = ["doctor", "ops", "admin", "distributor"]


def advanced(world: Any, *transitions: str) -> Order:
    order = world.order()
    for transition in transitions:
        services.order_transition(order_id=order.pk, actor=world.ops, transition=transition)
    return order


# (method, path template, body, transitions that make the request valid for the order's own territory)
ORDER_ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, tuple[str, ...]]] = [
    ("get", "/api/v1/orders/{id}", None, ()),
    ("put", "/api/v1/orders/{id}/status", {"status": "verified", "notes": "ok"}, ()),
    ("put", "/api/v1/orders/{id}/status", {"status": "cancelled", "notes": "probe"}, ()),
    ("put", "/api/v1/orders/{id}/status", {"status": "shipped", "notes": ""}, ("verify", "start_fulfillment")),
    ("put", "/api/v1/orders/{id}/verify", {"notes": "ok", "verification_data": {"verified_by": "x"}}, ()),
    ("put", "/api/v1/orders/{id}/complete", {"notes": "delivered"}, ("verify", "start_fulfillment", "ship")),
    ("put", "/api/v1/orders/{id}/cancel", {"reason": "probe"}, ()),
    ("get", "/api/orders/{id}/timeline", None, ()),
    ("post", "/api/orders/{id}/events", {"note": "probe"}, ()),
]


def call(client: Any, method: str, path: str, body: dict[str, Any] | None) -> Any:
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format="json")


@pytest.mark.parametrize("role", NORTH_ROLES)
@pytest.mark.parametrize(
    ("method", "template", "body", "transitions"),
    ORDER_ENDPOINTS,
    ids=[f"{m}-{t.split('{id}')[-1] or 'detail'}-{i}" for i, (m, t, _, _) in enumerate(ORDER_ENDPOINTS)],
)
def test_an_order_of_the_other_territory_reads_as_missing(
    north: Any,
    south: Any,
    api: Any,
    role: str,
    method: str,
    template: str,
    body: dict[str, Any] | None,
    transitions: tuple[str, ...],
) -> None:
    south_order = advanced(south, *transitions)
    client = api(getattr(north, role))
    before = snapshot()

    probed = call(client, method, template.format(id=south_order.pk), body)
    missing = call(client, method, template.format(id=uuid.uuid4()), body)

    assert_error(probed, 404, "ORDER_NOT_FOUND", "Order not found.")
    assert probed.json() == missing.json() == NOT_FOUND
    assert missing.status_code == 404
    assert snapshot() == before
    # The same request is one the south staff may make: only the territory stopped it.
    owner = call(api(south.admin), method, template.format(id=south_order.pk), body)
    assert owner.status_code in {200, 201}, owner.content


@pytest.mark.parametrize("header", ["south", "north"])
def test_the_territory_id_header_does_not_open_another_territory(north: Any, south: Any, api: Any, header: str) -> None:
    south_order = south.order()
    client = api(north.doctor)
    before = snapshot()

    detail = client.get(f"/api/v1/orders/{south_order.pk}", HTTP_TERRITORY_ID=header)
    cancel = client.put(
        f"/api/v1/orders/{south_order.pk}/cancel", {"reason": "probe"}, format="json", HTTP_TERRITORY_ID=header
    )

    assert detail.status_code == cancel.status_code == 404
    assert detail.json() == cancel.json() == NOT_FOUND
    assert snapshot() == before


@pytest.mark.parametrize("role", NORTH_ROLES)
@pytest.mark.parametrize("key", ["uuid", "code"])
def test_the_other_territorys_order_list_is_a_territory_mismatch(
    north: Any, south: Any, api: Any, role: str, key: str
) -> None:
    south.order()
    territory = str(south.territory.pk) if key == "uuid" else "south"
    missing = str(uuid.uuid4()) if key == "uuid" else "atlantis"
    client = api(getattr(north, role))

    probed = client.get(f"/api/v1/orders/territory/{territory}", {"status": "pending_verification"})
    nowhere = client.get(f"/api/v1/orders/territory/{missing}")

    assert_error(probed, 403, "TERRITORY_MISMATCH", "You do not work in that territory.", {"territory_id": territory})
    assert_error(nowhere, 403, "TERRITORY_MISMATCH", "You do not work in that territory.", {"territory_id": missing})


def test_own_territory_list_never_shows_the_other_territorys_orders(north: Any, south: Any, api: Any) -> None:
    own = north.order()
    for _ in range(3):
        south.order()

    response = api(north.ops).get(f"/api/v1/orders/territory/{north.territory.pk}", {"page_size": 100})

    assert [row["id"] for row in response.json()["results"]] == [str(own.pk)]


@pytest.mark.parametrize("role", NORTH_ROLES)
def test_patient_and_provider_lists_never_include_the_other_territory(
    north: Any, south: Any, api: Any, role: str
) -> None:
    PatientFactory.create_batch(2, provider=south.provider, territory=south.territory)
    ProviderFactory(territory=south.territory)
    client = api(getattr(north, role))

    patients = client.get("/api/v1/patients", {"page_size": 100})
    south_by_name = client.get("/api/v1/patients", {"search": f"{south.patient.first_name} {south.patient.last_name}"})
    providers = client.get("/api/v1/providers", {"page_size": 100})

    # A master distributor reads no PHI, so no patients at all (minimum necessary).
    own_patients = [] if role == "distributor" else [str(north.patient.pk)]
    assert [row["id"] for row in patients.json()["results"]] == own_patients
    assert south_by_name.json()["results"] == []
    assert [row["id"] for row in providers.json()["results"]] == [str(north.provider.pk)]


def test_an_order_for_the_other_territorys_patient_reads_like_an_unknown_patient(
    north: Any, south: Any, api: Any
) -> None:
    client = api(north.doctor)
    before = snapshot()

    probed = client.post("/api/v1/orders", order_body(north, patient_id=str(south.patient.pk)), format="json")
    missing = client.post("/api/v1/orders", order_body(north, patient_id=str(uuid.uuid4())), format="json")

    assert_error(
        probed, 422, "PATIENT_PROVIDER_MISMATCH", "The patient is not assigned to the provider's territory.", {}
    )
    assert probed.json() == missing.json()
    assert snapshot() == before


def test_an_order_for_the_other_territorys_provider_reads_like_an_unknown_provider(
    north: Any, south: Any, api: Any
) -> None:
    client = api(north.doctor)
    before = snapshot()

    probed = client.post("/api/v1/orders", order_body(north, provider_id=str(south.provider.pk)), format="json")
    missing = client.post("/api/v1/orders", order_body(north, provider_id=str(uuid.uuid4())), format="json")

    assert_error(
        probed, 400, "VALIDATION_ERROR", "The request has invalid fields.", {"provider_id": ["Unknown provider."]}
    )
    assert probed.json() == missing.json()
    assert snapshot() == before


def test_an_order_entirely_of_the_other_territory_is_refused(north: Any, south: Any, api: Any) -> None:
    before = snapshot()

    response = api(north.doctor).post("/api/v1/orders", order_body(south), format="json")

    assert_error(
        response, 400, "VALIDATION_ERROR", "The request has invalid fields.", {"provider_id": ["Unknown provider."]}
    )
    assert snapshot() == before


def test_a_patient_for_the_other_territorys_provider_is_refused(north: Any, south: Any, api: Any) -> None:
    before = snapshot()
    body = {
        "first_name": "Probe",
        "last_name": "Person",
        "date_of_birth": "1960-01-01",
        "provider_id": str(south.provider.pk),
    }

    probed = api(north.doctor).post("/api/v1/patients", body, format="json")
    missing = api(north.doctor).post("/api/v1/patients", {**body, "provider_id": str(uuid.uuid4())}, format="json")

    assert_error(
        probed, 400, "VALIDATION_ERROR", "The request has invalid fields.", {"provider_id": ["Unknown provider."]}
    )
    assert probed.json() == missing.json()
    assert snapshot() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/patients"),
        ("get", "/api/v1/providers"),
        ("post", "/api/v1/patients"),
        ("post", "/api/v1/orders"),
    ],
)
def test_naming_the_other_territory_in_the_header_is_a_territory_mismatch(
    north: Any, south: Any, api: Any, method: str, path: str
) -> None:
    before = snapshot()
    client = api(north.doctor)
    patient = {
        "first_name": "A",
        "last_name": "B",
        "date_of_birth": "1960-01-01",
        "provider_id": str(north.provider.pk),
    }
    body = order_body(north) if path.endswith("orders") else patient

    if method == "get":
        response = client.get(path, HTTP_TERRITORY_ID="south")
    else:
        response = client.post(path, body, format="json", HTTP_TERRITORY_ID=str(south.territory.pk))

    header = "south" if method == "get" else str(south.territory.pk)
    assert_error(response, 403, "TERRITORY_MISMATCH", "You do not work in that territory.", {"territory_id": header})
    assert snapshot() == before
