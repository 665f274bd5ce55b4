"""The order wizard through Django's test client: drafts saved step by step, inline checks,
documents, the signature and submission through the order service. (Browser journeys: tests/e2e.)"""

from __future__ import annotations

import base64
import datetime as dt
import re
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from catalog.models import ProductFavourite
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
from tests.factories import CoverageFactory, PatientFactory, ProductFactory, WarehouseFactory

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SIGNATURE = "data:image/png;base64," + base64.b64encode(PNG).decode()


def start(client: Client, world: World, patient: Any = None) -> OrderDraft:
    """The deep link shows a Start button (a GET creates nothing); its POST starts the draft."""
    patient = patient or world.patient
    shown = client.get(f"/portal/orders/new?patient={patient.pk}")
    assert shown.status_code == 200
    assert not OrderDraft.objects.filter(patient=patient, order__isnull=True).exists()
    response = client.post("/portal/orders/new", {"patient": str(patient.pk)})
    draft = OrderDraft.objects.get(patient=patient, order__isnull=True)
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
    assert again.status_code == 200
    assert again.context["patient_draft"] == draft  # a link back where they stopped, nothing new
    assert f'href="{url(draft, "prescription")}"' in again.content.decode()
    resumed = client.post("/portal/orders/new", {"patient": str(north.patient.pk)})
    assert resumed["Location"] == url(draft, "prescription")
    assert OrderDraft.objects.count() == 1
    listing = client.get("/portal/orders/new")
    assert [d.pk for d in listing.context["drafts"]] == [draft.pk]

    # Another territory's patient, a malformed id, someone else's draft: not found, nothing created.
    assert client.get(f"/portal/orders/new?patient={south.patient.pk}").status_code == 404
    assert client.post("/portal/orders/new", {"patient": str(south.patient.pk)}).status_code == 404
    assert client.get("/portal/orders/new?patient=not-a-uuid").status_code == 404
    assert signed_in(north.ops).get(url(draft, "patient")).status_code == 404
    assert client.get(f"/portal/drafts/{draft.pk}/teleport/").status_code == 404
    assert OrderDraft.objects.count() == 1
    # A distributor may not order at all.
    refused = signed_in(north.distributor).post("/portal/orders/new", {"patient": str(north.patient.pk)})
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
            "hcpcs_codes": ["E0651"],
            "file": SimpleUploadedFile("pa.pdf", b"hello", content_type="application/pdf"),
        },
    )
    assert not_pdf.status_code == 400
    assert "Attach a PDF, PNG or JPEG file." in not_pdf.content.decode()
    assert DraftDocument.objects.count() == 0

    # A prior authorization names the item it is for: among the draft's items, offered as choices.
    documents_step = client.get(url(draft, "documents"))
    assert documents_step.context["document_form"].fields["hcpcs_codes"].choices == [
        ("E0651", "E0651 · Compression pump")
    ]
    unnamed = client.post(
        url(draft, "documents"),
        {
            "action": "upload",
            "artifact_type": "PRIOR_AUTH",
            "document_date": timezone.localdate().isoformat(),
            "file": SimpleUploadedFile("pa-decision.pdf", PDF, content_type="application/pdf"),
        },
    )
    assert unnamed.status_code == 400
    assert unnamed.context["document_form"].errors == {
        "hcpcs_codes": ["Say which item (HCPCS code) this prior authorization is for."]
    }
    assert DraftDocument.objects.count() == 0

    added = client.post(
        url(draft, "documents"),
        {
            "action": "upload",
            "artifact_type": "PRIOR_AUTH",
            "document_date": timezone.localdate().isoformat(),
            "hcpcs_codes": ["E0651"],
            "file": SimpleUploadedFile("pa-decision.pdf", PDF, content_type="application/pdf"),
        },
    )
    assert added.status_code == 302
    document = DraftDocument.objects.get()
    assert (document.artifact_type, document.original_name, document.size, document.hcpcs_codes) == (
        "PRIOR_AUTH",
        "pa-decision.pdf",
        len(PDF),
        ["E0651"],
    )
    assert document.file.name == f"drafts/{north.territory.pk}/{draft.pk}/{document.pk}"  # ids only, no file name
    review = client.get(url(draft, "review"))
    assert review.context["checks"].disposition == "clear"

    client.post(url(draft, "review"), {"action": "submit", "sign": "on", "signature": SIGNATURE})
    order = Order.objects.get()
    assert (order.status, order.ai_disposition) == (OrderStatus.PENDING_VERIFICATION, "clear")
    kept = order.attachments.get(artifact_type=ArtifactType.PRIOR_AUTH)
    assert (kept.original_name, kept.document_date, kept.hcpcs_codes, kept.file.read()) == (
        "pa-decision.pdf",
        timezone.localdate(),
        ["E0651"],
        PDF,
    )
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
    assert partial.content.decode().count("of the delivery address, or clear the address fields") == 3
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
    assert draft.answers == {"provider_id": str(north.provider.pk), "payer_type": "insurance"}  # prefilled
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


