"""The order wizard through Django's test client: drafts saved step by step, inline checks,
documents, the signature and submission through the order service. (Browser journeys: tests/e2e.)"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from catalog.services import lot_receive
from compliance.inputs import ArtifactType
from compliance.models import ComplianceSnapshot
from orders import drafts
from orders.models import (
    SIGNATURE_ARTIFACT,
    Attachment,
    DraftDocument,
    DraftStep,
    Order,
    OrderDraft,
    OrderStatus,
    Source,
)
from orders.tasks import purge_stale_drafts
from tests.admin.conftest import signed_in
from tests.conftest import World
from tests.factories import CoverageFactory, ProductFactory, WarehouseFactory

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SIGNATURE = "data:image/png;base64," + base64.b64encode(PNG).decode()


def start(client: Client, world: World) -> OrderDraft:
    response = client.get(f"/portal/orders/new?patient={world.patient.pk}")
    draft = OrderDraft.objects.get(patient=world.patient, order__isnull=True)
    assert response.status_code == 302
    assert response["Location"] == f"/portal/drafts/{draft.pk}/patient/"
    return draft


def url(draft: OrderDraft, step: str) -> str:
    return f"/portal/drafts/{draft.pk}/{step}/"


def walk(client: Client, world: World, draft: OrderDraft, *, sku: str, quantity: int = 2, **prescription: Any) -> None:
    """Fill every step up to the review, each with Continue."""
    steps = [
        (DraftStep.PATIENT, {"confirm": "on"}),
        (
            DraftStep.PRESCRIPTION,
            {
                "provider_id": str(world.provider.pk),
                "payer_type": "insurance",
                "diagnosis_codes": "G47.33",
                "f2f_date": "",
                "notes": "Mask cushion worn",
                **prescription,
            },
        ),
        (DraftStep.CATALOG, {"skus": [sku]}),
        (DraftStep.QUANTITIES, {"qty-0": str(quantity)}),
        (DraftStep.DELIVERY, {"mode": "ship_to_patient", "window": "morning", "requested_date": ""}),
        (DraftStep.DOCUMENTS, {}),
    ]
    for step, data in steps:
        response = client.post(url(draft, step), {**data, "nav": "next"})
        assert response.status_code == 302, (step, response.content.decode()[:2000])
        assert response["Location"] == url(draft, drafts.step_after(step))


def test_a_deep_link_starts_a_draft_and_the_next_visit_resumes_it(north: World, south: World) -> None:
    client = signed_in(north.doctor)
    draft = start(client, north)

    page = client.get(url(draft, "patient"))
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    assert "Zelda QuartermaineNorth" in page.content.decode()
    client.post(url(draft, "patient"), {"confirm": "on", "nav": "save"})

    again = client.get(f"/portal/orders/new?patient={north.patient.pk}")
    assert again["Location"] == url(draft, "prescription")  # back where they stopped
    assert OrderDraft.objects.count() == 1
    listing = client.get("/portal/orders/new")
    assert [d.pk for d in listing.context["drafts"]] == [draft.pk]

    # Another territory's patient, a malformed id, someone else's draft: not found, nothing created.
    assert client.get(f"/portal/orders/new?patient={south.patient.pk}").status_code == 404
    assert client.get("/portal/orders/new?patient=not-a-uuid").status_code == 404
    assert signed_in(north.ops).get(url(draft, "patient")).status_code == 404
    assert client.get(f"/portal/drafts/{draft.pk}/teleport/").status_code == 404
    assert OrderDraft.objects.count() == 1
    # A distributor may not order at all.
    refused = signed_in(north.distributor).get(f"/portal/orders/new?patient={north.patient.pk}")
    assert refused.status_code in (302, 404)
    assert OrderDraft.objects.count() == 1


def test_a_clear_order_signed_and_submitted_through_the_order_service(north: World) -> None:
    CoverageFactory.create(patient=north.patient)
    client = signed_in(north.doctor)
    draft = start(client, north)
    walk(client, north, draft, sku=north.product.sku)

    review = client.get(url(draft, "review"))
    assert review.status_code == 200
    assert review.context["signature_needed"] is True
    assert [f.code for f in drafts_findings(review)] == []
    assert review.context["checks"].disposition == "clear"  # once signed
    assert [(p.product.sku, p.quantity, p.rule.path) for p in review.context["paths"]] == [
        (north.product.sku, 2, "warehouse")
    ]
    # Not signed: refused, nothing created.
    unsigned = client.post(url(draft, "review"), {"action": "submit"})
    assert unsigned.status_code == 400
    assert "Sign in the box" in unsigned.content.decode()
    assert Order.objects.count() == 0

    submitted = client.post(url(draft, "review"), {"action": "submit", "sign": "on", "signature": SIGNATURE})

    order = Order.objects.get()
    assert submitted.status_code == 302
    assert submitted["Location"] == f"/portal/orders/{order.pk}/"
    assert (order.status, order.ai_disposition, order.source) == (OrderStatus.PENDING_VERIFICATION, "clear", "portal")
    assert (order.delivery_window, order.diagnosis_codes, order.notes) == ("morning", ["G47.33"], "Mask cushion worn")
    assert [(i.sku, i.quantity) for i in order.items.all()] == [(north.product.sku, 2)]
    assert order.signed_by == north.doctor
    signature = Attachment.objects.get(order=order)
    assert signature.artifact_type == SIGNATURE_ARTIFACT
    assert (signature.uploaded_by, signature.content_type) == (north.doctor, "image/png")
    assert signature.summary_sha256 == order.signature_hash != ""
    assert signature.file.read() == PNG
    order_page = client.get(submitted["Location"]).content.decode()
    assert "Ship to patient · Morning (8 to 12)" in order_page
    draft.refresh_from_db()
    assert draft.order == order
    # The closed draft is gone from the wizard; a second submission answers the same order.
    assert client.get(url(draft, "review")).status_code == 404
    assert drafts.draft_submit(actor=north.doctor, draft_id=draft.pk, sign=True, signature_image=PNG) == order
    assert Order.objects.count() == 1


def drafts_findings(response: Any) -> list[Any]:
    return response.context["checks"].blocking


def pump() -> Any:
    """A pneumatic compression device (E0651: on the prior-authorization list), in stock."""
    product = ProductFactory.create(sku="PCD-PUMP", name="Compression pump", hcpcs_code="E0651")
    lot_receive(actor=None, product=product, warehouse=WarehouseFactory.create(), lot_number="PUMP-1", quantity=5)
    return product


def test_a_prior_authorization_hold_shows_beside_the_item_and_clears_with_the_document(north: World) -> None:
    CoverageFactory.create(patient=north.patient)
    client = signed_in(north.doctor)
    draft = start(client, north)
    walk(client, north, draft, sku=pump().sku, quantity=1)

    quantities = client.get(url(draft, "quantities"))
    item_findings = quantities.context["checks"].by_sku["PCD-PUMP"]
    assert [f.code for f in item_findings] == ["PRIOR_AUTH_REQUIRED"]
    assert item_findings[0].step == DraftStep.DOCUMENTS
    body = quantities.content.decode()
    assert f"/portal/drafts/{draft.pk}/documents/?attach=PRIOR_AUTH#upload" in body
    documents = client.get(url(draft, "documents"))
    assert list(documents.context["checks"].artifacts) == ["PRIOR_AUTH"]

    # Submitted without it: the order holds for the prior authorization.
    client.post(url(draft, "review"), {"action": "submit", "sign": "on", "signature": SIGNATURE})
    order = Order.objects.get()
    assert (order.status, order.ai_disposition) == (OrderStatus.ON_HOLD, "hold")
    assert [f["code"] for f in ComplianceSnapshot.objects.filter(order_id=order.pk).get().result["findings"]] == [
        "PRIOR_AUTH_REQUIRED"
    ]


def test_documents_are_checked_kept_with_the_draft_and_attached_before_the_checks_run(north: World) -> None:
    CoverageFactory.create(patient=north.patient)
    pump()
    client = signed_in(north.doctor)
    draft = start(client, north)
    walk(client, north, draft, sku="PCD-PUMP", quantity=1)

    not_pdf = client.post(
        url(draft, "documents"),
        {
            "action": "upload",
            "artifact_type": "PRIOR_AUTH",
            "file": SimpleUploadedFile("pa.pdf", b"hello", content_type="application/pdf"),
        },
    )
    assert not_pdf.status_code == 400
    assert "Attach a PDF, PNG or JPEG file." in not_pdf.content.decode()
    assert DraftDocument.objects.count() == 0

    added = client.post(
        url(draft, "documents"),
        {
            "action": "upload",
            "artifact_type": "PRIOR_AUTH",
            "document_date": timezone.localdate().isoformat(),
            "file": SimpleUploadedFile("pa-decision.pdf", PDF, content_type="application/pdf"),
        },
    )
    assert added.status_code == 302
    document = DraftDocument.objects.get()
    assert (document.artifact_type, document.original_name, document.size) == (
        "PRIOR_AUTH",
        "pa-decision.pdf",
        len(PDF),
    )
    assert document.file.name == f"drafts/{north.territory.pk}/{draft.pk}/{document.pk}"  # ids only, no file name
    review = client.get(url(draft, "review"))
    assert review.context["checks"].disposition == "clear"

    client.post(url(draft, "review"), {"action": "submit", "sign": "on", "signature": SIGNATURE})
    order = Order.objects.get()
    assert (order.status, order.ai_disposition) == (OrderStatus.PENDING_VERIFICATION, "clear")
    kept = order.attachments.get(artifact_type=ArtifactType.PRIOR_AUTH)
    assert (kept.original_name, kept.document_date, kept.file.read()) == ("pa-decision.pdf", timezone.localdate(), PDF)
    assert DraftDocument.objects.count() == 0
    # One compliance run, at submission: the document was there before the checks.
    assert ComplianceSnapshot.objects.filter(order_id=order.pk).count() == 1


def test_each_step_reruns_the_checks_inline_and_bad_input_changes_nothing(north: World) -> None:
    client = signed_in(north.doctor)
    draft = start(client, north)
    client.post(url(draft, "patient"), {"confirm": "on", "nav": "next"})
    client.post(
        url(draft, "prescription"), {"provider_id": str(north.provider.pk), "payer_type": "cash", "nav": "next"}
    )
    draft.refresh_from_db()
    saved = dict(draft.answers)

    bad = client.post(
        url(draft, "prescription"),
        {"provider_id": str(north.provider.pk), "payer_type": "cash", "diagnosis_codes": "G47.33, XYZ", "nav": "next"},
    )
    assert bad.status_code == 400
    assert "Not valid ICD-10-CM codes: XYZ" in bad.content.decode()
    not_a_date = client.post(
        url(draft, "prescription"),
        {"provider_id": str(north.provider.pk), "payer_type": "cash", "f2f_date": "2026-02-30", "nav": "next"},
    )
    assert not_a_date.status_code == 400
    stranger = client.post(url(draft, "prescription"), {"provider_id": str(north.ops.pk), "payer_type": "cash"})
    assert stranger.status_code == 400
    draft.refresh_from_db()
    assert draft.answers == saved

    # htmx: a changed field is saved and the step re-drawn with the checks, without moving on.
    checked = client.post(url(draft, "catalog"), {"skus": [north.product.sku], "nav": "check"}, HTTP_HX_REQUEST="true")
    assert checked.status_code == 200
    draft.refresh_from_db()
    assert (draft.answers["skus"], draft.step) == ([north.product.sku], DraftStep.CATALOG)
    # Unknown products are refused.
    unknown = client.post(url(draft, "catalog"), {"skus": ["NO-SUCH"], "nav": "next"})
    assert unknown.status_code == 400
    draft.refresh_from_db()
    assert draft.answers["skus"] == [north.product.sku]
    # Quantities are whole numbers from 1.
    for quantity in ("0", "-1", "ten", "10000"):
        assert client.post(url(draft, "quantities"), {"qty-0": quantity, "nav": "next"}).status_code == 400
    client.post(url(draft, "quantities"), {"qty-0": "3", "nav": "next"})
    # A partial address is refused; a whole one kept.
    partial = client.post(url(draft, "delivery"), {"mode": "ship_to_patient", "window": "any", "line1": "1 Elm St"})
    assert partial.status_code == 400
    assert partial.content.decode().count("Needed for a delivery address.") == 3
    client.post(
        url(draft, "delivery"),
        {
            "mode": "ship_to_practice",
            "window": "evening",
            "line1": "1 Elm St",
            "city": "Fargo",
            "state": "nd",
            "postal_code": "58102",
            "nav": "next",
        },
    )
    draft.refresh_from_db()
    assert draft.answers["quantities"] == {north.product.sku: 3}
    assert draft.answers["delivery"] == {
        "mode": "ship_to_practice",
        "window": "evening",
        "requested_date": None,
        "address": {"line1": "1 Elm St", "line2": "", "city": "Fargo", "state": "ND", "postal_code": "58102"},
    }

    # A signature that is not a PNG: refused, nothing created.
    not_png = client.post(
        url(draft, "review"),
        {"action": "submit", "sign": "on", "signature": "data:image/png;base64," + base64.b64encode(PDF).decode()},
    )
    assert not_png.status_code == 400
    assert "The signature must be a PNG" in not_png.content.decode()
    assert Order.objects.count() == 0
    draft.refresh_from_db()
    assert draft.order is None


def test_the_cash_order_without_diagnoses_still_goes_through(north: World) -> None:
    client = signed_in(north.doctor)
    draft = start(client, north)
    walk(client, north, draft, sku=north.product.sku, diagnosis_codes="", payer_type="cash")
    client.post(url(draft, "review"), {"action": "submit", "sign": "on", "signature": SIGNATURE})
    order = Order.objects.get()
    assert (order.payer_type, order.source, order.diagnosis_codes) == ("cash", Source.PORTAL, None)


def test_staff_ordering_for_a_provider_cannot_sign_and_the_order_waits_for_the_signature(north: World) -> None:
    client = signed_in(north.ops)
    draft = start(client, north)
    walk(client, north, draft, sku=north.product.sku)
    review = client.get(url(draft, "review"))
    assert review.context["can_sign"] is False
    assert "The ordering provider has not signed" in review.content.decode()

    # A signature sent anyway is not theirs to give: ignored, the order holds for it.
    client.post(url(draft, "review"), {"action": "submit", "sign": "on", "signature": SIGNATURE})
    order = Order.objects.get()
    assert (order.status, order.signed_by, order.attachments.count()) == (OrderStatus.ON_HOLD, None, 0)


def test_discarding_a_draft_removes_it_and_its_documents(north: World, django_capture_on_commit_callbacks: Any) -> None:
    client = signed_in(north.doctor)
    draft = start(client, north)
    client.post(
        url(draft, "documents"),
        {"action": "upload", "artifact_type": "CMN", "file": SimpleUploadedFile("c.pdf", PDF, "application/pdf")},
    )
    document = DraftDocument.objects.get()
    storage, name = document.file.storage, document.file.name or ""
    assert storage.exists(name)
    assert client.get(f"/portal/drafts/{draft.pk}/discard").status_code == 302  # GET changes nothing
    assert OrderDraft.objects.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        discarded = client.post(f"/portal/drafts/{draft.pk}/discard")

    assert discarded.status_code == 302
    assert (OrderDraft.objects.count(), DraftDocument.objects.count()) == (0, 0)
    assert not storage.exists(name)


def test_a_provider_retired_mid_draft_counts_as_not_chosen_and_submission_is_refused(north: World) -> None:
    client = signed_in(north.doctor)
    draft = start(client, north)
    assert draft.answers == {"provider_id": str(north.provider.pk), "payer_type": "cash"}  # prefilled
    walk(client, north, draft, sku=north.product.sku)
    north.provider.active = False
    north.provider.save(update_fields=["active"])

    review = client.get(url(draft, "review"))
    assert review.status_code == 200
    assert "SWO_MISSING_PRACTITIONER" in [f.code for f in review.context["checks"].blocking]

    refused = client.post(url(draft, "review"), {"action": "submit"})
    assert refused.status_code == 400
    assert "Unknown provider." in refused.content.decode()
    assert Order.objects.count() == 0


def test_drafts_untouched_past_the_retention_are_purged_with_their_documents(
    north: World, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.ORDER_DRAFT_RETENTION_DAYS = 30
    client = signed_in(north.doctor)
    old = start(client, north)
    client.post(
        url(old, "documents"),
        {"action": "upload", "artifact_type": "CMN", "file": SimpleUploadedFile("c.pdf", PDF, "application/pdf")},
    )
    name = DraftDocument.objects.get().file.name or ""
    fresh = drafts.draft_start(actor=north.ops, patient_id=north.patient.pk)
    last_change = timezone.now() - dt.timedelta(days=30, seconds=1)
    OrderDraft.objects.filter(pk=old.pk).update(updated_at=last_change)
    OrderDraft.objects.filter(pk=fresh.pk).update(updated_at=last_change + dt.timedelta(seconds=2))

    with django_capture_on_commit_callbacks(execute=True):
        deleted = purge_stale_drafts()

    assert deleted == 1
    assert list(OrderDraft.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert DraftDocument.objects.count() == 0
    assert not default_storage.exists(name)
    assert settings.CELERY_BEAT_SCHEDULE["order-drafts-purge"]["task"] == "orders.tasks.purge_stale_drafts"
