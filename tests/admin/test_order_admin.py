"""The order back office: territory scoping, filters, the read-only page and lifecycle actions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from core.models import AccessRecord, OutboxEvent
from orders import services as order_services
from orders.models import Order, OrderEvent, OrderStatus
from patients.models import Patient
from territories.services import membership_grant, territory_create

from .conftest import messages_of, result_ids, signed_in

CHANGELIST = "/admin/orders/order/"


def change_url(order: Order) -> str:
    return f"/admin/orders/order/{order.pk}/change/"


def snapshot(order: Order) -> tuple[str, int, int]:
    """The order's status, number of timeline events and number of outbox events."""
    return (
        Order.objects.get(pk=order.pk).status,
        OrderEvent.objects.filter(order=order).count(),
        OutboxEvent.objects.filter(aggregate_id=str(order.pk)).count(),
    )


# --- scoping ---------------------------------------------------------------------------------------


def test_ops_changelist_shows_only_their_territory(north: Any, south: Any) -> None:
    north_orders = {north.order().pk, north.order().pk}
    south.order()

    response = signed_in(north.ops).get(CHANGELIST)

    assert response.status_code == 200
    assert result_ids(response) == north_orders


def test_superuser_changelist_shows_every_territory(north: Any, south: Any, superuser: Any) -> None:
    expected = {north.order().pk, south.order().pk}

    response = signed_in(superuser).get(CHANGELIST)

    assert result_ids(response) == expected


def test_order_of_another_territory_is_not_found(north: Any, south: Any) -> None:
    south_order = south.order()
    client = signed_in(north.ops)

    response = client.get(change_url(south_order))
    history = client.get(f"/admin/orders/order/{south_order.pk}/history/")
    transition = client.get(f"/admin/orders/order/{south_order.pk}/transition/verify/")

    assert response.status_code == 404
    assert history.status_code == 404
    assert transition.status_code == 404
    assert AccessRecord.objects.count() == 0


def test_territory_filter_offers_only_the_users_territories(north: Any, south: Any) -> None:
    east = territory_create(code="east", name="East")
    membership_grant(user=north.ops, territory=east, role="ops_staff")

    response = signed_in(north.ops).get(CHANGELIST)

    territory_filter = next(f for f in response.context["cl"].filter_specs if f.title == "territory")
    assert territory_filter.lookup_choices == [(str(east.pk), "East"), (str(north.territory.pk), "North")]


def test_search_by_reference_and_by_exact_id(north: Any) -> None:
    first, second = north.order(), north.order()
    client = signed_in(north.ops)

    by_reference = client.get(CHANGELIST, {"q": first.reference})
    by_id = client.get(CHANGELIST, {"q": str(second.pk)})

    assert result_ids(by_reference) == {first.pk}
    assert result_ids(by_id) == {second.pk}


def test_age_filter(north: Any) -> None:
    now = timezone.now()
    ages = {"hours": dt.timedelta(hours=2), "days": dt.timedelta(days=3), "week": dt.timedelta(days=10)}
    ages["month"] = dt.timedelta(days=40)
    orders = {}
    for name, age in ages.items():
        order = north.order()
        Order.objects.filter(pk=order.pk).update(created_at=now - age)
        orders[name] = order.pk
    client = signed_in(north.ops)

    def shown(age: str) -> set[Any]:
        return result_ids(client.get(CHANGELIST, {"age": age}))

    assert shown("under_1d") == {orders["hours"]}
    assert shown("1_7d") == {orders["days"]}
    assert shown("over_7d") == {orders["week"], orders["month"]}
    assert shown("over_30d") == {orders["month"]}


def test_status_filter(north: Any) -> None:
    pending = north.order()
    verified = north.order(patient_id=north.other_patient().pk)
    order_services.order_verify(order_id=verified.pk, actor=north.ops)

    response = signed_in(north.ops).get(CHANGELIST, {"status__exact": "verified"})

    assert result_ids(response) == {verified.pk}
    assert pending.pk not in result_ids(response)


# --- the order page --------------------------------------------------------------------------------


def test_order_page_records_the_phi_read(north: Any) -> None:
    order = north.order()

    response = signed_in(north.ops).get(change_url(order))

    assert response.status_code == 200
    assert set(
        AccessRecord.objects.values_list("user", "territory_id", "content_type", "object_id", "action", "channel")
    ) == {
        (
            north.ops.pk,
            north.territory.pk,
            ContentType.objects.get_for_model(Order).pk,
            str(order.pk),
            "view",
            "admin",
        ),
        (  # the page names the patient
            north.ops.pk,
            north.territory.pk,
            ContentType.objects.get_for_model(Patient).pk,
            str(north.patient.pk),
            "view",
            "admin",
        ),
    }
    assert AccessRecord.objects.count() == 2


