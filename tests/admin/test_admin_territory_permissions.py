"""The back office asks the API's territory permissions (issue 15, item 13).

The user who found the hole: a master distributor in one territory (north: no ``view_phi``, no
back-office role) who is ops staff in another (south: which carries the global model permissions
the admin checks). In the admin they must see and change only south's rows; north's patient,
order notes and diagnosis, documents, history and search answer 404/403 and a POST changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import User
from core.models import AccessRecord
from orders import services as order_services
from orders.models import Attachment, Order
from patients.models import Coverage
from territories.models import TerritoryMembership
from territories.services import membership_grant

from ..conftest import World
from ..factories import CoverageFactory, UserFactory
from .conftest import result_ids, signed_in
from .test_patient_admin import patient_form

PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture
def two_hats(north: World, south: World) -> User:
    """Master distributor in north, ops staff in south."""
    user = north.distributor
    membership_grant(user=user, territory=south.territory, role="ops_staff")
    user.refresh_from_db()
    assert user.is_staff
    return user


def _order_with_document(world: World) -> tuple[Order, Attachment]:
    order = world.order(notes="Nocturnal hypoxaemia, secret note", diagnosis_codes=["G47.33"])
    attachment = order_services.order_attach(
        order_id=order.pk,
        actor=world.doctor,
        artifact_type="SWO",
        file=SimpleUploadedFile("swo.pdf", PDF, content_type="application/pdf"),
    )
    return order, attachment


def test_distributor_territory_patient_pages_are_not_found_and_a_post_changes_nothing(
    two_hats: User, north: World, south: World
) -> None:
    client = signed_in(two_hats)
    patient = north.patient
    version = patient.history.get()
    coverage = CoverageFactory.create(patient=patient, territory=north.territory)
    coverages = Coverage.objects.filter(patient=patient).count()

    page = client.get(f"/admin/patients/patient/{patient.pk}/change/")
    post = client.post(f"/admin/patients/patient/{patient.pk}/change/", patient_form(patient, phone="555-000-6666"))
    history = client.get(f"/admin/patients/patient/{patient.pk}/history/")
    version_page = client.get(f"/admin/patients/patient/{patient.pk}/history/{version.history_id}/")
    coverage_page = client.get(f"/admin/patients/coverage/{coverage.pk}/change/")
    listing = client.get("/admin/patients/patient/")
    search = client.post("/admin/patients/patient/search/", {"query": f"Zelda {patient.last_name}"})

    assert [page.status_code, post.status_code, history.status_code, version_page.status_code] == [404] * 4
    assert coverage_page.status_code == 404
    assert result_ids(listing) == {south.patient.pk}
    assert list(search.context["results"]) == []
    patient.refresh_from_db()
    assert patient.phone == north.patient.phone
    assert patient.history.count() == 1
    assert Coverage.objects.filter(patient=patient).count() == coverages
    assert not AccessRecord.objects.filter(territory_id=north.territory.pk).exists()


def test_distributor_territory_order_notes_diagnosis_and_documents_are_not_found(
    two_hats: User, north: World, south: World
) -> None:
    order, attachment = _order_with_document(north)
    client = signed_in(two_hats)

    page = client.get(f"/admin/orders/order/{order.pk}/change/")
    history = client.get(f"/admin/orders/order/{order.pk}/history/")
    document = client.get(f"/admin/orders/order/{order.pk}/attachments/{attachment.pk}/")
    attach = client.post(
        f"/admin/orders/order/{order.pk}/attach/",
        {"artifact_type": "SWO", "file": SimpleUploadedFile("x.pdf", PDF, content_type="application/pdf")},
    )
    hold = client.post(f"/admin/orders/order/{order.pk}/transition/hold/", {"reason": "mine now"})
    listing = client.get("/admin/orders/order/")
    tasks = client.get("/admin/orders/fulfillmenttask/")

    assert [page.status_code, history.status_code, document.status_code] == [404] * 3
    assert [attach.status_code, hold.status_code] == [404, 404]
    for response in (page, history, document, listing):
        assert b"secret note" not in response.content
        assert b"G47.33" not in response.content
    assert order.pk not in result_ids(listing)
    assert north.territory.pk not in {task.territory_id for task in tasks.context["cl"].result_list}
    order.refresh_from_db()
    assert order.status == "pending_verification"
    assert order.attachments.count() == 1
    assert not AccessRecord.objects.filter(territory_id=north.territory.pk).exists()


def test_autocomplete_and_history_of_the_distributor_territory_say_nothing(two_hats: User, north: World) -> None:
    client = signed_in(two_hats)

    autocomplete = client.get(
        "/admin/autocomplete/",
        {"app_label": "patients", "model_name": "coverage", "field_name": "patient", "term": "Zelda"},
    )

    # Patients have no GET search at all (it would put names in URLs), so no autocomplete either.
    assert autocomplete.status_code == 404
    assert b"Zelda" not in autocomplete.content


def test_the_staff_territory_still_works(two_hats: User, south: World) -> None:
    order, attachment = _order_with_document(south)
    client = signed_in(two_hats)

    page = client.get(f"/admin/patients/patient/{south.patient.pk}/change/")
    post = client.post(
        f"/admin/patients/patient/{south.patient.pk}/change/", patient_form(south.patient, phone="555-010-2222")
    )
    order_page = client.get(f"/admin/orders/order/{order.pk}/change/")
    document = client.get(f"/admin/orders/order/{order.pk}/attachments/{attachment.pk}/")

    assert page.status_code == 200
    assert post.status_code == 302, post.context and post.context["adminform"].form.errors
    south.patient.refresh_from_db()
    assert south.patient.phone == "555-010-2222"
    assert order_page.status_code == 200
    assert b"secret note" in order_page.content
    assert document.status_code == 200
    assert b"".join(document.streaming_content) == PDF  # type: ignore[attr-defined]


def test_membership_admin_offers_only_what_the_granting_admin_manages(north: World, south: World) -> None:
    # An admin in north who is ops staff in south, a south colleague, a newcomer and a superuser.
    granting = north.admin
    membership_grant(user=granting, territory=south.territory, role="ops_staff")
    newcomer = UserFactory.create(username="newcomer")
    root = User.objects.create_superuser(username="root2", email="r@example.org", password="x")
    client = signed_in(granting)

    form = client.get("/admin/territories/territorymembership/add/").context["adminform"].form
    refused = client.post(
        "/admin/territories/territorymembership/add/",
        {"user": str(south.doctor.pk), "territory": str(south.territory.pk), "role": "admin"},
    )
    self_grant = client.post(
        "/admin/territories/territorymembership/add/",
        {"user": str(granting.pk), "territory": str(south.territory.pk), "role": "admin"},
    )
    granted = client.post(
        "/admin/territories/territorymembership/add/",
        {"user": str(newcomer.pk), "territory": str(north.territory.pk), "role": "ops_staff"},
    )

    assert set(form.fields["territory"].queryset) == {north.territory}
    offered = set(form.fields["user"].queryset)
    assert {north.doctor, north.ops, north.distributor, newcomer} <= offered
    assert granting not in offered
    assert root not in offered
    assert south.doctor not in offered
    assert south.ops not in offered
    assert refused.status_code == 200
    assert self_grant.status_code == 200
    assert not TerritoryMembership.objects.filter(user=south.doctor, territory=south.territory, role="admin").exists()
    assert TerritoryMembership.objects.get(user=granting, territory=south.territory).role == "ops_staff"
    assert granted.status_code == 302
    assert TerritoryMembership.objects.get(user=newcomer).role == "ops_staff"
    memberships = client.get("/admin/territories/territorymembership/")
    assert {m.territory_id for m in memberships.context["cl"].result_list} == {north.territory.pk}


@pytest.fixture
def admin_here_ops_there(north: World, south: World) -> User:
    """Admin in north (whose role grants adding coverage and outbox access), ops staff in south."""
    user = north.admin
    membership_grant(user=user, territory=south.territory, role="ops_staff")
    user.refresh_from_db()
    return user


def _coverage_form(patient: Any) -> dict[str, str]:
    return {
        "patient": str(patient.pk),
        "payer_type": "insurance",
        "payer_kind": "medicare_ffs",
        "payer_name": "Medicare Part B",
        "plan_name": "",
        "member_id": "1EG4TE5MK73",
        "group_number": "",
        "coverage_tier": "standard",
        "active": "on",
    }


def test_adding_needs_the_role_that_grants_it_in_the_rows_territory(
    admin_here_ops_there: User, north: World, south: World
) -> None:
    # Given a user whose north role may add coverage and whose south role may not
    client = signed_in(admin_here_ops_there)
    before = {world.patient.pk: Coverage.objects.filter(patient=world.patient).count() for world in (north, south)}

    # When they add a coverage for a south patient, then for a north patient
    refused = client.post("/admin/patients/coverage/add/", _coverage_form(south.patient))
    added = client.post("/admin/patients/coverage/add/", _coverage_form(north.patient))

    # Then south is refused and nothing is written there; north is added
    assert (refused.status_code, added.status_code) == (403, 302)
    assert Coverage.objects.filter(patient=south.patient).count() == before[south.patient.pk]
    assert Coverage.objects.filter(patient=north.patient).count() == before[north.patient.pk] + 1
    # and ops staff alone (no add permission anywhere) are not offered the add page
    assert signed_in(south.ops).get("/admin/patients/coverage/add/").status_code == 403


def test_the_outbox_shows_only_the_territories_whose_role_grants_it(
    admin_here_ops_there: User, north: World, south: World
) -> None:
    north_order, south_order = north.order(), south.order()

    listing = signed_in(admin_here_ops_there).get("/admin/core/outboxevent/")

    shown = {event.aggregate_id for event in listing.context["cl"].result_list}
    assert shown == {str(north_order.pk)}
    assert str(south_order.pk) not in shown


def test_an_admin_document_download_is_an_attachment_under_an_id_name(north: World) -> None:
    order, attachment = _order_with_document(north)

    response = signed_in(north.admin).get(f"/admin/orders/order/{order.pk}/attachments/{attachment.pk}/")

    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        f'attachment; filename="{order.reference}-swo-{str(attachment.pk)[:8]}.pdf"'
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.getvalue() == PDF
