"""``manage.py reencrypt_phi``: rotating every PHI column, history included, to the active key."""

from __future__ import annotations

import datetime as dt
import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from compliance.models import ComplianceSnapshot
from core.management.commands.reencrypt_phi import encrypted_models
from orders import services as order_services
from orders.models import Order, OrderEvent
from patients.models import Coverage, Patient
from patients.selectors import patient_search
from tests.conftest import World
from tests.factories import CoverageFactory

pytestmark = pytest.mark.django_db

PATIENT_COLUMNS = [
    "first_name",
    "last_name",
    "date_of_birth",
    "sex",
    "mbi",
    "phone",
    "email",
    "address",
    "allergies",
    "medications",
    "conditions",
]
ORDER_COLUMNS = [
    "service_type",
    "diagnosis_codes",
    "notes",
    "insurance_details",
    "verification_data",
    "f2f_date",
    "delivery_address",
]
# The tables ``make_phi`` fills, with their encrypted columns.
ENCRYPTED_COLUMNS = {
    "patients_patient": PATIENT_COLUMNS,
    "patients_historicalpatient": PATIENT_COLUMNS,
    "patients_coverage": ["payer_name", "plan_name", "member_id", "group_number"],
    "patients_historicalcoverage": ["payer_name", "plan_name", "member_id", "group_number"],
    "orders_order": ORDER_COLUMNS,
    "orders_historicalorder": ORDER_COLUMNS,
    "orders_orderevent": ["reason", "payload"],
    "compliance_compliancesnapshot": ["inputs", "result"],
}
# Encrypted tables ``make_phi`` leaves empty.
OTHER_ENCRYPTED_COLUMNS = {
    "orders_attachment": ["document_date", "original_name"],
    "orders_orderdraft": ["answers"],
    "orders_draftdocument": ["document_date", "original_name"],
    "patients_priorauthorization": ["tracking_number"],
    "patients_historicalpriorauthorization": ["tracking_number"],
}
HISTORY_TABLES = ["patients_historicalpatient", "patients_historicalcoverage", "orders_historicalorder"]


def raw_tokens() -> dict[tuple[str, str, str], str]:
    """Every non-NULL token of every encrypted column, keyed by (table, primary key, column)."""
    tokens = {}
    with connection.cursor() as cursor:
        for model, fields in encrypted_models():
            table = model._meta.db_table
            pk_column = str(model._meta.pk.column)
            columns = [str(f.column) for f in fields]
            quoted = ", ".join(connection.ops.quote_name(c) for c in [pk_column, *columns])
            cursor.execute(f"SELECT {quoted} FROM {connection.ops.quote_name(table)}")
            for pk, *values in cursor.fetchall():
                for column, value in zip(columns, values, strict=True):
                    if value is not None:
                        tokens[(table, str(pk), column)] = value
    return tokens


def row_count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
        return int(cursor.fetchone()[0])


