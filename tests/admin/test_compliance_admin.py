"""Resolving holds in the back office: the findings on the order's page, adding a document, verifying
with an override, and the payer rule and prior authorization pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from compliance.models import ComplianceSnapshot, PayerRule
from core.models import AccessRecord
from orders.models import Attachment, Order, OrderEvent
from patients.models import PriorAuthorization
from tests.conftest import World
from tests.factories import CoverageFactory
from tests.orders.reviews import needs_review_order

from .conftest import messages_of, signed_in

PDF = b"%PDF-1.4\n%%EOF\n"


def held_order(world: World) -> Order:
    """An unsigned order (placed by ops for the doctor), held for the missing signature."""
    order = world.order(actor=world.ops)
    assert Order.objects.get(pk=order.pk).status == "on_hold"
    return order


def test_the_order_page_lists_the_findings_with_their_sources(north: World) -> None:
    order = held_order(north)
    response = signed_in(north.ops).get(reverse("admin:orders_order_change", args=(order.pk,)))
    assert response.status_code == 200
    page = response.content.decode()
    assert "SWO_MISSING_SIGNATURE" in page
    assert "The written order lacks the treating practitioner&#x27;s signature." in page
    assert "Resolve with: SWO." in page
    assert 'href="https://www.federalregister.gov/' in page
    assert reverse("admin:orders_order_attach", args=(order.pk,)) in page


def test_a_document_added_in_the_admin_releases_the_hold(north: World) -> None:
    order = held_order(north)
    client = signed_in(north.ops)
    url = reverse("admin:orders_order_attach", args=(order.pk,))

    response = client.post(
        url,
        {
            "artifact_type": "SWO",
            "document_date": timezone.localdate().isoformat(),
            "file": SimpleUploadedFile("signed order.pdf", PDF, content_type="application/pdf"),
        },
        follow=True,
    )

    assert messages_of(response) == [f"Order {order.reference}: document added and checks run again."]
    order = Order.objects.get(pk=order.pk)
    assert (order.status, order.ai_disposition) == ("pending_verification", "clear")
    attachment = Attachment.objects.get(order=order)
    assert (attachment.uploaded_by, attachment.artifact_type) == (north.ops, "SWO")

    # Opening it is a recorded PHI read
    before = AccessRecord.objects.count()
    opened = client.get(reverse("admin:orders_order_attachment", args=(order.pk, attachment.pk)))
    assert (opened.status_code, opened.getvalue()) == (200, PDF)
    assert AccessRecord.objects.count() == before + 1


def test_a_bad_document_is_refused_with_a_message_and_nothing_added(north: World) -> None:
    order = held_order(north)
    events = OrderEvent.objects.filter(order=order).count()
    response = signed_in(north.ops).post(
        reverse("admin:orders_order_attach", args=(order.pk,)),
        {"artifact_type": "SWO", "file": SimpleUploadedFile("a.txt", b"hello", content_type="text/plain")},
    )
    assert response.status_code == 200
    assert messages_of(response) == ["The request has invalid fields. file: Attach a PDF, PNG or JPEG file."]
    assert (Attachment.objects.count(), OrderEvent.objects.filter(order=order).count()) == (0, events)


def test_verify_over_findings_needs_an_override_reason_and_the_permission(north: World) -> None:
    order = held_order(north)
    url = reverse("admin:orders_order_transition", args=(order.pk, "verify"))
    change_url = reverse("admin:orders_order_change", args=(order.pk,))

    # Ops without the permission: no Verify button on a hold, no override field on the form, and an
    # override posted anyway is not taken: refused, the order stays on hold
    ops = signed_in(north.ops)
    assert url not in ops.get(change_url).content.decode()
    form = ops.get(url).content.decode()
    assert ('name="override_reason"' in form, "Review note" in form) == (False, True)
    events = OrderEvent.objects.filter(order=order).count()
    response = ops.post(url, {"reason": "", "override_reason": "Signed on paper"}, follow=True)
    assert messages_of(response) == [
        f"Order {order.reference}: The checks say hold: resolve the findings or override with a reason."
    ]
    assert Order.objects.get(pk=order.pk).status == "on_hold"
    assert OrderEvent.objects.filter(order=order).count() == events

    # An admin sees the override field; without a reason: told what is open
    admin = signed_in(north.admin)
    assert url in admin.get(change_url).content.decode()
    assert 'name="override_reason"' in admin.get(url).content.decode()
    response = admin.post(url, {"reason": ""}, follow=True)
    assert messages_of(response) == [
        f"Order {order.reference}: The checks say hold: resolve the findings or override with a reason."
    ]

    # An admin with a reason: verified, the override on the timeline and in the snapshot
    response = admin.post(url, {"reason": "", "override_reason": "Signed on paper"}, follow=True)
    assert messages_of(response) == [f"Verify: done for 1 order(s): {order.reference}."]
    verify = OrderEvent.objects.get(order=order, transition="verify")
    assert (verify.actor, verify.payload["override"]) == (
        north.admin,
        {"reason": "Signed on paper", "findings": ["SWO_MISSING_SIGNATURE"]},
    )
    snapshots = list(ComplianceSnapshot.objects.filter(order_id=order.pk).order_by("created_at"))
    assert [s.kind for s in snapshots] == ["submission", "approval"]
    assert snapshots[-1].result["resolution"] == {
        "by": "override",
        "reason": "Signed on paper",
        "actor_id": str(north.admin.pk),
        "findings": ["SWO_MISSING_SIGNATURE"],
    }


def test_ops_resolve_a_review_in_the_admin_with_a_review_note(north: World) -> None:
    order = needs_review_order(north)
    url = reverse("admin:orders_order_transition", args=(order.pk, "verify"))
    ops = signed_in(north.ops)

    # The order's page offers Verify; its form asks for a review note and shows no override field
    assert url in ops.get(reverse("admin:orders_order_change", args=(order.pk,))).content.decode()
    form = ops.get(url).content.decode()
    assert ('name="override_reason"' in form, "Review note" in form) == (False, True)

    # Without a note: refused, nothing changed
    events = OrderEvent.objects.filter(order=order).count()
    response = ops.post(url, {"reason": "  "}, follow=True)
    assert messages_of(response) == [
        f"Order {order.reference}: The checks say needs review: resolve the review with a note saying what you checked."
    ]
    assert (Order.objects.get(pk=order.pk).status, OrderEvent.objects.filter(order=order).count()) == (
        "pending_verification",
        events,
    )

    # With a note: verified; the note on the timeline and in the approval snapshot
    response = ops.post(url, {"reason": "Necessity letter read: two masks a month for skin breakdown."}, follow=True)
    assert messages_of(response) == [f"Verify: done for 1 order(s): {order.reference}."]
    order.refresh_from_db()
    assert (order.status, order.ai_disposition, order.approver) == ("verified", "clear", north.ops)
    verify = OrderEvent.objects.get(order=order, transition="verify")
    assert (verify.reason, verify.payload) == (
        "Necessity letter read: two masks a month for skin breakdown.",
        {
            "compliance": "needs_review",
            "review": {
                "note": "Necessity letter read: two masks a month for skin breakdown.",
                "findings": ["QUANTITY_LIMIT_EXCEEDED"],
            },
        },
    )
    approval = ComplianceSnapshot.objects.filter(order_id=order.pk, kind="approval").get()
    assert (approval.disposition, approval.result["resolution"]["by"], approval.result["resolution"]["note"]) == (
        "needs_review",
        "review",
        "Necessity letter read: two masks a month for skin breakdown.",
    )


def test_admins_edit_payer_rules_that_the_next_check_uses(north: World, superuser: Any) -> None:
    client = signed_in(north.admin)
    response = client.post(
        reverse("admin:compliance_payerrule_add"),
        {
            "payer_name": "Medicare Part B",
            "plan_name": "",
            "hcpcs_code": "A7032",
            "requires_cmn": "on",
            "coverage_tiers": "",
            "effective_from": "2025-01-01",
            "source": "Test contract",
            "notes": "",
        },
    )
    assert response.status_code == 302, response.content
    assert PayerRule.objects.get().requires_cmn is True
    CoverageFactory.create(patient=north.patient)
    order = north.order()
    codes = [f["code"] for f in ComplianceSnapshot.objects.get(order_id=order.pk).result["findings"]]
    assert codes == ["CMN_REQUIRED"]
    # Ops can read the rules but not change them
    assert signed_in(north.ops).get(reverse("admin:compliance_payerrule_add")).status_code == 403


def test_a_prior_authorization_entered_in_the_admin_is_encrypted_and_used(north: World) -> None:
    response = signed_in(north.admin).post(
        reverse("admin:patients_priorauthorization_add"),
        {
            "patient": str(north.patient.pk),
            "hcpcs_code": "K0823",
            "decision": "affirmed",
            "decision_date": (timezone.localdate() - dt.timedelta(days=1)).isoformat(),
            "expires_on": "",
            "tracking_number": "UTN-0001",
        },
    )
    assert response.status_code == 302, response.content
    pa = PriorAuthorization.objects.get()
    assert (pa.territory_id, pa.tracking_number) == (north.territory.pk, "UTN-0001")
    raw = PriorAuthorization.objects.filter(pk=pa.pk).values_list("tracking_number", flat=True).get()
    assert str(raw).startswith("phi1:")
