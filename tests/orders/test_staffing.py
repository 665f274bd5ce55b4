"""Staffing: a warehouse's day planned against its shifts, announced on every task and shift change,
recalculated by the workforce agent; tasks assigned only to people on shift; shifts and plans in the
admin."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from agents.models import AgentRun
from catalog import services as stock
from catalog.models import Product, Warehouse
from core.exceptions import ValidationFailed
from core.models import OutboxEvent
from core.outbox import outbox_deliver
from orders import fulfillment, staffing
from orders import services as order_services
from orders.models import FulfillmentTask, Shift, StaffingPlan
from tests.admin.conftest import signed_in
from tests.conftest import World
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def main() -> Warehouse:
    return Warehouse.objects.create(code="main", name="Main warehouse")


@pytest.fixture
def mask(main: Warehouse) -> Product:
    product = ProductFactory.create(sku="MASK-NASAL", hcpcs_code="A7032", price_cents=12500)
    stock.lot_receive(actor=None, product=product, warehouse=main, lot_number="M-1", quantity=50)
    return product


def started(world: World, product: Product, quantity: int = 1) -> FulfillmentTask:
    """A new patient's order for ``product``, verified and in fulfillment: its pick/pack task."""
    world.patient = world.other_patient()
    order = world.order(items=[order_services.ItemRequest(sku=product.sku, quantity=quantity)])
    order_services.order_verify(order_id=order.pk, actor=world.ops)
    order_services.order_transition(order_id=order.pk, actor=world.ops, transition="start_fulfillment")
    return FulfillmentTask.objects.get(order=order, kind="pick_pack")


def staffing_events(task: FulfillmentTask) -> list[dict[str, Any]]:
    return list(
        OutboxEvent.objects.filter(topic="staffing.changed", aggregate_id=str(task.pk))
        .order_by("created_at")
        .values_list("payload", flat=True)
    )


def test_a_day_is_planned_from_its_open_tasks_and_shifts_fitting_tasks_in_the_order_they_came(
    north: World, main: Warehouse, mask: Product
) -> None:
    first, second, third = (started(north, mask) for _ in range(3))  # 13 minutes each (10 + 3 per line)
    day = first.due_date
    done = started(north, mask)
    fulfillment.pick_pack_ship(task_id=done.pk, actor=north.ops, carrier="UPS", tracking_number="1Z9")
    FulfillmentTask.objects.filter(pk=third.pk).update(created_at=first.created_at)  # same time: by id then
    Shift.objects.create(warehouse=main, person=north.ops, day=day, minutes=20)
    Shift.objects.create(warehouse=main, person=north.distributor, day=day, minutes=10)
    Shift.objects.create(warehouse=main, person=north.admin, day=day + dt.timedelta(days=1), minutes=480)

    plan = staffing.staffing_plan_recalculate(warehouse_id=main.pk, day=day)

    assert (plan.open_tasks, plan.required_minutes, plan.available_minutes, plan.utilisation_percent) == (
        3,
        39,
        30,
        130,
    )
    # 30 minutes: the first and third (created at the same time) fit (26), the second does not (39 > 30)
    assert plan.unfitted_task_ids == [str(second.pk)]
    assert plan.over_capacity is True
    assert StaffingPlan.objects.count() == 1


def test_a_day_with_room_to_spare_and_a_day_with_nobody_on_shift(north: World, main: Warehouse, mask: Product) -> None:
    task = started(north, mask, quantity=2)  # one line: 13 minutes
    Shift.objects.create(warehouse=main, person=north.ops, day=task.due_date, minutes=26)

    roomy = staffing.staffing_plan_recalculate(warehouse_id=main.pk, day=task.due_date)
    Shift.objects.all().delete()
    nobody = staffing.staffing_plan_recalculate(warehouse_id=main.pk, day=task.due_date)

    assert (roomy.required_minutes, roomy.available_minutes, roomy.utilisation_percent) == (13, 26, 50)
    assert (roomy.unfitted_task_ids, roomy.over_capacity) == ([], False)
    assert (nobody.pk, nobody.available_minutes, nobody.utilisation_percent) == (roomy.pk, 0, None)
    assert (nobody.unfitted_task_ids, nobody.over_capacity) == ([str(task.pk)], True)
    assert StaffingPlan.objects.count() == 1
    empty = staffing.staffing_plan_recalculate(warehouse_id=main.pk, day=task.due_date + dt.timedelta(days=1))
    assert (empty.open_tasks, empty.required_minutes, empty.utilisation_percent, empty.over_capacity) == (
        0,
        0,
        None,
        False,
    )


