"""Compliance on real orders: decisions at submission, snapshots, holds resolved by documents or
overrides, the review queue and the inline check, through the services and the portal API."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.services import lot_receive
from compliance.engine import evaluate
from compliance.models import ComplianceSnapshot, PayerRule
from core.models import OutboxEvent
from orders import services
from orders.compliance_checks import facts_for_order
from orders.models import Attachment, Order, OrderEvent
from patients.models import Patient, PriorAuthorization
from tests.conftest import World
from tests.factories import CoverageFactory, PatientFactory, ProductFactory, WarehouseFactory

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def pdf(name: str = "document.pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, PDF, content_type="application/pdf")


def stocked(sku: str, hcpcs: str = "", quantity: int = 50, **fields: Any) -> Any:
    product = ProductFactory.create(sku=sku, hcpcs_code=hcpcs, **fields)
    lot_receive(
        actor=None, product=product, warehouse=WarehouseFactory.create(), lot_number=f"L-{sku}", quantity=quantity
    )
    return product


def state(order_id: Any) -> dict[str, Any]:
    """What a refused action must leave as it was."""
    return {
        "order": Order.objects.filter(pk=order_id).values("status", "ai_disposition", "approver_id").get(),
        "events": OrderEvent.objects.filter(order_id=order_id).count(),
        "snapshots": ComplianceSnapshot.objects.filter(order_id=order_id).count(),
        "outbox": OutboxEvent.objects.filter(aggregate_id=str(order_id)).count(),
        "attachments": Attachment.objects.filter(order_id=order_id).count(),
    }


def portal_body(world: World, **changes: Any) -> dict[str, Any]:
    body = {
        "patient_id": str(world.patient.pk),
        "provider_id": str(world.provider.pk),
        "items": [{"sku": world.product.sku, "quantity": 2}],
        "payer_type": "insurance",
        "diagnosis_codes": ["G47.33"],
    }
    return {**body, **changes}


# --- submission -----------------------------------------------------------------------------------


def test_an_unsigned_portal_order_is_held_with_its_findings_and_snapshot(north: World, api: Any) -> None:
    response = api(north.doctor).post("/api/portal/orders", portal_body(north), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["ai_disposition"]) == ("on_hold", "hold")
    assert body["compliance"] == {
        "disposition": "hold",
        "findings": [
            {
                "code": "SWO_MISSING_SIGNATURE",
                "severity": "hold",
                "message": "The written order lacks the treating practitioner's signature.",
                "rule": "standard_written_order",
                "source": {
                    "id": "84FR60648",
                    "title": body["compliance"]["findings"][0]["source"]["title"],
                    "url": body["compliance"]["findings"][0]["source"]["url"],
                },
                "required_artifacts": ["SWO"],
                "field": "signature",
                "item": None,
            }
        ],
        "required_artifacts": ["SWO"],
    }
    assert body["compliance"]["findings"][0]["source"]["url"].startswith("https://www.federalregister.gov/")
    snapshot = ComplianceSnapshot.objects.get(order_id=body["id"])
    assert (snapshot.kind, snapshot.disposition, snapshot.territory_id) == ("submission", "hold", north.territory.pk)
    assert snapshot.inputs["signed_on"] is None
    assert snapshot.inputs["items"][0]["hcpcs"] == "A7032"
    assert snapshot.result["findings"][0]["code"] == "SWO_MISSING_SIGNATURE"
    assert sorted(OutboxEvent.objects.filter(aggregate_id=body["id"]).values_list("topic", flat=True)) == [
        "order.created",
        "order.held",
    ]


def test_a_signed_order_in_stock_is_clear_and_waits_for_verification(north: World, api: Any) -> None:
    response = api(north.doctor).post("/api/portal/orders", portal_body(north, sign=True), format="json")
    body = response.json()
    assert (body["status"], body["compliance"]) == (
        "pending_verification",
        {"disposition": "clear", "findings": [], "required_artifacts": []},
    )
    order = Order.objects.get(pk=body["id"])
    assert (order.signed_by_id, body["signed_by_id"]) == (north.doctor.pk, str(north.doctor.pk))


def test_only_the_ordering_practitioner_may_sign(north: World, api: Any) -> None:
    before = Order.objects.count()
    response = api(north.ops).post("/api/portal/orders", portal_body(north, sign=True), format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "PERMISSION_DENIED",
        "message": "Only the ordering practitioner can sign the order.",
        "details": {},
    }
    assert Order.objects.count() == before


def test_a_contraindicated_medication_interaction_holds_the_order(north: World) -> None:
    # Sildenafil with nitroglycerin: the label contraindicates it, so the order is held for a person.
    sildenafil = stocked("RX-SILDENAFIL-20", rxnorm_code="577033", therapy_type="ed")
    patient = PatientFactory.create(
        provider=north.provider, territory=north.territory, medications=["Nitroglycerin 0.4 mg SL as needed"]
    )
    order = north.order(
        patient_id=patient.pk, payer_type="cash", items=[services.ItemRequest(sku=sildenafil.sku, quantity=1)]
    )
    order = Order.objects.get(pk=order.pk)
    assert (order.status, order.ai_disposition) == ("on_hold", "hold")
    result = ComplianceSnapshot.objects.get(order_id=order.pk).result
    assert [(f["code"], f["severity"]) for f in result["findings"]] == [("MEDICATION_INTERACTION", "hold")]


def test_a_medication_warning_needs_review_and_the_order_waits_for_a_person(north: World) -> None:
    # Sildenafil with an alpha-blocker: the label warns ("major"), so the order needs review.
    sildenafil = stocked("RX-SILDENAFIL-20", rxnorm_code="577033", therapy_type="ed")
    patient = PatientFactory.create(provider=north.provider, territory=north.territory, medications=["Flomax 0.4mg"])
    order = north.order(
        patient_id=patient.pk, payer_type="cash", items=[services.ItemRequest(sku=sildenafil.sku, quantity=1)]
    )
    order = Order.objects.get(pk=order.pk)
    assert (order.status, order.ai_disposition) == ("pending_verification", "needs_review")
    result = ComplianceSnapshot.objects.get(order_id=order.pk).result
    assert [(f["code"], f["severity"]) for f in result["findings"]] == [("MEDICATION_INTERACTION", "needs_review")]


def test_supply_history_comes_from_earlier_delivered_orders(north: World) -> None:
    # Given a mask cushion order delivered today (two cushions: the monthly maximum)
    first = north.order()
    services.order_verify(order_id=first.pk, actor=north.ops)
    services.order_transition(order_id=first.pk, actor=north.ops, transition="start_fulfillment")
    Order.objects.filter(pk=first.pk).update()  # no-op: the services below move it on
    services.order_transition(order_id=first.pk, actor=north.ops, transition="ship")
    services.order_complete(order_id=first.pk, actor=north.ops)

    # When the doctor orders two more for delivery next week
    second = north.order(requested_date=timezone.localdate() + dt.timedelta(days=7))

    # Then the delivered two count: over the limit, too early for a refill, and no confirmation
    result = ComplianceSnapshot.objects.get(order_id=second.pk).result
    assert [f["code"] for f in result["findings"]] == [
        "QUANTITY_LIMIT_EXCEEDED",
        "REFILL_TOO_EARLY",
        "REFILL_CONFIRMATION_REQUIRED",
    ]
    assert Order.objects.get(pk=second.pk).status == "on_hold"
    assert facts_for_order(Order.objects.get(pk=second.pk)).supply_history[0].quantity == 2


def test_payer_rules_from_the_admin_table_apply_to_the_patients_plan(north: World) -> None:
    patient = PatientFactory.create(provider=north.provider, territory=north.territory)
    CoverageFactory.create(patient=patient, payer_name="Acme Health", plan_name="Gold PPO", coverage_tier="silver")
    PayerRule.objects.create(
        payer_name="acme health",
        hcpcs_code="A7032",
        requires_cmn=True,
        coverage_tiers="gold, platinum",
        effective_from=dt.date(2025, 1, 1),
        source="Acme Health DME policy 2025",
    )
    PayerRule.objects.create(  # another plan's rule does not apply
        payer_name="Acme Health",
        plan_name="Bronze HMO",
        hcpcs_code="A7032",
        not_covered=True,
        effective_from=dt.date(2025, 1, 1),
        source="Acme Health DME policy 2025",
    )
    order = north.order(patient_id=patient.pk)
    result = ComplianceSnapshot.objects.get(order_id=order.pk).result
    assert [(f["code"], f["severity"]) for f in result["findings"]] == [
        ("COVERAGE_TIER_EXCLUDED", "needs_review"),
        ("CMN_REQUIRED", "hold"),
    ]
    assert result["findings"][1]["source"] == {"id": "payer_rule", "title": "Acme Health DME policy 2025", "url": ""}


def test_a_prior_authorization_on_file_clears_a_listed_item(north: World) -> None:
    wheelchair = stocked("PWC-K0823", hcpcs="K0823", quantity=2)
    items = [services.ItemRequest(sku=wheelchair.sku, quantity=1)]
    today = timezone.localdate()
    without = north.order(items=items, f2f_date=today - dt.timedelta(days=30))
    codes = [f["code"] for f in ComplianceSnapshot.objects.get(order_id=without.pk).result["findings"]]
    assert codes == ["F2F_NOTE_REQUIRED", "PRIOR_AUTH_REQUIRED"]

    PriorAuthorization.objects.create(
        territory=north.territory,
        patient=north.patient,
        hcpcs_code="K0823",
        decision="affirmed",
        decision_date=today - dt.timedelta(days=3),
        tracking_number="UTN-123",
    )
    services.order_attach(
        order_id=without.pk, actor=north.doctor, artifact_type="F2F_NOTE", document_date=today, file=pdf()
    )
    order = Order.objects.get(pk=without.pk)
    assert (order.status, order.ai_disposition) == ("pending_verification", "clear")


# --- resolving holds ------------------------------------------------------------------------------


def test_a_hold_is_resolved_by_an_attachment_and_the_order_approved(north: World, api: Any) -> None:
    # Given an unsigned order, held
    order_id = api(north.ops).post("/api/portal/orders", portal_body(north), format="json").json()["id"]
    assert Order.objects.get(pk=order_id).status == "on_hold"

    # When ops attaches the signed order document
    response = api(north.ops).post(
        f"/api/portal/orders/{order_id}/attachments",
        {"artifact_type": "SWO", "document_date": timezone.localdate().isoformat(), "file": pdf("signed.pdf")},
        format="multipart",
    )

    # Then the document is stored, the checks run again and the hold is released
    assert response.status_code == 201, response.content
    attachment = Attachment.objects.get(order_id=order_id)
    assert response.json()["sha256"] == attachment.sha256
    assert (attachment.artifact_type, attachment.original_name, attachment.size) == ("SWO", "signed.pdf", len(PDF))
    assert attachment.file.name == f"attachments/{north.territory.pk}/{order_id}/{attachment.pk}"  # ids only
    assert attachment.file.read() == PDF
    order = Order.objects.get(pk=order_id)
    assert (order.status, order.ai_disposition) == ("pending_verification", "clear")
    kinds = list(OrderEvent.objects.filter(order_id=order_id).values_list("kind", "transition", "actor_kind"))
    assert kinds[-3:] == [("attachment", "", "staff"), ("compliance", "", "ai"), ("transition", "release_hold", "ai")]

    # And approving it verifies it with order.approved
    approved = api(north.ops).post(f"/api/portal/orders/{order_id}/approve", {"notes": "Looks right"}, format="json")
    assert approved.status_code == 200, approved.content
    assert (approved.json()["status"], approved.json()["approver_id"]) == ("verified", str(north.ops.pk))
    assert OutboxEvent.objects.filter(aggregate_id=order_id, topic="order.approved").count() == 1
    assert list(
        ComplianceSnapshot.objects.filter(order_id=order_id).order_by("created_at").values_list("kind", "disposition")
    ) == [("submission", "hold"), ("attachment", "clear"), ("approval", "clear")]


def test_approving_a_held_order_without_an_override_is_refused_and_changes_nothing(north: World, api: Any) -> None:
    order_id = api(north.ops).post("/api/portal/orders", portal_body(north), format="json").json()["id"]
    before = state(order_id)

    response = api(north.ops).post(f"/api/portal/orders/{order_id}/approve", {}, format="json")

    assert response.status_code == 409
    error = response.json()["error"]
    assert (error["code"], error["details"]["disposition"], error["details"]["required_artifacts"]) == (
        "COMPLIANCE_NOT_CLEAR",
        "hold",
        ["SWO"],
    )
    assert error["details"]["findings"] == [
        {"code": "SWO_MISSING_SIGNATURE", "severity": "hold", "rule": "standard_written_order", "item": None}
    ]
    assert state(order_id) == before


def test_an_override_needs_the_permission(north: World, api: Any) -> None:
    order_id = api(north.ops).post("/api/portal/orders", portal_body(north), format="json").json()["id"]
    before = state(order_id)

    refused = api(north.ops).post(
        f"/api/portal/orders/{order_id}/approve", {"override_reason": "Signed on paper"}, format="json"
    )

    assert refused.status_code == 403
    assert (
        refused.json()["error"]["message"] == "Verifying over open compliance findings needs the override permission."
    )
    assert state(order_id) == before

    allowed = api(north.admin).post(
        f"/api/portal/orders/{order_id}/approve", {"override_reason": "Signed on paper, scan to follow"}, format="json"
    )
    assert allowed.status_code == 200, allowed.content
    assert allowed.json()["status"] == "verified"
    verify = OrderEvent.objects.get(order_id=order_id, transition="verify")
    assert (verify.actor_id, verify.reason) == (north.admin.pk, "Signed on paper, scan to follow")
    assert verify.payload == {
        "compliance": "hold",
        "override": {"reason": "Signed on paper, scan to follow", "findings": ["SWO_MISSING_SIGNATURE"]},
    }


def test_the_plain_verify_endpoint_is_gated_the_same_way(north: World, api: Any) -> None:
    order_id = api(north.ops).post("/api/portal/orders", portal_body(north), format="json").json()["id"]
    before = state(order_id)
    response = api(north.ops).put(f"/api/v1/orders/{order_id}/verify", {}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "COMPLIANCE_NOT_CLEAR")
    assert state(order_id) == before


@pytest.mark.parametrize(
    ("upload", "details"),
    [
        (
            {"artifact_type": "SELFIE", "file": "pdf"},
            {"artifact_type": ['"SELFIE" is not a valid choice.']},
        ),
        (
            {"artifact_type": "WOPD", "file": "exe"},
            {"file": ["Attach a PDF, PNG or JPEG file."]},
        ),
        ({"artifact_type": "WOPD"}, {"file": ["No file was submitted."]}),
        ({"artifact_type": "WOPD", "file": "fake"}, {"file": ["Attach a PDF, PNG or JPEG file."]}),
    ],
)
def test_bad_attachments_are_refused_and_change_nothing(
    north: World, api: Any, upload: dict[str, Any], details: dict[str, Any]
) -> None:
    order = north.order()
    before = state(order.pk)
    files = {
        "pdf": pdf(),
        "exe": SimpleUploadedFile("x.exe", b"MZ", content_type="application/x-msdownload"),
        "fake": SimpleUploadedFile("x.pdf", b"MZ\x90\x00 not a pdf", content_type="application/pdf"),
    }
    body = {key: files[value] if key == "file" else value for key, value in upload.items()}

    response = api(north.doctor).post(f"/api/portal/orders/{order.pk}/attachments", body, format="multipart")

    assert response.status_code == 400
    assert response.json()["error"]["details"] == details
    assert state(order.pk) == before


def test_another_territory_cannot_attach_or_approve(north: World, south: World, api: Any) -> None:
    order = north.order()
    before = state(order.pk)
    attach = api(south.ops).post(
        f"/api/portal/orders/{order.pk}/attachments", {"artifact_type": "SWO", "file": pdf()}, format="multipart"
    )
    approve = api(south.admin).post(f"/api/portal/orders/{order.pk}/approve", {"override_reason": "x"}, format="json")
    assert (attach.status_code, approve.status_code) == (404, 404)
    assert state(order.pk) == before


# --- snapshots ------------------------------------------------------------------------------------


def test_a_snapshot_stays_the_same_after_a_rule_file_changes(north: World, tmp_path: Path, settings: Any) -> None:
    # Given an order decided clear under the shipped rules (two cushions a month are allowed)
    order = north.order()
    snapshot = ComplianceSnapshot.objects.get(order_id=order.pk)
    frozen = (snapshot.disposition, snapshot.rule_versions, snapshot.inputs, snapshot.result)

    # When the limit file changes to one cushion per 6 months (one may be dispensed at a time)
    rules = tmp_path / "rules"
    shutil.copytree(Path(settings.COMPLIANCE_RULES_DIR), rules)
    limits = rules / "quantity_limits.toml"
    text = limits.read_text()
    start = text.index('codes = ["A7032"]')
    text = text[:start] + text[start:].replace("quantity = 2\nperiod_months = 1", "quantity = 1\nperiod_months = 6", 1)
    limits.write_text(text.replace('version = "2024-10-01.3"', 'version = "2026-11-27.1"'))
    settings.COMPLIANCE_RULES_DIR = str(rules)

    # Then a fresh evaluation differs, and the snapshot does not
    fresh = evaluate(facts_for_order(Order.objects.get(pk=order.pk)))
    assert (str(fresh.disposition), fresh.rule_versions["quantity_limits"]) == ("hold", "2026-11-27.1")
    snapshot = ComplianceSnapshot.objects.get(order_id=order.pk)
    assert (snapshot.disposition, snapshot.rule_versions, snapshot.inputs, snapshot.result) == frozen
    assert frozen[1]["quantity_limits"] == "2024-10-01.3"
    with pytest.raises(TypeError):
        snapshot.save()


# --- the review queue -----------------------------------------------------------------------------


def test_the_review_queue_lists_holds_and_reviews_oldest_first_with_reasons(
    north: World, south: World, api: Any
) -> None:
    # Given a held order, an order that needs review, a clear one, a verified one, and one in south
    held = api(north.ops).post("/api/portal/orders", portal_body(north), format="json").json()["id"]
    sildenafil = stocked("RX-SILDENAFIL-20", rxnorm_code="577033", therapy_type="ed")
    patient = PatientFactory.create(provider=north.provider, territory=north.territory, allergies=["sildenafil"])
    review = north.order(
        patient_id=patient.pk, payer_type="cash", items=[services.ItemRequest(sku=sildenafil.sku, quantity=1)]
    )
    # (each for a patient of its own: an identical open order for the same patient needs review)
    clear = north.order(patient_id=PatientFactory.create(provider=north.provider, territory=north.territory).pk)
    verified = north.order(patient_id=PatientFactory.create(provider=north.provider, territory=north.territory).pk)
    services.order_verify(order_id=verified.pk, actor=north.ops)
    south.order(actor=south.ops)

    response = api(north.ops).get("/api/portal/orders", {"status": "pending"})

    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert [(row["id"], row["status"], row["ai_disposition"]) for row in rows] == [
        (held, "on_hold", "hold"),
        (str(review.pk), "pending_verification", "needs_review"),
    ]
    assert [(r["code"], r["severity"]) for r in rows[0]["reasons"]] == [("SWO_MISSING_SIGNATURE", "hold")]
    assert [(r["code"], r["severity"]) for r in rows[1]["reasons"]] == [("MEDICATION_ALLERGY", "needs_review")]

    def ids(**params: str) -> list[str]:
        return [
            row["id"]
            for row in api(north.ops).get("/api/portal/orders", {"status": "pending", **params}).json()["results"]
        ]

    assert ids(reason="MEDICATION_ALLERGY") == [str(review.pk)]
    assert ids(disposition="clear") == [str(clear.pk)]
    assert ids(territory="north", disposition="hold") == [held]
    assert api(north.ops).get("/api/portal/orders", {"status": "pending", "territory": "south"}).status_code == 403
    assert api(north.doctor).get("/api/portal/orders", {"status": "pending"}).json()["results"] == []
    assert api(south.ops).get("/api/portal/orders", {"status": "pending"}).json()["count"] == 1


def test_the_queue_knows_only_the_pending_status(north: World, api: Any) -> None:
    response = api(north.ops).get("/api/portal/orders", {"status": "shipped"})
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"status": ["Only status=pending (the review queue) is listed here."]}


# --- the inline check -----------------------------------------------------------------------------


def test_the_inline_check_evaluates_a_draft_without_saving_anything(north: World, api: Any) -> None:
    counts = (Order.objects.count(), ComplianceSnapshot.objects.count(), OrderEvent.objects.count())
    response = api(north.doctor).post(
        "/api/portal/compliance/check",
        {
            "patient_id": str(north.patient.pk),
            "provider_id": str(north.provider.pk),
            "payer_type": "insurance",
            "order_date": "2026-11-02",
            "requested_date": "2026-11-09",
            # 7 cushions (A7032, 2 per month): more than a three-month quantity at a time
            "items": [{"sku": north.product.sku, "quantity": 7}, {"hcpcs": "K0823", "quantity": 1}],
            "artifacts": ["F2F_NOTE", {"artifact_type": "WOPD", "document_date": "2026-11-01"}],
            "f2f_date": "2026-09-01",
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["disposition"] == "hold"
    assert [(f["code"], f["item"]) for f in body["findings"]] == [
        ("PRIOR_AUTH_REQUIRED", "1"),
        ("QUANTITY_LIMIT_EXCEEDED", "0"),
    ]
    assert body["required_artifacts"] == ["MEDICAL_NECESSITY", "PRIOR_AUTH"]
    assert (Order.objects.count(), ComplianceSnapshot.objects.count(), OrderEvent.objects.count()) == counts


def test_an_empty_draft_names_every_missing_element(north: World, api: Any) -> None:
    response = api(north.doctor).post("/api/portal/compliance/check", {}, format="json")
    assert [f["code"] for f in response.json()["findings"]] == [
        "SWO_MISSING_BENEFICIARY",
        "SWO_MISSING_ITEM_DESCRIPTION",
        "SWO_MISSING_QUANTITY",
        "SWO_MISSING_PRACTITIONER",
        "SWO_MISSING_SIGNATURE",
    ]


@pytest.mark.parametrize(
    ("body", "details"),
    [
        (
            {"items": [{"hcpcs": "7030A"}]},
            {"items": {"0": {"hcpcs": ["Enter a valid HCPCS Level II code: a letter and four digits."]}}},
        ),
        (
            {"items": [{"quantity": 1}]},
            {
                "items": {
                    "0": {"non_field_errors": ["Give the item's sku, or its hcpcs code when it is not in the catalog."]}
                }
            },
        ),
        (
            {"diagnosis_codes": ["G47.33", "47.33"]},
            {"diagnosis_codes": {"1": ["Enter a valid ICD-10-CM code, such as E11.9."]}},
        ),
        ({"artifacts": ["SELFIE"]}, {"artifacts": {"0": {"artifact_type": ['"SELFIE" is not a valid choice.']}}}),
        ({"items": [{"sku": "NO-SUCH"}]}, {"items": {"0": {"sku": ["Unknown or inactive product."]}}}),
        (
            {"provider_npi": "1245319598"},
            {"provider_npi": ["Enter a valid 10-digit NPI (its check digit does not match)."]},
        ),
        ({"provider_npi": "1245319599"}, {"provider_npi": ["No provider with this NPI in your territories."]}),
    ],
)
def test_bad_drafts_are_validation_errors(
    north: World, api: Any, body: dict[str, Any], details: dict[str, Any]
) -> None:
    response = api(north.doctor).post("/api/portal/compliance/check", body, format="json")
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["details"]) == ("VALIDATION_ERROR", details)


def test_a_provider_can_be_named_by_npi(north: World, api: Any) -> None:
    response = api(north.doctor).post(
        "/api/portal/compliance/check",
        {
            "provider_npi": north.provider.npi,
            "patient_id": str(north.patient.pk),
            "signed": True,
            "items": [{"sku": north.product.sku, "quantity": 1}],
            "payer_type": "insurance",
        },
        format="json",
    )
    assert response.json() == {"disposition": "clear", "findings": [], "required_artifacts": []}


def test_a_patient_outside_the_doctors_territories_cannot_be_checked(north: World, south: World, api: Any) -> None:
    response = api(north.doctor).post(
        "/api/portal/compliance/check", {"patient_id": str(south.patient.pk)}, format="json"
    )
    assert (response.status_code, response.json()["error"]["code"]) == (422, "PATIENT_PROVIDER_MISMATCH")


# Queries of one inline check, whatever the number of lines: the user, the provider, the patient,
# the products, their stock, the coverage, the payer rules, the open orders, the provider's
# credential and the prior authorizations on file.
INLINE_CHECK_QUERIES = 10


def test_the_inline_check_of_ten_items_answers_for_each_line_in_the_same_queries_as_one(north: World, api: Any) -> None:
    # (Its speed is measured by the benchmark harness, not asserted here.)
    skus = [
        stocked(f"PAP-{code}", hcpcs=code).sku
        # one of each allowance (A7030 and A7034 share one: one interface per 3 months)
        for code in ("A7030", "A7031", "A7032", "A7033", "A7035", "A7036", "A7037", "A7038", "A7039", "A7046")
    ]
    # 7 cushions (A7032, 2 per month) and 7 filters (A7038, 2 per month): one more than a
    # three-month quantity each; every other line is within its allowance.
    quantities = {"PAP-A7032": 7, "PAP-A7038": 7}
    client = api(north.doctor)

    def check(count: int) -> tuple[int, dict[str, Any]]:
        body = {
            "patient_id": str(north.patient.pk),
            "provider_id": str(north.provider.pk),
            "payer_type": "insurance",
            "signed": True,
            "items": [{"sku": sku, "quantity": quantities.get(sku, 1)} for sku in skus[:count]],
        }
        with CaptureQueriesContext(connection) as captured:
            response = client.post("/api/portal/compliance/check", body, format="json")
        assert response.status_code == 200, response.content
        return len(captured.captured_queries), response.json()

    check(1)  # the first request of a user also loads its permissions
    queries_for_one, one = check(1)
    queries_for_ten, ten = check(10)

    assert one == {"disposition": "clear", "findings": [], "required_artifacts": []}
    assert ten["disposition"] == "hold"
    assert [(f["code"], f["severity"], f["item"]) for f in ten["findings"]] == [
        ("QUANTITY_LIMIT_EXCEEDED", "hold", "2"),
        ("QUANTITY_LIMIT_EXCEEDED", "hold", "7"),
    ]
    assert [f["message"].split(":")[0] for f in ten["findings"]] == ["A7032", "A7038"]
    assert ten["required_artifacts"] == ["MEDICAL_NECESSITY"]
    assert queries_for_one == queries_for_ten == INLINE_CHECK_QUERIES


def test_patient_clinical_history_is_encrypted_at_rest(north: World) -> None:
    patient = PatientFactory.create(
        provider=north.provider, territory=north.territory, allergies=["sulfa"], conditions=["men2"]
    )
    raw = Patient.objects.filter(pk=patient.pk).values_list("allergies", "conditions").get()
    assert all(value.startswith("phi1:") for value in raw)
