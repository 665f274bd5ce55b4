"""Ops staff's review queue in the portal and the staff actions on an order page."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from core.models import AccessRecord
from orders.models import Order, OrderStatus
from tests.admin.conftest import signed_in
from tests.conftest import World

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def held(world: World) -> Order:
    """Placed unsigned by ops for the doctor: held for the missing signed written order."""
    return world.order(actor=world.ops)


def test_the_queue_lists_holds_oldest_first_and_filters_by_territory_and_reason(north: World, south: World) -> None:
    # each for a patient of its own: an identical open order for the same patient needs review
    first, second = held(north), north.order(actor=north.ops, patient_id=north.other_patient().pk)
    north.order(patient_id=north.other_patient().pk)  # clear: not waiting for a person
    held(south)  # another territory

    page = signed_in(north.ops).get("/portal/review/")

    assert page.status_code == 200
    assert [row.order.pk for row in page.context["rows"]] == [first.pk, second.pk]
    assert page.context["reasons"] == ["SWO_MISSING_SIGNATURE"]
    body = page.content.decode()
    assert f"/portal/orders/{first.pk}/?attach=SWO#documents" in body
    assert "Zelda QuartermaineNorth" in body
    assert AccessRecord.objects.naming(first.pk).filter(channel="portal").exists()

    by_reason = signed_in(north.ops).get("/portal/review/?reason=PRIOR_AUTH_REQUIRED")
    assert by_reason.context["rows"] == []
    by_territory = signed_in(north.ops).get("/portal/review/?territory=north&reason=SWO_MISSING_SIGNATURE")
    assert len(by_territory.context["rows"]) == 2
    foreign = signed_in(north.ops).get("/portal/review/?territory=south")
    assert len(foreign.context["rows"]) == 2  # refused filter: the whole queue, with a message
    assert "You do not review orders in that territory." in foreign.content.decode()


def test_only_reviewers_get_the_queue(north: World) -> None:
    held(north)
    assert signed_in(north.doctor).get("/portal/review/").status_code == 403
    assert signed_in(north.distributor).get("/portal/review/").status_code == 403
    assert "Review queue" not in signed_in(north.doctor).get("/portal/").content.decode()
    assert "Review queue" in signed_in(north.ops).get("/portal/").content.decode()


def test_ops_resolves_a_hold_by_attaching_then_approves_and_starts_fulfillment(north: World) -> None:
    order = held(north)
    client = signed_in(north.ops)

    # Approving while the hold is open is refused by the service: nothing changes.
    refused = client.post("/portal/review/", {"order": str(order.pk)}, follow=True)
    order.refresh_from_db()
    assert order.status == OrderStatus.ON_HOLD
    assert [str(m) for m in refused.context["messages"]] == [
        "The checks say hold: resolve the findings or override with a reason."
    ]

    attach = client.post(
        f"/portal/orders/{order.pk}/",
        {
            "action": "document",
            "artifact_type": "SWO",
            "file": SimpleUploadedFile("swo.pdf", PDF, content_type="application/pdf"),
        },
    )
    assert attach.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.ai_disposition) == (OrderStatus.PENDING_VERIFICATION, "clear")

    client.post("/portal/review/", {"order": str(order.pk)})
    order.refresh_from_db()
    assert order.status == OrderStatus.VERIFIED
    assert order.approver == north.ops

    page = client.get(f"/portal/orders/{order.pk}/")
    offered = page.context["page"]
    assert (offered.offer.approve, offered.offer.override, offered.can_start_fulfillment) == (False, False, True)
    client.post(f"/portal/orders/{order.pk}/", {"action": "start_fulfillment"})
    order.refresh_from_db()
    assert order.status == OrderStatus.IN_PROGRESS

    # The doctor sees it under Preparing and gets no staff actions.
    doctor_home = signed_in(north.doctor).get("/portal/?tab=preparing")
    assert [o.pk for o in doctor_home.context["orders"]] == [order.pk]
    doctor_page = signed_in(north.doctor).get(f"/portal/orders/{order.pk}/")
    offered = doctor_page.context["page"]
    assert (offered.offer.approve, offered.offer.override, offered.can_start_fulfillment) == (False, False, False)


def test_a_doctor_posting_a_staff_action_changes_nothing(north: World) -> None:
    order = north.order()
    events = order.events.count()
    response = signed_in(north.doctor).post(f"/portal/orders/{order.pk}/", {"action": "verify"}, follow=True)
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING_VERIFICATION
    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == ["Your role may not make this change to the order."]
    assert order.events.count() == events
