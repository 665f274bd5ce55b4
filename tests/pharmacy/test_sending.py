"""Sending prescriptions to a real local HTTP server acting as the pharmacy: the body is an R4B
MedicationRequest with the US Core elements; conditional create makes retries harmless; 4xx goes
to review without retrying; timeouts and 5xx retry with backoff, then dead-letter for staff."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from fhir.resources.R4B.medicationrequest import MedicationRequest

from agents.models import AgentRun
from agents.pharmacy import submit_prescriptions
from catalog.models import Product
from config.celery import app as celery_app
from core.exceptions import PermissionDenied
from core.models import OutboxEvent
from orders.models import Order
from pharmacy import services
from pharmacy.models import Pharmacy, PharmacyLog, Prescription
from tests.conftest import World

from .conftest import TOKEN, FakePharmacy, pay, prescribe


def paid_through_the_agents(world: World, product: Product, capture: Any) -> Order:
    """A prescription order verified and paid; the outbox callbacks run (Celery eager), so it is sent."""
    order = prescribe(world, product)
    with capture(execute=True):
        pay(world, order)
    return Order.objects.get(pk=order.pk)


def paid_and_submitted(world: World, product: Product) -> Order:
    """A paid prescription order whose ``order.paid`` event the pharmacy agent task takes, with Celery's own
    retry loop (run eagerly: countdowns are not waited for)."""
    order = pay(world, prescribe(world, product))
    event = OutboxEvent.objects.get(aggregate_id=str(order.pk), topic="order.paid")
    propagates = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False  # let each retry come back to apply()'s loop
    try:
        submit_prescriptions.apply(kwargs={"event_id": str(event.pk), "topic": event.topic})
    finally:
        celery_app.conf.task_eager_propagates = propagates
    return Order.objects.get(pk=order.pk)


def test_a_paid_order_sends_a_us_core_medication_request(
    north: World,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    django_capture_on_commit_callbacks: Any,
) -> None:
    order = paid_through_the_agents(north, sildenafil, django_capture_on_commit_callbacks)

    assert len(pharmacy_server.requests) == 1
    request = pharmacy_server.requests[0]
    item = order.items.get()
    identifier = f"{order.pk}.{item.pk}.0"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["Content-Type"] == "application/fhir+json"
    assert (
        request["headers"]["If-None-Exist"]
        == f"identifier=https://medorder.example.org/fhir/sid/prescription|{identifier}"
    )
    received: Any = MedicationRequest.model_validate_json(request["body"])
    assert (received.status, received.intent, received.requester.identifier.value) == (
        "active",
        "order",
        north.provider.npi,
    )
    assert received.medicationCodeableConcept.coding[0].code == "577033"
    # Sent on its own: the patient by MBI, the prescriber by NPI, no urn:uuid the server cannot resolve
    assert (received.subject.identifier.system, received.subject.identifier.value) == (
        "http://hl7.org/fhir/sid/us-mbi",
        "1EG4TE5MK73",
    )
    assert (received.subject.reference, received.requester.reference) == (None, None)
    assert (received.requester.identifier.system, received.requester.identifier.value) == (
        "http://hl7.org/fhir/sid/us-npi",
        north.provider.npi,
    )
    assert received.dispenseRequest.numberOfRepeatsAllowed == 2
    assert received.dosageInstruction[0].timing.repeat.periodUnit == "d"
    assert received.reasonCode[0].coding[0].code == "N52.9"

    prescription = Prescription.objects.get(order=order)
    assert (prescription.status, prescription.attempts, prescription.pharmacy_reference, prescription.identifier) == (
        "sent",
        1,
        "MedicationRequest/1",
        identifier,
    )
    log = PharmacyLog.objects.get()
    assert (log.outcome, log.response_status, log.method, log.url) == (
        "accepted",
        201,
        "POST",
        pharmacy.base_url + "/MedicationRequest",
    )
    assert json.loads(log.request_payload or "{}")["identifier"][0]["value"] == identifier
    # Payloads are encrypted at rest
    with connection.cursor() as cursor:
        cursor.execute("SELECT request_payload, response_payload FROM pharmacy_pharmacylog")
        raw = " ".join(cursor.fetchone())
    assert "577033" not in raw
    assert str(north.patient.pk) not in raw
    assert "1EG4TE5MK73" not in raw


def test_a_server_error_then_success_leaves_exactly_one_prescription_at_the_pharmacy(
    north: World,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    django_capture_on_commit_callbacks: Any,
) -> None:
    pharmacy_server.script = [500]

    order = paid_and_submitted(north, sildenafil)

    assert len(pharmacy_server.requests) == 2
    assert len(pharmacy_server.stored) == 1
    assert (
        pharmacy_server.requests[0]["headers"]["If-None-Exist"]
        == pharmacy_server.requests[1]["headers"]["If-None-Exist"]
    )
    prescription = Prescription.objects.get(order=order)
    assert (prescription.status, prescription.attempts, prescription.last_error) == ("sent", 2, "")
    assert list(PharmacyLog.objects.order_by("created_at").values_list("outcome", "response_status")) == [
        ("server_error", 500),
        ("accepted", 200),
    ]


def test_a_rejection_goes_to_review_without_retrying(
    north: World,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    django_capture_on_commit_callbacks: Any,
) -> None:
    pharmacy_server.script = [400]

    order = paid_through_the_agents(north, sildenafil, django_capture_on_commit_callbacks)

    assert len(pharmacy_server.requests) == 1
    prescription = Prescription.objects.get(order=order)
    assert (prescription.status, prescription.last_error) == ("rejected", "HTTP 400")
    assert (order.status, order.ai_disposition) == ("paid", "needs_review")
    event = order.events.filter(kind="compliance").order_by("-sequence")[0]
    assert event.payload == {
        "disposition": "needs_review",
        "findings": [
            {
                "code": "pharmacy_rejected",
                "severity": "needs_review",
                "message": "Northside Compounding refused the prescription (HTTP 400).",
                "item": sildenafil.sku,
            }
        ],
    }


def test_a_timeout_is_retried(
    north: World,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    django_capture_on_commit_callbacks: Any,
) -> None:
    pharmacy_server.script = ["slow"]

    order = paid_and_submitted(north, sildenafil)

    assert Prescription.objects.get(order=order).status == "sent"
    assert len(pharmacy_server.stored) == 1
    outcomes = list(PharmacyLog.objects.order_by("created_at").values_list("outcome", "response_status"))
    # The slow answer still created the prescription there, so the retry that gets through finds it (200);
    # a retry sent while the server was still busy may time out too.
    assert outcomes[0] == ("network_error", None)
    assert outcomes[-1] == ("accepted", 200)
    assert set(outcomes[1:-1]) <= {("network_error", None)}
    assert PharmacyLog.objects.order_by("created_at")[0].response_payload == "ReadTimeout"


def test_after_the_last_retry_staff_resend_from_the_dead_letter(
    north: World,
    api: Any,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    django_capture_on_commit_callbacks: Any,
) -> None:
    pharmacy_server.script = [503, 503, 503]

    order = paid_and_submitted(north, sildenafil)

    prescription = Prescription.objects.get(order=order)
    assert (prescription.status, prescription.attempts, prescription.last_error) == ("dead_letter", 3, "HTTP 503")
    # The pharmacy agent's runs: two retries, then the failure that handed the prescriptions to staff
    runs = AgentRun.objects.filter(task="agents.pharmacy.submit_prescriptions").order_by("started_at")
    assert list(runs.values_list("attempt", "outcome", "error_code")) == [
        (0, "retried", "PHARMACY_UNAVAILABLE"),
        (1, "retried", "PHARMACY_UNAVAILABLE"),
        (2, "failed", "PHARMACY_UNAVAILABLE"),
    ]
    status = api(north.ops).get("/api/agents/status").json()
    assert [agent["state"] for agent in status["agents"] if agent["name"] == "pharmacy"] == ["failing"]
    with pytest.raises(PermissionDenied):
        services.prescription_retry(prescription_id=prescription.pk, actor=north.doctor)
    assert Prescription.objects.get(pk=prescription.pk).status == "dead_letter"

    with django_capture_on_commit_callbacks(execute=True):
        services.prescription_retry(prescription_id=prescription.pk, actor=north.ops)

    prescription = Prescription.objects.get(pk=prescription.pk)
    assert (prescription.status, prescription.attempts) == ("sent", 4)
    assert len(pharmacy_server.stored) == 1
    # Sent: the agent's latest run succeeded, the failure of the day leaves it degraded
    status = api(north.ops).get("/api/agents/status").json()
    assert [agent["state"] for agent in status["agents"] if agent["name"] == "pharmacy"] == ["degraded"]


def test_credentials_are_sealed_and_never_logged(
    north: World,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    django_capture_on_commit_callbacks: Any,
    caplog: Any,
) -> None:
    paid_through_the_agents(north, sildenafil, django_capture_on_commit_callbacks)

    assert TOKEN not in caplog.text
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials_sealed FROM pharmacy_pharmacy")
        assert TOKEN not in cursor.fetchone()[0]
    log = PharmacyLog.objects.get()
    assert TOKEN not in f"{log.request_payload} {log.response_payload} {log.url}"
    assert Pharmacy.objects.get(pk=pharmacy.pk).credentials == {"bearer_token": TOKEN}


def test_no_pharmacy_for_the_territory_sends_nothing_and_says_so(
    north: World, sildenafil: Product, pharmacy_server: FakePharmacy, django_capture_on_commit_callbacks: Any
) -> None:
    order = paid_through_the_agents(north, sildenafil, django_capture_on_commit_callbacks)

    assert (Prescription.objects.count(), pharmacy_server.requests) == (0, [])
    note = order.events.order_by("-sequence")[0]
    assert note.reason == "No active pharmacy serves this territory: the prescriptions wait until one does."


def test_refills_are_sent_from_the_portal_until_the_repeats_are_used(
    north: World,
    south: World,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    django_capture_on_commit_callbacks: Any,
    api: Any,
) -> None:
    order = paid_through_the_agents(north, sildenafil, django_capture_on_commit_callbacks)
    url = f"/api/portal/orders/{order.pk}/refills"
    item = order.items.get()

    for user, status, code in ((south.doctor, 404, "ORDER_NOT_FOUND"), (north.distributor, 403, "PERMISSION_DENIED")):
        refused = api(user).post(url, {"sku": sildenafil.sku}, format="json")
        assert (refused.status_code, refused.json()["error"]["code"]) == (status, code)

    for fill in (1, 2):
        with django_capture_on_commit_callbacks(execute=True):
            response = api(north.doctor).post(url, {"sku": sildenafil.sku}, format="json")
        assert response.status_code == 201, response.content
        refill = Prescription.objects.get(item=item, fill=fill)
        assert response.json() == {
            "prescription_id": str(refill.pk),
            "identifier": f"{order.pk}.{item.pk}.{fill}",
            "fill": fill,
            "refills_remaining": 2 - fill,
        }
        assert refill.status == "sent"
        sent: Any = MedicationRequest.model_validate_json(pharmacy_server.requests[-1]["body"])
        assert (sent.identifier[0].value, sent.dispenseRequest.numberOfRepeatsAllowed) == (refill.identifier, 2 - fill)

    used_up = api(north.doctor).post(url, {"sku": sildenafil.sku}, format="json")
    assert (used_up.status_code, used_up.json()["error"]["code"]) == (409, "NO_REFILLS_LEFT")
    assert (Prescription.objects.count(), len(pharmacy_server.requests), len(pharmacy_server.stored)) == (3, 3, 3)


def test_a_prescription_the_pharmacy_has_not_accepted_cannot_be_refilled(
    north: World, sildenafil: Product, pharmacy: Pharmacy, pharmacy_server: FakePharmacy, api: Any
) -> None:
    pharmacy_server.script = [400]
    order = paid_and_submitted(north, sildenafil)

    response = api(north.doctor).post(f"/api/portal/orders/{order.pk}/refills", {"sku": sildenafil.sku}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (409, "REFILL_NOT_POSSIBLE")
    assert Prescription.objects.count() == 1


@pytest.mark.parametrize(
    ("topic", "task"),
    [
        ("order.verified", "agents.pharmacy.submit_prescriptions"),
        ("order.paid", "agents.pharmacy.submit_prescriptions"),
        ("prescription.retry", "agents.pharmacy.submit_prescriptions"),
        ("prescription.refill", "agents.pharmacy.submit_prescriptions"),
    ],
)
def test_the_pharmacy_agent_is_routed_for_its_events(topic: str, task: str) -> None:
    from core.outbox import routes_for

    assert task in routes_for(topic)


def test_a_refused_prescription_waits_in_the_review_queue_until_resent(
    north: World,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    django_capture_on_commit_callbacks: Any,
    api: Any,
) -> None:
    pharmacy_server.script = [422]
    order = paid_through_the_agents(north, sildenafil, django_capture_on_commit_callbacks)

    queue = api(north.ops).get("/api/portal/orders", {"status": "pending"}).json()["results"]
    assert [(row["id"], row["status"], row["ai_disposition"]) for row in queue] == [
        (str(order.pk), "paid", "needs_review")
    ]
    assert [(r["code"], r["severity"]) for r in queue[0]["reasons"]] == [("pharmacy_rejected", "needs_review")]

    # The pharmacy's problem is fixed on their side; ops send it again
    with django_capture_on_commit_callbacks(execute=True):
        services.prescription_retry(prescription_id=Prescription.objects.get().pk, actor=north.ops)

    assert Prescription.objects.get().status == "sent"
    order = Order.objects.get(pk=order.pk)
    assert order.ai_disposition == "clear"
    assert order.events.order_by("-sequence")[0].reason == (
        "Northside Compounding accepted the resent prescription: review closed."
    )
    assert api(north.ops).get("/api/portal/orders", {"status": "pending"}).json()["results"] == []
    assert len(pharmacy_server.stored) == 1