def test_order_page_shows_the_timeline_and_transition_buttons(north: Any) -> None:
    order = north.order()

    response = signed_in(north.ops).get(change_url(order))

    timeline = next(
        formset for formset in response.context["inline_admin_formsets"] if formset.opts.model is OrderEvent
    )
    # created, then the compliance check at submission
    assert [(event.sequence, event.kind) for event in timeline.formset.queryset] == [(1, "created"), (2, "compliance")]
    assert [t["label"] for t in response.context["order_transitions"]] == [
        "Put on hold",
        "Verify",
        "Reject",
        "Cancel order",
    ]


def test_status_cannot_be_edited_through_the_form(north: Any) -> None:
    order = north.order()
    before = snapshot(order)

    response = signed_in(north.ops).post(change_url(order), {"status": "completed", "notes": "changed"})

    assert response.status_code == 403
    assert snapshot(order) == before
    assert Order.objects.get(pk=order.pk).notes == "Fixture order note"


def test_orders_cannot_be_added_or_deleted_in_the_admin(north: Any, superuser: Any) -> None:
    order = north.order()
    client = signed_in(superuser)

    assert client.get("/admin/orders/order/add/").status_code == 403
    assert client.post(f"/admin/orders/order/{order.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Order.objects.filter(pk=order.pk).exists()


def test_history_pages_are_scoped_read_only_and_audited(north: Any) -> None:
    order = north.order()
    order_services.order_verify(order_id=order.pk, actor=north.ops, verification_data={"verified_by": "ops"})
    version = order.history.earliest()
    client = signed_in(north.ops)

    listing = client.get(f"/admin/orders/order/{order.pk}/history/")
    version_page = client.get(f"/admin/orders/order/{order.pk}/history/{version.history_id}/")
    revert = client.post(f"/admin/orders/order/{order.pk}/history/{version.history_id}/", {})

    assert listing.status_code == 200
    assert version_page.status_code == 200
    assert revert.status_code == 403
    assert Order.objects.get(pk=order.pk).status == OrderStatus.VERIFIED
    assert [v.status for v in listing.context["page_obj"]] == ["verified", "pending_verification"]
    assert AccessRecord.objects.filter(user=north.ops, object_id=str(order.pk), channel="admin").count() == 2


# --- actions ---------------------------------------------------------------------------------------


def test_verify_action_runs_the_transition(north: Any) -> None:
    order = north.order()
    client = signed_in(north.ops)

    response = client.post(
        CHANGELIST, {"action": "verify", "_selected_action": [str(order.pk)], "index": 0}, follow=True
    )

    order.refresh_from_db()
    assert order.status == OrderStatus.VERIFIED
    assert order.approver == north.ops
    events = list(OrderEvent.objects.filter(order=order).order_by("sequence"))
    assert [(e.sequence, e.kind, e.from_status, e.to_status, e.transition, e.actor, e.actor_kind) for e in events] == [
        (1, "created", "", "pending_verification", "", north.doctor, "staff"),
        (2, "compliance", "pending_verification", "pending_verification", "", None, "ai"),
        (3, "compliance", "pending_verification", "pending_verification", "", None, "ai"),
        (4, "transition", "pending_verification", "verified", "verify", north.ops, "staff"),
    ]
    assert [e.payload["check"] for e in events[1:3]] == ["submission", "approval"]
    assert events[3].payload == {"compliance": "clear"}
    assert sorted(OutboxEvent.objects.filter(aggregate_id=str(order.pk)).values_list("topic", flat=True)) == [
        "order.approved",
        "order.created",
        "order.verified",
    ]
    assert messages_of(response) == [f"Verify: done for 1 order(s): {order.reference}."]


def test_cancel_action_asks_for_a_reason_first(north: Any) -> None:
    order = north.order()
    before = snapshot(order)
    client = signed_in(north.ops)

    response = client.post(CHANGELIST, {"action": "cancel", "_selected_action": [str(order.pk)], "index": 0})

    assert response.status_code == 200
    assert response.templates[0].name == "admin/orders/order/transition_confirm.html"
    assert [o.pk for o in response.context["orders"]] == [order.pk]
    assert snapshot(order) == before


def test_cancel_action_without_a_reason_changes_nothing(north: Any) -> None:
    order = north.order()
    before = snapshot(order)

    response = signed_in(north.ops).post(
        CHANGELIST, {"action": "cancel", "_selected_action": [str(order.pk)], "apply": "Cancel order", "reason": "  "}
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"reason": ["This field is required."]}
    assert snapshot(order) == before


def test_cancel_action_with_a_reason_cancels(north: Any) -> None:
    order = north.order()

    response = signed_in(north.ops).post(
        CHANGELIST,
        {"action": "cancel", "_selected_action": [str(order.pk)], "apply": "Cancel order", "reason": "Duplicate order"},
        follow=True,
    )

    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert order.cancelled_at is not None
    cancelled = OrderEvent.objects.filter(order=order, kind="transition").latest("sequence")
    assert (cancelled.transition, cancelled.actor, cancelled.reason) == ("cancel", north.ops, "Duplicate order")
    # and the stock reserved for it goes back
    last = OrderEvent.objects.filter(order=order).latest("sequence")
    assert (last.sequence, last.kind, last.reason) == (
        cancelled.sequence + 1,
        "fulfillment",
        "Fulfillment stopped: released 2 reserved units.",
    )
    assert messages_of(response) == [f"Cancel order: done for 1 order(s): {order.reference}."]


def test_invalid_transition_shows_an_error_and_changes_nothing(north: Any) -> None:
    order = north.order()
    before = snapshot(order)

    response = signed_in(north.ops).post(
        CHANGELIST, {"action": "complete", "_selected_action": [str(order.pk)], "index": 0}, follow=True
    )

    assert snapshot(order) == before
    assert messages_of(response) == [
        f"Order {order.reference}: Cannot transition from pending_verification to completed"
    ]


def test_transition_the_role_may_not_make_is_refused(north: Any) -> None:
    order = north.order(payer_type="cash")
    order_services.order_verify(order_id=order.pk, actor=north.ops)
    order_services.order_transition(order_id=order.pk, actor=north.ops, transition="request_payment")
    before = snapshot(order)

    response = signed_in(north.ops).post(
        CHANGELIST, {"action": "mark_paid", "_selected_action": [str(order.pk)], "index": 0}, follow=True
    )

    assert snapshot(order) == before
    assert before[0] == OrderStatus.AWAITING_PAYMENT
    assert messages_of(response) == [f"Order {order.reference}: Your role may not make this change to the order."]


def test_action_runs_each_order_on_its_own(north: Any) -> None:
    pending = north.order()
    verified = north.order(patient_id=north.other_patient().pk)
    order_services.order_verify(order_id=verified.pk, actor=north.ops)
    verified_before = snapshot(verified)

    response = signed_in(north.ops).post(
        CHANGELIST,
        {"action": "verify", "_selected_action": [str(pending.pk), str(verified.pk)], "index": 0},
        follow=True,
    )

    assert Order.objects.get(pk=pending.pk).status == OrderStatus.VERIFIED
    assert snapshot(verified) == verified_before
    assert sorted(messages_of(response)) == sorted(
        [
            f"Order {verified.reference}: Cannot transition from verified to verified",
            f"Verify: done for 1 order(s): {pending.reference}.",
        ]
    )


def test_action_on_another_territorys_order_changes_nothing(north: Any, south: Any) -> None:
    south_order = south.order()
    before = snapshot(south_order)

    signed_in(north.ops).post(CHANGELIST, {"action": "verify", "_selected_action": [str(south_order.pk)], "index": 0})

    assert snapshot(south_order) == before


def test_transition_button_confirms_then_runs_the_service(north: Any) -> None:
    order = north.order()
    before = snapshot(order)
    url = f"/admin/orders/order/{order.pk}/transition/hold/"
    client = signed_in(north.ops)

    confirmation = client.get(url)
    assert confirmation.status_code == 200
    assert snapshot(order) == before

    response = client.post(url, {"reason": "Missing prescription"})

    assert response.status_code == 302
    assert response["Location"] == change_url(order)
    order.refresh_from_db()
    assert order.status == OrderStatus.ON_HOLD
    last = OrderEvent.objects.filter(order=order).latest("sequence")
    assert (last.transition, last.actor, last.reason) == ("hold", north.ops, "Missing prescription")
