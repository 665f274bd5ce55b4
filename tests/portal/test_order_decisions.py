"""The portal's order page and review queue offer each user only what they may do now: resolve a
review with a note, override a hold (with the permission), approve, cancel with a reason; the
order's documents and its signed written order (PDF) open for readers of its PHI, recorded."""

from __future__ import annotations

import io
import re
import zlib
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image, ImageDraw

from catalog.services import lot_receive
from compliance.models import ComplianceSnapshot
from core.models import AccessRecord
from orders.models import Attachment, Order, OrderEvent, OrderStatus
from orders.services import ItemRequest, order_attach, order_transition
from tests.admin.conftest import signed_in
from tests.conftest import World
from tests.factories import ProductFactory, WarehouseFactory
from tests.orders.reviews import PDF, held_for_quantity, needs_review_order

NOTE = "Necessity letter read: skin breakdown, two cushions a month."


def snapshot_of(order: Order) -> dict[str, Any]:
    return {
        "order": Order.objects.filter(pk=order.pk).values("status", "ai_disposition", "approver_id").get(),
        "events": OrderEvent.objects.filter(order=order).count(),
        "snapshots": ComplianceSnapshot.objects.filter(order_id=order.pk).count(),
    }


def test_ops_resolve_a_review_on_the_order_page_with_a_note(north: World) -> None:
    order = needs_review_order(north)
    ops = signed_in(north.ops)

    page = ops.get(f"/portal/orders/{order.pk}/")
    offer = page.context["page"].offer
    assert (offer.approve, offer.note_required, offer.override) == (True, True, False)
    body = page.content.decode()
    assert "Resolve review and approve" in body
    assert "Answered by Medical-necessity documentation attached" in body
    assert "Clears with" not in body
    assert 'name="override_reason"' not in body

    # No note: the form says so, nothing changed
    before = snapshot_of(order)
    refused = ops.post(f"/portal/orders/{order.pk}/", {"action": "verify", "notes": ""})
    assert refused.status_code == 400
    assert refused.context["approve_form"].errors == {"notes": ["This field is required."]}
    assert snapshot_of(order) == before

    done = ops.post(f"/portal/orders/{order.pk}/", {"action": "verify", "notes": NOTE}, follow=True)
    assert [str(m) for m in done.context["messages"]] == [
        f"Review of order {order.reference} resolved; the order is approved."
    ]
    order.refresh_from_db()
    assert (order.status, order.ai_disposition, order.approver) == ("verified", "clear", north.ops)
    assert OrderEvent.objects.get(order=order, transition="verify").reason == NOTE
    after = done.content.decode()
    assert f"Review resolved: {NOTE}" in after
    # Verified: nothing to approve any more, and the queue no longer lists it
    assert (done.context["page"].offer.approve, done.context["page"].can_start_fulfillment) == (False, True)
    assert "Resolve review and approve" not in after
    assert ops.get("/portal/review/").context["rows"] == []
    assert ops.get("/portal/").context["holds"] == []


def test_the_queue_resolves_a_review_with_the_note_typed_in_its_row(north: World) -> None:
    order = needs_review_order(north)
    ops = signed_in(north.ops)
    (row,) = ops.get("/portal/review/").context["rows"]
    assert (row.order.pk, row.offer.note_required, row.offer.override) == (order.pk, True, False)

    before = snapshot_of(order)
    refused = ops.post("/portal/review/", {"order": str(order.pk), "action": "verify"}, follow=True)
    assert [str(m) for m in refused.context["messages"]] == [
        "The checks say needs review: resolve the review with a note saying what you checked."
        " A review note is required to resolve a needs-review order."
    ]
    assert snapshot_of(order) == before

    prefix = f"order-{order.pk}"
    ops.post("/portal/review/", {"order": str(order.pk), "action": "verify", f"{prefix}-notes": NOTE})
    order.refresh_from_db()
    assert order.status == OrderStatus.VERIFIED
    assert OrderEvent.objects.get(order=order, transition="verify").reason == NOTE
    assert ops.get("/portal/review/").context["rows"] == []


