"""Patient search by whole names and by their first letters, through blind indexes only."""

from __future__ import annotations

import datetime as dt
import importlib
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps
from django.db import connection

from core.crypto import blind_index_prefix
from patients.models import Patient
from patients.selectors import patient_search
from tests.conftest import World
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

backfill = importlib.import_module("patients.migrations.0004_backfill_name_prefix_indexes")


@pytest.fixture
def people(north: World) -> dict[str, Patient]:
    def patient(first: str, last: str, born: str = "1950-01-01") -> Patient:
        return PatientFactory.create(
            provider=north.provider,
            territory=north.territory,
            first_name=first,
            last_name=last,
            date_of_birth=dt.date.fromisoformat(born),
        )

    return {
        "marchetti": patient("Ada", "Marchetti", "1950-12-10"),
        "march": patient("Bruno", "March"),
        "marchand": patient("Éloïse", "Marchand"),
        "martina": patient("Martina", "Lovelace"),
        "li": patient("Wei", "Li"),
    }


def found(user: Any, query: str) -> set[str]:
    return {f"{p.first_name} {p.last_name}" for p in patient_search(user=user, query=query)}


def test_a_name_is_found_by_its_first_letters(north: World, people: dict[str, Patient]) -> None:
    doctor = north.doctor
    assert found(doctor, "March") == {"Ada Marchetti", "Bruno March", "Éloïse Marchand"}
    assert found(doctor, "march") == found(doctor, "  MARCH ")
    assert found(doctor, "Marchet") == {"Ada Marchetti"}
    assert found(doctor, "Mar") == {"Ada Marchetti", "Bruno March", "Éloïse Marchand", "Martina Lovelace"}
    assert found(doctor, "Elo") == {"Éloïse Marchand"}  # accents do not matter
    assert found(doctor, "Ada Mar") == {"Ada Marchetti"}
    assert found(doctor, "Mart Love") == {"Martina Lovelace"}
    assert found(doctor, "Marchetti, Ad") == {"Ada Marchetti"}
    assert found(doctor, "Marchetti,") == {"Ada Marchetti"}
    assert found(doctor, "Marc 12/10/1950") == {"Ada Marchetti"}
    assert found(doctor, "Marc 1950-12-11") == set()
    # shorter than three letters: whole names only
    assert found(doctor, "Li") == {"Wei Li"}
    assert found(doctor, "Ma") == set()
    assert found(doctor, "Marchetti, A") == {"Ada Marchetti"}  # beside a longer term it narrows
    # no match inside a name, nor a longer term than the name
    assert found(doctor, "chetti") == set()
    assert found(doctor, "Marchettis") == set()
    assert found(doctor, "Ada Lovelace") == set()


def test_other_territories_are_never_found_by_prefix(north: World, south: World) -> None:
    assert found(north.doctor, "Zel") == {"Zelda QuartermaineNorth"}
    assert found(south.doctor, "Quarter") == {"Zelda QuartermaineSouth"}


def test_only_prefix_candidates_are_decrypted(north: World, people: dict[str, Patient]) -> None:
    # Given a patient whose name no longer opens (a damaged token): decrypting it would raise
    damaged = PatientFactory.create(provider=north.provider, territory=north.territory, first_name="Zoe", last_name="Q")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE patients_patient SET first_name = %s WHERE id = %s", ["phi1:k1:AAAA", damaged.pk])

    # Then searches whose candidates do not include it never open it
    assert found(north.doctor, "Marchet") == {"Ada Marchetti"}
    assert found(north.doctor, "Ada Marchetti") == {"Ada Marchetti"}
    # and the index columns hold keyed hashes, never the letters
    stored = Patient.objects.filter(pk=people["marchetti"].pk).values_list("last_name_prefix_index", flat=True).get()
    assert stored == blind_index_prefix("Marchetti", purpose="patient.last_name_prefix", length=3)
    assert "mar" not in stored


def test_the_backfill_computes_the_indexes_of_existing_patients(north: World, people: dict[str, Patient]) -> None:
    # Given patients saved before the prefix indexes existed
    Patient.objects.update(first_name_prefix_index=None, last_name_prefix_index=None)
    updated_at = dict(Patient.objects.values_list("pk", "updated_at"))
    history_rows = Patient.history.count()
    assert found(north.doctor, "Marc") == set()

    # When the data migration runs (twice: it is safe to run again)
    backfill.backfill_name_prefix_indexes(apps, SimpleNamespace(connection=connection))
    backfill.backfill_name_prefix_indexes(apps, SimpleNamespace(connection=connection))

    # Then prefix search finds them, and nothing else about the rows changed
    assert found(north.doctor, "March") == {"Ada Marchetti", "Bruno March", "Éloïse Marchand"}
    assert dict(Patient.objects.values_list("pk", "updated_at")) == updated_at
    assert Patient.history.count() == history_rows
    li = Patient.objects.get(pk=people["li"].pk)
    assert (li.first_name_prefix_index, li.last_name_prefix_index) == (
        blind_index_prefix("Wei", purpose="patient.first_name_prefix", length=3),
        None,  # a two-letter name is found by its whole-name index only
    )


def test_renaming_a_patient_moves_the_prefix_indexes(north: World, people: dict[str, Patient]) -> None:
    patient = people["march"]
    patient.last_name = "Okafor"
    patient.save()

    assert found(north.doctor, "Oka") == {"Bruno Okafor"}
    assert found(north.doctor, "March") == {"Ada Marchetti", "Éloïse Marchand"}
