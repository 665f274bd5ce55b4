"""Status back from the pharmacy: its callback (authenticated by its own token) takes a FHIR
MedicationDispense or a JSON status and moves the order; pharmacies are registered by admins with
credentials never shown back in full."""

from __future__ import annotations

import json
from typing import Any

import pytest

from catalog.models import Lot, Product, StockReservation
from orders.models import FulfillmentTask, Order
from orders.selectors import review_queue
from pharmacy import services
from pharmacy.models import Pharmacy, PharmacyLog, Prescription
from tests.conftest import World

from .conftest import pay, prescribe

SECRET = "vendor-secret-7781"


@pytest.fixture
def registered(north: World) -> tuple[Pharmacy, str]:
    return services.pharmacy_create(
        actor=north.admin,
        name="Northside Compounding",
        connector="fhir-r4",
        base_url="https://pharmacy.example/fhir",
        credentials={"bearer_token": SECRET},
        mapping={},
        territory_ids=[north.territory.pk],
    )


def paid_prescription(world: World, product: Product) -> Prescription:
    order = pay(world, prescribe(world, product))
    [prescription] = services.prescriptions_create(order_id=order.pk)
    return prescription


def callback(client: Any, pharmacy: Pharmacy, token: str, body: dict[str, Any], *, fhir: bool = False) -> Any:
    return client.post(
        f"/api/v1/pharmacies/{pharmacy.pk}/callback",
        data=body,
        content_type="application/fhir+json" if fhir else "application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def snapshot(prescription: Prescription) -> tuple[Any, ...]:
    order = Order.objects.get(pk=prescription.order_id)
    current = Prescription.objects.get(pk=prescription.pk)
    return (order.status, order.ai_disposition, current.dispense_status, PharmacyLog.objects.count())


def test_a_shipped_status_with_tracking_ships_the_order(
    north: World, sildenafil: Product, registered: tuple[Pharmacy, str], client: Any
) -> None:
    pharmacy, token = registered
    prescription = paid_prescription(north, sildenafil)

    item = prescription.item
    assert StockReservation.objects.get(order_line_id=item.pk).status == "active"
    filling = callback(client, pharmacy, token, {"identifier": prescription.identifier, "status": "in-progress"})
    assert (filling.status_code, filling.json()) == (200, {"received": True, "outcome": "order start_fulfillment"})
    assert Order.objects.get(pk=prescription.order_id).status == "in_progress"
    # The pharmacy fills it: no warehouse work, and the bottle held at submission goes back on the shelf
    item.refresh_from_db()
    assert (item.fulfillment_path, item.fulfillment_rule) == ("pharmacy", "pharmacy_prescription")
    assert FulfillmentTask.objects.filter(order_id=prescription.order_id).count() == 0
    assert StockReservation.objects.get(order_line_id=item.pk).status == "released"
    assert Lot.objects.get(product=sildenafil).quantity_reserved == 0

    body = {"identifier": prescription.identifier, "status": "shipped", "tracking_number": "1Z999AA1", "carrier": "UPS"}
    shipped = callback(client, pharmacy, token, body)

    assert shipped.json() == {"received": True, "outcome": "order ship"}
    order = Order.objects.get(pk=prescription.order_id)
    assert order.status == "shipped"
    assert (
        order.events.order_by("-sequence")[0].reason == "Northside Compounding shipped it with UPS, tracking 1Z999AA1"
    )
    prescription = Prescription.objects.get(pk=prescription.pk)
    assert (prescription.dispense_status, prescription.tracking_number, prescription.carrier) == (
        "shipped",
        "1Z999AA1",
        "UPS",
    )
    assert list(PharmacyLog.objects.order_by("created_at").values_list("direction", "outcome")) == [
        ("in", "callback"),
        ("in", "callback"),
    ]


def test_a_fhir_medication_dispense_moves_the_order(
    north: World, sildenafil: Product, registered: tuple[Pharmacy, str], client: Any
) -> None:
    pharmacy, token = registered
    prescription = paid_prescription(north, sildenafil)
    dispense = {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "577033"}]
        },
        "authorizingPrescription": [
            {
                "identifier": {
                    "system": "https://medorder.example.org/fhir/sid/prescription",
                    "value": prescription.identifier,
                }
            }
        ],
    }

    response = callback(client, pharmacy, token, dispense, fhir=True)

    assert response.json() == {"received": True, "outcome": "order start_fulfillment"}
    assert snapshot(prescription)[:3] == ("in_progress", "clear", "completed")


