"""POST/GET /api/v1/patients and GET /api/v1/providers."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.contenttypes.models import ContentType

from core.identifiers import STATE_ERROR, ZIP_ERROR
from core.models import AccessRecord
from patients.models import Patient
from tests.api import assert_error, member_of, snapshot
from tests.factories import PatientFactory, ProviderFactory

INVALID = "The request has invalid fields."


def patient_body(world: Any, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "date_of_birth": "1941-12-10",
        "sex": "female",
        "mbi": "1eg4-te5-mk73",
        "phone": "+1 (555) 010-2000",
        "email": "ada@example.org",
        "address": {
            "line1": "12 Analytical Way",
            "line2": "Apt 3",
            "city": "Springfield",
            "state": "IL",
            "postal_code": "62701-1234",
        },
        "provider_id": str(world.provider.pk),
    }
    body.update(overrides)
    return body


def patient_row(patient: Patient) -> dict[str, Any]:
    """A patient as the API lists them, without the timestamps."""
    return {
        "id": str(patient.pk),
        "territory_id": str(patient.territory_id),
        "provider_id": str(patient.provider_id),
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "date_of_birth": patient.date_of_birth.isoformat() if patient.date_of_birth else None,
        "sex": patient.sex,
        "mbi": patient.mbi,
        "phone": patient.phone,
        "email": patient.email,
        "address": patient.address,
        "allergies": patient.allergies,
        "medications": patient.medications,
        "conditions": patient.conditions,
    }


def without_timestamps(row: dict[str, Any]) -> dict[str, Any]:
    assert dt.datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
    assert dt.datetime.fromisoformat(row["updated_at"].replace("Z", "+00:00"))
    return {k: v for k, v in row.items() if k not in {"created_at", "updated_at"}}


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    return [without_timestamps(row) for row in response.json()["results"]]


# --- POST /api/v1/patients ----------------------------------------------------------------------


def test_doctor_registers_a_patient_with_their_provider(north: Any, api: Any) -> None:
    body = patient_body(north)
    body["address"] = {**body["address"], "state": "il"}  # a state code in any case is kept upper case
    response = api(north.doctor).post("/api/v1/patients", body, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    patient = Patient.objects.get(pk=body["id"])
    assert without_timestamps(body) == {
        "id": str(patient.pk),
        "territory_id": str(north.territory.pk),
        "provider_id": str(north.provider.pk),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "date_of_birth": "1941-12-10",
        "sex": "female",
        "mbi": "1EG4TE5MK73",
        "phone": "+1 (555) 010-2000",
        "email": "ada@example.org",
        "address": {
            "line1": "12 Analytical Way",
            "line2": "Apt 3",
            "city": "Springfield",
            "state": "IL",
            "postal_code": "62701-1234",
        },
        "allergies": None,
        "medications": None,
        "conditions": None,
    }
    assert patient.territory_id == north.territory.pk
    assert patient.provider_id == north.provider.pk
    assert (patient.first_name, patient.last_name, patient.mbi, patient.sex) == (
        "Ada",
        "Lovelace",
        "1EG4TE5MK73",
        "female",
    )
    # The administrative sex is encrypted like the other PHI
    assert str(Patient.objects.filter(pk=patient.pk).values_list("sex", flat=True).get()).startswith("phi1:")
    assert patient.history.get().history_user == north.doctor


def test_the_medication_safety_history_is_recorded_encrypted(north: Any, api: Any) -> None:
    body = patient_body(north, allergies=["sulfa"], medications=["Isosorbide mononitrate 30 mg"], conditions=["men2"])
    response = api(north.doctor).post("/api/v1/patients", body, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["allergies"], created["medications"], created["conditions"]) == (
        ["sulfa"],
        ["Isosorbide mononitrate 30 mg"],
        ["men2"],
    )
    raw = Patient.objects.filter(pk=created["id"]).values_list("allergies", "medications", "conditions").get()
    assert all(str(value).startswith("phi1:") for value in raw)


def test_only_the_required_fields_are_needed(north: Any, api: Any) -> None:
    body = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "date_of_birth": "1941-12-10",
        "provider_id": str(north.provider.pk),
    }

    response = api(north.doctor).post("/api/v1/patients", body, format="json")

    assert response.status_code == 201, response.content
    created = without_timestamps(response.json())
    assert {k: created[k] for k in ("sex", "mbi", "phone", "email", "address", "territory_id")} == {
        "sex": None,
        "mbi": None,
        "phone": None,
        "email": None,
        "address": None,
        "territory_id": str(north.territory.pk),
    }


def test_the_patient_joins_the_territory_of_the_provider_named(north: Any, south: Any, api: Any) -> None:
    client = api(member_of(north, south, role="ops_staff"))

    response = client.post("/api/v1/patients", patient_body(south), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["territory_id"] == str(south.territory.pk)
    assert Patient.objects.get(pk=response.json()["id"]).territory_id == south.territory.pk


def test_a_provider_outside_the_picked_territory_is_a_mismatch(north: Any, south: Any, api: Any) -> None:
    client = api(member_of(north, south, role="ops_staff"))
    before = snapshot()

    response = client.post("/api/v1/patients", patient_body(south), format="json", HTTP_TERRITORY_ID="north")

    assert_error(response, 422, "PATIENT_PROVIDER_MISMATCH", "The provider does not work in the selected territory.")
    assert snapshot() == before


@pytest.mark.parametrize(
    ("overrides", "details"),
    [
        pytest.param(
            {"mbi": "1SG4TE5MK73"},
            {"mbi": ["Enter a valid Medicare Beneficiary Identifier (11 characters)."]},
            id="mbi-with-forbidden-letter",
        ),
        pytest.param(
            {"mbi": "123"}, {"mbi": ["Enter a valid Medicare Beneficiary Identifier (11 characters)."]}, id="mbi-short"
        ),
        pytest.param(
            {"mbi": "1EG4-TE5-MK7"},
            {"mbi": ["Enter a valid Medicare Beneficiary Identifier (11 characters)."]},
            id="mbi-one-short-with-dashes",
        ),
        pytest.param(
            {"sex": "F"},
            {"sex": ["Give one of: female, male, other, unknown (or leave it out when not recorded)."]},
            id="sex-not-a-code",
        ),
        pytest.param(
            {"sex": "Female"},
            {"sex": ["Give one of: female, male, other, unknown (or leave it out when not recorded)."]},
            id="sex-code-is-lower-case",
        ),
        pytest.param(
            {"date_of_birth": (dt.date.today() + dt.timedelta(days=1)).isoformat()},
            {"date_of_birth": ["The date of birth cannot be in the future."]},
            id="dob-in-future",
        ),
        pytest.param(
            {"date_of_birth": "1950-02-30"},
            {"date_of_birth": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]},
            id="dob-not-a-date",
        ),
        pytest.param(
            {"address": {"line1": "1 Main St", "city": "Springfield", "state": "IL", "postal_code": "6270"}},
            {"address": {"postal_code": [ZIP_ERROR]}},
            id="bad-postal-code",
        ),
        pytest.param(
            {"address": {"line1": "1 Main St", "city": "Springfield", "state": "I1", "postal_code": "62701"}},
            {"address": {"state": [STATE_ERROR]}},
            id="bad-state",
        ),
        pytest.param(
            # two letters, but no USPS state or territory has them
            {"address": {"line1": "1 Main St", "city": "Springfield", "state": "ZZ", "postal_code": "62701"}},
            {"address": {"state": [STATE_ERROR]}},
            id="unknown-state-code",
        ),
        pytest.param(
            {"address": {"line1": "1 Main St", "city": "Springfield", "state": "Illinois", "postal_code": "62701"}},
            {"address": {"state": [STATE_ERROR]}},
            id="state-name-not-code",
        ),
        pytest.param(
            {"address": {"city": "Springfield", "state": "IL", "postal_code": "62701"}},
            {"address": {"line1": ["This field is required."]}},
            id="address-without-line1",
        ),
        pytest.param({"email": "ada-at-example"}, {"email": ["Enter a valid email address."]}, id="bad-email"),
        pytest.param({"phone": "call me"}, {"phone": ["Enter a phone number of 7 to 20 digits."]}, id="bad-phone"),
        pytest.param({"first_name": ""}, {"first_name": ["This field may not be blank."]}, id="blank-first-name"),
        pytest.param({"provider_id": "dr-north"}, {"provider_id": ["Must be a valid UUID."]}, id="provider-not-uuid"),
        pytest.param(
            {"provider_id": "00000000-0000-4000-8000-000000000000"},
            {"provider_id": ["Unknown provider."]},
            id="provider-unknown",
        ),
        pytest.param(
            {"conditions": ["men2", "thyroid stuff"]},
            {"conditions": {"1": ['"thyroid stuff" is not a valid choice.']}},
            id="unknown-history-condition",
        ),
    ],
)
def test_invalid_patient_fields_are_named_and_nothing_is_created(
    north: Any, api: Any, overrides: dict[str, Any], details: dict[str, Any]
) -> None:
    before = snapshot()

    response = api(north.doctor).post("/api/v1/patients", patient_body(north, **overrides), format="json")

    assert_error(response, 400, "VALIDATION_ERROR", INVALID, details)
    assert snapshot() == before


def test_missing_required_fields_are_each_named(north: Any, api: Any) -> None:
    before = snapshot()

    response = api(north.doctor).post("/api/v1/patients", {}, format="json")

    required = ["This field is required."]
    assert_error(
        response,
        400,
        "VALIDATION_ERROR",
        INVALID,
        {"first_name": required, "last_name": required, "date_of_birth": required, "provider_id": required},
    )
    assert snapshot() == before


def test_a_provider_of_another_territory_reads_as_unknown(north: Any, south: Any, api: Any) -> None:
    before = snapshot()

    response = api(north.doctor).post("/api/v1/patients", patient_body(south), format="json")

    assert_error(response, 400, "VALIDATION_ERROR", INVALID, {"provider_id": ["Unknown provider."]})
    assert snapshot() == before


def test_master_distributor_may_not_register_patients(north: Any, api: Any) -> None:
    before = snapshot()

    response = api(north.distributor).post("/api/v1/patients", patient_body(north), format="json")

    assert_error(response, 403, "PERMISSION_DENIED", "You may not register patients in this territory.")
    assert snapshot() == before


# --- GET /api/v1/patients -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "Zelda QuartermaineNorth",
        "zelda   quartermainenorth",
        "QuartermaineNorth, Zelda",
        "Zelda",
        "QuartermaineNorth",
        "1948-07-09",
        "07/09/1948",
        "Zelda QuartermaineNorth 1948-07-09",
    ],
)
def test_search_by_name_or_date_of_birth_finds_only_own_territory(north: Any, south: Any, api: Any, query: str) -> None:
    # The south fixture patient shares the first name and date of birth.
    PatientFactory(provider=north.provider, territory=north.territory, first_name="Other", last_name="Person")

    response = api(north.doctor).get("/api/v1/patients", {"search": query})

    assert results(response) == [patient_row(north.patient)]
    assert response.json()["count"] == 1


@pytest.mark.parametrize("query", ["QuartermaineSouth", "Zelda QuartermaineSouth", "1999-01-01", "QuartermaineS"])
def test_search_for_someone_not_in_the_territory_finds_nobody(north: Any, south: Any, api: Any, query: str) -> None:
    response = api(north.doctor).get("/api/v1/patients", {"search": query})

    assert response.status_code == 200
    assert response.json() == {"count": 0, "count_capped": False, "next": None, "previous": None, "results": []}


def test_a_user_of_both_territories_finds_both_namesakes(north: Any, south: Any, api: Any) -> None:
    response = api(member_of(north, south)).get("/api/v1/patients", {"search": "Zelda 1948-07-09"})

    assert sorted(results(response), key=lambda row: row["last_name"]) == [
        patient_row(north.patient),
        patient_row(south.patient),
    ]


def test_list_is_paginated_by_key_newest_first_and_records_each_page_read(north: Any, south: Any, api: Any) -> None:
    newer = [
        PatientFactory(provider=north.provider, territory=north.territory, first_name=f"P{i}", last_name="Page")
        for i in range(3)
    ]
    client = api(north.doctor)
    reads_before = AccessRecord.objects.count()

    first = client.get("/api/v1/patients", {"page_size": 2})
    second = client.get(first.json()["next"])

    assert first.status_code == second.status_code == 200
    assert set(first.json()) == {"count", "count_capped", "next", "previous", "results"}
    assert (first.json()["count"], first.json()["count_capped"]) == (4, False)
    for link in (first.json()["next"], second.json()["previous"]):
        parts = urlsplit(link)
        assert (parts.netloc, parts.path, sorted(parse_qs(parts.query))) == (
            "testserver",
            "/api/v1/patients",
            ["cursor", "page_size"],
        )
    assert first.json()["previous"] is None
    assert second.json()["next"] is None
    listed = results(first) + results(second)
    assert listed == [patient_row(p) for p in [newer[2], newer[1], newer[0], north.patient]]
    # one access record per page read, naming the patients it showed in their order
    reads = AccessRecord.objects.order_by("at", "pk")[reads_before:]
    assert [(r.user_id, r.territory_id, r.shown_ids, r.action, r.channel) for r in reads] == [
        (north.doctor.pk, north.territory.pk, [row["id"] for row in page], "view", "api")
        for page in (results(first), results(second))
    ]
    assert {r.content_type for r in reads} == {ContentType.objects.get_for_model(Patient)}


def test_list_never_includes_another_territory(north: Any, south: Any, api: Any) -> None:
    PatientFactory.create_batch(3, provider=south.provider, territory=south.territory)

    response = api(north.doctor).get("/api/v1/patients", {"page_size": 100})

    assert results(response) == [patient_row(north.patient)]


# --- GET /api/v1/providers ------------------------------------------------------------------------


def test_providers_of_own_territory_with_id_name_npi_and_territory(north: Any, south: Any, api: Any) -> None:
    second = ProviderFactory(territory=north.territory, name="Dr. Aaron North", credentials="DO")
    ProviderFactory(territory=north.territory, name="Dr. Retired", active=False)
    ProviderFactory(territory=south.territory, name="Dr. Also South")

    response = api(north.doctor).get("/api/v1/providers")

    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "count_capped": False,
        "next": None,
        "previous": None,
        "results": [
            {
                "id": str(provider.pk),
                "name": provider.name,
                "npi": provider.npi,
                "territory_id": str(north.territory.pk),
                "credentials": provider.credentials,
            }
            for provider in [second, north.provider]
        ],
    }


@pytest.mark.parametrize(("sex", "shown"), [("male", "male"), ("other", "other"), ("unknown", "unknown"), ("", None)])
def test_each_administrative_sex_code_is_recorded_and_shown(north: Any, api: Any, sex: str, shown: str | None) -> None:
    response = api(north.doctor).post("/api/v1/patients", patient_body(north, sex=sex), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["sex"] == shown
    assert Patient.objects.get(pk=response.json()["id"]).sex == shown