@pytest.mark.usefixtures("beat_schedule")
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
    assert PeriodicTask.objects.get(name="order-drafts-purge").task == "orders.tasks.purge_stale_drafts"


def test_a_cash_pay_patient_defaults_to_cash_and_insurance_without_coverage_is_refused(north: World) -> None:
    cash_patient = PatientFactory.create(provider=north.provider, territory=north.territory, insured=False)
    CoverageFactory.create(patient=cash_patient, payer_type="cash", payer_name="", plan_name="", member_id="")
    client = signed_in(north.doctor)
    draft = start(client, north, patient=cash_patient)
    assert draft.answers["payer_type"] == "cash"  # the coverage in force is cash pay
    client.post(url(draft, "patient"), {"confirm": "on", "nav": "next"})
    form = client.get(url(draft, "prescription")).context["form"]
    assert form["payer_type"].value() == "cash"
    refused = client.post(
        url(draft, "prescription"), {"provider_id": str(north.provider.pk), "payer_type": "insurance", "nav": "next"}
    )
    assert refused.status_code == 400
    assert "no insurance coverage in force" in refused.content.decode()
    draft.refresh_from_db()
    assert (draft.answers["payer_type"], draft.step) == ("cash", DraftStep.PRESCRIPTION)


def test_the_order_service_and_api_refuse_insurance_without_coverage(north: World, api: Any) -> None:
    cash_patient = PatientFactory.create(provider=north.provider, territory=north.territory, insured=False)
    body = {
        "patient_id": str(cash_patient.pk),
        "provider_id": str(north.provider.pk),
        "items": [{"sku": north.product.sku, "quantity": 1}],
        "payer_type": "insurance",
    }
    response = api(north.doctor).post("/api/v1/orders", body, format="json", HTTP_TERRITORY_ID=str(north.territory.pk))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "COVERAGE_MISSING"
    assert response.json()["error"]["details"] == {
        "payer_type": ["The patient has no insurance coverage in force: choose cash pay, or add the coverage first."]
    }
    assert Order.objects.count() == 0
    # Cash pay needs no coverage; insurance details given with the order count as the coverage.
    assert api(north.doctor).post("/api/v1/orders", {**body, "payer_type": "cash"}, format="json").status_code == 201
    with_plan = {**body, "insurance": {"carrier": "Acme Health", "policy_number": "P-1"}}
    assert api(north.doctor).post("/api/v1/orders", with_plan, format="json").status_code == 201


