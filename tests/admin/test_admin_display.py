"""The back office in words (issue 15, item 12): money as money, objects by human names (a patient's
name only to readers of PHI, recorded), pick lists and packing slips for pick tasks."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from catalog.models import Product, StockReservation
from core.models import AccessRecord
from orders.models import FulfillmentTask, FulfillmentTaskItem
from patients.models import Patient
from territories.services import membership_grant
from tests.admin.conftest import signed_in
from tests.admin.test_fulfillment_admin import started_order
from tests.conftest import World
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def recorded(*objects: Any) -> set[tuple[Any, str]]:
    return {(ContentType.objects.get_for_model(obj).pk, str(obj.pk)) for obj in objects}


def access_records() -> set[tuple[Any, str]]:
    return set(AccessRecord.objects.values_list("content_type", "object_id"))


def test_products_show_and_take_prices_in_dollars(superuser: Any) -> None:
    product = ProductFactory.create(sku="CPAP-FF", name="Full face mask", hcpcs_code="A7030", price_cents=65000)
    client = signed_in(superuser)

    listing = client.get("/admin/catalog/product/").content.decode()
    page = client.get(f"/admin/catalog/product/{product.pk}/change/")
    form = page.context["adminform"].form

    assert "$650.00" in listing
    assert "65000" not in listing
    assert "Price cents" not in page.content.decode()
    assert str(form["price"].value()) == "650.00"
    assert form["price"].label == "Price (USD)"
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data = {key: value for key, value in data.items() if value is not False}
    data.update({"price": "649.99", "vendor": ""})
    data = {key: ("on" if value is True else value) for key, value in data.items()}
    saved = client.post(f"/admin/catalog/product/{product.pk}/change/", data)
    assert saved.status_code == 302, saved.context and saved.context["adminform"].form.errors
    assert Product.objects.get(pk=product.pk).price_cents == 64999


def test_order_page_shows_money_and_names_the_patient_to_a_reader_of_phi(north: World) -> None:
    order = north.order()  # two of the world's product at $125.00

    page = signed_in(north.ops).get(f"/admin/orders/order/{order.pk}/change/").content.decode()

    assert "$125.00" in page  # unit price
    assert "$250.00" in page  # line and order total
    assert "unit_price_cents" not in page
    assert f"Zelda QuartermaineNorth (Patient {str(north.patient.pk)[:8]})" in page
    assert recorded(order, north.patient) <= access_records()


def test_patient_page_heading_names_the_patient(north: World) -> None:
    page = signed_in(north.ops).get(f"/admin/patients/patient/{north.patient.pk}/change/").content.decode()

    assert "Zelda QuartermaineNorth" in page.split("<h2>", 1)[-1].split("</h2>", 1)[0]
    assert recorded(north.patient) <= access_records()


def test_task_items_read_as_quantity_name_and_code(north: World) -> None:
    task = FulfillmentTask.objects.get(order=started_order(north))
    line = FulfillmentTaskItem.objects.get(fulfillmenttask=task)

    page = signed_in(north.ops).get(reverse("admin:orders_fulfillmenttask_change", args=(task.pk,))).content.decode()

    assert str(line) == f"2 \N{MULTIPLICATION SIGN} {north.product.name} (A7032)"
    assert f"2 \N{MULTIPLICATION SIGN} {north.product.name} (A7032)" in page
    assert "FulfillmentTask_items object" not in page
    assert "$125.00" in page
    assert 'href="/admin/orders/fulfillmenttask/' in page
    assert f"{task.pk}/pick-list/" in page
    assert f"{task.pk}/packing-slip/" in page


def test_pick_list_shows_lines_and_reserved_lots_without_phi(north: World) -> None:
    order = started_order(north)
    task = FulfillmentTask.objects.get(order=order)
    lot_numbers = set(StockReservation.objects.filter(order_id=order.pk).values_list("lot__lot_number", flat=True))
    AccessRecord.objects.all().delete()

    response = signed_in(north.ops).get(reverse("admin:orders_fulfillmenttask_pick_list", args=(task.pk,)))

    page = response.content.decode()
    assert response.status_code == 200
    assert order.reference in page
    assert north.product.name in page
    assert all(f"from lot {number}" in page for number in lot_numbers)
    assert "Zelda" not in page
    assert AccessRecord.objects.count() == 0


def test_packing_slip_shows_the_ship_to_address_and_records_the_read(north: World) -> None:
    order = started_order(north)
    patient = Patient.objects.get(pk=north.patient.pk)
    task = FulfillmentTask.objects.get(order=order)
    AccessRecord.objects.all().delete()

    response = signed_in(north.ops).get(reverse("admin:orders_fulfillmenttask_packing_slip", args=(task.pk,)))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Zelda QuartermaineNorth" in page
    assert patient.address["line1"] in page
    assert patient.address["postal_code"] in page
    assert recorded(order, patient) == access_records()


def test_another_territorys_slips_are_not_found_and_nothing_is_recorded(north: World, south: World) -> None:
    task = FulfillmentTask.objects.get(order=started_order(north))
    two_hats = north.distributor  # fulfils in north, ops staff in south
    membership_grant(user=two_hats, territory=south.territory, role="ops_staff")
    AccessRecord.objects.all().delete()
    client = signed_in(two_hats)

    pick_list = client.get(reverse("admin:orders_fulfillmenttask_pick_list", args=(task.pk,)))
    slip = client.get(reverse("admin:orders_fulfillmenttask_packing_slip", args=(task.pk,)))

    assert [pick_list.status_code, slip.status_code] == [404, 404]
    assert AccessRecord.objects.count() == 0