def test_a_declined_prescription_puts_the_order_in_review(
    north: World, sildenafil: Product, registered: tuple[Pharmacy, str], client: Any
) -> None:
    pharmacy, token = registered
    prescription = paid_prescription(north, sildenafil)
    body = {"identifier": prescription.identifier, "status": "declined", "reason": "Prescriber could not be reached"}

    response = callback(client, pharmacy, token, body)

    assert response.json() == {"received": True, "outcome": "order in review"}
    order = Order.objects.get(pk=prescription.order_id)
    assert (order.status, order.ai_disposition) == ("paid", "needs_review")
    event = order.events.order_by("-sequence")[0]
    assert event.payload["findings"][0]["code"] == "pharmacy_declined"
    assert event.reason == "Northside Compounding declined the prescription: Prescriber could not be reached."


@pytest.mark.parametrize(
    ("body", "fhir", "status", "code"),
    [
        ({"status": "shipped"}, False, 400, "VALIDATION_ERROR"),
        ({"status": "teleported"}, False, 400, "VALIDATION_ERROR"),
        ({"resourceType": "MedicationDispense", "status": "teleported"}, True, 400, "VALIDATION_ERROR"),
        ({"resourceType": "MedicationDispense", "status": "completed", "bogus": 1}, True, 400, "VALIDATION_ERROR"),
        ({"identifier": "someone-elses.1.0", "status": "completed"}, False, 404, "PRESCRIPTION_NOT_FOUND"),
    ],
)
def test_bad_callbacks_change_nothing(
    north: World,
    sildenafil: Product,
    registered: tuple[Pharmacy, str],
    client: Any,
    body: dict[str, Any],
    fhir: bool,
    status: int,
    code: str,
) -> None:
    pharmacy, token = registered
    prescription = paid_prescription(north, sildenafil)
    if "identifier" not in body and not fhir:
        body = {**body, "identifier": prescription.identifier}
    before = snapshot(prescription)

    response = callback(client, pharmacy, token, body, fhir=fhir)

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert snapshot(prescription) == before


