"""FHIR R4 resources of an order, built and validated with ``fhir.resources.R4B``.

R4B's MedicationRequest, MedicationDispense, Patient, Practitioner and Bundle match R4 field for
field; the package's top level is R5 and is never used here. Every resource built (or received)
goes through the library's validation, and the codes the library does not check (status, intent)
are checked here against R4's value sets.

A MedicationRequest per prescribed line (a product with an RxNorm code) carries what the US Core
MedicationRequest profile requires — status, intent, medication, subject, requester (always: the
intent is ``order``), authoredOn — and its must-support elements: dosage text and timing,
dispense quantity, number of repeats, reason codes (ICD-10-CM) and a ``reported`` flag. Its
identifier is order-scoped (one value per order line and fill), so a resend is recognisable.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from django.conf import settings
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationdispense import MedicationDispense
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.patient import Patient as FHIRPatient
from fhir.resources.R4B.practitioner import Practitioner
from pydantic import ValidationError

from orders.models import Order, OrderItem, OrderStatus
from patients.models import Patient, Provider

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
NPI = "http://hl7.org/fhir/sid/us-npi"
MBI = "http://hl7.org/fhir/sid/us-mbi"
US_CORE_MEDICATION_REQUEST = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-medicationrequest"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"

# R4 value sets the library accepts any code for (http://hl7.org/fhir/R4/valueset-medicationrequest-*.html).
MEDICATION_REQUEST_STATUSES = frozenset(
    {"active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped", "draft", "unknown"}
)
MEDICATION_REQUEST_INTENTS = frozenset(
    {"proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option"}
)
MEDICATION_DISPENSE_STATUSES = frozenset(
    {
        "preparation",
        "in-progress",
        "cancelled",
        "on-hold",
        "completed",
        "entered-in-error",
        "stopped",
        "declined",
        "unknown",
    }
)

# The prescription's status follows the order's state.
STATUS_FOR_ORDER = {
    OrderStatus.PENDING_VERIFICATION: "draft",
    OrderStatus.ON_HOLD: "on-hold",
    OrderStatus.VERIFIED: "active",
    OrderStatus.AWAITING_PAYMENT: "active",
    OrderStatus.PAID: "active",
    OrderStatus.IN_PROGRESS: "active",
    OrderStatus.SHIPPED: "active",
    OrderStatus.COMPLETED: "completed",
    OrderStatus.REJECTED: "cancelled",
    OrderStatus.CANCELLED: "cancelled",
}


class FHIRInvalid(Exception):
    """A resource failed validation; ``errors`` lists where and why (field paths and messages, no values)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _validated(model: type[Any], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        # Locations and messages only: the input values may be PHI.
        raise FHIRInvalid([f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]) from None


def identifier_system(kind: str = "prescription") -> str:
    """This system's identifier namespace for ``kind`` (``FHIR_IDENTIFIER_SYSTEM_BASE``/<kind>)."""
    return f"{str(settings.FHIR_IDENTIFIER_SYSTEM_BASE).rstrip('/')}/{kind}"


def prescription_identifier(item: OrderItem, fill: int = 0) -> str:
    """The order-scoped identifier of a line's prescription: ``<order>.<line>.<fill>`` (fill 0 is the original)."""
    return f"{item.order_id}.{item.pk}.{fill}"


def is_prescribed(item: OrderItem) -> bool:
    """A line the pharmacy fills: a medication (RxNorm-coded product)."""
    return item.product.is_medication


def _patient_reference(patient: Patient) -> dict[str, Any]:
    return {
        "reference": f"urn:uuid:{patient.pk}",
        "type": "Patient",
        "identifier": {"system": identifier_system("patient"), "value": str(patient.pk)},
    }


def _practitioner_reference(provider: Provider) -> dict[str, Any]:
    return {
        "reference": f"urn:uuid:{provider.pk}",
        "type": "Practitioner",
        "identifier": {"system": NPI, "value": provider.npi},
        "display": provider.name,
    }


def _timing(item: OrderItem) -> dict[str, Any] | None:
    if not (item.dose_frequency and item.dose_period and item.dose_period_unit):
        return None
    return {
        "repeat": {
            "frequency": item.dose_frequency,
            "period": item.dose_period,
            "periodUnit": item.dose_period_unit,
        }
    }


def _status(order: Order, fill: int) -> str:
    status = STATUS_FOR_ORDER[OrderStatus(order.status)]
    # A refill of a delivered order is a live prescription again.
    return "active" if fill > 0 and status == "completed" else status


def medication_request(item: OrderItem, *, fill: int = 0) -> MedicationRequest:
    """The MedicationRequest of one prescribed line (validated); ``fill`` > 0 is a refill's resend."""
    order = item.order
    product = item.product
    dosage: dict[str, Any] = {"text": item.dosage_text or f"Use as directed: {product.name}"}
    timing = _timing(item)
    if timing is not None:
        dosage["timing"] = timing
    data: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": str(item.pk),
        "meta": {"profile": [US_CORE_MEDICATION_REQUEST]},
        "identifier": [{"system": identifier_system(), "value": prescription_identifier(item, fill)}],
        "status": _status(order, fill),
        "intent": "order",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "community", "display": "Community"}]}],
        "reportedBoolean": False,
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": product.rxnorm_code, "display": product.name}],
            "text": " ".join(part for part in (product.name, product.strength, product.dose_form) if part),
        },
        "subject": _patient_reference(order.patient),
        "authoredOn": (order.signed_at or order.created_at).isoformat(),
        "requester": _practitioner_reference(order.provider),
        "reasonCode": [{"coding": [{"system": ICD10CM, "code": code}]} for code in (order.diagnosis_codes or [])]
        or None,
        "dosageInstruction": [dosage],
        "dispenseRequest": {
            "quantity": {"value": item.quantity, "unit": product.unit},
            "numberOfRepeatsAllowed": max(item.refills - fill, 0),
        },
    }
    if item.days_supply:
        data["dispenseRequest"]["expectedSupplyDuration"] = {
            "value": item.days_supply,
            "unit": "days",
            "system": "http://unitsofmeasure.org",
            "code": "d",
        }
    data = {key: value for key, value in data.items() if value is not None}
    return medication_request_validate(data)


