"""The Medicare Beneficiary Identifier is checked and normalised wherever a patient is written (the
model's own check, run by the services and the admin forms alike), and the administrative sex is
recorded through the same paths."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from core.exceptions import ValidationFailed
from core.identifiers import MBI_ERROR
from patients.models import Patient
from patients.selectors import patient_search
from patients.services import patient_create
from tests.admin.conftest import signed_in
from tests.conftest import World

pytestmark = pytest.mark.django_db

ADD = "/admin/patients/patient/add/"


def register(world: World, **fields: Any) -> Patient:
    return patient_create(
        actor=world.doctor,
        provider_id=world.provider.pk,
        first_name="Ada",
        last_name="Newcomer",
        date_of_birth=dt.date(1960, 1, 2),
        **fields,
    )


@pytest.mark.parametrize("written", ["1EG4-TE5-MK73", "1eg4te5mk73", " 1EG4 TE5 MK73 "])
def test_the_service_stores_the_mbi_without_dashes_or_spaces_in_upper_case(north: World, written: str) -> None:
    patient = register(north, mbi=written)

    assert Patient.objects.get(pk=patient.pk).mbi == "1EG4TE5MK73"


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        ({"mbi": "1SG4TE5MK73"}, {"mbi": [MBI_ERROR]}),  # S is never used in an MBI
        ({"mbi": "1EG4-TE5-MK7"}, {"mbi": [MBI_ERROR]}),  # ten characters
        ({"mbi": "0EG4TE5MK73"}, {"mbi": [MBI_ERROR]}),  # the first character is 1-9
        ({"sex": "F"}, {"sex": ["Give one of: female, male, other, unknown."]}),
    ],
)
def test_the_service_refuses_a_bad_mbi_or_sex_and_writes_nothing(
    north: World, fields: dict[str, str], details: dict[str, list[str]]
) -> None:
    before = Patient.objects.count()

    with pytest.raises(ValidationFailed) as refused:
        register(north, **fields)

    assert refused.value.details == details
    assert next(iter(fields.values())) not in str(refused.value.details)
    assert Patient.objects.count() == before


def test_the_service_records_the_administrative_sex(north: World) -> None:
    assert Patient.objects.get(pk=register(north, sex="female").pk).sex == "female"
    assert Patient.objects.get(pk=register(north).pk).sex is None


def add_form(world: World, **changes: str) -> dict[str, str]:
    data = {
        "provider": str(world.provider.pk),
        "first_name": "Ada",
        "last_name": "Newcomer",
        "date_of_birth": "1960-01-02",
        "sex": "female",
        "mbi": "",
        "phone": "",
        "email": "",
        "address": "null",
        "allergies": "null",
        "medications": "null",
        "conditions": "null",
    }
    data.update(changes)
    return data


def test_the_admin_adds_a_patient_with_a_normalised_mbi_sex_and_medications(north: World) -> None:
    response = signed_in(north.admin).post(
        ADD, add_form(north, mbi="1eg4-te5-mk73", medications='["isosorbide mononitrate 30 mg"]')
    )

    assert response.status_code == 302
    [patient] = patient_search(user=north.admin, query="Ada Newcomer")
    assert (patient.mbi, patient.sex, patient.medications) == (
        "1EG4TE5MK73",
        "female",
        ["isosorbide mononitrate 30 mg"],
    )


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        ({"mbi": "1SG4TE5MK73"}, "mbi", MBI_ERROR),
        ({"sex": "F"}, "sex", "Select a valid choice. F is not one of the available choices."),
    ],
)
def test_the_admin_add_form_refuses_a_bad_mbi_or_sex(
    north: World, changes: dict[str, str], field: str, error: str
) -> None:
    before = Patient.objects.count()

    response = signed_in(north.admin).post(ADD, add_form(north, **changes))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field] == [error]
    assert Patient.objects.count() == before


def change_form(patient: Patient, **changes: str) -> dict[str, str]:
    data = {
        "first_name": patient.first_name or "",
        "last_name": patient.last_name or "",
        "date_of_birth": patient.date_of_birth.isoformat() if patient.date_of_birth else "",
        "sex": patient.sex or "",
        "mbi": patient.mbi or "",
        "phone": patient.phone or "",
        "email": patient.email or "",
        "address": json.dumps(patient.address),
        "allergies": json.dumps(patient.allergies),
        "medications": json.dumps(patient.medications),
        "conditions": json.dumps(patient.conditions),
        "coverages-TOTAL_FORMS": "0",
        "coverages-INITIAL_FORMS": "0",
        "coverages-MIN_NUM_FORMS": "0",
        "coverages-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return data


def test_the_admin_change_form_normalises_the_mbi_and_refuses_a_bad_one(north: World) -> None:
    url = f"/admin/patients/patient/{north.patient.pk}/change/"
    client = signed_in(north.admin)

    saved = client.post(url, change_form(north.patient, mbi="2hj7-km3-np48", sex="male"))
    assert saved.status_code == 302
    patient = Patient.objects.get(pk=north.patient.pk)
    assert (patient.mbi, patient.sex) == ("2HJ7KM3NP48", "male")

    refused = client.post(url, change_form(patient, mbi="2HJ7KM3NP4"))
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["mbi"] == [MBI_ERROR]
    assert Patient.objects.get(pk=north.patient.pk).mbi == "2HJ7KM3NP48"