def test_a_medication_line_asks_for_its_prescription_before_it_can_be_submitted(north: World) -> None:
    pen = ProductFactory.create(
        sku="RX-PEN", name="Semaglutide pen", rxnorm_code="1991302", hcpcs_code="", coverage_tier="cash_pay"
    )
    lot_receive(actor=None, product=pen, warehouse=WarehouseFactory.create(), lot_number="PEN-1", quantity=5)
    client = signed_in(north.doctor)
    draft = start(client, north)
    client.post(url(draft, "patient"), {"confirm": "on", "nav": "next"})
    client.post(
        url(draft, "prescription"), {"provider_id": str(north.provider.pk), "payer_type": "cash", "nav": "next"}
    )
    client.post(url(draft, "catalog"), {"skus": [pen.sku], "nav": "next"})
    page = client.get(url(draft, "quantities")).content.decode()
    assert "Prescription for Semaglutide pen" in page
    missing = client.post(url(draft, "quantities"), {"qty-0": "1", "nav": "next"})
    assert missing.status_code == 400
    assert missing.content.decode().count("Needed for the prescription of Semaglutide pen.") == 6
    # Submitting around the step is refused too, naming the step to finish.
    client.post(url(draft, "delivery"), {"mode": "ship_to_patient", "window": "any", "nav": "next"})
    refused = client.post(url(draft, "review"), {"action": "submit", "sign": "on", "signature": SIGNATURE})
    assert refused.status_code == 400
    assert "Give the prescription details of Semaglutide pen" in refused.content.decode()
    assert Order.objects.count() == 0
    prescription = {
        "qty-0": "1",
        "dosage_text-0": "Inject 0.25 mg under the skin once a week",
        "dose_frequency-0": "1",
        "dose_period-0": "1",
        "dose_period_unit-0": "wk",
        "days_supply-0": "28",
        "refills-0": "2",
        "nav": "next",
    }
    assert client.post(url(draft, "quantities"), prescription).status_code == 302
    client.post(url(draft, "review"), {"action": "submit", "sign": "on", "signature": SIGNATURE})
    line = Order.objects.get().items.get()
    assert (line.dosage_text, line.dose_frequency, line.dose_period, line.dose_period_unit) == (
        "Inject 0.25 mg under the skin once a week",
        1,
        1,
        "wk",
    )
    assert (line.days_supply, line.refills) == (28, 2)


def test_the_catalog_fits_the_payer_searches_and_keeps_favourites_first(north: World) -> None:
    ProductFactory.create(
        sku="ED-TAB", name="Tadalafil 5 mg", therapy_type="ed", hcpcs_code="", coverage_tier="cash_pay"
    )
    ProductFactory.create(
        sku="HAIR-TAB", name="Finasteride 1 mg", therapy_type="hair_loss", hcpcs_code="", coverage_tier="cash_pay"
    )
    strips = ProductFactory.create(sku="DIAB-STRIPS", name="Test strips", therapy_type="diabetes", hcpcs_code="A4253")
    client = signed_in(north.doctor)
    draft = start(client, north)  # insured: insurance preselected
    page = client.get(url(draft, "catalog"))
    shown = [e.product.sku for e in page.context["found_entries"]]
    assert {"ED-TAB", "HAIR-TAB"}.isdisjoint(shown)  # cash-pay medications only on cash orders
    assert "cash_pay" not in page.content.decode()
    searched = client.get(url(draft, "catalog") + "?q=strips", HTTP_HX_REQUEST="true")
    assert [e.product.sku for e in searched.context["found_entries"]] == [strips.sku]
    by_therapy = client.get(url(draft, "catalog") + "?therapy=cpap")
    assert [e.product.sku for e in by_therapy.context["found_entries"]] == [north.product.sku]
    # Starring a product (POST) puts it first; a second POST takes the star away.
    client.post(url(draft, "catalog"), {"favourite": strips.sku})
    listed = client.get(url(draft, "catalog")).context["found_entries"]
    assert (listed[0].product.sku, listed[0].favourite) == (strips.sku, True)
    assert ProductFavourite.objects.filter(user=north.doctor, product=strips).count() == 1
    client.post(url(draft, "catalog"), {"favourite": strips.sku})
    assert not ProductFavourite.objects.filter(user=north.doctor).exists()
    # A cash order offers the cash-pay products, labelled in words.
    draft.answers = {**draft.answers, "payer_type": "cash"}
    draft.save()
    cash = client.get(url(draft, "catalog") + "?therapy=")
    assert {"ED-TAB", "HAIR-TAB"} <= {e.product.sku for e in cash.context["found_entries"]}
    assert "Cash pay only tier" in cash.content.decode()
    assert "cash_pay" not in cash.content.decode().replace('value="cash_pay"', "")


