"""A person decides what the checks cannot: a review is resolved with a review note, a hold only by an
override from a user with the permission — through the API, recorded on the timeline and in the
compliance snapshot — and afterwards nothing about the order waits for anyone."""

from __future__ import annotations

import importlib
import json
from typing import Any

from django.apps import apps as django_apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from rest_framework.test import APIClient

from compliance.models import ComplianceSnapshot
from core.models import OutboxEvent
from orders import selectors, services
from orders.models import ActorKind, Attachment, EventKind, Order, OrderEvent
from orders.timeline import record_event
from tests.conftest import World

from .reviews import PDF, held_for_quantity, needs_review_order

NOTE = "Read the necessity letter: skin breakdown, two cushions a month for three months."


def state(order_id: Any) -> dict[str, Any]:
    """What a refused action must leave as it was."""
    return {
        "order": Order.objects.filter(pk=order_id).values("status", "ai_disposition", "approver_id").get(),
        "events": OrderEvent.objects.filter(order_id=order_id).count(),
        "snapshots": ComplianceSnapshot.objects.filter(order_id=order_id).count(),
        "outbox": OutboxEvent.objects.filter(aggregate_id=str(order_id)).count(),
    }


def test_approving_a_review_without_a_note_is_refused_with_its_code_and_changes_nothing(north: World, api: Any) -> None:
    order = needs_review_order(north)
    before = state(order.pk)

    for body in ({}, {"notes": "   "}):
        response = api(north.ops).post(f"/api/portal/orders/{order.pk}/approve", body, format="json")

        assert response.status_code == 400, response.content
        assert response.json() == {
            "status": "error",
            "error": {
                "code": "REVIEW_NOTE_REQUIRED",
                "message": "The checks say needs review: resolve the review with a note saying what you checked.",
                "details": {
                    "order_id": str(order.pk),
                    "disposition": "needs_review",
                    "notes": ["A review note is required to resolve a needs-review order."],
                    "findings": [
                        {
                            "code": "QUANTITY_LIMIT_EXCEEDED",
                            "severity": "needs_review",
                            "rule": "quantity_limits",
                            "item": "0",
                        }
                    ],
                },
            },
        }
        assert state(order.pk) == before


def test_a_reviewer_resolves_a_review_with_a_note_on_the_timeline_and_in_the_snapshot(north: World, api: Any) -> None:
    order = needs_review_order(north)
    assert [o.pk for o in selectors.review_queue(user=north.ops).orders] == [order.pk]

    response = api(north.ops).post(f"/api/portal/orders/{order.pk}/approve", {"notes": NOTE}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["ai_disposition"], body["approver_id"]) == ("verified", "clear", str(north.ops.pk))
    assert body["compliance"]["disposition"] == "needs_review"
    assert body["compliance"]["resolution"] == {
        "by": "review",
        "note": NOTE,
        "actor_id": str(north.ops.pk),
        "findings": ["QUANTITY_LIMIT_EXCEEDED"],
    }
    verify = OrderEvent.objects.get(order_id=order.pk, transition="verify")
    assert (verify.actor, verify.reason, verify.from_status, verify.to_status) == (
        north.ops,
        NOTE,
        "pending_verification",
        "verified",
    )
    assert verify.payload == {
        "compliance": "needs_review",
        "review": {"note": NOTE, "findings": ["QUANTITY_LIMIT_EXCEEDED"]},
    }
    approval = ComplianceSnapshot.objects.get(order_id=order.pk, kind="approval")
    assert (approval.disposition, approval.actor, approval.result["resolution"]["note"]) == (
        "needs_review",
        north.ops,
        NOTE,
    )
    assert OutboxEvent.objects.filter(aggregate_id=str(order.pk), topic="order.approved").count() == 1

    # Nothing waits for a person any more: neither the queue nor anyone's "needs your action"
    assert selectors.review_queue(user=north.ops).orders == []
    assert selectors.portal_holds(user=north.ops) == []
    assert selectors.portal_holds(user=north.doctor) == []


def test_a_review_note_resolves_a_review_even_when_an_override_reason_comes_with_it(north: World, api: Any) -> None:
    # Given an order that needs review, and ops staff (no override permission)
    order = needs_review_order(north)

    # When they send both a review note and an override reason
    body = {"notes": NOTE, "override_reason": "Checked the letter."}
    response = api(north.ops).post(f"/api/portal/orders/{order.pk}/approve", body, format="json")

    # Then the note resolves the review; no override is recorded (nor needed)
    assert response.status_code == 200, response.content
    assert response.json()["compliance"]["resolution"]["by"] == "review"
    verify = OrderEvent.objects.get(order_id=order.pk, transition="verify")
    assert "override" not in verify.payload


