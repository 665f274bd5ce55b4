"""The order endpoints: create, read, list, the lifecycle through the API, timeline and notes."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from compliance.models import ComplianceSnapshot
from core.models import AccessRecord, OutboxEvent
from orders import services
from orders.models import Order, OrderEvent
from tests.api import assert_error, order_body, snapshot
from tests.factories import ProductFactory

INVALID = "The request has invalid fields."
ROLE_REFUSED = "Your role may not make this change to the order."

SUMMARY_KEYS = {
    "id",
    "reference",
    "status",
    "stage",
    "ai_disposition",
    "territory_id",
    "patient_id",
    "provider_id",
    "payer_type",
    "source",
    "priority",
    "delivery_mode",
    "delivery_window",
    "requested_date",
    "order_date",
    "signed_by_id",
    "signed_at",
    "items",
    "inventory_flags",
    "total_cents",
    "approver_id",
    "created_at",
    "updated_at",
    "verified_at",
    "completed_at",
    "cancelled_at",
}
PHI_KEYS = {
    "service_type",
    "diagnosis_codes",
    "notes",
    "insurance",
    "verification_data",
    "f2f_date",
    "delivery_address",
}


def timestamp(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def put(client: Any, order_id: Any, action: str, body: dict[str, Any]) -> Any:
    return client.put(f"/api/v1/orders/{order_id}/{action}", body, format="json")


def set_status(client: Any, order_id: Any, status: str, notes: str = "", **extra: Any) -> Any:
    return put(client, order_id, "status", {"status": status, "notes": notes, **extra})


def outbox_ids() -> set[uuid.UUID]:
    return set(OutboxEvent.objects.values_list("id", flat=True))


def topics_since(seen: set[uuid.UUID]) -> list[str]:
    """Topics of the outbox rows written since ``seen`` (sorted: rows of one transaction may share a time)."""
    return sorted(OutboxEvent.objects.exclude(id__in=seen).values_list("topic", flat=True))


def timeline(client: Any, order_id: Any) -> list[dict[str, Any]]:
    response = client.get(f"/api/orders/{order_id}/timeline")
    assert response.status_code == 200, response.content
    rows = response.json()
    for row in rows:
        assert timestamp(row["created_at"])
        uuid.UUID(row["id"])
    return [{k: v for k, v in row.items() if k not in {"id", "created_at"}} for row in rows]


def event_row(
    sequence: int,
    actor: Any,
    *,
    kind: str = "transition",
    from_status: str = "",
    to_status: str = "",
    transition: str = "",
    reason: str | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "sequence": sequence,
        "kind": kind,
        "from_status": from_status,
        "to_status": to_status,
        "transition": transition,
        "actor_id": str(actor.pk),
        "actor_name": actor.display_name,
        "actor_kind": "staff",
        "reason": reason,
        "payload": payload,
    }


WAREHOUSE_REASON = (
    "Ships from the warehouse: the product allows it and its stock was reserved when the order was submitted."
)


def warehouse_row(sequence: int, actor: Any, sku: str) -> dict[str, Any]:
    """The routing entry for an order whose one item had its stock reserved at submission (the fixture product's)."""
    return event_row(
        sequence,
        actor,
        kind="fulfillment",
        from_status="in_progress",
        to_status="in_progress",
        reason=f"{sku}: {WAREHOUSE_REASON}",
        payload={
            "decisions": [{"sku": sku, "path": "warehouse", "rule": "warehouse_reserved", "reason": WAREHOUSE_REASON}],
            "tasks": ["pick_pack"],
        },
    )


def compliance_row(
    sequence: int,
    order: Any,
    *,
    status: str = "pending_verification",
    check: str = "submission",
    disposition: str = "clear",
    findings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The timeline entry of a compliance check (the engine acts: no user, actor kind ``ai``)."""
    snapshot_row = ComplianceSnapshot.objects.get(order_id=order.pk, kind=check)
    assert snapshot_row.disposition == disposition
    return {
        "sequence": sequence,
        "kind": "compliance",
        "from_status": status,
        "to_status": status,
        "transition": "",
        "actor_id": None,
        "actor_name": None,
        "actor_kind": "ai",
        "reason": None,
        "payload": {
            "snapshot_id": str(snapshot_row.pk),
            "check": check,
            "disposition": disposition,
            "findings": findings or [],
        },
    }


# --- POST /api/v1/orders --------------------------------------------------------------------------


def test_doctor_places_an_order_and_it_reads_back_in_full(north: Any, api: Any) -> None:
    client = api(north.doctor)
    seen = outbox_ids()

    response = client.post(
        "/api/v1/orders", order_body(north, diagnosis_codes=["g4733", "E11.9"], sign=True), format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    order = Order.objects.get(pk=body["id"])
    assert set(body) == SUMMARY_KEYS | PHI_KEYS
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}", body["reference"])
    assert timestamp(body["created_at"]) <= timestamp(body["updated_at"])
    # The doctor signed the written order while placing it.
    assert timestamp(body["signed_at"]) <= timestamp(body["updated_at"])
    assert {k: v for k, v in body.items() if k not in {"reference", "created_at", "updated_at", "signed_at"}} == {
        "id": str(order.pk),
        "status": "pending_verification",
        "stage": "Pending",
        "ai_disposition": "clear",
        "territory_id": str(north.territory.pk),
        "patient_id": str(north.patient.pk),
        "provider_id": str(north.provider.pk),
        "payer_type": "insurance",
        "source": "api",
        "priority": "routine",
        "delivery_mode": "ship_to_patient",
        "delivery_window": "any",
        "requested_date": None,
        "order_date": timezone.localdate().isoformat(),
        "signed_by_id": str(north.doctor.pk),
        "items": [
            {
                "sku": north.product.sku,
                "quantity": 2,
                "unit_price_cents": 12500,
                "line_total_cents": 25000,
                "stock_status": "reserved",
                "fulfillment_path": None,
                "prescription": None,
            }
        ],
        # The fixture product is in stock: its units are reserved and the line carries no inventory flag.
        "inventory_flags": [],
        "total_cents": 25000,
        "approver_id": None,
        "verified_at": None,
        "completed_at": None,
        "cancelled_at": None,
        "service_type": "CPAP resupply",
        "diagnosis_codes": ["G47.33", "E11.9"],
        "notes": "Mask cushion worn",
        "insurance": {"carrier": "Medicare Part B", "policy_number": "1EG4TE5MK73", "group_number": "GRP-1"},
        "verification_data": None,
        "f2f_date": None,
        "delivery_address": None,
    }
    assert timeline(client, order.pk) == [
        event_row(1, north.doctor, kind="created", to_status="pending_verification"),
        compliance_row(2, order),
    ]
    # The compliance check publishes nothing of its own.
    assert topics_since(seen) == ["order.created"]
    created = OutboxEvent.objects.exclude(id__in=seen).get()
    assert created.payload == {
        "order_id": str(order.pk),
        "territory_id": str(north.territory.pk),
        "event_id": str(order.events.get(kind="created").pk),
        "from_status": None,
        "to_status": "pending_verification",
    }
    assert client.get(f"/api/v1/orders/{order.pk}").json() == body


def test_order_with_several_items_and_choices(north: Any, api: Any) -> None:
    ProductFactory(sku="CPAP-FILTER", price_cents=450)

    response = api(north.doctor).post(
        "/api/v1/orders",
        order_body(
            north,
            items=[{"sku": north.product.sku, "quantity": 1}, {"sku": "CPAP-FILTER", "quantity": 6}],
            delivery_mode="pickup",
            priority="urgent",
            payer_type="cash",
            requested_date="2031-05-04",
            insurance=None,
        ),
        format="json",
        HTTP_TERRITORY_ID="north",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["items"] == [
        {
            "sku": "CPAP-FILTER",
            "quantity": 6,
            "unit_price_cents": 450,
            "line_total_cents": 2700,
            "stock_status": "insufficient_stock",
            "fulfillment_path": None,
            "prescription": None,
        },
        {
            "sku": north.product.sku,
            "quantity": 1,
            "unit_price_cents": 12500,
            "line_total_cents": 12500,
            "stock_status": "reserved",
            "fulfillment_path": None,
            "prescription": None,
        },
    ]
    assert (body["total_cents"], body["delivery_mode"], body["priority"], body["payer_type"]) == (
        15200,
        "pickup",
        "urgent",
        "cash",
    )
    assert (body["requested_date"], body["insurance"]) == ("2031-05-04", None)


def test_master_distributor_may_not_place_orders(north: Any, api: Any) -> None:
    before = snapshot()

    response = api(north.distributor).post("/api/v1/orders", order_body(north), format="json")

    assert_error(response, 403, "PERMISSION_DENIED", "You may not place orders in this territory.")
    assert snapshot() == before


@pytest.mark.parametrize(
    ("overrides", "details"),
    [
        pytest.param({"items": []}, {"items": ["This list may not be empty."]}, id="no-items"),
        pytest.param(
            {"items": [{"sku": "NOPE-1", "quantity": 1}]},
            {"items": {"0": {"sku": ["Unknown or inactive product."]}}},
            id="unknown-sku",
        ),
        pytest.param(
            {"items": [{"sku": "CPAP-MASK-NORTH", "quantity": 1}, {"sku": "CPAP-MASK-NORTH", "quantity": 2}]},
            {"items": ["List each SKU once, with its total quantity."]},
            id="duplicate-sku",
        ),
        pytest.param(
            {"items": [{"sku": "CPAP-MASK-NORTH", "quantity": 0}]},
            {"items": {"0": {"quantity": ["Ensure this value is greater than or equal to 1."]}}},
            id="quantity-zero",
        ),
        pytest.param(
            {"diagnosis_codes": ["G47.33", "NOT-ICD"]},
            {"diagnosis_codes": {"1": ["Enter a valid ICD-10-CM code, such as E11.9."]}},
            id="bad-icd10",
        ),
        pytest.param(
            {"payer_type": "barter"}, {"payer_type": ['"barter" is not a valid choice.']}, id="bad-payer-type"
        ),
    ],
)
def test_invalid_orders_are_refused_with_field_details(
    north: Any, api: Any, overrides: dict[str, Any], details: dict[str, Any]
) -> None:
    before = snapshot()

    response = api(north.doctor).post("/api/v1/orders", order_body(north, **overrides), format="json")

    assert_error(response, 400, "VALIDATION_ERROR", INVALID, details)
    assert snapshot() == before


# --- GET /api/v1/orders/{id} and /api/v1/orders/territory/{territory_id} ------------------------


def test_reading_an_order_records_the_phi_read(north: Any, api: Any) -> None:
    order = north.order()
    before = AccessRecord.objects.count()

    response = api(north.ops).get(f"/api/v1/orders/{order.pk}")

    assert response.status_code == 200
    assert response.json()["id"] == str(order.pk)
    assert AccessRecord.objects.count() == before + 1
    read = AccessRecord.objects.order_by("-at", "-pk").first()
    assert read is not None
    assert (read.user_id, read.territory_id, read.object_id, read.action, read.channel) == (
        north.ops.pk,
        north.territory.pk,
        str(order.pk),
        "view",
        "api",
    )


@pytest.mark.parametrize("key", ["uuid", "code"])
def test_territory_list_is_newest_first_without_phi(north: Any, south: Any, api: Any, key: str) -> None:
    first = north.order()
    second = north.order(payer_type="cash")
    south.order()
    territory = str(north.territory.pk) if key == "uuid" else "north"

    response = api(north.doctor).get(f"/api/v1/orders/territory/{territory}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (2, None, None)
    assert [row["id"] for row in body["results"]] == [str(second.pk), str(first.pk)]
    for row in body["results"]:
        assert set(row) == SUMMARY_KEYS
        assert (row["territory_id"], row["status"], row["stage"]) == (
            str(north.territory.pk),
            "pending_verification",
            "Pending",
        )
    assert body["results"][0]["items"] == [
        {
            "sku": north.product.sku,
            "quantity": 2,
            "unit_price_cents": 12500,
            "line_total_cents": 25000,
            "stock_status": "reserved",
            "fulfillment_path": None,
            "prescription": None,
        }
    ]
    # The fixture product is in stock: nothing is flagged.
    assert body["results"][0]["inventory_flags"] == []


def test_territory_list_filters_by_status_and_paginates(north: Any, api: Any) -> None:
    pending = [north.order(patient_id=north.other_patient().pk) for _ in range(3)]
    verified = north.order()
    services.order_verify(order_id=verified.pk, actor=north.ops)
    client = api(north.doctor)

    only_verified = client.get("/api/v1/orders/territory/north", {"status": "verified"})
    only_pending = client.get("/api/v1/orders/territory/north", {"status": "pending_verification", "page_size": 2})
    none_shipped = client.get("/api/v1/orders/territory/north", {"status": "shipped"})

    assert [row["id"] for row in only_verified.json()["results"]] == [str(verified.pk)]
    assert only_verified.json()["results"][0]["status"] == "verified"
    first_page = only_pending.json()
    assert (first_page["count"], first_page["count_capped"], first_page["previous"]) == (3, False, None)
    assert [row["id"] for row in first_page["results"]] == [str(pending[2].pk), str(pending[1].pk)]
    # pages follow by key: the next link keeps the filter and the page size and adds the cursor
    link = urlsplit(first_page["next"])
    assert (link.netloc, link.path) == ("testserver", "/api/v1/orders/territory/north")
    assert set(parse_qs(link.query)) == {"cursor", "page_size", "status"}
    assert (parse_qs(link.query)["page_size"], parse_qs(link.query)["status"]) == (["2"], ["pending_verification"])
    second_page = client.get(first_page["next"]).json()
    assert (second_page["count"], second_page["next"]) == (3, None)
    assert [row["id"] for row in second_page["results"]] == [str(pending[0].pk)]
    back = client.get(second_page["previous"]).json()
    assert [row["id"] for row in back["results"]] == [str(pending[2].pk), str(pending[1].pk)]
    assert (back["previous"], back["next"]) == (None, first_page["next"])
    assert none_shipped.json() == {"count": 0, "count_capped": False, "next": None, "previous": None, "results": []}


def test_territory_list_with_an_unknown_status_is_a_validation_error(north: Any, api: Any) -> None:
    response = api(north.doctor).get("/api/v1/orders/territory/north", {"status": "lost"})

    assert_error(response, 400, "VALIDATION_ERROR", INVALID, {"status": ["Unknown status."]})


# --- the lifecycle through PUT /status and the named endpoints -----------------------------------


def test_insurance_order_through_its_whole_path_by_status(north: Any, api: Any) -> None:
    order = north.order()
    ops = api(north.ops)
    verification = {"verified_by": "ops.north", "verification_method": "portal", "coverage_details": {"tier": "A"}}
    steps = [
        ("verified", "Pending", "Coverage confirmed", ["order.approved", "order.verified"]),
        ("in_progress", "Preparing", "", ["order.fulfillment.started", "staffing.changed"]),  # its pick task
        ("shipped", "Shipped", "UPS 1Z999", ["order.shipped"]),
        ("completed", "Shipped", "Signed for", ["order.delivered"]),
    ]

    for status, stage, notes, topics in steps:
        seen = outbox_ids()
        extra = {"verification_data": verification} if status == "verified" else {}
        response = set_status(ops, order.pk, status, notes, **extra)
        assert response.status_code == 200, response.content
        assert (response.json()["status"], response.json()["stage"]) == (status, stage)
        assert topics_since(seen) == topics

    body = response.json()
    assert body["verification_data"] == verification
    assert body["approver_id"] == str(north.ops.pk)
    assert timestamp(body["verified_at"]) <= timestamp(body["completed_at"])
    assert body["cancelled_at"] is None
    assert timeline(ops, order.pk) == [
        event_row(1, north.doctor, kind="created", to_status="pending_verification"),
        compliance_row(2, order),
        # Verifying re-runs the checks first.
        compliance_row(3, order, check="approval"),
        event_row(
            4,
            north.ops,
            from_status="pending_verification",
            to_status="verified",
            transition="verify",
            reason="Coverage confirmed",
            payload={"compliance": "clear"},
        ),
        event_row(5, north.ops, from_status="verified", to_status="in_progress", transition="start_fulfillment"),
        warehouse_row(6, north.ops, north.product.sku),
        event_row(7, north.ops, from_status="in_progress", to_status="shipped", transition="ship", reason="UPS 1Z999"),
        event_row(
            8, north.ops, from_status="shipped", to_status="completed", transition="complete", reason="Signed for"
        ),
    ]


def test_cash_order_waits_for_payment_which_only_a_payment_recorder_marks(north: Any, api: Any) -> None:
    order = north.order(payer_type="cash")
    ops, admin = api(north.ops), api(north.admin)
    assert set_status(ops, order.pk, "verified").status_code == 200
    # A verified cash-pay order cannot skip payment.
    assert_error(
        set_status(ops, order.pk, "in_progress"),
        409,
        "INVALID_STATUS_TRANSITION",
        "Cannot transition from verified to in_progress: cash-pay orders start fulfillment once paid",
        {"order_id": str(order.pk), "current_status": "verified", "requested_status": "in_progress"},
    )
    assert set_status(ops, order.pk, "awaiting_payment").json()["status"] == "awaiting_payment"

    before = snapshot()
    assert_error(set_status(ops, order.pk, "paid"), 403, "PERMISSION_DENIED", ROLE_REFUSED)
    assert snapshot() == before

    seen = outbox_ids()
    paid = set_status(admin, order.pk, "paid", "Card payment taken by phone")
    assert paid.status_code == 200, paid.content
    assert (paid.json()["status"], paid.json()["stage"]) == ("paid", "Pending")
    assert topics_since(seen) == ["order.paid"]
    started = set_status(ops, order.pk, "in_progress")
    assert (started.json()["status"], started.json()["stage"]) == ("in_progress", "Preparing")
    assert [(row["from_status"], row["to_status"], row["actor_id"]) for row in timeline(ops, order.pk)[1:]] == [
        ("pending_verification", "pending_verification", None),  # the compliance check at submission
        ("pending_verification", "pending_verification", None),  # and again before verifying
        ("pending_verification", "verified", str(north.ops.pk)),
        ("verified", "awaiting_payment", str(north.ops.pk)),
        ("awaiting_payment", "paid", str(north.admin.pk)),
        ("paid", "in_progress", str(north.ops.pk)),
        ("in_progress", "in_progress", str(north.ops.pk)),  # the routing decision
    ]


def test_an_insurance_order_never_waits_for_payment(north: Any, api: Any) -> None:
    order = north.order()
    ops = api(north.ops)
    set_status(ops, order.pk, "verified")
    before = snapshot()

    response = set_status(ops, order.pk, "awaiting_payment")

    assert_error(
        response,
        409,
        "INVALID_STATUS_TRANSITION",
        "Cannot transition from verified to awaiting_payment: only cash-pay orders wait for payment",
        {"order_id": str(order.pk), "current_status": "verified", "requested_status": "awaiting_payment"},
    )
    assert snapshot() == before


def test_hold_and_release_through_status(north: Any, api: Any) -> None:
    order = north.order()
    ops = api(north.ops)

    held = set_status(ops, order.pk, "on_hold", "Missing prescription")
    released = set_status(ops, order.pk, "pending_verification", "Prescription attached")

    assert (held.json()["status"], held.json()["stage"]) == ("on_hold", "Pending")
    assert released.json()["status"] == "pending_verification"


def test_verify_endpoint_records_approver_notes_and_verification_data(north: Any, api: Any) -> None:
    order = north.order()
    seen = outbox_ids()
    verification = {"verified_by": "ops.north", "verification_method": "phone", "coverage_details": {}}

    response = put(api(north.ops), order.pk, "verify", {"notes": "Called payer", "verification_data": verification})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["stage"], body["approver_id"]) == ("verified", "Pending", str(north.ops.pk))
    assert body["verification_data"] == verification
    assert body["verified_at"] is not None
    assert topics_since(seen) == ["order.approved", "order.verified"]
    # The checks ran again (sequence 3) before the verify transition.
    check = order.events.get(sequence=3)
    assert (check.kind, check.payload["check"], check.payload["disposition"]) == ("compliance", "approval", "clear")
    event = order.events.get(sequence=4)
    assert (event.transition, event.reason, event.actor_id) == ("verify", "Called payer", north.ops.pk)


def test_complete_endpoint_confirms_delivery_of_a_shipped_order(north: Any, api: Any) -> None:
    order = north.order()
    for transition in ("verify", "start_fulfillment", "ship"):
        services.order_transition(order_id=order.pk, actor=north.ops, transition=transition)

    response = put(api(north.ops), order.pk, "complete", {"notes": "Delivered to front desk"})

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["stage"]) == ("completed", "Shipped")
    assert response.json()["completed_at"] is not None


def test_complete_endpoint_refuses_an_order_not_shipped(north: Any, api: Any) -> None:
    order = north.order()
    before = snapshot()

    response = put(api(north.ops), order.pk, "complete", {})

    assert_error(
        response,
        409,
        "INVALID_STATUS_TRANSITION",
        "Cannot transition from pending_verification to completed",
        {"order_id": str(order.pk), "current_status": "pending_verification", "requested_status": "completed"},
    )
    assert snapshot() == before


def test_cancel_endpoint_records_the_reason(north: Any, api: Any) -> None:
    order = north.order()
    client = api(north.doctor)
    seen = outbox_ids()

    response = put(client, order.pk, "cancel", {"reason": "  Patient declined  "})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["stage"]) == ("cancelled", None)
    assert body["cancelled_at"] is not None
    assert topics_since(seen) == ["order.cancelled"]
    assert timeline(client, order.pk)[-2:] == [
        event_row(
            3,
            north.doctor,
            from_status="pending_verification",
            to_status="cancelled",
            transition="cancel",
            reason="Patient declined",
        ),
        # The units reserved at submission go back to stock.
        event_row(
            4,
            north.doctor,
            kind="fulfillment",
            from_status="cancelled",
            to_status="cancelled",
            reason="Fulfillment stopped: released 2 reserved units.",
            payload={"released_units": 2, "cancelled_tasks": []},
        ),
    ]


@pytest.mark.parametrize(
    ("body", "details"),
    [
        pytest.param({}, {"reason": ["This field is required."]}, id="missing"),
        pytest.param({"reason": ""}, {"reason": ["This field may not be blank."]}, id="empty"),
        pytest.param({"reason": "   "}, {"reason": ["This field may not be blank."]}, id="spaces"),
        pytest.param({"reason": None}, {"reason": ["This field may not be null."]}, id="null"),
    ],
)
def test_cancel_without_a_reason_changes_nothing(
    north: Any, api: Any, body: dict[str, Any], details: dict[str, Any]
) -> None:
    order = north.order()
    before = snapshot()

    response = put(api(north.doctor), order.pk, "cancel", body)

    assert_error(response, 400, "VALIDATION_ERROR", INVALID, details)
    assert snapshot() == before
    assert Order.objects.get(pk=order.pk).status == "pending_verification"


def test_cancel_through_status_needs_notes_as_the_reason(north: Any, api: Any) -> None:
    order = north.order()
    client = api(north.doctor)
    before = snapshot()

    refused = set_status(client, order.pk, "cancelled", "  ")

    assert_error(refused, 400, "VALIDATION_ERROR", INVALID, {"notes": ["A reason is required for this status."]})
    assert snapshot() == before
    accepted = set_status(client, order.pk, "cancelled", "Duplicate order")
    assert accepted.json()["status"] == "cancelled"
    assert order.events.get(sequence=3).reason == "Duplicate order"


def test_a_terminal_order_cannot_be_cancelled(north: Any, api: Any) -> None:
    order = north.order()
    services.order_cancel(order_id=order.pk, actor=north.doctor, reason="First")
    before = snapshot()

    response = put(api(north.ops), order.pk, "cancel", {"reason": "Again"})

    assert_error(
        response,
        409,
        "INVALID_STATUS_TRANSITION",
        "Cannot transition from cancelled to cancelled",
        {"order_id": str(order.pk), "current_status": "cancelled", "requested_status": "cancelled"},
    )
    assert snapshot() == before


@pytest.mark.parametrize("status", ["created", "PENDING", "Shipped", ""])
def test_status_values_outside_the_lifecycle_are_validation_errors(north: Any, api: Any, status: str) -> None:
    order = north.order()
    before = snapshot()

    response = set_status(api(north.ops), order.pk, status)

    assert_error(response, 400, "VALIDATION_ERROR", INVALID, {"status": [f'"{status}" is not a valid choice.']})
    assert snapshot() == before


# --- roles ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["verify", "status"])
def test_a_doctor_cannot_verify(north: Any, api: Any, how: str) -> None:
    order = north.order()
    client = api(north.doctor)
    before = snapshot()

    response = put(client, order.pk, "verify", {}) if how == "verify" else set_status(client, order.pk, "verified")

    assert_error(response, 403, "PERMISSION_DENIED", ROLE_REFUSED)
    assert snapshot() == before


def test_master_distributor_ships_but_cannot_verify(north: Any, api: Any) -> None:
    distributor = api(north.distributor)
    to_verify = north.order()
    to_ship = north.order(patient_id=north.other_patient().pk)
    for transition in ("verify", "start_fulfillment"):
        services.order_transition(order_id=to_ship.pk, actor=north.ops, transition=transition)
    before = snapshot()

    refused = put(distributor, to_verify.pk, "verify", {})

    assert_error(refused, 403, "PERMISSION_DENIED", ROLE_REFUSED)
    assert snapshot() == before
    shipped = set_status(distributor, to_ship.pk, "shipped", "Left the warehouse")
    assert shipped.status_code == 200, shipped.content
    assert (shipped.json()["status"], shipped.json()["stage"]) == ("shipped", "Shipped")
    assert to_ship.events.get(transition="ship").actor_id == north.distributor.pk


def test_master_distributor_cannot_cancel(north: Any, api: Any) -> None:
    order = north.order()
    before = snapshot()

    response = put(api(north.distributor), order.pk, "cancel", {"reason": "Out of stock"})

    assert_error(response, 403, "PERMISSION_DENIED", ROLE_REFUSED)
    assert snapshot() == before


def test_a_doctor_cancels_a_pending_order_but_not_one_in_preparation(north: Any, api: Any) -> None:
    pending = north.order()
    preparing = north.order(patient_id=north.other_patient().pk)
    for transition in ("verify", "start_fulfillment"):
        services.order_transition(order_id=preparing.pk, actor=north.ops, transition=transition)
    client = api(north.doctor)

    cancelled = put(client, pending.pk, "cancel", {"reason": "Patient declined"})
    before = snapshot()
    refused = put(client, preparing.pk, "cancel", {"reason": "Patient declined"})

    assert cancelled.json()["status"] == "cancelled"
    assert_error(refused, 403, "PERMISSION_DENIED", ROLE_REFUSED)
    assert snapshot() == before
    # Ops staff, who review orders, may still cancel it.
    assert put(api(north.ops), preparing.pk, "cancel", {"reason": "Recall"}).json()["status"] == "cancelled"


def test_a_doctor_cannot_fulfill_or_complete(north: Any, api: Any) -> None:
    verified = north.order()
    services.order_verify(order_id=verified.pk, actor=north.ops)
    shipped = north.order(patient_id=north.other_patient().pk)
    for transition in ("verify", "start_fulfillment", "ship"):
        services.order_transition(order_id=shipped.pk, actor=north.ops, transition=transition)
    client = api(north.doctor)
    before = snapshot()

    assert_error(set_status(client, verified.pk, "in_progress"), 403, "PERMISSION_DENIED", ROLE_REFUSED)
    assert_error(put(client, shipped.pk, "complete", {}), 403, "PERMISSION_DENIED", ROLE_REFUSED)
    assert_error(set_status(client, shipped.pk, "completed"), 403, "PERMISSION_DENIED", ROLE_REFUSED)
    assert snapshot() == before


# --- timeline and notes ---------------------------------------------------------------------------


def test_timeline_is_oldest_first_with_from_to_actor_kind_and_reason(north: Any, api: Any) -> None:
    order = north.order()
    services.order_transition(order_id=order.pk, actor=north.ops, transition="hold", reason="Need prescription")
    services.order_transition(order_id=order.pk, actor=north.ops, transition="release_hold")
    services.order_transition(order_id=order.pk, actor=None, transition="verify", reason="Rules clear")

    rows = timeline(api(north.ops), order.pk)

    assert [(r["sequence"], r["from_status"], r["to_status"], r["actor_kind"], r["reason"]) for r in rows] == [
        (1, "", "pending_verification", "staff", None),
        (2, "pending_verification", "pending_verification", "ai", None),
        (3, "pending_verification", "on_hold", "staff", "Need prescription"),
        (4, "on_hold", "pending_verification", "staff", None),
        (5, "pending_verification", "pending_verification", "ai", None),
        (6, "pending_verification", "verified", "system", "Rules clear"),
    ]
    checks_and_changes = ["created", "compliance", "transition", "transition", "compliance", "transition"]
    assert [r["kind"] for r in rows] == checks_and_changes
    assert [(r["actor_id"], r["actor_name"]) for r in rows] == [
        (str(north.doctor.pk), north.doctor.display_name),
        (None, None),
        (str(north.ops.pk), north.ops.display_name),
        (str(north.ops.pk), north.ops.display_name),
        (None, None),
        (None, None),
    ]


def test_a_master_distributor_follows_orders_without_their_clinical_details(north: Any, api: Any) -> None:
    # Given an order with PHI and a hold reason
    order = north.order()
    services.order_transition(order_id=order.pk, actor=north.ops, transition="hold", reason="Need prescription")
    client = api(north.distributor)
    records_before = AccessRecord.objects.count()

    # When the territory's distributor reads it and its timeline
    detail = client.get(f"/api/v1/orders/{order.pk}").json()
    rows = timeline(client, order.pk)

    # Then status and items show, PHI fields are null, reasons are hidden and no PHI read is recorded
    assert (detail["status"], detail["stage"], detail["items"][0]["sku"]) == ("on_hold", "Pending", north.product.sku)
    assert [detail[k] for k in ("service_type", "diagnosis_codes", "notes", "insurance", "verification_data")] == [
        None
    ] * 5
    assert [(r["kind"], r["to_status"], r["reason"], r["payload"]) for r in rows] == [
        ("created", "pending_verification", None, None),
        ("compliance", "pending_verification", None, None),
        ("transition", "on_hold", None, None),
    ]
    assert AccessRecord.objects.count() == records_before
    # and the same user finds no patients to read
    assert client.get("/api/v1/patients").json()["count"] == 0


def test_a_note_is_appended_to_the_timeline(north: Any, api: Any) -> None:
    order = north.order()
    client = api(north.ops)
    before = snapshot()

    response = client.post(
        f"/api/orders/{order.pk}/events", {"note": "  Patient asked for morning delivery "}, format="json"
    )

    assert response.status_code == 201, response.content
    note = {k: v for k, v in response.json().items() if k not in {"id", "created_at"}}
    expected = event_row(
        3,
        north.ops,
        kind="note",
        from_status="pending_verification",
        to_status="pending_verification",
        reason="Patient asked for morning delivery",
    )
    assert note == expected
    assert timeline(client, order.pk)[-1] == expected
    after = snapshot()
    # Only the timeline grew: no status change, no outbox event, no order history.
    assert (after.orders, after.outbox_events, after.order_history) == (
        before.orders,
        before.outbox_events,
        before.order_history,
    )
    assert after.order_events == before.order_events + 1
    assert OrderEvent.objects.filter(order=order).count() == 3  # created, compliance, note


@pytest.mark.parametrize(
    ("body", "details"),
    [
        pytest.param({}, {"note": ["This field is required."]}, id="missing"),
        pytest.param({"note": "   "}, {"note": ["This field may not be blank."]}, id="blank"),
        pytest.param(
            {"note": "x" * 5001}, {"note": ["Ensure this field has no more than 5000 characters."]}, id="too-long"
        ),
    ],
)
def test_an_empty_note_is_refused(north: Any, api: Any, body: dict[str, Any], details: dict[str, Any]) -> None:
    order = north.order()
    before = snapshot()

    response = api(north.doctor).post(f"/api/orders/{order.pk}/events", body, format="json")

    assert_error(response, 400, "VALIDATION_ERROR", INVALID, details)
    assert snapshot() == before