def medication_request_validate(data: dict[str, Any]) -> MedicationRequest:
    """Validate a MedicationRequest with the library, then its status and intent codes and the requester rule."""
    resource = _validated(MedicationRequest, data)
    errors = []
    if resource.status not in MEDICATION_REQUEST_STATUSES:
        errors.append(f"status: unknown code {resource.status!r}")
    if resource.intent not in MEDICATION_REQUEST_INTENTS:
        errors.append(f"intent: unknown code {resource.intent!r}")
    if resource.intent in ("order", "original-order", "reflex-order", "filler-order", "instance-order") and (
        resource.requester is None
    ):
        errors.append("requester: required when the intent is an order (US Core)")
    if errors:
        raise FHIRInvalid(errors)
    return resource


def medication_dispense_validate(data: dict[str, Any]) -> MedicationDispense:
    """Validate a MedicationDispense received from a pharmacy (library validation, then the status code)."""
    resource = _validated(MedicationDispense, data)
    if resource.status not in MEDICATION_DISPENSE_STATUSES:
        raise FHIRInvalid([f"status: unknown code {resource.status!r}"])
    return resource


def patient_resource(patient: Patient) -> FHIRPatient:
    address = patient.address or {}
    data: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "identifier": [{"system": identifier_system("patient"), "value": str(patient.pk)}],
        "name": [{"family": patient.last_name, "given": [patient.first_name]}],
        "birthDate": patient.date_of_birth.isoformat() if patient.date_of_birth else None,
        "telecom": [
            *([{"system": "phone", "value": patient.phone}] if patient.phone else []),
            *([{"system": "email", "value": patient.email}] if patient.email else []),
        ]
        or None,
        "address": [
            {
                "line": [line for line in (address.get("line1"), address.get("line2")) if line],
                "city": address.get("city"),
                "state": address.get("state"),
                "postalCode": address.get("postal_code"),
            }
        ]
        if address
        else None,
    }
    if patient.mbi:
        data["identifier"].append({"system": MBI, "value": patient.mbi})
    return _validated(FHIRPatient, {key: value for key, value in data.items() if value is not None})