def test_a_hold_is_not_resolved_by_a_note_only_by_a_permitted_override(north: World, api: Any) -> None:
    order = held_for_quantity(north)
    before = state(order.pk)

    noted = api(north.ops).post(f"/api/portal/orders/{order.pk}/approve", {"notes": NOTE}, format="json")
    overridden_by_ops = api(north.ops).post(
        f"/api/portal/orders/{order.pk}/approve", {"override_reason": "Patient needs it"}, format="json"
    )

    assert (noted.status_code, noted.json()["error"]["code"]) == (409, "COMPLIANCE_NOT_CLEAR")
    assert (overridden_by_ops.status_code, overridden_by_ops.json()["error"]["code"]) == (403, "PERMISSION_DENIED")
    assert state(order.pk) == before

    allowed = api(north.admin).post(
        f"/api/portal/orders/{order.pk}/approve", {"override_reason": "Patient needs it"}, format="json"
    )
    assert allowed.status_code == 200, allowed.content
    assert (allowed.json()["status"], allowed.json()["ai_disposition"]) == ("verified", "clear")
    assert allowed.json()["compliance"]["resolution"] == {
        "by": "override",
        "reason": "Patient needs it",
        "actor_id": str(north.admin.pk),
        "findings": ["QUANTITY_LIMIT_EXCEEDED"],
    }


def test_a_doctor_cannot_resolve_a_review(north: World, api: Any) -> None:
    order = needs_review_order(north)
    before = state(order.pk)
    response = api(north.doctor).post(f"/api/portal/orders/{order.pk}/approve", {"notes": NOTE}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "PERMISSION_DENIED")
    assert state(order.pk) == before


def test_attaching_the_documentation_turns_a_hold_into_a_review_that_only_reviewers_are_asked_for(
    north: World, api: Any
) -> None:
    order = held_for_quantity(north)
    assert [h.order.pk for h in selectors.portal_holds(user=north.doctor)] == [order.pk]
    hold = selectors.portal_holds(user=north.doctor)[0].findings
    assert [(f["code"], f["required_artifacts"], f["answered_by"]) for f in hold] == [
        ("QUANTITY_LIMIT_EXCEEDED", ["MEDICAL_NECESSITY"], [])
    ]

    attached = api(north.doctor).post(
        f"/api/portal/orders/{order.pk}/attachments",
        {
            "artifact_type": "MEDICAL_NECESSITY",
            "file": SimpleUploadedFile("n.pdf", PDF, content_type="application/pdf"),
        },
        format="multipart",
    )
    assert attached.status_code == 201, attached.content
    order.refresh_from_db()
    assert (order.status, order.ai_disposition) == ("pending_verification", "needs_review")

    # The doctor has nothing left to do; ops reviewers see the review, answered by the document
    assert selectors.portal_holds(user=north.doctor) == []
    (waiting,) = selectors.portal_holds(user=north.ops)
    document = Attachment.objects.get(order=order)
    assert [(f["code"], f["answered_by"]) for f in waiting.findings] == [
        ("QUANTITY_LIMIT_EXCEEDED", [{"artifact_type": "MEDICAL_NECESSITY", "attached_at": document.created_at}])
    ]


def test_the_migration_clears_reviews_decided_before_and_keeps_those_found_after_verification(
    north: World,
) -> None:
    # Given two orders verified over a review the old way (the disposition left at needs_review)
    decided, refused_later = needs_review_order(north), needs_review_order(north)
    for order in (decided, refused_later):
        services.order_approve(order_id=order.pk, actor=north.ops, notes=NOTE)
    Order.objects.filter(pk__in=[decided.pk, refused_later.pk]).update(ai_disposition="needs_review")
    # ... and for the second, a pharmacy's refusal recorded after verification
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=refused_later.pk)
        record_event(
            order=locked,
            kind=EventKind.COMPLIANCE,
            actor=None,
            actor_kind=ActorKind.SYSTEM,
            payload={"disposition": "needs_review", "findings": [{"code": "pharmacy_rejected"}]},
        )

    migration = importlib.import_module("orders.migrations.0011_clear_decided_reviews")
    migration.clear_decided_reviews(django_apps, None)

    assert dict(Order.objects.filter(pk__in=[decided.pk, refused_later.pk]).values_list("pk", "ai_disposition")) == {
        decided.pk: "clear",
        refused_later.pk: "needs_review",
    }
    assert [o.pk for o in selectors.review_queue(user=north.ops).orders] == [refused_later.pk]


def test_the_schema_documents_the_review_note_and_its_error_code(db: Any) -> None:
    schema = json.loads(APIClient().get("/api/schema/", {"format": "json"}).content)
    approve = schema["paths"]["/api/portal/orders/{order_id}/approve"]["post"]
    assert "REVIEW_NOTE_REQUIRED" in approve["responses"]["400"]["description"]
    assert "COMPLIANCE_NOT_CLEAR" in approve["responses"]["409"]["description"]
    notes = schema["components"]["schemas"]["ApproveRequest"]["properties"]["notes"]
    assert "Required when the disposition is needs_review" in notes["description"]
