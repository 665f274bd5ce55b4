"""The portal's pages through Django's test client: home tabs and holds, patient search and card,
the order page with its documents and notes. (The browser journeys are in tests/e2e.)"""

from __future__ import annotations

import datetime as dt

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from core.models import AccessRecord
from orders import services as order_services
from orders.models import Order, OrderStatus
from patients.models import PriorAuthorization
from tests.admin.conftest import signed_in
from tests.conftest import World
from tests.factories import CoverageFactory

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def held(world: World) -> Order:
    """An order placed unsigned by ops for the doctor: held for the missing signed written order."""
    return world.order(actor=world.ops)


def test_home_shows_the_doctors_orders_by_stage_and_holds_first(north: World, south: World) -> None:
    # each for a patient of its own: an identical open order for the same patient needs review
    clear = north.order()
    hold = north.order(actor=north.ops, patient_id=north.other_patient().pk)
    preparing = north.order(patient_id=north.other_patient().pk)
    order_services.order_verify(order_id=preparing.pk, actor=north.ops)
    order_services.order_transition(order_id=preparing.pk, actor=north.ops, transition="start_fulfillment")
    south.order()  # another territory: never shown

    page = signed_in(north.doctor).get("/portal/")

    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    assert [h.order.pk for h in page.context["holds"]] == [hold.pk]
    assert [f["code"] for f in page.context["holds"][0].findings] == ["SWO_MISSING_SIGNATURE"]
    # the tabs count up to 100 ("100+" beyond): each says its number as text
    tabs = [(key, label, str(count)) for key, label, count in page.context["tabs"]]
    assert tabs == [("pending", "Pending", "2"), ("preparing", "Preparing", "1"), ("shipped", "Shipped", "0")]
    assert [o.pk for o in page.context["orders"]] == [hold.pk, clear.pk]
    body = page.content.decode()
    assert f"/portal/orders/{hold.pk}/?attach=SWO#documents" in body
    assert "Signed standard written order" in body
    assert "Zelda QuartermaineNorth" in body

    preparing_tab = signed_in(north.doctor).get("/portal/?tab=preparing")
    assert [o.pk for o in preparing_tab.context["orders"]] == [preparing.pk]


def test_a_distributor_sees_stages_without_patient_names(north: World) -> None:
    north.order()
    records = AccessRecord.objects.count()

    page = signed_in(north.distributor).get("/portal/")

    assert len(page.context["orders"]) == 1
    assert "Quartermaine" not in page.content.decode()
    assert AccessRecord.objects.count() == records


def test_patient_search_by_name_and_birth_date_keeps_phi_out_of_the_url(north: World, south: World) -> None:
    client = signed_in(north.doctor)

    response = client.post("/portal/patients/", {"q": "Zelda QuartermaineNorth 07/09/1948"})

    assert [p.pk for p in response.context["found"]] == [north.patient.pk]
    assert f"/portal/patients/{north.patient.pk}/" in response.content.decode()
    assert AccessRecord.objects.naming(north.patient.pk).filter(channel="portal").count() == 1
    # htmx gets the results only; other territories' patients are never found
    partial = client.post("/portal/patients/", {"q": "Zelda QuartermaineSouth"}, HTTP_HX_REQUEST="true")
    assert partial.templates[0].name == "portal/_patient_results.html"
    assert partial.context["found"] == []
    assert "No patient matches" in partial.content.decode()
    # A query in the URL is ignored: searches are POSTed
    assert client.get("/portal/patients/?q=Zelda").context["found"] == []


