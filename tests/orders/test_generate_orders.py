"""``manage.py generate_orders``: the rows it writes are what the services write, and the application
reads them back: lists and details through the API, decrypted PHI, blind-index search, the
compliance check, and further transitions through the real services."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Sum

from accounts.models import User
from catalog.models import Lot, StockMovement, StockReservation
from compliance.models import ComplianceSnapshot
from core.models import OutboxEvent
from orders import fulfillment, services
from orders.generation import Plan, generate
from orders.generation.world import LOT_PREFIX
from orders.models import (
    NON_TERMINAL_STATUSES,
    FulfillmentTask,
    FulfillmentTaskItem,
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
)
from patients.models import Patient
from patients.selectors import patient_search
from territories.models import Role, Territory
from territories.services import membership_grant
from tests.conftest import api_client_for

pytestmark = pytest.mark.postgres

EACH_STATUS = dict.fromkeys(OrderStatus.values, 3)
PASSWORD = "generated-password"


def _generate(**overrides: Any) -> Any:
    plan = Plan(
        **{
            "count": 30,
            "territories": 2,
            "providers_per_territory": 2,
            "statuses": EACH_STATUS,
            "seed": 7,
            "password": PASSWORD,
            "orders_per_patient": 2,
            **overrides,
        }
    )
    return generate(plan)


def _token_client(username: str) -> Any:
    client = api_client_for(None)
    response = client.post("/api/v1/auth/token", {"username": username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    return client


@pytest.mark.django_db
def test_the_command_writes_the_counts_asked_for_and_says_so() -> None:
    out = io.StringIO()
    call_command(
        "generate_orders",
        "--count",
        "12",
        "--territories",
        "1",
        "--providers-per-territory",
        "2",
        "--statuses",
        "completed=2,on_hold=1,pending_verification=1",
        "--seed",
        "3",
        "--jobs",
        "1",
        "--no-progress",
        stdout=out,
    )
    assert dict(Counter(Order.objects.values_list("status", flat=True))) == {
        "completed": 6,
        "on_hold": 3,
        "pending_verification": 3,
    }
    lines = out.getvalue().splitlines()
    assert lines[0] == "Added 12 orders and 6 patients in territories gen-01."
    assert lines[1:4] == ["  completed              6", "  on_hold                3", "  pending_verification   3"]
    assert lines[4].startswith("Took ")


@pytest.mark.django_db
def test_an_unknown_status_is_refused_and_nothing_is_written() -> None:
    with pytest.raises(CommandError, match="Weigh statuses among pending_verification"):
        call_command("generate_orders", "--count", "5", "--statuses", "lost=1", "--no-progress", stdout=io.StringIO())
    assert Order.objects.count() == 0
    assert Territory.objects.count() == 0


@pytest.mark.django_db
def test_generated_orders_are_what_was_asked_and_read_back_through_the_api() -> None:
    result = _generate()

    assert result.orders_by_status == EACH_STATUS
    assert dict(Counter(Order.objects.values_list("status", flat=True))) == EACH_STATUS
    territory = Territory.objects.get(code="gen-01")
    in_territory = Order.objects.filter(territory=territory)
    doctor = _token_client("gen-01.dr01")
    listed = doctor.get(f"/api/v1/orders/territory/{territory.pk}", {"page_size": 100})
    assert listed.status_code == 200
    assert listed.json()["count"] == in_territory.count()
    assert {row["id"] for row in listed.json()["results"]} == {
        str(pk) for pk in in_territory.values_list("pk", flat=True)
    }
    for order in in_territory:
        detail = doctor.get(f"/api/v1/orders/{order.pk}")
        assert detail.status_code == 200, detail.content
        body = detail.json()
        assert body["status"] == order.status
        assert body["reference"] == order.reference
        # The PHI opens with the territory's keys: the same service type the order row holds.
        assert body["service_type"] == Order.objects.get(pk=order.pk).service_type
        assert body["diagnosis_codes"]
        assert body["total_cents"] > 0
    other = Territory.objects.get(code="gen-02")
    foreign = Order.objects.filter(territory=other).first()
    assert foreign is not None
    assert doctor.get(f"/api/v1/orders/{foreign.pk}").status_code == 404


@pytest.mark.django_db
def test_generated_patients_hold_the_generated_phi_and_are_found_by_blind_index() -> None:
    result = _generate()

    for sample in result.samples:
        patient = Patient.objects.get(pk=sample.id)
        assert (patient.first_name, patient.last_name, patient.date_of_birth, patient.mbi) == (
            sample.first_name,
            sample.last_name,
            sample.date_of_birth,
            sample.mbi,
        )
        doctor = User.objects.get(username=f"{Territory.objects.get(pk=sample.territory_id).code}.dr01")
        whole = patient_search(user=doctor, query=f"{sample.first_name} {sample.last_name}")
        assert sample.id in set(whole.values_list("pk", flat=True))
        by_prefix = patient_search(user=doctor, query=sample.last_name[:3])
        assert sample.id in {p.pk for p in by_prefix}
        by_birth = patient_search(user=doctor, query=sample.date_of_birth.isoformat())
        assert sample.id in set(by_birth.values_list("pk", flat=True))


@pytest.mark.django_db
def test_the_compliance_check_and_the_services_work_on_generated_orders() -> None:
    _generate()
    territory = Territory.objects.get(code="gen-01")
    order = Order.objects.filter(territory=territory, status=OrderStatus.PENDING_VERIFICATION).first()
    assert order is not None
    items = list(order.items.values("sku", "quantity"))
    doctor = order.provider.user
    assert doctor is not None

    check = _token_client(doctor.username).post(
        "/api/portal/compliance/check",
        {
            "patient_id": str(order.patient_id),
            "provider_id": str(order.provider_id),
            "items": items,
            "payer_type": order.payer_type,
            "diagnosis_codes": order.diagnosis_codes,
            "signed": True,
        },
        format="json",
    )
    assert check.status_code == 200, check.content
    # The checks read the generated history: the same items are already on their way in an open order.
    open_references = set(
        Order.objects.filter(patient_id=order.patient_id, status__in=NON_TERMINAL_STATUSES).values_list(
            "reference", flat=True
        )
    )
    duplicates = [f["message"] for f in check.json()["findings"] if f["code"] == "DUPLICATE_ORDER"]
    assert duplicates
    assert all(any(reference in message for reference in open_references) for message in duplicates)

    admin = User.objects.create_user(username="gen-admin", password=PASSWORD)
    membership_grant(user=admin, territory=territory, role=Role.ADMIN)
    services.order_approve(order_id=order.pk, actor=admin, notes="Checked.", override_reason="Benchmark data")
    verified = Order.objects.get(pk=order.pk)
    assert verified.status == OrderStatus.VERIFIED
    events = list(verified.events.order_by("sequence").values_list("sequence", "kind", "transition"))
    assert [sequence for sequence, _kind, _transition in events] == list(range(1, len(events) + 1))
    assert events[-1][1:] == ("transition", "verify")

    ops = User.objects.get(username="gen-01.ops1")
    cancelled = services.order_cancel(order_id=order.pk, actor=ops, reason="Patient no longer needs it")
    assert cancelled.status == OrderStatus.CANCELLED
    assert not StockReservation.objects.filter(order_id=order.pk, status="active").exists()


@pytest.mark.django_db
def test_stock_counters_equal_the_ledger_and_the_active_reservations() -> None:
    _generate()

    lots = Lot.objects.filter(lot_number__startswith=LOT_PREFIX)
    assert lots.exists()
    for lot in lots:
        ledger = StockMovement.objects.filter(lot=lot).aggregate(
            on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta")
        )
        active = StockReservation.objects.filter(lot=lot, status="active").aggregate(units=Sum("quantity"))
        assert (lot.quantity_on_hand, lot.quantity_reserved) == (ledger["on_hand"] or 0, ledger["reserved"] or 0)
        assert lot.quantity_reserved == (active["units"] or 0)


def _shape(order: Order) -> dict[str, Any]:
    """What the services leave behind for one order, in the order it was written."""
    return {
        "events": list(
            order.events.order_by("sequence").values_list(
                "kind", "transition", "actor_kind", "from_status", "to_status"
            )
        ),
        "outbox": sorted(OutboxEvent.objects.filter(aggregate_id=str(order.pk)).values_list("topic", flat=True)),
        "snapshots": sorted(ComplianceSnapshot.objects.filter(order_id=order.pk).values_list("kind", "disposition")),
        "history": list(
            Order.history.filter(id=order.pk)
            .order_by("history_date", "history_id")
            .values_list("history_type", "status", "ai_disposition")
        ),
        "item_history": Counter(OrderItem.history.filter(order_id=order.pk).values_list("history_type", flat=True)),
        "items": sorted(
            order.items.values_list("sku", "quantity", "stock_status", "fulfillment_path", "fulfillment_rule")
        ),
        "reservations": sorted(StockReservation.objects.filter(order_id=order.pk).values_list("quantity", "status")),
        "movements": sorted(
            StockMovement.objects.filter(order_id=order.pk).values_list("kind", "on_hand_delta", "reserved_delta")
        ),
        "tasks": sorted(FulfillmentTask.objects.filter(order=order).values_list("kind", "status")),
        "task_items": FulfillmentTaskItem.objects.filter(fulfillmenttask__order=order).count(),
    }


def _same_order_through_the_services(generated: Order, *, signed: bool) -> Order:
    """The generated order's lines, placed through ``order_create`` for a generated patient with the
    same kind of coverage and no orders yet (the generated order would make it a refill or duplicate)."""
    coverage = generated.patient.coverages.get()
    patient = (
        Patient.objects.filter(
            orders__isnull=True, coverages__payer_type=coverage.payer_type, coverages__payer_kind=coverage.payer_kind
        )
        .order_by("pk")
        .first()
    )
    assert patient is not None
    creator = patient.provider.user if signed else User.objects.get(username=f"{patient.territory.code}.ops1")
    return services.order_create(
        actor=creator,
        patient_id=patient.pk,
        provider_id=patient.provider_id,
        items=[
            services.ItemRequest(**line)
            for line in generated.items.values(
                "sku",
                "quantity",
                "dosage_text",
                "dose_frequency",
                "dose_period",
                "dose_period_unit",
                "refills",
                "days_supply",
            )
        ],
        payer_type=generated.payer_type,
        service_type=generated.service_type,
        diagnosis_codes=generated.diagnosis_codes,
        notes=generated.notes,
        sign=signed,
    )


@pytest.mark.django_db
def test_a_generated_delivered_order_has_the_rows_the_services_write_on_that_path() -> None:
    _generate(count=8, providers_per_territory=3, statuses={"completed": 1})
    generated = Order.objects.filter(payer_type="insurance").first()
    assert generated is not None
    real = _same_order_through_the_services(generated, signed=True)
    ops = User.objects.get(username=f"{real.territory.code}.ops1")
    services.order_verify(order_id=real.pk, actor=ops)
    services.order_transition(order_id=real.pk, actor=ops, transition="start_fulfillment")
    for task in FulfillmentTask.objects.filter(order=real):
        fulfillment.pick_pack_ship(task_id=task.pk, actor=ops, carrier="UPS", tracking_number="1Z0000000000000001")
    services.order_complete(order_id=real.pk, actor=ops)

    assert _shape(Order.objects.get(pk=real.pk)) == _shape(generated)


@pytest.mark.django_db
def test_a_generated_held_order_has_the_rows_the_services_write_for_an_unsigned_order() -> None:
    _generate(count=8, providers_per_territory=3, statuses={"on_hold": 1})
    generated = Order.objects.filter(payer_type="insurance").first()
    assert generated is not None

    real = _same_order_through_the_services(generated, signed=False)

    assert real.status == OrderStatus.ON_HOLD
    assert _shape(Order.objects.get(pk=real.pk)) == _shape(generated)


def _plain_indexes() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename IN ('orders_orderevent', 'orders_historicalorder')"
        )
        return {definition for (definition,) in cursor.fetchall()}


@pytest.mark.django_db
def test_a_bulk_load_builds_the_indexes_again_and_writes_rows_whose_references_hold() -> None:
    before = _plain_indexes()

    result = _generate(bulk=True)

    assert result.orders_by_status == EACH_STATUS
    assert "indexes" in result.seconds
    assert _plain_indexes() == before
    orders = set(Order.objects.values_list("pk", flat=True))
    assert set(OrderEvent.objects.values_list("order_id", flat=True)) == orders
    assert set(OrderItem.objects.values_list("order_id", flat=True)) == orders
    assert set(StockMovement.objects.exclude(order_id=None).values_list("order_id", flat=True)) <= orders
    lots = set(Lot.objects.values_list("pk", flat=True))
    assert set(StockReservation.objects.values_list("lot_id", flat=True)) <= lots


@pytest.mark.django_db
def test_a_second_run_adds_orders_in_the_same_territories() -> None:
    _generate(count=10, statuses={"completed": 1})
    territories = set(Territory.objects.values_list("pk", flat=True))
    users = User.objects.count()

    _generate(count=10, statuses={"completed": 1})

    assert Order.objects.count() == 20
    assert len(set(Order.objects.values_list("reference", flat=True))) == 20
    assert set(Territory.objects.values_list("pk", flat=True)) == territories
    assert User.objects.count() == users
    # Stock still adds up: the second run's receipts cover its own orders.
    for lot in Lot.objects.filter(lot_number__startswith=LOT_PREFIX):
        ledger = StockMovement.objects.filter(lot=lot).aggregate(on_hand=Sum("on_hand_delta"))
        assert lot.quantity_on_hand == (ledger["on_hand"] or 0)
