"""The fhir-r4 connector's transaction mode: one Bundle per prescription carrying the patient, the
prescriber and the MedicationRequest, each a conditional create, posted to a real local FHIR server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings
from fhir.resources.R4B.bundle import Bundle
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from catalog.models import Product, TherapyType
from catalog.services import lot_receive
from core.exceptions import ValidationFailed
from orders.models import Order
from pharmacy import services
from pharmacy.models import Pharmacy, Prescription
from tests.conftest import World
from tests.factories import ProductFactory, WarehouseFactory

from .conftest import TOKEN, pay, prescribe
from .test_sending import paid_and_submitted

SYSTEM = "https://medorder.example.org/fhir/sid"


class FakeTransactionServer:
    """A FHIR server's transaction endpoint (``POST [base]``) honouring each entry's ``ifNoneExist``.

    ``script`` lists the statuses of the next answers; a 500 is sent after the Bundle was applied,
    as by a server that failed after committing.
    """

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}  # "<type>?<condition>" -> resource
        self.bodies: list[str] = []
        self.script: list[int] = []

    def handle(self, request: Request) -> Response:
        body = request.get_data(as_text=True)
        self.bodies.append(body)
        bundle = json.loads(body)
        responses = []
        for entry in bundle["entry"]:
            key = f"{entry['request']['url']}?{entry['request']['ifNoneExist']}"
            created = key not in self.stored
            if created:
                count = sum(1 for k in self.stored if k.startswith(entry["request"]["url"] + "?"))
                self.stored[key] = {**entry["resource"], "id": str(count + 1)}
            resource = self.stored[key]
            responses.append(
                {
                    "response": {
                        "status": "201 Created" if created else "200 OK",
                        "location": f"{resource['resourceType']}/{resource['id']}/_history/1",
                    }
                }
            )
        status = self.script.pop(0) if self.script else 200
        answer = {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}
        return Response(json.dumps(answer), status=status, content_type="application/fhir+json")

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return [resource for key, resource in self.stored.items() if key.startswith(resource_type + "?")]


@pytest.fixture
def transaction_server(north: World, httpserver: HTTPServer) -> Any:
    fake = FakeTransactionServer()
    httpserver.expect_request("/fhir", method="POST").respond_with_handler(fake.handle)
    pharmacy = Pharmacy(
        name="Bundle Pharmacy",
        connector="fhir-r4",
        base_url=httpserver.url_for("/fhir"),
        mapping={"mode": "transaction"},
    )
    pharmacy.credentials = {"bearer_token": TOKEN}
    pharmacy.save()
    pharmacy.territories.add(north.territory)
    with override_settings(PHARMACY_TIMEOUT_SECONDS=0.4, PHARMACY_MAX_RETRIES=2):
        yield fake


def test_a_transaction_bundle_carries_patient_prescriber_and_prescription(
    north: World,
    sildenafil: Product,
    transaction_server: FakeTransactionServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    order = prescribe(north, sildenafil)
    with django_capture_on_commit_callbacks(execute=True):
        pay(north, order)

    [body] = transaction_server.bodies
    bundle: Any = Bundle.model_validate_json(body)
    assert bundle.type == "transaction"
    patient, practitioner, request = bundle.entry
    item = order.items.get()
    identifier = f"{order.pk}.{item.pk}.0"
    assert [(e.request.method, e.request.url, e.request.ifNoneExist) for e in bundle.entry] == [
        ("POST", "Patient", f"identifier={SYSTEM}/patient|{north.patient.pk}"),
        ("POST", "Practitioner", f"identifier=http://hl7.org/fhir/sid/us-npi|{north.provider.npi}"),
        ("POST", "MedicationRequest", f"identifier={SYSTEM}/prescription|{identifier}"),
    ]
    # The pharmacy gets the patient's demographics to ship to; references resolve inside the Bundle
    assert patient.resource.birthDate == north.patient.date_of_birth
    assert (patient.resource.id, request.resource.id) == (None, None)
    assert request.resource.subject.reference == patient.fullUrl
    assert request.resource.requester.reference == practitioner.fullUrl
    assert request.resource.meta.profile == [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-medicationrequest"
    ]
    assert (request.resource.status, request.resource.intent) == ("active", "order")

    prescription = Prescription.objects.get(order=order)
    assert (prescription.status, prescription.pharmacy_reference) == ("sent", "MedicationRequest/1")


def test_a_resent_bundle_after_a_server_error_creates_nothing_twice(
    north: World, sildenafil: Product, transaction_server: FakeTransactionServer
) -> None:
    transaction_server.script = [500]
    order = paid_and_submitted(north, sildenafil)
    # same patient and prescriber, another prescription (another medication: an identical open order
    # for the same patient would need review)
    viagra = ProductFactory.create(
        sku="RX-VIAGRA-50MG",
        name="Viagra 50 mg tablet",
        hcpcs_code="",
        therapy_type=TherapyType.ED,
        rxnorm_code="213270",  # sildenafil 50 MG Oral Tablet [Viagra]
        price_cents=3600,
    )
    lot_receive(actor=None, product=viagra, warehouse=WarehouseFactory.create(), lot_number="RX-50", quantity=10)
    second = paid_and_submitted(north, viagra)

    assert len(transaction_server.bodies) == 3
    assert [len(transaction_server.of_type(t)) for t in ("Patient", "Practitioner", "MedicationRequest")] == [1, 1, 2]
    references = [Prescription.objects.get(order=o).pharmacy_reference for o in (order, second)]
    assert references == ["MedicationRequest/1", "MedicationRequest/2"]
    assert Order.objects.get(pk=order.pk).prescriptions.get().attempts == 2


def test_an_unknown_fhir_mode_is_refused_and_nothing_is_saved(north: World) -> None:
    with pytest.raises(ValidationFailed) as refused:
        services.pharmacy_create(
            actor=north.admin,
            name="Batch Pharmacy",
            connector="fhir-r4",
            base_url="https://pharmacy.example/fhir",
            credentials={},
            mapping={"mode": "batch"},
            territory_ids=[north.territory.pk],
        )
    assert refused.value.details == {"mapping": ["mode must be one of: resource, transaction."]}
    assert Pharmacy.objects.count() == 0
