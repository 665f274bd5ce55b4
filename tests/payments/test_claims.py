"""Insurance claims staged by the payments agent: opened on approval with lines and the documentation
checkpoint, dated and made ready to bill on delivery, answered by billing staff; the admin's claim
pages and work queue (CSV included)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from agents.models import AgentRun
from catalog.models import Product
from core.exceptions import Conflict, PermissionDenied, ValidationFailed
from core.models import OutboxEvent
from core.outbox import outbox_deliver
from orders import services as order_services
from orders.models import Order
from payments import claims
from payments.models import Claim, ClaimCheckpoint, ClaimLine
from tests.admin.conftest import signed_in
from tests.conftest import World

pytestmark = pytest.mark.django_db


def approved(world: World, **overrides: Any) -> Order:
    order = world.order(**overrides)
    order_services.order_verify(order_id=order.pk, actor=world.ops)
    return Order.objects.get(pk=order.pk)


def delivered(world: World, order: Order) -> Order:
    order_services.order_transition(order_id=order.pk, actor=world.ops, transition="start_fulfillment")
    order_services.order_transition(order_id=order.pk, actor=world.ops, transition="ship")
    return order_services.order_complete(order_id=order.pk, actor=world.ops, notes="Signed for")


def checkpoints(claim: Claim) -> list[tuple[str, Any, Any, str]]:
    return list(
        ClaimCheckpoint.objects.filter(claim=claim)
        .order_by("at", "id")
        .values_list("kind", "actor", "amount_cents", "note")
    )


def test_an_approved_insurance_order_gets_its_claim_once_with_a_line_per_item(north: World) -> None:
    Product.objects.filter(pk=north.product.pk).update(billing_modifier="NU")
    order = approved(north, diagnosis_codes=["G47.33", "E66.9"])

    claim = claims.claim_open(order_id=order.pk)
    again = claims.claim_open(order_id=order.pk)

    assert claim is not None
    assert again is not None
    assert again.pk == claim.pk
    assert (claim.status, claim.date_of_service, claim.charge_cents, claim.territory_id) == (
        "open",
        None,
        25000,
        north.territory.pk,
    )
    assert list(
        ClaimLine.objects.filter(claim=claim).values_list(
            "hcpcs_code", "modifier", "units", "charge_cents", "diagnosis_pointers"
        )
    ) == [("A7032", "NU", 2, 25000, [1, 2])]
    assert checkpoints(claim) == [("documentation_complete", north.ops.pk, None, "")]


def test_cash_orders_and_orders_no_longer_approved_get_no_claim(north: World) -> None:
    cash = approved(north, payer_type="cash")
    north.patient = north.other_patient()
    withdrawn = approved(north)
    order_services.order_cancel(order_id=withdrawn.pk, actor=north.ops, reason="Patient declined")

    assert claims.claim_open(order_id=cash.pk) is None
    assert claims.claim_open(order_id=withdrawn.pk) is None
    assert not Claim.objects.exists()


def test_delivery_dates_the_claim_and_makes_it_ready_to_bill_once(north: World) -> None:
    order = approved(north)
    claim = claims.claim_open(order_id=order.pk)
    assert claim is not None
    completed = delivered(north, order)

    claims.claim_delivered(order_id=order.pk)
    claims.claim_delivered(order_id=order.pk)

    claim.refresh_from_db()
    assert completed.completed_at is not None
    assert (claim.status, claim.date_of_service) == ("ready_to_bill", timezone.localdate(completed.completed_at))
    assert [kind for kind, *_ in checkpoints(claim)] == ["documentation_complete", "delivered", "ready_to_bill"]


def test_a_claim_opened_after_delivery_is_ready_at_once(north: World) -> None:
    order = delivered(north, approved(north))

    claim = claims.claim_open(order_id=order.pk)

    assert claim is not None
    assert claim.status == "ready_to_bill"
    assert [kind for kind, *_ in checkpoints(claim)] == ["documentation_complete", "delivered", "ready_to_bill"]


def test_billing_staff_record_submission_and_payment_or_denial(north: World) -> None:
    order = delivered(north, approved(north))
    claim = claims.claim_open(order_id=order.pk)
    assert claim is not None

    with pytest.raises(PermissionDenied):
        claims.claim_submit(claim_id=claim.pk, actor=north.ops, reference="B-1")
    with pytest.raises(Conflict):
        claims.claim_pay(claim_id=claim.pk, actor=north.admin, amount_cents=100)
    assert Claim.objects.get(pk=claim.pk).status == "ready_to_bill"
    assert len(checkpoints(claim)) == 3

    claims.claim_submit(claim_id=claim.pk, actor=north.admin, reference="B-1")
    with pytest.raises(ValidationFailed):
        claims.claim_deny(claim_id=claim.pk, actor=north.admin, reason_code=" ")
    paid = claims.claim_pay(claim_id=claim.pk, actor=north.admin, amount_cents=19876)

    assert (paid.status, paid.paid_cents) == ("paid", 19876)
    assert checkpoints(claim)[3:] == [("submitted", north.admin.pk, None, "B-1"), ("paid", north.admin.pk, 19876, "")]


def test_a_denial_keeps_the_payers_reason_code(north: World) -> None:
    order = delivered(north, approved(north))
    claim = claims.claim_open(order_id=order.pk)
    assert claim is not None
    claims.claim_submit(claim_id=claim.pk, actor=north.admin)

    denied = claims.claim_deny(claim_id=claim.pk, actor=north.admin, reason_code="CO-50", amount_cents=25000)

    assert denied.status == "denied"
    assert checkpoints(claim)[-1] == ("denied", north.admin.pk, 25000, "CO-50")


def test_the_payments_agent_opens_the_claim_on_approval_and_dates_it_on_delivery(
    north: World, django_capture_on_commit_callbacks: Any
) -> None:
    order = approved(north)
    approval = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.approved")
    with django_capture_on_commit_callbacks(execute=True):
        outbox_deliver(event_id=approval.pk)
    delivered(north, order)
    delivery = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.delivered")
    with django_capture_on_commit_callbacks(execute=True):
        outbox_deliver(event_id=delivery.pk)

    assert Claim.objects.get(order=order).status == "ready_to_bill"
    assert sorted(AgentRun.objects.filter(agent="payments").values_list("task", "outcome")) == [
        ("agents.payments.open_claim", "ok"),
        ("agents.payments.record_claim_delivery", "ok"),
    ]


def test_the_work_queue_lists_late_ready_and_denied_claims_and_exports_them(north: World) -> None:
    late = delivered(north, approved(north))
    north.patient = north.other_patient()
    ready = delivered(north, approved(north))
    north.patient = north.other_patient()
    refused = delivered(north, approved(north))
    north.patient = north.other_patient()
    waiting = approved(north)
    for order in (late, ready, refused, waiting):
        claims.claim_open(order_id=order.pk)
    today = timezone.localdate()
    Claim.objects.filter(order=late).update(date_of_service=today - dt.timedelta(days=7))
    refused_claim = Claim.objects.get(order=refused)
    claims.claim_submit(claim_id=refused_claim.pk, actor=north.admin)
    claims.claim_deny(claim_id=refused_claim.pk, actor=north.admin, reason_code="CO-16")
    client = signed_in(north.admin)

    page = client.get("/admin/payments/claim/work-queue/")
    csv = client.get("/admin/payments/claim/work-queue/?format=csv")

    assert page.status_code == 200
    assert csv.status_code == 200
    assert csv.content.decode().splitlines() == [
        "Queue,Order,Date of service,Days since delivery,Charge (cents),Status",
        f'"Delivered, not billed",{late.reference},{today - dt.timedelta(days=7)},7,25000,Ready to bill',
        f"Ready to bill,{ready.reference},{today},0,25000,Ready to bill",
        f"Denied,{refused.reference},{today},0,25000,Denied",
    ]


def test_billing_staff_answer_a_claim_from_its_admin_page(north: World) -> None:
    order = delivered(north, approved(north))
    claim = claims.claim_open(order_id=order.pk)
    assert claim is not None
    client = signed_in(north.admin)

    page = client.get(f"/admin/payments/claim/{claim.pk}/change/")
    submitted = client.post(f"/admin/payments/claim/{claim.pk}/step/submit/", {"reference": "B-7"})
    paid = client.post(f"/admin/payments/claim/{claim.pk}/step/pay/", {"amount_cents": "20000"})

    assert page.status_code == 200
    assert "Record submission" in page.content.decode()
    assert (submitted.status_code, paid.status_code) == (302, 302)
    assert (Claim.objects.get(pk=claim.pk).status, Claim.objects.get(pk=claim.pk).paid_cents) == ("paid", 20000)
    # Ops see claims, without the billing steps
    north.patient = north.other_patient()
    other = claims.claim_open(order_id=delivered(north, approved(north)).pk)
    assert other is not None
    seen = signed_in(north.ops).get(f"/admin/payments/claim/{other.pk}/change/")
    assert seen.status_code == 200
    assert "Record submission" not in seen.content.decode()