def test_every_change_to_a_warehouse_task_announces_its_day(north: World, main: Warehouse, mask: Product) -> None:
    task = started(north, mask)
    Shift.objects.create(warehouse=main, person=north.distributor, day=task.due_date, minutes=60)
    fulfillment.fulfillment_task_start(task_id=task.pk, actor=north.ops)
    fulfillment.fulfillment_task_assign(task_id=task.pk, actor=north.ops, assignee=north.distributor)
    fulfillment.pick_pack_ship(task_id=task.pk, actor=north.ops, carrier="UPS", tracking_number="1Z1")
    cancelled = started(north, mask)
    order_services.order_cancel(order_id=cancelled.order_id, actor=north.ops, reason="Patient moved away")

    day = {"warehouse_id": str(main.pk), "day": task.due_date.isoformat()}
    assert staffing_events(task) == [day] * 4  # created, started, assigned, shipped
    assert staffing_events(cancelled) == [day] * 2  # created, cancelled


def test_the_workforce_agent_recalculates_the_day_an_event_names(
    north: World, main: Warehouse, mask: Product, django_capture_on_commit_callbacks: Any
) -> None:
    task = started(north, mask)
    Shift.objects.create(warehouse=main, person=north.ops, day=task.due_date, minutes=10)
    event = OutboxEvent.objects.get(topic="staffing.changed", aggregate_id=str(task.pk))

    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_deliver(event_id=event.pk) is True

    plan = StaffingPlan.objects.get(warehouse=main, day=task.due_date)
    assert (plan.required_minutes, plan.available_minutes, plan.utilisation_percent) == (13, 10, 130)
    assert list(AgentRun.objects.values_list("agent", "task", "topic", "outcome")) == [
        ("workforce", "agents.workforce.recalculate_staffing", "staffing.changed", "ok")
    ]


def test_a_task_goes_only_to_someone_on_shift_at_its_warehouse_that_day(
    north: World, main: Warehouse, mask: Product
) -> None:
    task = started(north, mask)
    Shift.objects.create(warehouse=main, person=north.distributor, day=task.due_date + dt.timedelta(days=1), minutes=60)
    other = Warehouse.objects.create(code="east", name="East warehouse")
    Shift.objects.create(warehouse=other, person=north.distributor, day=task.due_date, minutes=60)
    events = OutboxEvent.objects.count()

    with pytest.raises(ValidationFailed) as refused:
        fulfillment.fulfillment_task_assign(task_id=task.pk, actor=north.ops, assignee=north.distributor)

    assert refused.value.details == {
        "assignee": ["The assignee must be on shift at the task's warehouse on its due day."]
    }
    assert FulfillmentTask.objects.get(pk=task.pk).assignee_id is None
    assert OutboxEvent.objects.count() == events
    Shift.objects.create(warehouse=main, person=north.distributor, day=task.due_date, minutes=60)
    fulfillment.fulfillment_task_assign(task_id=task.pk, actor=north.ops, assignee=north.distributor)
    assert FulfillmentTask.objects.get(pk=task.pk).assignee_id == north.distributor.pk


def test_ops_keep_shifts_in_the_admin_and_the_plan_follows(
    north: World, main: Warehouse, mask: Product, django_capture_on_commit_callbacks: Any
) -> None:
    task = started(north, mask)
    client = signed_in(north.ops)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/orders/shift/add/",
            {"warehouse": main.pk, "person": north.distributor.pk, "day": task.due_date.isoformat(), "minutes": 20},
        )

    assert response.status_code == 302
    plan = StaffingPlan.objects.get(warehouse=main, day=task.due_date)
    assert (plan.available_minutes, plan.utilisation_percent) == (20, 65)
    plans = client.get("/admin/orders/staffingplan/")
    assert plans.status_code == 200
    assert 'aria-label="65%"' in plans.content.decode()

    # Assigned from the task's page to the person on shift
    page = client.get(f"/admin/orders/fulfillmenttask/{task.pk}/act/assign/")
    assert page.status_code == 200
    assert north.distributor.username in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assigned = client.post(
            f"/admin/orders/fulfillmenttask/{task.pk}/act/assign/", {"assignee": north.distributor.pk}
        )
    assert assigned.status_code == 302
    assert FulfillmentTask.objects.get(pk=task.pk).assignee_id == north.distributor.pk

    shift = Shift.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/admin/orders/shift/{shift.pk}/delete/", {"post": "yes"}).status_code == 302
    plan = StaffingPlan.objects.get(warehouse=main, day=task.due_date)
    assert (plan.available_minutes, plan.utilisation_percent) == (0, None)
