"""In a real browser, at a phone and a desktop viewport: ops staff give an order's pick/pack task to
someone on shift at its warehouse from the order's page. axe-core finds no serious violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from orders import services
from orders.models import FulfillmentTask, Shift
from tests.conftest import World

from .conftest import Shots, sign_in
from .test_order_wizard import NO_SIDEWAYS_SCROLL, accessible

pytestmark = pytest.mark.django_db(transaction=True)


def test_ops_assign_a_pick_pack_task_to_someone_on_shift_from_the_order_page(
    north: World, browser_page: Page, shots: Shots, live_server: object
) -> None:
    page = browser_page
    order = north.order()
    services.order_verify(order_id=order.pk, actor=north.ops)
    services.order_transition(order_id=order.pk, actor=north.ops, transition="start_fulfillment")
    task = FulfillmentTask.objects.get(order=order, kind="pick_pack")
    assert task.warehouse is not None
    Shift.objects.create(warehouse=task.warehouse, person=north.ops, day=task.due_date, minutes=240)
    Shift.objects.create(warehouse=task.warehouse, person=north.distributor, day=task.due_date, minutes=120)

    sign_in(page, "ops.north")
    page.goto(f"{live_server}/portal/orders/{order.pk}/")
    assign = page.get_by_role("region", name="Assign fulfillment work")
    expect(assign).to_be_visible()
    accessible(page)
    assert page.evaluate(NO_SIDEWAYS_SCROLL), "the order page scrolls sideways"
    shots(page, "ops-order-assign")
    assign.get_by_label("Warehouse pick and pack").select_option(label=north.distributor.display_name)
    assign.get_by_role("button", name="Assign").click()

    expect(page.get_by_role("status").first).to_contain_text(
        f"Warehouse pick and pack assigned to {north.distributor.display_name}."
    )
    assert FulfillmentTask.objects.get(pk=task.pk).assignee_id == north.distributor.pk
    expect(page.get_by_role("region", name="Assign fulfillment work")).to_contain_text(
        f"(now {north.distributor.display_name})"
    )
    accessible(page)
    shots(page, "ops-order-assigned")
