"""The resupply flow: a dispensed prescription with refills left and a days supply gets its next fill
sent to the pharmacy shortly before it runs out, counted against the allowed refills."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from fhir.resources.R4B.medicationrequest import MedicationRequest

from agents.pharmacy import send_due_refills
from catalog.models import Product
from orders import services as order_services
from orders.models import Order
from pharmacy import services
from pharmacy.models import Pharmacy, Prescription
from pharmacy.selectors import refill_due_at, refills_due
from tests.admin.conftest import signed_in
from tests.conftest import World

from .conftest import FakePharmacy, pay, prescribe

DAYS = 30  # days supply of one fill; the refill is due PHARMACY_REFILL_LEAD_DAYS (7) before it ends


def sent_and_dispensed(
    world: World, product: Product, capture: Any, *, days_supply: int | None = DAYS, **overrides: Any
) -> Order:
    """A paid prescription order (two refills) the pharmacy accepted and then reported dispensed."""
    order = prescribe(world, product, days_supply=days_supply, **overrides)
    with capture(execute=True):
        pay(world, order)
    prescription = Prescription.objects.get(order=order, fill=0)
    dispensed(prescription)
    return Order.objects.get(pk=order.pk)


def dispensed(prescription: Prescription) -> datetime:
    """The pharmacy reports the fill dispensed; returns when its supply started."""
    update = services.DispenseUpdate(identifier=prescription.identifier, status="completed")
    services.dispense_update_apply(pharmacy=prescription.pharmacy, update=update, channel="callback")
    started = Prescription.objects.get(pk=prescription.pk).dispensed_at
    assert started is not None
    return started


def test_the_next_fill_is_sent_a_week_before_the_supply_runs_out(
    north: World,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    django_capture_on_commit_callbacks: Any,
) -> None:
    order = sent_and_dispensed(north, sildenafil, django_capture_on_commit_callbacks)
    original = Prescription.objects.get(order=order, fill=0)
    started = original.dispensed_at
    assert started is not None
    sent: Any = MedicationRequest.model_validate_json(pharmacy_server.requests[0]["body"])
    assert sent.dispenseRequest.expectedSupplyDuration.model_dump(mode="json", exclude_none=True) == {
        "value": 30.0,
        "unit": "days",
        "system": "http://unitsofmeasure.org",
        "code": "d",
    }

    day_before = started + timedelta(days=DAYS - 7) - timedelta(seconds=1)
    page = signed_in(north.ops).get(reverse("admin:pharmacy_prescription_change", args=(original.pk,)))
    assert "Next fill due" in page.content.decode()
    assert refill_due_at(original) == started + timedelta(days=DAYS - 7)
    assert refills_due(as_of=day_before) == []
    assert services.refills_send_due(as_of=day_before) == {"sent": 0, "skipped": 0}
    assert Prescription.objects.count() == 1

    due_day = started + timedelta(days=DAYS - 7)
    assert refills_due(as_of=due_day) == [original]
    with django_capture_on_commit_callbacks(execute=True):
        assert services.refills_send_due(as_of=due_day) == {"sent": 1, "skipped": 0}

    refill = Prescription.objects.get(order=order, fill=1)
    assert (refill.status, refill.identifier) == ("sent", f"{order.pk}.{refill.item_id}.1")
    received: Any = MedicationRequest.model_validate_json(pharmacy_server.requests[-1]["body"])
    assert (received.identifier[0].value, received.dispenseRequest.numberOfRepeatsAllowed) == (refill.identifier, 1)
    [note] = [e for e in order.events.all() if (e.payload or {}).get("prescription_id") == str(refill.pk)]
    assert (note.actor_kind, note.reason) == ("system", "Refill 1 of 2 sent to Northside Compounding")

    # Running again the same day sends nothing: the line's latest fill is the new one, not yet dispensed
    assert services.refills_send_due(as_of=due_day) == {"sent": 0, "skipped": 0}
    assert Prescription.objects.count() == 2

    # The second refill follows the first one's supply; after it the allowed refills are used up
    second_due = dispensed(refill) + timedelta(days=DAYS - 7)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.refills_send_due(as_of=second_due) == {"sent": 1, "skipped": 0}
    last_started = dispensed(Prescription.objects.get(order=order, fill=2))
    assert refills_due(as_of=last_started + timedelta(days=365)) == []
    assert (Prescription.objects.count(), len(pharmacy_server.stored)) == (3, 3)


def test_lines_without_a_days_supply_or_on_cancelled_orders_are_not_refilled(
    north: World,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    django_capture_on_commit_callbacks: Any,
) -> None:
    no_supply = sent_and_dispensed(north, sildenafil, django_capture_on_commit_callbacks, days_supply=None)
    # another patient's: a second identical open order for the same patient would need review
    cancelled = sent_and_dispensed(
        north, sildenafil, django_capture_on_commit_callbacks, patient_id=north.other_patient().pk
    )
    with django_capture_on_commit_callbacks(execute=True):
        order_services.order_transition(
            order_id=cancelled.pk, actor=north.admin, transition="cancel", reason="Patient stopped the medication"
        )
    later = timezone.now() + timedelta(days=400)

    assert refills_due(as_of=later) == []
    assert services.refills_send_due(as_of=later) == {"sent": 0, "skipped": 0}
    assert Prescription.objects.filter(order__in=[no_supply, cancelled]).count() == 2


def test_the_daily_task_sends_due_refills_unless_auto_refill_is_off(
    north: World,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    django_capture_on_commit_callbacks: Any,
) -> None:
    order = sent_and_dispensed(north, sildenafil, django_capture_on_commit_callbacks, days_supply=7)

    with override_settings(PHARMACY_AUTO_REFILL=False):
        assert send_due_refills.apply().get() == {"sent": 0, "skipped": 0}
    assert Prescription.objects.filter(order=order).count() == 1

    # A seven-day supply is due on the day it was dispensed
    with django_capture_on_commit_callbacks(execute=True):
        assert send_due_refills.apply().get() == {"sent": 1, "skipped": 0}
    assert list(Prescription.objects.filter(order=order).values_list("fill", "status")) == [(0, "sent"), (1, "sent")]


def test_days_supply_is_validated_on_the_order_api(north: World, sildenafil: Product, api: Any) -> None:
    item = {"sku": sildenafil.sku, "quantity": 1, "refills": 1}
    body = {
        "patient_id": str(north.patient.pk),
        "provider_id": str(north.provider.pk),
        "payer_type": "cash",
        "diagnosis_codes": ["N52.9"],
    }
    before = Order.objects.count()
    for days in (0, 366, "a month"):
        response = api(north.doctor).post(
            "/api/portal/orders", {**body, "items": [{**item, "days_supply": days}]}, format="json"
        )
        assert response.status_code == 400, response.content
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
        assert "days_supply" in str(response.json()["error"]["details"])
    assert Order.objects.count() == before

    created = api(north.doctor).post(
        "/api/portal/orders", {**body, "items": [{**item, "days_supply": 90}]}, format="json"
    )
    assert created.status_code == 201, created.content
    assert Order.objects.get(pk=created.json()["id"]).items.get().days_supply == 90


@pytest.mark.usefixtures("beat_schedule")
def test_the_resupply_run_is_on_the_beat_schedule_daily() -> None:
    from django_celery_beat.models import PeriodicTask

    from config.celery import app

    entry = PeriodicTask.objects.select_related("crontab").get(name="pharmacy-resupply-refills")
    assert (entry.task, entry.crontab.hour, entry.crontab.minute) == ("agents.pharmacy.send_due_refills", "7", "0")
    assert app.tasks[entry.task].name == send_due_refills.name
