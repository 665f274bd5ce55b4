"""The outbox and access-record pages, and a smoke pass over every back-office page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin

from core.audit import access_record
from core.models import AccessChannel, AccessRecord, OutboxEvent, OutboxStatus
from tests.factories import PatientFactory

from .conftest import messages_of, result_ids, signed_in

OUTBOX = "/admin/core/outboxevent/"


def test_superuser_retries_a_failed_event(north: Any, superuser: Any) -> None:
    order = north.order()
    event = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.created")
    OutboxEvent.objects.filter(pk=event.pk).update(status=OutboxStatus.FAILED, attempts=10, last_error="OSError")

    response = signed_in(superuser).post(
        OUTBOX, {"action": "retry_failed_events", "_selected_action": [str(event.pk)], "index": 0}, follow=True
    )

    event.refresh_from_db()
    assert (event.status, event.attempts) == (OutboxStatus.PENDING, 0)
    assert messages_of(response) == ["Queued 1 failed event(s) for delivery again."]


def test_retry_leaves_events_that_did_not_fail(north: Any, superuser: Any) -> None:
    order = north.order()
    event = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.created")
    OutboxEvent.objects.filter(pk=event.pk).update(status=OutboxStatus.DISPATCHED, attempts=1)

    response = signed_in(superuser).post(
        OUTBOX, {"action": "retry_failed_events", "_selected_action": [str(event.pk)], "index": 0}, follow=True
    )

    event.refresh_from_db()
    assert (event.status, event.attempts) == (OutboxStatus.DISPATCHED, 1)
    assert messages_of(response) == ["Skipped 1 event(s) that had not failed."]


def test_outbox_is_read_only(north: Any, superuser: Any) -> None:
    order = north.order()
    event = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.created")
    client = signed_in(superuser)

    assert client.get(f"{OUTBOX}{event.pk}/change/").status_code == 200
    assert client.post(f"{OUTBOX}{event.pk}/change/", {"status": "failed"}).status_code == 403
    assert client.post(f"{OUTBOX}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert OutboxEvent.objects.get(pk=event.pk).status == OutboxStatus.PENDING


def test_territory_admin_sees_only_their_territorys_events(north: Any, south: Any) -> None:
    north_order = north.order()
    south.order()

    response = signed_in(north.admin).get(OUTBOX)

    assert result_ids(response) == set(
        OutboxEvent.objects.filter(aggregate_id=str(north_order.pk)).values_list("pk", flat=True)
    )
    assert len(result_ids(response)) == 1


def test_access_records_are_scoped_and_read_only(north: Any, south: Any) -> None:
    signed_in(north.ops).get(f"/admin/patients/patient/{north.patient.pk}/change/")
    signed_in(south.ops).get(f"/admin/patients/patient/{south.patient.pk}/change/")
    # the patient's page records the reads it shows (the patient, and the coverage in its inline)
    north_records = list(AccessRecord.objects.filter(territory_id=north.territory.pk))
    [north_record] = [record for record in north_records if record.object_id == str(north.patient.pk)]
    client = signed_in(north.admin)

    listing = client.get("/admin/core/accessrecord/")
    edit = client.post(f"/admin/core/accessrecord/{north_record.pk}/change/", {"object_id": "x"})
    delete = client.post(f"/admin/core/accessrecord/{north_record.pk}/delete/", {"post": "yes"})

    assert result_ids(listing) == {record.pk for record in north_records}
    assert edit.status_code == 403
    assert delete.status_code == 403
    assert AccessRecord.objects.get(pk=north_record.pk).object_id == str(north.patient.pk)


def test_an_objects_id_finds_the_list_pages_that_showed_it(north: Any) -> None:
    # Given a list page that showed two patients (one record), and one patient's own page
    other = PatientFactory.create(provider=north.provider, territory=north.territory)
    lists = access_record(user=north.ops, objects=[other, north.patient], channel=AccessChannel.PORTAL)
    own_page = access_record(user=north.ops, objects=[north.patient], channel=AccessChannel.ADMIN)
    client = signed_in(north.admin)

    # When the admin searches the access records by each patient's id
    by_patient = client.get("/admin/core/accessrecord/", {"q": str(north.patient.pk)})
    by_other = client.get("/admin/core/accessrecord/", {"q": str(other.pk)})
    listing = client.get("/admin/core/accessrecord/")

    # Then the list page's record names both, and the patient's own page only them
    assert [r.shown_ids for r in lists] == [[str(other.pk), str(north.patient.pk)]]
    assert result_ids(by_patient) == {lists[0].pk, own_page[0].pk}
    assert result_ids(by_other) == {lists[0].pk}
    assert "a list of 2" in listing.content.decode()


@pytest.mark.parametrize("role", ["ops", "admin"])
def test_every_back_office_page_loads_for_territory_staff(north: Any, role: str) -> None:
    north.order()
    client = signed_in(getattr(north, role))

    assert client.get("/admin/").status_code == 200
    for model in admin.site._registry:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code in (200, 403), url


def test_every_back_office_page_loads_for_a_superuser(north: Any, superuser: Any) -> None:
    north.order()
    client = signed_in(superuser)

    for model in admin.site._registry:
        listing = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(listing).status_code == 200, listing
        first = model._default_manager.first()
        if first is not None:
            assert client.get(f"{listing}{first.pk}/change/").status_code == 200, listing
