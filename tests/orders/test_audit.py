"""Audit: history rows with their actor for every change, access records for every PHI read,
and an order timeline that cannot be rewritten."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import ProgrammingError, connection, transaction

from core.audit import with_history_user
from core.models import AccessRecord
from orders import services
from orders.models import Order, OrderEvent, OrderItem
from patients.models import Coverage, Patient
from patients.services import patient_create
from territories.services import membership_grant
from tests.conftest import World, make_world
from tests.factories import CoverageFactory, PatientFactory


def _history(model: Any, pk: Any) -> list[tuple[str, Any]]:
    """(history_type, history_user_id) of an object's history rows, oldest first."""
    return list(
        model.history.filter(id=pk)
        .order_by("history_date", "history_id")
        .values_list("history_type", "history_user_id")
    )


# --- history --------------------------------------------------------------------------------------


def test_order_and_item_history_name_the_acting_user(north: World) -> None:
    # Given an order created by the doctor
    order = north.order()
    item = OrderItem.objects.get(order=order)

    # When ops verifies it, then the system cancels it
    services.order_verify(order_id=order.pk, actor=north.ops)
    services.order_cancel(order_id=order.pk, actor=None, reason="Duplicate")

    # Then every change has a history row with its actor (none for the system)
    assert _history(Order, order.pk) == [("+", north.doctor.pk), ("~", north.ops.pk), ("~", None)]
    assert list(
        Order.history.filter(id=order.pk).order_by("history_date", "history_id").values_list("status", flat=True)
    ) == ["pending_verification", "verified", "cancelled"]
    assert _history(OrderItem, item.pk) == [("+", north.doctor.pk)]


