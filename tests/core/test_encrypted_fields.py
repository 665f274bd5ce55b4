"""PHI is encrypted at rest, bound to its territory and column, and found only through blind indexes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection, models, transaction

from core.crypto import PHIDecryptionError
from core.fields import EncryptedFieldMixin
from core.models import OutboxEvent
from orders import services as order_services
from orders.models import Order, OrderEvent
from patients.models import Patient
from patients.selectors import patient_search
from tests.factories import PatientFactory

PHI = {
    "first_name": "Evangelina",
    "last_name": "Thistlewood",
    "date_of_birth": "1951-11-23",
    "mbi": "8TW5HJ7KM29",
    "phone": "312-555-0187",
    "email": "evangelina.thistlewood@example.net",
    "address_line": "4417 Wisteria Lane",
    "city": "Fairviewton",
    "diagnosis_code": "E11.42",
    "notes": "Leave the box with the neighbour at 4419",
    "service_type": "Continuous glucose monitor supplies",
    "policy_number": "POL-99812-X",
    "hold_reason": "Confirm the sensor size by phone",
    "verification": "Verified by phone with daughter",
}


@pytest.fixture
def patient(north: Any) -> Patient:
    patient: Patient = PatientFactory.create(
        provider=north.provider,
        territory=north.territory,
        first_name=PHI["first_name"],
        last_name=PHI["last_name"],
        date_of_birth=dt.date.fromisoformat(PHI["date_of_birth"]),
        mbi=PHI["mbi"],
        phone=PHI["phone"],
        email=PHI["email"],
        address={
            "line1": PHI["address_line"],
            "line2": "",
            "city": PHI["city"],
            "state": "IL",
            "postal_code": "60601",
        },
    )
    return patient


@pytest.fixture
def order(north: Any, patient: Patient) -> Order:
    """An order of ``patient`` created, held and verified through the real services."""
    order = north.order(
        patient_id=patient.pk,
        diagnosis_codes=[PHI["diagnosis_code"]],
        notes=PHI["notes"],
        service_type=PHI["service_type"],
        insurance={"carrier": "Acme Health", "policy_number": PHI["policy_number"]},
    )
    order_services.order_transition(order_id=order.pk, actor=north.ops, transition="hold", reason=PHI["hold_reason"])
    return order_services.order_verify(
        order_id=order.pk,
        actor=north.ops,
        notes="ok",
        verification_data={"verified_by": "ops", "coverage_details": PHI["verification"]},
    )


def _rows(table: str) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _encrypted_columns(model: type[models.Model]) -> list[str]:
    return [str(field.column) for field in model._meta.concrete_fields if isinstance(field, EncryptedFieldMixin)]


def _raw_value(model: type[models.Model], pk: Any, column: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {connection.ops.quote_name(column)} FROM {connection.ops.quote_name(model._meta.db_table)} "
            "WHERE id = %s",
            [model._meta.pk.get_db_prep_value(pk, connection)],
        )
        return cursor.fetchone()[0]


def _raw_update(model: type[models.Model], pk: Any, column: str, value: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {connection.ops.quote_name(model._meta.db_table)} "
            f"SET {connection.ops.quote_name(column)} = %s WHERE id = %s",
            [value, model._meta.pk.get_db_prep_value(pk, connection)],
        )


def test_raw_sql_shows_no_plaintext_phi_in_any_column(order: Order, patient: Patient) -> None:
    # Given a patient and their order, created, held and verified through the services (history rows included)
    assert Patient.history.filter(id=patient.pk).count() == 1
    assert Order.history.filter(id=order.pk).count() == 3

    # When every column of every table holding their data is read with raw SQL
    models_to_read: list[type[models.Model]] = [
        Patient,
        Patient.history.model,
        Order,
        Order.history.model,
        OrderEvent,
        OutboxEvent,
    ]
    tables = {model._meta.db_table: _rows(model._meta.db_table) for model in models_to_read}

    # Then no plaintext value appears anywhere
    assert set(tables) == {
        "patients_patient",
        "patients_historicalpatient",
        "orders_order",
        "orders_historicalorder",
        "orders_orderevent",
        "core_outboxevent",
    }
    leaks = [
        (table, column, name)
        for table, rows in tables.items()
        for row in rows
        for column, value in row.items()
        for name, plaintext in PHI.items()
        if plaintext.casefold() in str(value).casefold()
    ]
    assert leaks == []

    # And every encrypted column holds a phi1 token sealed with the active key
    for model in models_to_read[:5]:
        columns = _encrypted_columns(model)
        assert columns, model
        for row in tables[model._meta.db_table]:
            for column in columns:
                assert row[column] is None or str(row[column]).startswith("phi1:k1:"), (model, column)
    patient_row = next(row for row in tables["patients_patient"] if str(row["id"]).replace("-", "") == patient.pk.hex)
    assert all(
        patient_row[column] is not None
        for column in ("first_name", "last_name", "date_of_birth", "mbi", "phone", "email", "address")
    )
    order_row = next(row for row in tables["orders_order"] if str(row["id"]).replace("-", "") == order.pk.hex)
    assert all(
        order_row[column] is not None
        for column in ("service_type", "diagnosis_codes", "notes", "insurance_details", "verification_data")
    )


def test_encrypted_values_read_back_as_written(order: Order, patient: Patient) -> None:
    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.first_name, stored.last_name, stored.date_of_birth) == (
        "Evangelina",
        "Thistlewood",
        dt.date(1951, 11, 23),
    )
    assert (stored.mbi, stored.phone, stored.email) == (PHI["mbi"], PHI["phone"], PHI["email"])
    assert stored.address == {
        "line1": PHI["address_line"],
        "line2": "",
        "city": PHI["city"],
        "state": "IL",
        "postal_code": "60601",
    }
    stored_order = Order.objects.get(pk=order.pk)
    assert stored_order.diagnosis_codes == ["E11.42"]
    assert stored_order.notes == PHI["notes"]
    assert stored_order.service_type == PHI["service_type"]
    assert stored_order.insurance_details == {"carrier": "Acme Health", "policy_number": PHI["policy_number"]}
    assert stored_order.verification_data == {"verified_by": "ops", "coverage_details": PHI["verification"]}
    # created, compliance check at submission, hold, compliance check before verifying, verify
    assert [event.reason for event in OrderEvent.objects.filter(order=order).order_by("sequence")] == [
        None,
        None,
        PHI["hold_reason"],
        None,
        "ok",
    ]
    assert [h.notes for h in Order.history.filter(id=order.pk).order_by("history_id")] == [PHI["notes"]] * 3


def test_a_token_copied_to_another_territorys_row_does_not_open(north: Any, south: Any, patient: Patient) -> None:
    # Given the north patient's sealed first name written over a south patient's first name
    token = _raw_value(Patient, patient.pk, "first_name")
    _raw_update(Patient, south.patient.pk, "first_name", token)

    # When the south patient is read
    victim = Patient.objects.get(pk=south.patient.pk)

    # Then the copied value fails to open (the territory is bound as associated data); other fields still open
    with pytest.raises(PHIDecryptionError) as caught:
        _ = victim.first_name
    assert "Evangelina" not in str(caught.value)
    assert victim.last_name == "QuartermaineSouth"


def test_a_token_copied_to_another_column_of_the_same_row_does_not_open(patient: Patient) -> None:
    # Given the patient's sealed first name written into their last name column
    _raw_update(Patient, patient.pk, "last_name", _raw_value(Patient, patient.pk, "first_name"))

    # When the patient is read
    stored = Patient.objects.get(pk=patient.pk)

    # Then the last name fails to open (the field name is bound as associated data)
    assert stored.first_name == "Evangelina"
    with pytest.raises(PHIDecryptionError):
        _ = stored.last_name


def test_queryset_update_and_lookup_with_plaintext_raise_and_change_nothing(patient: Patient) -> None:
    # Given the stored token of the first name
    before = _raw_value(Patient, patient.pk, "first_name")

    # When plaintext is written with QuerySet.update(), or used in a lookup
    # (each in a savepoint: Django marks the enclosing transaction for rollback on any error in update())
    with pytest.raises(TypeError, match=r"Patient\.first_name is encrypted"), transaction.atomic():
        Patient.objects.filter(pk=patient.pk).update(first_name="x")
    with pytest.raises(TypeError, match=r"Patient\.first_name is encrypted"), transaction.atomic():
        list(Patient.objects.filter(first_name="Evangelina"))

    # Then the column is unchanged and still reads back
    assert _raw_value(Patient, patient.pk, "first_name") == before
    assert Patient.objects.get(pk=patient.pk).first_name == "Evangelina"


def test_moving_a_patient_to_another_territory_re_encrypts_their_phi(patient: Patient, south: Any) -> None:
    # Given the patient as loaded from the database, without opening any field
    north_token = _raw_value(Patient, patient.pk, "first_name")
    stored = Patient.objects.get(pk=patient.pk)

    # When they move to the south territory and its provider
    stored.territory = south.territory
    stored.provider = south.provider
    stored.save()

    # Then every field is sealed again under the new territory and reads back
    moved = Patient.objects.get(pk=patient.pk)
    assert moved.territory_id == south.territory.pk
    assert (moved.first_name, moved.last_name, moved.date_of_birth) == (
        "Evangelina",
        "Thistlewood",
        dt.date(1951, 11, 23),
    )
    assert (moved.mbi, moved.phone, moved.email, moved.address["line1"]) == (
        PHI["mbi"],
        PHI["phone"],
        PHI["email"],
        PHI["address_line"],
    )
    assert _raw_value(Patient, patient.pk, "first_name") != north_token
    # And the old north token would no longer open on this row
    _raw_update(Patient, patient.pk, "first_name", north_token)
    with pytest.raises(PHIDecryptionError):
        _ = Patient.objects.get(pk=patient.pk).first_name
    # And both history rows (north, then south) open with their own territory
    assert [(h.territory_id, h.first_name) for h in Patient.history.filter(id=patient.pk).order_by("history_id")] == [
        (patient.territory_id, "Evangelina"),
        (south.territory.pk, "Evangelina"),
    ]


def test_saving_a_loaded_row_without_changes_keeps_its_tokens(patient: Patient) -> None:
    before = {column: _raw_value(Patient, patient.pk, column) for column in _encrypted_columns(Patient)}

    Patient.objects.get(pk=patient.pk).save()

    assert {column: _raw_value(Patient, patient.pk, column) for column in _encrypted_columns(Patient)} == before


def test_deferred_fields_open_when_first_read(patient: Patient) -> None:
    # Given a patient loaded with only its id
    stored = Patient.objects.only("id").get(pk=patient.pk)

    # Then reading deferred encrypted fields loads and opens them
    assert stored.first_name == "Evangelina"
    assert stored.date_of_birth == dt.date(1951, 11, 23)
    assert stored.address["city"] == PHI["city"]


def test_patient_search_finds_by_name_or_its_first_letters_and_date_of_birth(north: Any, patient: Patient) -> None:
    # Given the patient Evangelina Thistlewood, born 1951-11-23, among the north territory's patients
    queries = {
        "Evangelina Thistlewood": [patient],
        "evangelina   THISTLEWOOD": [patient],
        "Thistlewood, Evangelina": [patient],
        "Thistlewood": [patient],
        "Evangelina": [patient],
        "1951-11-23": [patient],
        "11/23/1951": [patient],
        "Evangelina 1951-11-23": [patient],
        "Thistlewood 11/23/1951": [patient],
        # names match whole or by their first letters (three or more), never in the middle
        "Evan": [patient],
        "Thistlewood, Eva": [patient],
        "Evangelina Thistle": [patient],
        "Ev": [],
        "angelina": [],
        "Evangelinas": [],
        "Evangelina 1951-11-24": [],
        "": [],
        "   ": [],
    }

    # When the north doctor searches
    found = {query: list(patient_search(user=north.doctor, query=query)) for query in queries}

    # Then exactly the expected patients come back
    assert found == queries


def test_patient_search_is_scoped_to_the_users_territories(north: Any, south: Any, patient: Patient) -> None:
    # Given patients named Zelda with the same date of birth in north and south

    # When the south doctor searches for the north patients
    assert list(patient_search(user=south.doctor, query="Evangelina Thistlewood")) == []
    assert list(patient_search(user=south.doctor, query="1951-11-23")) == []

    # Then a search matching both territories only finds their own
    assert list(patient_search(user=south.doctor, query="Zelda")) == [south.patient]
    assert list(patient_search(user=north.doctor, query="1948-07-09")) == [north.patient]