def practitioner_resource(provider: Provider) -> Practitioner:
    return _validated(
        Practitioner,
        {
            "resourceType": "Practitioner",
            "id": str(provider.pk),
            "identifier": [{"system": NPI, "value": provider.npi}],
            "name": [{"text": provider.name}],
        },
    )


def prescribed_items(order: Order) -> list[OrderItem]:
    return [item for item in order.items.select_related("product", "order") if is_prescribed(item)]


def order_bundle(order: Order, *, items: Iterable[OrderItem] | None = None, fill: int = 0) -> Bundle:
    """A ``collection`` Bundle: the patient, the prescriber and a MedicationRequest per prescribed line."""
    lines = list(items) if items is not None else prescribed_items(order)
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"urn:uuid:{order.patient_id}", "resource": patient_resource(order.patient)},
        {"fullUrl": f"urn:uuid:{order.provider_id}", "resource": practitioner_resource(order.provider)},
        *({"fullUrl": f"urn:uuid:{item.pk}", "resource": medication_request(item, fill=fill)} for item in lines),
    ]
    return _validated(
        Bundle,
        {
            "resourceType": "Bundle",
            "type": "collection",
            "identifier": {"system": identifier_system(), "value": f"{order.pk}.{fill}"},
            "entry": [{"fullUrl": e["fullUrl"], "resource": e["resource"].model_dump(mode="json")} for e in entries],
        },
    )


def _conditional_create(resource: Any, *, full_url: str, condition: str) -> dict[str, Any]:
    body = resource.model_dump(mode="json", exclude_none=True)
    body.pop("id", None)  # the server assigns ids on create
    return {
        "fullUrl": full_url,
        "resource": body,
        "request": {"method": "POST", "url": body["resourceType"], "ifNoneExist": condition},
    }


def prescription_transaction(item: OrderItem, request: MedicationRequest, *, identifier: str) -> Bundle:
    """A ``transaction`` Bundle carrying one prescription with its patient and prescriber.

    Each entry is a conditional create (``request.ifNoneExist`` on the resource's identifier),
    so a resent Bundle finds what the first one created; the MedicationRequest's
    ``urn:uuid:`` references point at the Patient and Practitioner entries, which the server
    resolves. The MedicationRequest is the last entry.
    """
    order = item.order
    patient, provider = order.patient, order.provider
    entries = [
        _conditional_create(
            patient_resource(patient),
            full_url=f"urn:uuid:{patient.pk}",
            condition=f"identifier={identifier_system('patient')}|{patient.pk}",
        ),
        _conditional_create(
            practitioner_resource(provider),
            full_url=f"urn:uuid:{provider.pk}",
            condition=f"identifier={NPI}|{provider.npi}",
        ),
        _conditional_create(
            request,
            full_url=f"urn:uuid:{uuid5(NAMESPACE_URL, identifier_system() + '/' + identifier)}",
            condition=f"identifier={identifier_system()}|{identifier}",
        ),
    ]
    return _validated(Bundle, {"resourceType": "Bundle", "type": "transaction", "entry": entries})


def to_json(resource: Any) -> str:
    """FHIR JSON of a resource (the library's own serialisation: empty elements are left out)."""
    return str(resource.model_dump_json(exclude_none=True))
