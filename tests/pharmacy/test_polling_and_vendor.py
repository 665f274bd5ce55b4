"""The vendor-json connector (a configurable field mapping) and polling the pharmacies for dispense status."""

from __future__ import annotations

import json
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from catalog.models import Product
from orders.models import Order
from pharmacy import services
from pharmacy.models import Pharmacy, PharmacyLog, Prescription
from tests.conftest import World

from .conftest import FakePharmacy
from .test_sending import paid_through_the_agents

VENDOR_KEY = "vendor-key-0042"


def vendor(world: World, httpserver: HTTPServer) -> Pharmacy:
    pharmacy = Pharmacy(
        name="Lakeside Rx",
        connector="vendor-json",
        base_url=httpserver.url_for("/vendor"),
        mapping={
            "path": "/rx",
            "fields": {
                "rx_id": "prescription.identifier",
                "rxcui": "medicationCodeableConcept.coding",
                "quantity": "dispenseRequest.quantity.value",
                "refills": "dispenseRequest.numberOfRepeatsAllowed",
                "prescriber_npi": "requester.identifier.value",
                "not_there": "no.such.path",
            },
        },
    )
    pharmacy.credentials = {"api_key": VENDOR_KEY, "api_key_header": "X-Lakeside-Key"}
    pharmacy.save()
    pharmacy.territories.add(world.territory)
    return pharmacy


def test_the_vendor_gets_its_own_json_and_is_polled_until_shipped(
    north: World, sildenafil: Product, httpserver: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    received: list[dict[str, Any]] = []
    status = {"status": "in-progress"}

    def accept(request: Request) -> Response:
        received.append({"headers": dict(request.headers), "body": json.loads(request.get_data(as_text=True))})
        return Response(json.dumps({"id": "V-1001"}), status=201, content_type="application/json")

    httpserver.expect_request("/vendor/rx", method="POST").respond_with_handler(accept)
    vendor(north, httpserver)

    order = paid_through_the_agents(north, sildenafil, django_capture_on_commit_callbacks)

    prescription = Prescription.objects.get(order=order)
    assert (prescription.status, prescription.pharmacy_reference) == ("sent", "V-1001")
    [sent] = received
    assert (sent["headers"]["X-Lakeside-Key"], sent["headers"]["Idempotency-Key"]) == (
        VENDOR_KEY,
        prescription.identifier,
    )
    assert sent["body"] == {
        "rx_id": prescription.identifier,
        "rxcui": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "577033",
                "display": "sildenafil 20 MG Oral Tablet",
            }
        ],
        "quantity": 30.0,  # one bottle of 30: 30 tablets
        "refills": 2,
        "prescriber_npi": north.provider.npi,
        "not_there": None,
    }

    httpserver.expect_request(f"/vendor/rx/{prescription.identifier}", method="GET").respond_with_handler(
        lambda request: Response(json.dumps(status), content_type="application/json")
    )
    assert services.prescriptions_poll() == {"polled": 1, "changed": 1, "failed": 0}
    assert Order.objects.get(pk=order.pk).status == "in_progress"
    assert services.prescriptions_poll() == {"polled": 1, "changed": 0, "failed": 0}

    status.update(status="shipped", tracking_number="9400111899223", carrier="USPS")
    assert services.prescriptions_poll() == {"polled": 1, "changed": 1, "failed": 0}
    assert Order.objects.get(pk=order.pk).status == "shipped"
    # Shipped is final: nothing more is asked
    assert services.prescriptions_poll() == {"polled": 0, "changed": 0, "failed": 0}
    assert PharmacyLog.objects.filter(method="GET").count() == 3


def test_a_fhir_pharmacy_is_searched_for_its_medication_dispense(
    north: World,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    httpserver: HTTPServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    order = paid_through_the_agents(north, sildenafil, django_capture_on_commit_callbacks)
    prescription = Prescription.objects.get(order=order)
    searches: list[dict[str, str]] = []

    def search(request: Request) -> Response:
        searches.append(dict(request.args))
        dispense = {
            "resourceType": "MedicationDispense",
            "status": "declined",
            "statusReasonCodeableConcept": {"text": "Out of stock"},
            "medicationCodeableConcept": {
                "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "577033"}]
            },
        }
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": dispense}]}
        return Response(json.dumps(bundle), content_type="application/fhir+json")

    httpserver.expect_request("/fhir/MedicationDispense", method="GET").respond_with_handler(search)

    assert services.prescriptions_poll() == {"polled": 1, "changed": 1, "failed": 0}

    assert searches == [
        {
            "prescription.identifier": f"https://medorder.example.org/fhir/sid/prescription|{prescription.identifier}",
            "_sort": "-_lastUpdated",
        }
    ]
    order = Order.objects.get(pk=order.pk)
    assert (order.status, order.ai_disposition) == ("paid", "needs_review")
    assert (
        order.events.order_by("-sequence")[0].reason == "Northside Compounding declined the prescription: Out of stock."
    )


def test_an_unreachable_pharmacy_is_asked_again_next_time(
    north: World,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    httpserver: HTTPServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    order = paid_through_the_agents(north, sildenafil, django_capture_on_commit_callbacks)
    httpserver.expect_request("/fhir/MedicationDispense", method="GET").respond_with_data("busy", status=503)

    assert services.prescriptions_poll() == {"polled": 1, "changed": 0, "failed": 1}
    assert services.prescriptions_poll() == {"polled": 1, "changed": 0, "failed": 1}
    assert Order.objects.get(pk=order.pk).status == "paid"
    assert list(PharmacyLog.objects.filter(method="GET").values_list("outcome", "response_status")) == [
        ("server_error", 503),
        ("server_error", 503),
    ]