def test_address_errors_say_what_to_do_and_unknown_states_are_refused(north: World) -> None:
    client = signed_in(north.doctor)
    draft = start(client, north)
    address = {"mode": "ship_to_patient", "window": "any", "line1": "1 Elm St", "city": "Fargo", "nav": "next"}
    bad = client.post(url(draft, "delivery"), {**address, "state": "XX", "postal_code": "5810"})
    body = bad.content.decode()
    assert bad.status_code == 400
    assert "Enter a 5-digit ZIP code, such as 58102" in body
    assert "Enter the two-letter USPS code of a US state or territory" in body
    assert client.post(url(draft, "delivery"), {**address, "state": "pr", "postal_code": "00901"}).status_code == 302
    draft.refresh_from_db()
    assert draft.answers["delivery"]["address"]["state"] == "PR"


def test_save_and_finish_later_keeps_an_incomplete_step(north: World) -> None:
    client = signed_in(north.doctor)
    draft = start(client, north)
    client.post(url(draft, "patient"), {"confirm": "on", "nav": "next"})
    saved = client.post(
        url(draft, "prescription"),
        {"provider_id": str(north.provider.pk), "payer_type": "", "diagnosis_codes": "G47.33", "nav": "save"},
    )
    assert (saved.status_code, saved["Location"]) == (302, "/portal/")
    draft.refresh_from_db()
    assert (draft.answers["diagnosis_codes"], draft.step) == (["G47.33"], DraftStep.PRESCRIPTION)
    delivery = client.post(
        url(draft, "delivery"), {"mode": "ship_to_patient", "window": "any", "line1": "1 Elm St", "nav": "save"}
    )
    assert delivery.status_code == 302
    draft.refresh_from_db()
    assert draft.answers["delivery"]["address"]["line1"] == "1 Elm St"


def test_the_site_root_leads_to_the_portal_and_a_get_never_creates_a_draft(north: World) -> None:
    assert Client().get("/")["Location"] == "/portal/"
    client = signed_in(north.doctor)
    for _ in range(2):
        page = client.get(f"/portal/orders/new?patient={north.patient.pk}")
        assert "Start order for Zelda QuartermaineNorth" in page.content.decode()
    assert OrderDraft.objects.count() == 0


def test_every_aria_describedby_of_a_wizard_step_names_an_element_on_the_page(north: World) -> None:
    client = signed_in(north.doctor)
    draft = start(client, north)
    bad = {"mode": "ship_to_patient", "window": "any", "line1": "x", "state": "XX", "postal_code": "1"}
    pages = [client.get(url(draft, step)) for step in DraftStep] + [
        client.post(url(draft, "delivery"), bad),
        client.post(url(draft, "prescription"), {"diagnosis_codes": "XYZ", "payer_type": "cash"}),
    ]
    described_anywhere: set[str] = set()
    for page in pages:
        html = page.content.decode()
        ids = set(re.findall(r'\bid="([^"]+)"', html))
        described = {token for value in re.findall(r'aria-describedby="([^"]+)"', html) for token in value.split()}
        assert described <= ids, (page.wsgi_request.path, described - ids)
        described_anywhere |= described
    # The four fields that pointed at missing ids: diagnosis, state, ZIP (help and error), document date.
    assert {
        "id_diagnosis_codes_helptext",
        "id_diagnosis_codes_error",
        "id_state_helptext",
        "id_state_error",
        "id_postal_code_helptext",
        "id_postal_code_error",
        "id_document_date_helptext",
    } <= described_anywhere
