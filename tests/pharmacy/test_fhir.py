"""An order's prescriptions as FHIR R4 (fhir.resources R4B): one MedicationRequest per prescribed line
with the US Core elements, in a Bundle served at GET /api/v1/orders/{id}/fhir."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.patient import Patient as FHIRPatient

from catalog.models import Product
from core.models import AccessRecord
from orders import services as order_services
from orders.models import Order
from orders.services import ItemRequest
from patients.models import Patient
from pharmacy import fhir
from tests.conftest import World

from .conftest import prescribe


def test_a_prescribed_line_becomes_a_us_core_medication_request(north: World, sildenafil: Product) -> None:
    order = prescribe(north, sildenafil)
    item = order.items.get()

    resource = fhir.medication_request(item).model_dump(mode="json", exclude_none=True)

    assert resource == {
        "resourceType": "MedicationRequest",
        "id": str(item.pk),
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-medicationrequest"]},
        "identifier": [
            {"system": "https://medorder.example.org/fhir/sid/prescription", "value": f"{order.pk}.{item.pk}.0"}
        ],
        "status": "draft",
        "intent": "order",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                        "code": "community",
                        "display": "Community",
                    }
                ]
            }
        ],
        "reportedBoolean": False,
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "577033",
                    "display": "sildenafil 20 MG Oral Tablet",
                }
            ],
            "text": "Sildenafil 20 mg tablet",
        },
        # Sent on its own: logical references by identifier (MBI, NPI), which any server resolves
        "subject": {
            "type": "Patient",
            "identifier": {"system": "http://hl7.org/fhir/sid/us-mbi", "value": "1EG4TE5MK73"},
        },
        "authoredOn": order.signed_at.isoformat().replace("+00:00", "Z") if order.signed_at else "",
        "requester": {
            "type": "Practitioner",
            "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": north.provider.npi},
            "display": north.provider.name,
        },
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "N52.9"}]}],
        "dosageInstruction": [
            {
                "text": "Take 1 tablet by mouth once daily",
                "timing": {"repeat": {"frequency": 1, "period": 1.0, "periodUnit": "d"}},
            }
        ],
        # One bottle of 30 tablets: 30 tablets, in UCUM
        "dispenseRequest": {
            "quantity": {"value": 30.0, "unit": "tablet", "system": "http://unitsofmeasure.org", "code": "{tbl}"},
            "numberOfRepeatsAllowed": 2,
        },
    }
    # A refill's resend is recognisable and counts down the repeats
    refill: Any = fhir.medication_request(item, fill=1)
    assert refill.identifier[0].value == f"{order.pk}.{item.pk}.1"
    assert refill.dispenseRequest.numberOfRepeatsAllowed == 1


@pytest.mark.parametrize(
    ("transitions", "status"),
    [
        ([], "draft"),
        (["verify"], "active"),
        (["verify", "request_payment", "mark_paid"], "active"),
        (["cancel"], "cancelled"),
    ],
)
def test_the_status_follows_the_order(north: World, sildenafil: Product, transitions: list[str], status: str) -> None:
    order = prescribe(north, sildenafil)
    for name in transitions:
        order_services.order_transition(order_id=order.pk, actor=north.admin, transition=name, reason="Test")
    item = Order.objects.get(pk=order.pk).items.select_related("order", "product").get()
    assert fhir.medication_request(item).status == status


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"status": "sent"}, "status: unknown code 'sent'"),
        ({"intent": "wish"}, "intent: unknown code 'wish'"),
        ({"requester": None}, "requester: required when the intent is an order (US Core)"),
        ({"subject": None}, "subject: Field required"),
    ],
)
def test_codes_the_library_accepts_are_still_checked(
    north: World, sildenafil: Product, change: dict[str, Any], error: str
) -> None:
    item = prescribe(north, sildenafil).items.get()
    data = fhir.medication_request(item).model_dump(mode="json", exclude_none=True)
    data.update(change)
    data = {key: value for key, value in data.items() if value is not None}

    with pytest.raises(fhir.FHIRInvalid) as raised:
        fhir.medication_request_validate(data)

    assert raised.value.errors == [error]


def test_the_order_bundle_is_served_as_fhir_json_to_those_who_may_read_it(
    north: World, south: World, sildenafil: Product, api: Any
) -> None:
    order = prescribe(
        north,
        sildenafil,
        items=[
            ItemRequest(sku=sildenafil.sku, quantity=1, dosage_text="Take 1 tablet daily", refills=1),
            ItemRequest(sku=north.product.sku, quantity=1),  # a CPAP mask: not a prescription for the pharmacy
        ],
    )

    response = api(north.doctor).get(f"/api/v1/orders/{order.pk}/fhir")

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/fhir+json"
    bundle: Any = Bundle.model_validate(response.json())
    assert bundle.type == "collection"
    kinds = [entry.resource.get_resource_type() for entry in bundle.entry]
    assert kinds == ["Patient", "Practitioner", "MedicationRequest"]
    patient, practitioner, request = (entry.resource for entry in bundle.entry)
    assert (patient.name[0].family, patient.birthDate.isoformat()) == ("QuartermaineNorth", "1948-07-09")
    assert practitioner.identifier[0].value == north.provider.npi
    assert isinstance(MedicationRequest.model_validate(request.model_dump(mode="json")), MedicationRequest)
    assert request.dosageInstruction[0].text == "Take 1 tablet daily"
    assert AccessRecord.objects.filter(object_id=str(order.pk), user=north.doctor).count() == 1

    distributor = api(north.distributor).get(f"/api/v1/orders/{order.pk}/fhir")
    outsider = api(south.doctor).get(f"/api/v1/orders/{order.pk}/fhir")
    assert (distributor.status_code, distributor.json()["error"]["code"]) == (403, "PERMISSION_DENIED")
    assert (outsider.status_code, outsider.json()["error"]["code"]) == (404, "ORDER_NOT_FOUND")
    assert AccessRecord.objects.filter(object_id=str(order.pk)).count() == 1


def test_prescription_details_travel_through_the_order_api(north: World, sildenafil: Product, api: Any) -> None:
    body: dict[str, Any] = {
        "patient_id": str(north.patient.pk),
        "provider_id": str(north.provider.pk),
        "payer_type": "cash",
        "items": [
            {
                "sku": sildenafil.sku,
                "quantity": 1,
                "dosage_text": "Take 1 tablet daily",
                "dose_frequency": 1,
                "dose_period": 1,
                "dose_period_unit": "d",
                "refills": 3,
                "days_supply": 30,
            }
        ],
    }
    created = api(north.doctor).post("/api/v1/orders", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["items"][0]["prescription"] == {
        "dosage_text": "Take 1 tablet daily",
        "dose_frequency": 1,
        "dose_period": 1,
        "dose_period_unit": "d",
        "refills": 3,
        "days_supply": 30,
    }
    seen_by_distributor = api(north.distributor).get(f"/api/v1/orders/{created.json()['id']}")
    assert seen_by_distributor.json()["items"][0]["prescription"] is None

    partial = {**body, "items": [{**body["items"][0], "dose_period_unit": ""}]}
    refused = api(north.doctor).post("/api/v1/orders", partial, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["details"] == {
        "items": {"0": {"dose_frequency": ["Give dose_frequency, dose_period and dose_period_unit together."]}}
    }
    assert Order.objects.count() == 1


def test_without_an_mbi_the_subject_is_named_by_this_systems_patient_identifier(
    north: World, sildenafil: Product
) -> None:
    north.patient.mbi = None
    north.patient.save()
    item = prescribe(north, sildenafil).items.select_related("order__patient", "order__provider", "product").get()

    subject = fhir.medication_request(item).model_dump(mode="json", exclude_none=True)["subject"]

    assert subject == {
        "type": "Patient",
        "identifier": {"system": "https://medorder.example.org/fhir/sid/patient", "value": str(north.patient.pk)},
    }


def test_inside_the_order_bundle_the_references_are_the_entries_urn_uuids(north: World, sildenafil: Product) -> None:
    order = prescribe(north, sildenafil)

    bundle: Any = fhir.order_bundle(order)

    patient, practitioner, request = bundle.entry
    assert (patient.fullUrl, practitioner.fullUrl) == (f"urn:uuid:{north.patient.pk}", f"urn:uuid:{north.provider.pk}")
    assert (request.resource.subject.reference, request.resource.requester.reference) == (
        patient.fullUrl,
        practitioner.fullUrl,
    )


@pytest.mark.parametrize(
    ("sex", "gender"),
    [("female", "female"), ("male", "male"), ("other", "other"), ("unknown", "unknown"), (None, "unknown")],
)
def test_the_patient_resource_carries_the_administrative_sex_as_gender(
    north: World, sex: str | None, gender: str
) -> None:
    north.patient.sex = sex
    north.patient.save()
    patient = Patient.objects.get(pk=north.patient.pk)

    resource: Any = fhir.patient_resource(patient)

    assert resource.gender == gender
    assert isinstance(FHIRPatient.model_validate(resource.model_dump(mode="json")), FHIRPatient)


def test_the_quantity_is_counted_in_the_dispensing_unit_and_the_text_states_the_strength_once(
    north: World, sildenafil: Product
) -> None:
    two_bottles = prescribe(
        north, sildenafil, items=[ItemRequest(sku=sildenafil.sku, quantity=2, dosage_text="Take 1 tablet daily")]
    )
    request: Any = fhir.medication_request(two_bottles.items.get())
    assert request.dispenseRequest.quantity.model_dump(mode="json", exclude_none=True) == {
        "value": 60.0,
        "unit": "tablet",
        "system": "http://unitsofmeasure.org",
        "code": "{tbl}",
    }

    # A catalog entry without a dispensing unit or RxNorm name: the catalog unit, no UCUM code, no
    # display rather than a made-up one; a name without the strength gets it once
    Product.objects.filter(pk=sildenafil.pk).update(
        name="Sildenafil tablets", rxnorm_name="", dispensing_unit="", dispensing_units_per_unit=None
    )
    item = Order.objects.get(pk=two_bottles.pk).items.select_related("product", "order").get()
    bare: Any = fhir.medication_request(item).model_dump(mode="json", exclude_none=True)
    assert bare["dispenseRequest"]["quantity"] == {"value": 2.0, "unit": "bottle of 30"}
    assert bare["medicationCodeableConcept"] == {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "577033"}],
        "text": "Sildenafil tablets 20 mg",
    }