def test_only_the_pharmacys_own_token_is_accepted(
    north: World, sildenafil: Product, registered: tuple[Pharmacy, str], client: Any
) -> None:
    pharmacy, token = registered
    other, other_token = services.pharmacy_create(
        actor=north.admin,
        name="Other",
        connector="vendor-json",
        base_url="https://other.example",
        credentials={},
        mapping={},
        territory_ids=[north.territory.pk],
    )
    prescription = paid_prescription(north, sildenafil)
    body = {"identifier": prescription.identifier, "status": "completed"}
    before = snapshot(prescription)

    for target, secret in ((pharmacy, "wrong"), (pharmacy, other_token), (pharmacy, ""), (other, token)):
        response = callback(client, target, secret, body)
        assert (response.status_code, response.json()["error"]["code"]) == (401, "AUTHENTICATION_FAILED")
    unknown = client.post(
        "/api/v1/pharmacies/00000000-0000-0000-0000-000000000000/callback",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert unknown.status_code == 401
    # The other pharmacy's prescription ids are not found through this one
    assert callback(client, other, other_token, body).status_code == 404
    assert snapshot(prescription) == before


def test_admins_register_pharmacies_and_secrets_are_never_shown_back(north: World, south: World, api: Any) -> None:
    body = {
        "name": "Lakeside Pharmacy",
        "connector": "vendor-json",
        "base_url": "https://lakeside.example/api",
        "credentials": {"api_key": SECRET, "api_key_header": "X-Lakeside-Key"},
        "mapping": {"path": "/rx", "fields": {"rx_id": "prescription.identifier"}},
        "territory_ids": [str(north.territory.pk)],
    }

    for user in (north.ops, south.admin):
        refused = api(user).post("/api/v1/pharmacies", body, format="json")
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "PERMISSION_DENIED")
    assert Pharmacy.objects.count() == 0

    response = api(north.admin).post("/api/v1/pharmacies", body, format="json")

    assert response.status_code == 201, response.content
    created = response.json()
    pharmacy = Pharmacy.objects.get()
    assert created == {
        "id": str(pharmacy.pk),
        "name": "Lakeside Pharmacy",
        "connector": "vendor-json",
        "base_url": "https://lakeside.example/api",
        "mapping": {"path": "/rx", "fields": {"rx_id": "prescription.identifier"}},
        "active": True,
        "territory_ids": [str(north.territory.pk)],
        "credentials": {"api_key": "••••7781", "api_key_header": "X-Lakeside-Key"},
        "callback_url": f"http://localhost:8000/api/v1/pharmacies/{pharmacy.pk}/callback",
        "callback_token": created["callback_token"],
    }
    assert SECRET not in response.content.decode()
    assert len(created["callback_token"]) >= 40
    assert services.pharmacy_for_callback(pharmacy_id=pharmacy.pk, token=created["callback_token"]) == pharmacy
    assert created["callback_token"] not in pharmacy.callback_token_hash
    assert pharmacy.credentials == {"api_key": SECRET, "api_key_header": "X-Lakeside-Key"}


@pytest.mark.parametrize(
    ("status", "label"),
    [("stopped", "stopped"), ("entered-in-error", "entered in error"), ("unknown", "unknown")],
)
@pytest.mark.parametrize("fhir", [False, True])
def test_a_stopped_erroneous_or_unknown_dispense_sends_the_order_to_review(
    north: World,
    sildenafil: Product,
    registered: tuple[Pharmacy, str],
    client: Any,
    status: str,
    label: str,
    fhir: bool,
) -> None:
    pharmacy, token = registered
    prescription = paid_prescription(north, sildenafil)
    reason = f"{north.patient.first_name} asked us to stop"  # free text from the pharmacy: may be PHI
    if fhir:
        body: dict[str, Any] = {
            "resourceType": "MedicationDispense",
            "status": status,
            "statusReasonCodeableConcept": {"text": reason},
            "medicationCodeableConcept": {
                "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "577033"}]
            },
            "authorizingPrescription": [
                {
                    "identifier": {
                        "system": "https://medorder.example.org/fhir/sid/prescription",
                        "value": prescription.identifier,
                    }
                }
            ],
        }
    else:
        body = {"identifier": prescription.identifier, "status": status, "reason": reason}
    events_before = Order.objects.get(pk=prescription.order_id).events.count()

    response = callback(client, pharmacy, token, body, fhir=fhir)

    assert (response.status_code, response.json()) == (200, {"received": True, "outcome": "order in review"})
    assert snapshot(prescription)[:3] == ("paid", "needs_review", status)
    order = Order.objects.get(pk=prescription.order_id)
    event = order.events.order_by("-sequence")[0]
    message = f"Northside Compounding reported the dispense as {label} ({status}): check with the pharmacy."
    assert (event.kind, event.reason) == ("compliance", message)
    assert event.payload == {
        "disposition": "needs_review",
        "findings": [
            {
                "code": "pharmacy_dispense_review",
                "severity": "needs_review",
                "message": message,
                "item": sildenafil.sku,
                "dispense_status": status,
            }
        ],
    }
    assert north.patient.first_name not in json.dumps(event.payload) + event.reason
    assert [o.pk for o in review_queue(user=north.ops).orders] == [order.pk]

    # The same report again changes nothing more
    again = callback(client, pharmacy, token, body, fhir=fhir)
    assert again.json() == {"received": True, "outcome": "order in review"}
    assert order.events.count() == events_before + 1
