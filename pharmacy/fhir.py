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

References: inside a Bundle the subject and requester point at the Patient and Practitioner
entries by ``urn:uuid:`` (FHIR R4 4.0.1, 2019-10-30, bundle.html#references: such a reference
resolves against the entries' ``fullUrl``, and only inside that Bundle). A MedicationRequest sent on
its own carries logical references instead (R4 references.html#logical: ``Reference.identifier``
names the target by a business identifier the receiver resolves): the prescriber by NPI, the patient
by MBI or, without one, by this system's patient identifier.
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

from catalog.models import DispensingUnit, Product
from orders.models import Order, OrderItem, OrderStatus
from patients.models import AdministrativeSex, Patient, Provider

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
NPI = "http://hl7.org/fhir/sid/us-npi"
# HL7 Terminology NamingSystem cmsMBI "Medicare Beneficiary Identifier (United States)", active as of
# 2022-02-07: preferred URI http://hl7.org/fhir/sid/us-mbi (OID 2.16.840.1.113883.4.927), values
# without spaces or dashes (core.identifiers.normalize_mbi).
MBI = "http://hl7.org/fhir/sid/us-mbi"
UCUM = "http://unitsofmeasure.org"
US_CORE_MEDICATION_REQUEST = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-medicationrequest"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"

# R4 value sets the library accepts any code for (http://hl7.org/fhir/R4/valueset-medicationrequest-*.html).
MEDICATION_REQUEST_STATUSES = frozenset(
    {"active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped", "draft", "unknown"}
)
MEDICATION_REQUEST_INTENTS = frozenset(
    {"proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option"}
)
# R4 MedicationDispense status codes (http://hl7.org/fhir/R4/codesystem-medicationdispense-status.html,
# R4 4.0.1 of 2019-10-30; the code system page was last updated 2019-11-01).
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

# The dispense quantity in UCUM: a countable dispensing unit is a UCUM annotation (curly braces: the
# unity with a label, valid UCUM whatever the label; UCUM specification "annotations", section number
# not confirmed). {tbl} is the label FHIR examples use for tablets (e.g. dispenseRequest quantities);
# the labels for capsules and pens are ours (no conventional spelling confirmed). mL is the UCUM unit.
UCUM_FOR_DISPENSING_UNIT = {
    DispensingUnit.TABLET: "{tbl}",
    DispensingUnit.CAPSULE: "{capsule}",
    DispensingUnit.MILLILITER: "mL",
    DispensingUnit.PEN: "{pen}",
}

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


def _patient_reference(patient: Patient, *, in_bundle: bool) -> dict[str, Any]:
    """The subject: the Patient entry's ``urn:uuid:`` inside a Bundle; outside one a logical reference
    by the MBI, or by this system's patient identifier when the patient has no MBI."""
    if in_bundle:
        return {
            "reference": f"urn:uuid:{patient.pk}",
            "type": "Patient",
            "identifier": {"system": identifier_system("patient"), "value": str(patient.pk)},
        }
    if patient.mbi:
        return {"type": "Patient", "identifier": {"system": MBI, "value": patient.mbi}}
    return {"type": "Patient", "identifier": {"system": identifier_system("patient"), "value": str(patient.pk)}}


def _practitioner_reference(provider: Provider, *, in_bundle: bool) -> dict[str, Any]:
    """The requester: the Practitioner entry's ``urn:uuid:`` inside a Bundle; outside one, by NPI only."""
    reference = {"type": "Practitioner", "identifier": {"system": NPI, "value": provider.npi}, "display": provider.name}
    return {"reference": f"urn:uuid:{provider.pk}", **reference} if in_bundle else reference


def _squashed(text: str) -> str:
    return "".join(text.split()).lower()


def _medication(product: Product) -> dict[str, Any]:
    """The RxNorm coding, its display the RxNorm name (the catalog's ``rxnorm_name``; left out when the
    catalog has none rather than given another name), and the product as the prescriber chose it as
    text, its strength added only when the name does not already state it."""
    coding = {"system": RXNORM, "code": product.rxnorm_code}
    if product.rxnorm_name:
        coding["display"] = product.rxnorm_name
    text = product.name
    if product.strength and _squashed(product.strength) not in _squashed(text):
        text = f"{text} {product.strength}"
    return {"coding": [coding], "text": text}


def _dispense_quantity(item: OrderItem) -> dict[str, Any]:
    """What the pharmacy dispenses: a count in the product's dispensing unit (UCUM) when the catalog
    says how many one unit sold holds (2 bottles of 30 tablets: 60 tablet), else the quantity ordered
    in the catalog's unit, which then carries no UCUM code."""
    product = item.product
    code = UCUM_FOR_DISPENSING_UNIT.get(DispensingUnit(product.dispensing_unit)) if product.dispensing_unit else None
    if code and product.dispensing_units_per_unit:
        return {
            "value": item.quantity * product.dispensing_units_per_unit,
            "unit": product.dispensing_unit,
            "system": UCUM,
            "code": code,
        }
    return {"value": item.quantity, "unit": product.unit}


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


def medication_request(item: OrderItem, *, fill: int = 0, in_bundle: bool = False) -> MedicationRequest:
    """The MedicationRequest of one prescribed line (validated); ``fill`` > 0 is a refill's resend.

    ``in_bundle`` says it travels in a Bundle with the Patient and Practitioner entries (``urn:uuid:``
    references); otherwise it references them logically, by identifier."""
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
        "medicationCodeableConcept": _medication(product),
        "subject": _patient_reference(order.patient, in_bundle=in_bundle),
        "authoredOn": (order.signed_at or order.created_at).isoformat(),
        "requester": _practitioner_reference(order.provider, in_bundle=in_bundle),
        "reasonCode": [{"coding": [{"system": ICD10CM, "code": code}]} for code in (order.diagnosis_codes or [])]
        or None,
        "dosageInstruction": [dosage],
        "dispenseRequest": {
            "quantity": _dispense_quantity(item),
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
    """The Patient with what US Core Patient requires: an identifier, a name and a gender (US Core
    STU3.1.1 and STU5.0.1 of 2022-04-20: "Each Patient must have ... a gender"). The gender is the
    recorded administrative sex (FHIR R4 AdministrativeGender), ``unknown`` when none is recorded."""
    address = patient.address or {}
    data: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "identifier": [{"system": identifier_system("patient"), "value": str(patient.pk)}],
        "name": [{"family": patient.last_name, "given": [patient.first_name]}],
        "gender": patient.sex or AdministrativeSex.UNKNOWN,
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
        *(
            {"fullUrl": f"urn:uuid:{item.pk}", "resource": medication_request(item, fill=fill, in_bundle=True)}
            for item in lines
        ),
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
    so a resent Bundle finds what the first one created; the MedicationRequest (built to be sent
    on its own) gets ``urn:uuid:`` references to the Patient and Practitioner entries instead,
    which the server resolves. The MedicationRequest is the last entry.
    """
    order = item.order
    patient, provider = order.patient, order.provider
    bundled = request.model_dump(mode="json", exclude_none=True)
    bundled["subject"] = _patient_reference(patient, in_bundle=True)
    bundled["requester"] = _practitioner_reference(provider, in_bundle=True)
    request = medication_request_validate(bundled)
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