def test_the_patient_card_shows_coverage_authorizations_warnings_and_supply(north: World) -> None:
    today = timezone.localdate()
    CoverageFactory.create(patient=north.patient, coverage_tier="gold", effective_to=today + dt.timedelta(days=10))
    PriorAuthorization.objects.create(
        patient=north.patient,
        territory=north.territory,
        hcpcs_code="E0601",
        decision="affirmed",
        decision_date=today - dt.timedelta(days=200),
        expires_on=today - dt.timedelta(days=1),
    )
    delivered = north.order()
    order_services.order_verify(order_id=delivered.pk, actor=north.ops)
    for transition in ("start_fulfillment", "ship"):
        order_services.order_transition(order_id=delivered.pk, actor=north.ops, transition=transition)
    order_services.order_complete(order_id=delivered.pk, actor=north.ops)

    page = signed_in(north.doctor).get(f"/portal/patients/{north.patient.pk}/")

    card = page.context["card"]
    assert card.coverage.coverage_tier == "gold"
    assert card.warnings == [
        f"Coverage ends on {(today + dt.timedelta(days=10)):%b %-d, %Y}.",
        f"The prior authorization for E0601 expired on {(today - dt.timedelta(days=1)):%b %-d, %Y}.",
    ]
    [(status, name)] = card.supply
    # A7032 (mask cushion): usual maximum 2 per month; 2 delivered today last a month
    assert (status.hcpcs, status.quantity, status.last_delivered, name) == ("A7032", 2, today, north.product.name)
    assert status.next_eligible is not None
    assert status.next_eligible > today
    assert AccessRecord.objects.naming(north.patient.pk).filter(channel="portal").exists()


def test_patients_of_other_territories_are_not_found(north: World, south: World) -> None:
    assert signed_in(north.doctor).get(f"/portal/patients/{south.patient.pk}/").status_code == 404
    assert signed_in(north.distributor).get(f"/portal/patients/{north.patient.pk}/").status_code == 404


def test_attaching_the_missing_document_releases_the_hold(north: World, south: World) -> None:
    order = held(north)
    client = signed_in(north.doctor)
    page = client.get(f"/portal/orders/{order.pk}/?attach=SWO")
    assert page.context["document_form"].initial["artifact_type"] == "SWO"
    assert page.context["page"].result["disposition"] == "hold"

    bad = client.post(
        f"/portal/orders/{order.pk}/",
        {"action": "document", "artifact_type": "SWO", "file": SimpleUploadedFile("x.txt", b"hello", "text/plain")},
    )
    assert bad.status_code == 400
    assert bad.context["document_form"].errors == {"file": ["Attach a PDF, PNG or JPEG file."]}
    assert Order.objects.get(pk=order.pk).attachments.count() == 0

    response = client.post(
        f"/portal/orders/{order.pk}/",
        {"action": "document", "artifact_type": "SWO", "file": SimpleUploadedFile("swo.pdf", PDF, "application/pdf")},
    )

    assert (response.status_code, response["Location"]) == (302, f"/portal/orders/{order.pk}/")
    order.refresh_from_db()
    assert (order.status, order.ai_disposition) == (OrderStatus.PENDING_VERIFICATION, "clear")
    assert signed_in(south.doctor).get(f"/portal/orders/{order.pk}/").status_code == 404


def test_a_note_goes_on_the_timeline_and_the_status_part_refreshes(north: World) -> None:
    order = north.order()
    client = signed_in(north.doctor)

    empty = client.post(f"/portal/orders/{order.pk}/", {"action": "note", "note": ""})
    assert empty.status_code == 400
    response = client.post(f"/portal/orders/{order.pk}/", {"action": "note", "note": "Patient prefers mornings"})
    assert response.status_code == 302

    status = client.get(f"/portal/orders/{order.pk}/status", HTTP_HX_REQUEST="true", HTTP_X_BACKGROUND_REFRESH="1")
    assert status.templates[0].name == "portal/_order_status.html"
    assert [e.reason for e in status.context["page"].timeline][-1] == "Patient prefers mornings"
    assert "Patient prefers mornings" in status.content.decode()


def test_the_portal_needs_a_signed_in_user(north: World) -> None:
    order = north.order()
    assert (
        Client().get(f"/portal/orders/{order.pk}/")["Location"] == f"/accounts/login/?next=/portal/orders/{order.pk}/"
    )


def test_the_delivery_address_shows_only_to_readers_of_phi(north: World) -> None:
    address = {"line1": "1 Elm St", "line2": "", "city": "Fargo", "state": "ND", "postal_code": "58102"}
    order = north.order(delivery_address=address, delivery_window="evening")

    doctor = signed_in(north.doctor).get(f"/portal/orders/{order.pk}/").content.decode()
    distributor = signed_in(north.distributor).get(f"/portal/orders/{order.pk}/").content.decode()

    assert "1 Elm St, Fargo, ND 58102" in doctor
    assert "Evening (5 to 8)" in doctor
    assert "1 Elm St" not in distributor
    assert "Evening (5 to 8)" in distributor
