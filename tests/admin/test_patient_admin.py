"""Patients, coverage and providers in the back office: no PHI in lists, blind-index search, audit."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.contrib.contenttypes.models import ContentType

from core.models import AccessRecord
from patients.models import Coverage, Patient, Provider
from patients.selectors import patient_search

from .conftest import result_ids, signed_in

CHANGELIST = "/admin/patients/patient/"
SEARCH = "/admin/patients/patient/search/"


def change_url(patient: Patient) -> str:
    return f"/admin/patients/patient/{patient.pk}/change/"


def patient_form(patient: Patient, **changes: Any) -> dict[str, Any]:
    """The patient change form as the browser posts it, with ``changes`` applied."""
    data: dict[str, Any] = {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "date_of_birth": patient.date_of_birth.isoformat() if patient.date_of_birth else "",
        "mbi": patient.mbi,
        "phone": patient.phone,
        "email": patient.email,
        "address": json.dumps(patient.address),
        "coverages-TOTAL_FORMS": "0",
        "coverages-INITIAL_FORMS": "0",
        "coverages-MIN_NUM_FORMS": "0",
        "coverages-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return data


def test_changelist_is_scoped_and_shows_no_names(north: Any, south: Any) -> None:
    response = signed_in(north.ops).get(CHANGELIST)

    assert response.status_code == 200
    assert result_ids(response) == {north.patient.pk}
    html = response.content.decode()
    assert "QuartermaineNorth" not in html
    assert "Zelda" not in html
    assert f"Patient {str(north.patient.pk)[:8]}" in html
    assert AccessRecord.objects.count() == 0


def found(response: Any) -> set[Any]:
    """The patients a "Find a patient" answer shows."""
    return {patient.pk for patient in response.context["results"]}


def test_search_by_full_name_uses_the_blind_index(north: Any, south: Any) -> None:
    client = signed_in(north.ops)

    full_name = client.post(SEARCH, {"query": "Zelda QuartermaineNorth"})
    last_first = client.post(SEARCH, {"query": "quartermainenorth, zelda"})
    first_only = client.post(SEARCH, {"query": "Zelda"})
    other_territory = client.post(SEARCH, {"query": "Zelda QuartermaineSouth"})
    prefix = client.post(SEARCH, {"query": "Quarter"})  # the start of a name: this territory's only

    assert found(full_name) == {north.patient.pk}
    assert found(last_first) == {north.patient.pk}
    assert found(first_only) == {north.patient.pk}
    assert found(other_territory) == set()
    assert found(prefix) == {north.patient.pk}


def test_search_by_date_of_birth(north: Any) -> None:
    response = signed_in(north.ops).post(SEARCH, {"query": "1948-07-09"})

    assert found(response) == {north.patient.pk}


def test_patient_page_shows_phi_and_records_the_read(north: Any) -> None:
    north.patient.coverages.all().delete()  # the world's patient comes insured; this test counts its own
    response = signed_in(north.ops).get(change_url(north.patient))

    assert response.status_code == 200
    assert response.context["adminform"].form.initial["last_name"] == "QuartermaineNorth"
    assert list(
        AccessRecord.objects.values_list("user", "territory_id", "content_type", "object_id", "action", "channel")
    ) == [
        (
            north.ops.pk,
            north.territory.pk,
            ContentType.objects.get_for_model(Patient).pk,
            str(north.patient.pk),
            "view",
            "admin",
        )
    ]


def test_patient_page_records_the_coverage_it_shows(north: Any) -> None:
    north.patient.coverages.all().delete()  # the world's patient comes insured; this test counts its own
    coverage = Coverage(
        patient=north.patient, territory=north.territory, payer_type="insurance", member_id="1EG4TE5MK73"
    )
    coverage.save()

    signed_in(north.ops).get(change_url(north.patient))

    assert sorted(AccessRecord.objects.values_list("content_type__model", "object_id")) == sorted(
        [("patient", str(north.patient.pk)), ("coverage", str(coverage.pk))]
    )


def test_patient_of_another_territory_is_not_found(north: Any, south: Any) -> None:
    client = signed_in(north.ops)

    page = client.get(change_url(south.patient))
    history = client.get(f"/admin/patients/patient/{south.patient.pk}/history/")
    version = south.patient.history.get()
    version_page = client.get(f"/admin/patients/patient/{south.patient.pk}/history/{version.history_id}/")

    assert page.status_code == 404
    assert history.status_code == 404
    assert version_page.status_code == 404
    assert AccessRecord.objects.count() == 0


def test_editing_a_patient_re_encrypts_and_names_the_editor(north: Any) -> None:
    response = signed_in(north.ops).post(change_url(north.patient), patient_form(north.patient, phone="555-010-9999"))

    assert response.status_code == 302
    patient = Patient.objects.get(pk=north.patient.pk)
    assert patient.phone == "555-010-9999"
    assert patient.last_name == "QuartermaineNorth"
    assert patient.history.latest().history_user == north.ops


def test_renaming_a_patient_updates_the_blind_index(north: Any) -> None:
    signed_in(north.ops).post(change_url(north.patient), patient_form(north.patient, last_name="Renamed"))

    assert list(patient_search(user=north.ops, query="Zelda Renamed")) == [north.patient]
    assert list(patient_search(user=north.ops, query="Zelda QuartermaineNorth")) == []


def test_ops_cannot_add_patients_in_the_admin(north: Any) -> None:
    response = signed_in(north.ops).get("/admin/patients/patient/add/")

    assert response.status_code == 403


def test_admin_adds_a_patient_through_the_service(north: Any) -> None:
    response = signed_in(north.admin).post(
        "/admin/patients/patient/add/",
        {
            "provider": str(north.provider.pk),
            "first_name": "Ada",
            "last_name": "Newcomer",
            "date_of_birth": "1960-01-02",
            "mbi": "",
            "phone": "",
            "email": "",
            "address": "null",
        },
    )

    assert response.status_code == 302
    [patient] = patient_search(user=north.admin, query="Ada Newcomer")
    assert (patient.territory_id, patient.provider_id, patient.date_of_birth) == (
        north.territory.pk,
        north.provider.pk,
        dt.date(1960, 1, 2),
    )
    assert patient.history.get().history_user == north.admin


def test_admin_cannot_add_a_patient_with_another_territorys_provider(north: Any, south: Any) -> None:
    before = Patient.objects.count()

    response = signed_in(north.admin).post(
        "/admin/patients/patient/add/",
        {
            "provider": str(south.provider.pk),
            "first_name": "Ada",
            "last_name": "Elsewhere",
            "date_of_birth": "1960-01-02",
        },
    )

    assert response.status_code == 200
    assert "provider" in response.context["adminform"].form.errors
    assert Patient.objects.count() == before


def test_admin_adds_coverage_inline_in_the_patients_territory(north: Any) -> None:
    north.patient.coverages.all().delete()  # the world's patient comes insured; this test counts its own
    without_kind = patient_form(
        north.patient,
        **{
            "coverages-TOTAL_FORMS": "1",
            "coverages-0-payer_type": "insurance",
            "coverages-0-payer_name": "Medicare Part B",
            "coverages-0-member_id": "1EG4TE5MK73",
            "coverages-0-active": "on",
        },
    )
    refused = signed_in(north.admin).post(change_url(north.patient), without_kind)
    assert refused.status_code == 200
    assert refused.context["inline_admin_formsets"][0].formset.errors[0] == {
        "payer_kind": ["Say which kind of payer this insurance is."]
    }
    assert not Coverage.objects.filter(patient=north.patient).exists()

    data = patient_form(
        north.patient,
        **{
            "coverages-TOTAL_FORMS": "1",
            "coverages-0-payer_type": "insurance",
            "coverages-0-payer_kind": "medicare_advantage",
            "coverages-0-payer_name": "Medicare Part B",
            "coverages-0-plan_name": "",
            "coverages-0-member_id": "1EG4TE5MK73",
            "coverages-0-group_number": "",
            "coverages-0-coverage_tier": "standard",
            "coverages-0-active": "on",
        },
    )

    response = signed_in(north.admin).post(change_url(north.patient), data)

    assert response.status_code == 302
    [coverage] = Coverage.objects.filter(patient=north.patient)
    assert (coverage.territory_id, coverage.member_id, coverage.payer_name, coverage.payer_kind) == (
        north.territory.pk,
        "1EG4TE5MK73",
        "Medicare Part B",
        "medicare_advantage",
    )
    assert coverage.history.get().history_user == north.admin


def test_provider_changelist_is_scoped(north: Any, south: Any) -> None:
    response = signed_in(north.ops).get("/admin/patients/provider/")

    assert result_ids(response) == {north.provider.pk}


def test_provider_form_offers_only_the_users_territories(north: Any, south: Any) -> None:
    response = signed_in(north.admin).get("/admin/patients/provider/add/")

    territory_field = response.context["adminform"].form.fields["territory"]
    assert list(territory_field.queryset) == [north.territory]
    assert set(Provider.objects.values_list("territory__code", flat=True)) == {"north", "south"}