def test_a_hold_offers_no_approve_and_the_override_only_to_those_with_the_permission(north: World) -> None:
    order = held_for_quantity(north)

    ops_page = signed_in(north.ops).get(f"/portal/orders/{order.pk}/")
    assert (ops_page.context["page"].offer.approve, ops_page.context["page"].offer.override) == (False, False)
    assert "Override and approve" not in ops_page.content.decode()
    assert ">Approve<" not in ops_page.content.decode()
    (ops_row,) = signed_in(north.ops).get("/portal/review/").context["rows"]
    assert (ops_row.offer.approve, ops_row.offer.override) == (False, False)

    admin = signed_in(north.admin)
    admin_page = admin.get(f"/portal/orders/{order.pk}/")
    assert (admin_page.context["page"].offer.approve, admin_page.context["page"].offer.override) == (False, True)
    assert 'name="override_reason"' in admin_page.content.decode()

    # An override posted by ops anyway is refused; an admin without a reason is told on the form
    before = snapshot_of(order)
    refused = signed_in(north.ops).post(
        f"/portal/orders/{order.pk}/", {"action": "override", "override_reason": "x"}, follow=True
    )
    assert [str(m) for m in refused.context["messages"]] == [
        "Verifying over open compliance findings needs the override permission."
    ]
    blank = admin.post(f"/portal/orders/{order.pk}/", {"action": "override", "override_reason": ""})
    assert (blank.status_code, blank.context["override_form"].errors) == (
        400,
        {"override_reason": ["This field is required."]},
    )
    assert snapshot_of(order) == before

    admin.post(f"/portal/orders/{order.pk}/", {"action": "override", "override_reason": "Backorder accepted"})
    order.refresh_from_db()
    assert (order.status, order.approver) == ("verified", north.admin)
    verify = OrderEvent.objects.get(order=order, transition="verify")
    assert verify.payload["override"] == {"reason": "Backorder accepted", "findings": ["QUANTITY_LIMIT_EXCEEDED"]}


def test_the_doctor_cancels_a_pending_order_with_a_reason(north: World) -> None:
    order = north.order()
    doctor = signed_in(north.doctor)
    page = doctor.get(f"/portal/orders/{order.pk}/")
    assert page.context["page"].can_cancel is True

    before = snapshot_of(order)
    blank = doctor.post(f"/portal/orders/{order.pk}/", {"action": "cancel", "reason": " "})
    assert (blank.status_code, blank.context["cancel_form"].errors) == (400, {"reason": ["This field is required."]})
    assert snapshot_of(order) == before

    done = doctor.post(
        f"/portal/orders/{order.pk}/", {"action": "cancel", "reason": "Patient moved to another supplier"}, follow=True
    )
    assert [str(m) for m in done.context["messages"]] == [f"Order {order.reference} cancelled."]
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    cancel = OrderEvent.objects.get(order=order, transition="cancel")
    assert (cancel.actor, cancel.reason) == (north.doctor, "Patient moved to another supplier")
    assert done.context["page"].can_cancel is False


def test_the_doctor_is_not_offered_cancel_once_fulfillment_started_and_a_post_changes_nothing(north: World) -> None:
    order = north.order()
    order_transition(order_id=order.pk, actor=north.ops, transition="verify")
    order_transition(order_id=order.pk, actor=north.ops, transition="start_fulfillment")
    doctor = signed_in(north.doctor)
    page = doctor.get(f"/portal/orders/{order.pk}/")
    assert page.context["page"].can_cancel is False
    assert "Cancel order" not in page.content.decode()

    before = snapshot_of(order)
    refused = doctor.post(f"/portal/orders/{order.pk}/", {"action": "cancel", "reason": "Changed my mind"}, follow=True)
    assert [str(m) for m in refused.context["messages"]] == ["Your role may not make this change to the order."]
    assert snapshot_of(order) == before


# --- documents --------------------------------------------------------------------------------------


def test_readers_of_phi_download_an_attachment_and_the_read_is_recorded(north: World) -> None:
    order = needs_review_order(north)
    document = Attachment.objects.get(order=order, artifact_type="MEDICAL_NECESSITY")
    url = f"/portal/orders/{order.pk}/documents/{document.pk}"
    ops = signed_in(north.ops)
    assert url in ops.get(f"/portal/orders/{order.pk}/").content.decode()

    response = ops.get(url)

    assert response.status_code == 200
    assert response.getvalue() == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        f'attachment; filename="{order.reference}-medical_necessity-{str(document.pk)[:8]}.pdf"'
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    assert AccessRecord.objects.naming(document.pk).filter(user=north.ops, channel="portal").count() == 1


def test_an_attachment_is_404_without_phi_access_or_in_another_territory_and_nothing_is_recorded(
    north: World, south: World
) -> None:
    order = needs_review_order(north)
    document = Attachment.objects.get(order=order, artifact_type="MEDICAL_NECESSITY")
    other = needs_review_order(south)
    url = f"/portal/orders/{order.pk}/documents/{document.pk}"

    distributor_page = signed_in(north.distributor).get(f"/portal/orders/{order.pk}/")
    assert distributor_page.status_code == 200
    assert f"/documents/{document.pk}" not in distributor_page.content.decode()
    assert signed_in(north.distributor).get(url).status_code == 404  # sees the order, not its PHI
    assert signed_in(south.ops).get(url).status_code == 404  # another territory
    assert signed_in(north.ops).get(f"/portal/orders/{other.pk}/documents/{document.pk}").status_code == 404
    assert not AccessRecord.objects.naming(document.pk).exists()