def run(**options: Any) -> str:
    out = StringIO()
    call_command("reencrypt_phi", stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def make_phi(north: World, south: World) -> dict[str, Any]:
    """Patients, coverage, orders with transitions and notes in both territories, sealed with k1."""
    made: dict[str, Any] = {"orders": [], "coverages": []}
    for world in (north, south):
        made["coverages"].append(CoverageFactory(patient=world.patient, group_number="GRP-77"))
        order = world.order(
            service_type="CPAP resupply",
            insurance={"carrier": "Medicare Part B", "policy_number": "1EG4TE5MK73"},
            delivery_address={"line1": "1 Elm St", "city": "Fargo", "state": "ND", "postal_code": "58102"},
        )
        order_services.order_transition(
            order_id=order.pk,
            actor=world.ops,
            transition="verify",
            reason="Prescription on file",
            payload={"checked": "coverage"},
            verification_data={"verified_by": "ops", "verification_method": "phone"},
        )
        order_services.order_add_note(order_id=order.pk, actor=world.doctor, note="Patient prefers morning delivery")
        made["orders"].append(order)
    return made


@pytest.fixture
def phi_under_k1(settings: Any, north: World, south: World) -> dict[str, Any]:
    settings.PHI_ACTIVE_KEY_ID = "k1"
    made = make_phi(north, south)
    tokens = raw_tokens()
    assert tokens
    assert all(token.startswith("phi1:k1:") for token in tokens.values())
    for table, columns in ENCRYPTED_COLUMNS.items():
        assert any(key[0] == table for key in tokens), f"no encrypted value in {table}"
        assert {key[2] for key in tokens if key[0] == table} <= set(columns)
    return made


def test_every_encrypted_model_is_found() -> None:
    found = {model._meta.db_table: [str(f.column) for f in fields] for model, fields in encrypted_models()}
    for table, columns in (ENCRYPTED_COLUMNS | OTHER_ENCRYPTED_COLUMNS).items():
        assert found[table] == columns


def test_rotation_reseals_every_value_with_the_active_key(
    settings: Any, north: World, south: World, phi_under_k1: dict[str, Any]
) -> None:
    before = raw_tokens()
    history_rows = {table: row_count(table) for table in HISTORY_TABLES}
    updated_at = dict(Patient.objects.values_list("pk", "updated_at")) | dict(
        Order.objects.values_list("pk", "updated_at")
    )
    settings.PHI_ACTIVE_KEY_ID = "k2"

    output = run(batch_size=2)

    after = raw_tokens()
    assert after.keys() == before.keys()
    assert all(token.startswith("phi1:k2:") for token in after.values())
    assert all(after[key] != before[key] for key in before)
    assert {table: row_count(table) for table in HISTORY_TABLES} == history_rows
    assert (
        dict(Patient.objects.values_list("pk", "updated_at")) | dict(Order.objects.values_list("pk", "updated_at"))
        == updated_at
    )
    assert f"  total: {len({key[:2] for key in before})} rows, {len(before)} values in 8 models" in output
    event_rows = len({key[:2] for key in before if key[0] == "orders_orderevent"})
    assert f"orders.OrderEvent: {event_rows}/{event_rows} rows re-encrypted" in output
    patient_rows = len({key[:2] for key in before if key[0] == "patients_patient"})
    assert patient_rows == 2
    assert "patients.Patient: 2/2 rows re-encrypted" in output  # one batch of two

    # The records still open to what they were.
    for world in (north, south):
        patient = Patient.objects.get(pk=world.patient.pk)
        assert (patient.first_name, patient.last_name) == ("Zelda", f"Quartermaine{world.territory.code.title()}")
        assert patient.date_of_birth == dt.date(1948, 7, 9)
        assert patient.mbi == "1EG4TE5MK73"
        assert patient.address == {
            "line1": "1 Main St",
            "line2": "",
            "city": "Springfield",
            "state": "IL",
            "postal_code": "62701",
        }
        assert [h.first_name for h in patient.history.all()] == ["Zelda"]
        # the blind indexes are keyed apart from the encryption keys: search still finds them
        assert list(patient_search(user=world.doctor, query="Zel Quarter")) == [patient]
    for coverage in phi_under_k1["coverages"]:
        reloaded = Coverage.objects.get(pk=coverage.pk)
        assert (reloaded.payer_name, reloaded.member_id, reloaded.group_number) == (
            "Medicare Part B",
            "1EG4TE5MK73",
            "GRP-77",
        )
    for order in phi_under_k1["orders"]:
        reloaded = Order.objects.get(pk=order.pk)
        assert reloaded.status == "verified"
        assert reloaded.service_type == "CPAP resupply"
        assert reloaded.diagnosis_codes == ["G47.33"]
        assert reloaded.notes == "Fixture order note"
        assert reloaded.insurance_details == {"carrier": "Medicare Part B", "policy_number": "1EG4TE5MK73"}
        assert reloaded.verification_data == {"verified_by": "ops", "verification_method": "phone"}
        assert [h.notes for h in reloaded.history.all()] == ["Fixture order note", "Fixture order note"]
        snapshots = {s.kind: s for s in ComplianceSnapshot.objects.filter(order_id=order.pk)}
        assert {kind: s.result["disposition"] for kind, s in snapshots.items()} == {
            "submission": "clear",
            "approval": "clear",
        }
        checked = {
            kind: {"snapshot_id": str(snapshot.pk), "check": kind, "disposition": "clear", "findings": []}
            for kind, snapshot in snapshots.items()
        }
        assert [(e.reason, e.payload) for e in OrderEvent.objects.filter(order=order).order_by("sequence")] == [
            (None, None),
            (None, checked["submission"]),
            (None, checked["approval"]),
            ("Prescription on file", {"checked": "coverage", "compliance": "clear"}),
            ("Patient prefers morning delivery", None),
        ]


def test_second_run_has_nothing_to_do(settings: Any, phi_under_k1: dict[str, Any]) -> None:
    settings.PHI_ACTIVE_KEY_ID = "k2"
    run()
    tokens = raw_tokens()

    output = run()

    assert raw_tokens() == tokens
    assert "Nothing to do: every encrypted value is under key k2." in output
    assert "re-encrypted" not in output


def test_dry_run_counts_and_writes_nothing(settings: Any, phi_under_k1: dict[str, Any]) -> None:
    before = raw_tokens()
    settings.PHI_ACTIVE_KEY_ID = "k2"

    output = run(dry_run=True)

    assert raw_tokens() == before
    assert "Summary (would re-encrypt):" in output
    assert f"  total: {len({key[:2] for key in before})} rows, {len(before)} values in 8 models" in output
    assert "Nothing to do" not in run(dry_run=True)


def test_values_under_a_missing_key_are_reported_and_left_alone(settings: Any, phi_under_k1: dict[str, Any]) -> None:
    before = raw_tokens()
    k2_only = [entry for entry in settings.PHI_ENCRYPTION_KEYS.split(",") if entry.startswith("k2:")]
    settings.PHI_ENCRYPTION_KEYS = ",".join(k2_only)
    settings.PHI_ACTIVE_KEY_ID = "k2"

    with pytest.raises(CommandError, match=rf"^{len(before)} values could not be opened"):
        run()

    assert raw_tokens() == before


def test_output_carries_no_phi(settings: Any, north: World, phi_under_k1: dict[str, Any]) -> None:
    settings.PHI_ACTIVE_KEY_ID = "k2"

    output = run()

    for value in ("Zelda", "Quartermaine", "1EG4TE5MK73", "G47.33", "Prescription on file", "Fixture order note"):
        assert value not in output
    assert not re.search(r"phi1:", output)


@pytest.mark.postgres
def test_order_events_stay_immutable_after_rotation(settings: Any, phi_under_k1: dict[str, Any]) -> None:
    settings.PHI_ACTIVE_KEY_ID = "k2"
    run()

    # The trigger was skipped for the command's batches only: ordinary writes are refused again.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"
    with (
        pytest.raises(DatabaseError, match="order events are immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE orders_orderevent SET transition = transition")
