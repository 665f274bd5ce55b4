"""A prior-authorization document says which item (HCPCS code) it is for and clears only that item,
through the API, the portal and the admin; one without a code is refused and changes nothing. The
date of service of a delivered order is its delivery; coverage says which kind of payer it is, and
an insurance order without coverage on file holds for it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from catalog.services import lot_receive
from compliance.models import ComplianceSnapshot, PayerRule
from orders import services
from orders.compliance_checks import facts_for_order
from orders.models import Attachment, Order, OrderEvent, OrderStatus
from patients.models import PayerKind, PayerType
from tests.admin.conftest import messages_of, signed_in
from tests.api import order_body
from tests.conftest import World
from tests.factories import CoverageFactory, PatientFactory, ProductFactory, WarehouseFactory
from tests.orders.reviews import PDF


def pumps() -> tuple[Any, Any]:
    """Two pneumatic compressors in stock: E0651 and E0652, on the Required PA list since 2026-04-13."""
    warehouse = WarehouseFactory.create()
    products = []
    for code in ("E0651", "E0652"):
        product = ProductFactory.create(sku=f"PCD-{code}", name=f"Compressor {code}", hcpcs_code=code)
        lot_receive(actor=None, product=product, warehouse=warehouse, lot_number=f"LOT-{code}", quantity=5)
        products.append(product)
    return products[0], products[1]


def pump_order(world: World) -> Order:
    first, second = pumps()
    order = world.order(items=[services.ItemRequest(sku=p.sku, quantity=1) for p in (first, second)])
    order.refresh_from_db()
    assert order.status == OrderStatus.ON_HOLD
    return order


def latest_findings(order: Order) -> list[tuple[str, str | None]]:
    snapshot = ComplianceSnapshot.objects.filter(order_id=order.pk).order_by("-created_at").first()
    assert snapshot is not None
    return [(f["code"], f["item"]) for f in snapshot.result["findings"]]


def state(order: Order) -> dict[str, Any]:
    return {
        "order": Order.objects.filter(pk=order.pk).values("status", "ai_disposition").get(),
        "attachments": Attachment.objects.filter(order=order).count(),
        "events": OrderEvent.objects.filter(order=order).count(),
        "snapshots": ComplianceSnapshot.objects.filter(order_id=order.pk).count(),
    }


def upload(api: Any, world: World, order: Order, **fields: Any) -> Any:
    body = {
        "artifact_type": "PRIOR_AUTH",
        "document_date": timezone.localdate().isoformat(),
        "file": SimpleUploadedFile("pa.pdf", PDF, content_type="application/pdf"),
        **fields,
    }
    return api(world.ops).post(f"/api/portal/orders/{order.pk}/attachments", body, format="multipart")


def test_a_prior_authorization_uploaded_through_the_api_clears_only_the_code_it_names(north: World, api: Any) -> None:
    order = pump_order(north)
    assert latest_findings(order) == [("PRIOR_AUTH_REQUIRED", "0"), ("PRIOR_AUTH_REQUIRED", "1")]

    first = upload(api, north, order, hcpcs_codes=["e0651"])
    assert first.status_code == 201, first.content
    assert first.json()["hcpcs_codes"] == ["E0651"]
    order.refresh_from_db()
    assert (order.status, latest_findings(order)) == (OrderStatus.ON_HOLD, [("PRIOR_AUTH_REQUIRED", "1")])

    second = upload(api, north, order, hcpcs_codes=["E0652"])
    assert second.status_code == 201, second.content
    order.refresh_from_db()
    assert (order.status, order.ai_disposition, latest_findings(order)) == (
        OrderStatus.PENDING_VERIFICATION,
        "clear",
        [],
    )
    assert list(Attachment.objects.filter(order=order).values_list("hcpcs_codes", flat=True)) == [
        ["E0651"],
        ["E0652"],
    ]


def test_one_document_may_name_several_codes_of_the_order(north: World, api: Any) -> None:
    order = pump_order(north)
    response = upload(api, north, order, hcpcs_codes=["E0651", "E0652"])
    assert response.status_code == 201, response.content
    order.refresh_from_db()
    assert (order.status, latest_findings(order)) == (OrderStatus.PENDING_VERIFICATION, [])


def test_a_prior_authorization_without_its_code_is_refused_and_changes_nothing(north: World, api: Any) -> None:
    order = pump_order(north)
    before = state(order)

    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "Say which item (HCPCS code) this prior authorization is for."),
        ({"hcpcs_codes": ["E0653"]}, "Not an item of this order: E0653."),
        ({"hcpcs_codes": ["PUMP"]}, "Not a HCPCS Level II code (a letter and four digits): PUMP."),
        (
            {"artifact_type": "CMN", "hcpcs_codes": ["E0651"]},
            "Only a prior authorization names HCPCS codes.",
        ),
    ]
    for fields, message in cases:
        response = upload(api, north, order, **fields)
        assert response.status_code == 400, (fields, response.content)
        error = response.json()["error"]
        assert (error["code"], error["details"]["hcpcs_codes"]) == ("VALIDATION_ERROR", [message]), fields
        assert state(order) == before


def test_the_inline_check_matches_prior_authorizations_by_code(north: World, api: Any) -> None:
    first, second = pumps()
    body = {
        "patient_id": str(north.patient.pk),
        "provider_id": str(north.provider.pk),
        "payer_type": "insurance",
        "items": [{"sku": first.sku, "quantity": 1}, {"sku": second.sku, "quantity": 1}],
        "signed": True,
        "artifacts": [
            {"artifact_type": "PRIOR_AUTH", "document_date": timezone.localdate().isoformat(), "hcpcs_codes": ["E0652"]}
        ],
    }
    response = api(north.doctor).post("/api/portal/compliance/check", body, format="json")
    assert response.status_code == 200, response.content
    assert [(f["code"], f["item"]) for f in response.json()["findings"]] == [("PRIOR_AUTH_REQUIRED", "0")]

    unnamed = api(north.doctor).post(
        "/api/portal/compliance/check", {**body, "artifacts": ["PRIOR_AUTH"]}, format="json"
    )
    assert unnamed.status_code == 400
    assert unnamed.json()["error"]["details"] == {
        "artifacts": {"0": {"hcpcs_codes": ["Say which item (HCPCS code) this prior authorization is for."]}}
    }


def test_the_portal_offers_the_orders_codes_and_refuses_a_prior_authorization_without_one(north: World) -> None:
    order = pump_order(north)
    ops = signed_in(north.ops)
    page = ops.get(f"/portal/orders/{order.pk}/?attach=PRIOR_AUTH")
    assert page.context["document_form"].fields["hcpcs_codes"].choices == [
        ("E0651", "E0651 · Compressor E0651"),
        ("E0652", "E0652 · Compressor E0652"),
    ]
    before = state(order)

    def post(**fields: Any) -> Any:
        return ops.post(
            f"/portal/orders/{order.pk}/",
            {
                "action": "document",
                "artifact_type": "PRIOR_AUTH",
                "document_date": timezone.localdate().isoformat(),
                "file": SimpleUploadedFile("pa.pdf", PDF, content_type="application/pdf"),
                **fields,
            },
        )

    refused = post()
    assert refused.status_code == 400
    assert refused.context["document_form"].errors == {
        "hcpcs_codes": ["Say which item (HCPCS code) this prior authorization is for."]
    }
    assert state(order) == before

    attached = post(hcpcs_codes=["E0652"])
    assert attached.status_code == 302
    order.refresh_from_db()
    assert (order.status, latest_findings(order)) == (OrderStatus.ON_HOLD, [("PRIOR_AUTH_REQUIRED", "0")])
    assert "</a> for E0652 · attached" in ops.get(f"/portal/orders/{order.pk}/").content.decode()


def test_the_admin_attaches_a_prior_authorization_for_the_codes_chosen(north: World) -> None:
    order = pump_order(north)
    admin = signed_in(north.admin)
    url = f"/admin/orders/order/{order.pk}/attach/"
    assert admin.get(url).context["form"].fields["hcpcs_codes"].choices == [("E0651", "E0651"), ("E0652", "E0652")]
    before = state(order)

    def post(**fields: Any) -> Any:
        return admin.post(
            url,
            {
                "artifact_type": "PRIOR_AUTH",
                "document_date": timezone.localdate().isoformat(),
                "file": SimpleUploadedFile("pa.pdf", PDF, content_type="application/pdf"),
                **fields,
            },
        )

    refused = post()
    assert refused.status_code == 200
    assert any("Say which item (HCPCS code) this prior authorization is for." in m for m in messages_of(refused))
    assert state(order) == before

    assert post(hcpcs_codes=["E0651", "E0652"]).status_code == 302
    order.refresh_from_db()
    assert (order.status, latest_findings(order)) == (OrderStatus.PENDING_VERIFICATION, [])
    assert Attachment.objects.get(order=order).hcpcs_codes == ["E0651", "E0652"]


def test_a_delivered_orders_date_of_service_is_its_delivery(north: World) -> None:
    order = north.order()
    assert facts_for_order(order).delivered_on is None
    completed_at = timezone.make_aware(dt.datetime(2026, 8, 20, 15, 0))
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.COMPLETED, completed_at=completed_at)
    order.refresh_from_db()
    assert facts_for_order(order).delivered_on == timezone.localdate(completed_at)


# --- coverage and its kind of payer ---------------------------------------------------------------


def test_an_api_order_with_inline_insurance_but_no_coverage_on_file_holds_for_coverage(north: World, api: Any) -> None:
    patient = PatientFactory.create(provider=north.provider, territory=north.territory, insured=False)
    response = api(north.doctor).post(
        "/api/portal/orders", order_body(north, patient_id=str(patient.pk), sign=True), format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["ai_disposition"]) == ("on_hold", "hold")
    assert [(f["code"], f["severity"]) for f in body["compliance"]["findings"]] == [("COVERAGE_MISSING", "hold")]

    # Without the plan's details either, nobody could bill it: refused with the same code, no order.
    orders = Order.objects.count()
    refused = api(north.doctor).post(
        "/api/portal/orders", order_body(north, patient_id=str(patient.pk), insurance=None), format="json"
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "COVERAGE_MISSING")
    assert Order.objects.count() == orders


def test_coverage_entered_with_its_payer_kind_releases_the_coverage_hold(north: World, api: Any) -> None:
    patient = PatientFactory.create(provider=north.provider, territory=north.territory, insured=False)
    created = api(north.doctor).post(
        "/api/portal/orders", order_body(north, patient_id=str(patient.pk), sign=True), format="json"
    )
    order = Order.objects.get(pk=created.json()["id"])
    CoverageFactory.create(patient=patient, payer_kind=PayerKind.MEDICARE_FFS)
    approved = api(north.ops).post(f"/api/portal/orders/{order.pk}/approve", {}, format="json")
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "verified"


def advantage_patient(world: World) -> Any:
    patient = PatientFactory.create(provider=world.provider, territory=world.territory, insured=False)
    CoverageFactory.create(patient=patient, payer_kind=PayerKind.MEDICARE_ADVANTAGE, payer_name="Acme Advantage")
    return patient


def test_a_medicare_advantage_order_gets_its_payers_rules_not_the_ffs_list(north: World) -> None:
    first, _second = pumps()
    item = [services.ItemRequest(sku=first.sku, quantity=1)]
    without_rule = north.order(patient_id=advantage_patient(north).pk, items=item)
    without_rule.refresh_from_db()
    # E0651 is on the CMS Required PA list, which binds Medicare FFS only.
    assert (without_rule.status, latest_findings(without_rule)) == (OrderStatus.PENDING_VERIFICATION, [])

    PayerRule.objects.create(
        payer_name="Acme Advantage",
        hcpcs_code="E0651",
        requires_prior_auth=True,
        effective_from=dt.date(2020, 1, 1),
        source="Acme Advantage DME prior authorization list",
    )
    held = north.order(patient_id=advantage_patient(north).pk, items=item)
    held.refresh_from_db()
    assert (held.status, held.payer_type, latest_findings(held)) == (
        OrderStatus.ON_HOLD,
        PayerType.INSURANCE,
        [("PAYER_PRIOR_AUTH_REQUIRED", "0")],
    )