def inflated_text(pdf: bytes) -> str:
    """The PDF's content streams, inflated, as text (where the page's words are)."""
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, flags=re.S)
    text = []
    for stream in streams:
        try:
            text.append(zlib.decompress(stream).decode("latin-1"))
        except zlib.error:
            text.append(stream.decode("latin-1"))
    return "\n".join(text)


def signature_png() -> bytes:
    """A drawn signature as the signature pad sends it: a PNG."""
    image = Image.new("RGB", (240, 80), "white")
    ImageDraw.Draw(image).line([(10, 60), (80, 20), (150, 60), (230, 20)], fill="black", width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_doctor_downloads_the_signed_written_order_as_a_pdf(north: World) -> None:
    order = needs_review_order(north, signature_image=signature_png())
    order.refresh_from_db()
    north.doctor.first_name, north.doctor.last_name = "Nora", "North"
    north.doctor.save(update_fields=["first_name", "last_name"])
    doctor = signed_in(north.doctor)
    assert f"/portal/orders/{order.pk}/written-order.pdf" in doctor.get(f"/portal/orders/{order.pk}/").content.decode()

    response = doctor.get(f"/portal/orders/{order.pk}/written-order.pdf")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="written-order-{order.reference}.pdf"'
    pdf = response.content
    assert pdf.startswith(b"%PDF-")
    text = inflated_text(pdf)
    signed_at = timezone.localtime(order.signed_at).strftime("%Y-%m-%d %H:%M")
    for expected in (
        "Standard written order",
        order.reference,
        "Zelda QuartermaineNorth",
        "1948-07-09",
        "HCPCS A7032",
        "Quantity 7",
        "G47.33",
        north.provider.npi,
        "Nora North",
        signed_at,
        order.signature_hash,
    ):
        assert expected in text, expected
    assert b"/Subtype /Image" in pdf  # the drawn signature
    assert AccessRecord.objects.naming(order.pk).filter(user=north.doctor, channel="portal").count() == 2
    # the PDF names the patient: their read is recorded too
    assert AccessRecord.objects.naming(order.patient_id).filter(user=north.doctor, channel="portal").exists()


def test_the_written_order_is_404_unsigned_without_phi_or_elsewhere_and_nothing_is_recorded(
    north: World, south: World
) -> None:
    signed = north.order()
    unsigned = north.order(actor=north.ops)
    records = AccessRecord.objects.count()
    assert signed_in(north.ops).get(f"/portal/orders/{unsigned.pk}/written-order.pdf").status_code == 404
    assert signed_in(north.distributor).get(f"/portal/orders/{signed.pk}/written-order.pdf").status_code == 404
    assert signed_in(south.doctor).get(f"/portal/orders/{signed.pk}/written-order.pdf").status_code == 404
    assert AccessRecord.objects.count() == records


def test_a_document_that_does_not_clear_a_hold_is_named_beside_what_would(north: World) -> None:
    # A pump on the CMS prior authorization list, with a decision letter attached but undated
    pump = ProductFactory.create(sku="PCD-PUMP", name="Compression pump", hcpcs_code="E0651", price_cents=98000)
    lot_receive(actor=None, product=pump, warehouse=WarehouseFactory.create(), lot_number="PUMP-1", quantity=5)
    order = north.order(items=[ItemRequest(sku=pump.sku, quantity=1)])
    order_attach(
        order_id=order.pk,
        actor=north.doctor,
        artifact_type="PRIOR_AUTH",
        file=SimpleUploadedFile("pa.pdf", PDF, content_type="application/pdf"),
        hcpcs_codes=["E0651"],
    )
    order.refresh_from_db()
    assert order.status == OrderStatus.ON_HOLD

    home = signed_in(north.doctor).get("/portal/")
    (hold,) = home.context["holds"]
    letter = Attachment.objects.get(order=order, artifact_type="PRIOR_AUTH")
    assert [(f["code"], f["answered_by"], f["not_enough"]) for f in hold.findings] == [
        ("PRIOR_AUTH_REQUIRED", [], [{"artifact_type": "PRIOR_AUTH", "attached_at": letter.created_at}])
    ]
    attached_on = timezone.localtime(letter.created_at).strftime("%b %-d, %Y")
    assert f"(the Prior authorization attached {attached_on} does not clear it yet)" in home.content.decode()