def test_history_through_the_api_names_the_token_user(north: World, api: Any) -> None:
    doctor = api(north.doctor)
    response = doctor.post(
        "/api/v1/orders",
        {
            "patient_id": str(north.patient.pk),
            "provider_id": str(north.provider.pk),
            "items": [{"sku": north.product.sku, "quantity": 1}],
            "payer_type": "insurance",
            "sign": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    order_id = response.json()["id"]
    assert api(north.ops).put(f"/api/v1/orders/{order_id}/verify", {}, format="json").status_code == 200

    assert _history(Order, order_id) == [("+", north.doctor.pk), ("~", north.ops.pk)]
    item_id = OrderItem.objects.get(order_id=order_id).pk
    assert _history(OrderItem, item_id) == [("+", north.doctor.pk)]


def test_patient_history_names_the_registering_user(north: World) -> None:
    patient = patient_create(
        actor=north.doctor,
        provider_id=north.provider.pk,
        first_name="Ada",
        last_name="Lovelace",
        date_of_birth=dt.date(1941, 12, 10),
    )
    assert _history(Patient, patient.pk) == [("+", north.doctor.pk)]
    row = Patient.history.get(id=patient.pk)
    assert (row.territory_id, row.provider_id) == (north.territory.pk, north.provider.pk)


def test_coverage_history_names_the_acting_user(north: World) -> None:
    # Given coverage recorded by the admin
    coverage = CoverageFactory.build(patient=north.patient, territory=north.territory)
    with_history_user(coverage, north.admin)
    coverage.save()

    # When ops changes it
    coverage = Coverage.objects.get(pk=coverage.pk)
    coverage.plan_name = "Medicare Advantage"
    with_history_user(coverage, north.ops)
    coverage.save()

    # Then
    assert _history(Coverage, coverage.pk) == [("+", north.admin.pk), ("~", north.ops.pk)]


# --- access records ---------------------------------------------------------------------------


def test_reading_an_order_writes_an_access_record(north: World, api: Any) -> None:
    order = north.order()
    client = api(north.doctor)
    assert AccessRecord.objects.count() == 0

    response = client.get(f"/api/v1/orders/{order.pk}")

    assert response.status_code == 200
    record = AccessRecord.objects.get()
    assert (
        record.user_id,
        record.territory_id,
        record.content_type,
        record.object_id,
        record.action,
        record.channel,
    ) == (north.doctor.pk, north.territory.pk, ContentType.objects.get_for_model(Order), str(order.pk), "view", "api")
    assert record.at is not None


def test_reading_a_timeline_writes_an_access_record(north: World, api: Any) -> None:
    order = north.order()
    response = api(north.ops).get(f"/api/orders/{order.pk}/timeline")
    assert response.status_code == 200
    assert list(AccessRecord.objects.values_list("user_id", "object_id", "action", "channel")) == [
        (north.ops.pk, str(order.pk), "view", "api")
    ]


def test_listing_patients_writes_one_access_record_naming_the_patients_shown(
    north: World, south: World, api: Any
) -> None:
    # Given three north patients (and a south one the doctor cannot see)
    others = PatientFactory.create_batch(2, provider=north.provider, territory=north.territory)
    north_ids = {str(north.patient.pk), *(str(p.pk) for p in others)}

    # When the north doctor lists patients
    response = api(north.doctor).get("/api/v1/patients")

    # Then the page view has one access record naming each patient shown, in the order shown
    assert response.status_code == 200
    shown = [p["id"] for p in response.json()["results"]]
    assert set(shown) == north_ids
    record = AccessRecord.objects.get()
    patient_type = ContentType.objects.get_for_model(Patient)
    assert (record.user_id, record.territory_id, record.content_type_id, record.action, record.channel) == (
        north.doctor.pk,
        north.territory.pk,
        patient_type.pk,
        "view",
        "api",
    )
    assert (record.object_id, record.object_ids.split("\n"), record.shown_ids) == ("", shown, shown)
    # and an audit by patient finds it
    assert list(AccessRecord.objects.naming(others[0].pk)) == [record]
    assert list(AccessRecord.objects.naming(south.patient.pk)) == []


def test_a_list_across_territories_writes_one_record_per_territory(north: World, api: Any) -> None:
    # Given an admin of two territories, each with two patients (in one territory's list, one record)
    west = make_world("west")
    membership_grant(user=north.admin, territory=west.territory, role="admin")
    PatientFactory.create(provider=north.provider, territory=north.territory)
    PatientFactory.create(provider=west.provider, territory=west.territory)

    response = api(north.admin).get("/api/v1/patients")

    assert response.status_code == 200
    by_territory: dict[Any, list[str]] = {}
    for patient in response.json()["results"]:
        by_territory.setdefault(patient["territory_id"], []).append(patient["id"])
    records = {str(r.territory_id): r.shown_ids for r in AccessRecord.objects.all()}
    assert records == by_territory
    assert len(records) == 2


def test_denied_read_writes_no_access_record(north: World, south: World, api: Any) -> None:
    order = south.order()
    client = api(north.doctor)

    response = client.get(f"/api/v1/orders/{order.pk}")
    timeline = client.get(f"/api/orders/{order.pk}/timeline")

    assert (response.status_code, timeline.status_code) == (404, 404)
    assert response.json()["error"]["code"] == "ORDER_NOT_FOUND"
    assert AccessRecord.objects.count() == 0


# --- the timeline is append-only ------------------------------------------------------------------


def _event_row(event_id: Any) -> tuple[Any, ...]:
    return OrderEvent.objects.filter(pk=event_id).values_list("kind", "from_status", "to_status", "sequence").get()


def test_saving_an_existing_event_raises(north: World) -> None:
    order = north.order()
    event = OrderEvent.objects.get(order=order, sequence=1)
    before = _event_row(event.pk)
    event.kind = "note"
    with pytest.raises(TypeError, match="OrderEvent rows are append-only"):
        event.save()
    assert _event_row(event.pk) == before


def test_deleting_an_event_raises(north: World) -> None:
    order = north.order()
    event = OrderEvent.objects.get(order=order, sequence=1)
    with pytest.raises(TypeError, match="OrderEvent rows are append-only"):
        event.delete()
    assert OrderEvent.objects.filter(pk=event.pk).count() == 1


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE orders_orderevent SET kind = 'note', to_status = 'cancelled' WHERE id = %s",
        "DELETE FROM orders_orderevent WHERE id = %s",
    ],
)
def test_database_refuses_raw_changes_to_events(north: World, statement: str) -> None:
    # Given an event
    order = north.order()
    event = OrderEvent.objects.get(order=order, sequence=1)
    before = _event_row(event.pk)

    # When raw SQL bypasses the model, then the trigger refuses it (RAISE EXCEPTION: SQLSTATE P0001)
    with (
        pytest.raises(ProgrammingError, match="order events are immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement, [event.pk])

    # And the row is unchanged
    assert _event_row(event.pk) == before


@pytest.mark.postgres
def test_database_refuses_bulk_queryset_changes_to_events(north: World) -> None:
    order = north.order()
    event = OrderEvent.objects.get(order=order, sequence=1)
    before = _event_row(event.pk)

    with pytest.raises(ProgrammingError, match="order events are immutable"), transaction.atomic():
        OrderEvent.objects.filter(pk=event.pk).update(kind="note")
    with pytest.raises(ProgrammingError, match="order events are immutable"), transaction.atomic():
        OrderEvent.objects.filter(pk=event.pk).delete()

    assert _event_row(event.pk) == before
