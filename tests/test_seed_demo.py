"""``manage.py seed_demo``: the demo data, and that loading it again changes nothing."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from accounts.models import User
from catalog.models import Product
from core.identifiers import is_valid_hcpcs, is_valid_mbi, is_valid_npi
from core.models import OutboxEvent
from orders.models import Order, OrderEvent, OrderItem
from patients.models import Coverage, Patient, Provider
from territories.models import Territory, TerritoryMembership

pytestmark = pytest.mark.django_db

DEMO_USERS = {"admin", "dr.north", "ops.north", "dr.south", "ops.south"}


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {
        "territories": Territory.objects.count(),
        "users": User.objects.count(),
        "memberships": TerritoryMembership.objects.count(),
        "providers": Provider.objects.count(),
        "patients": Patient.objects.count(),
        "patient history": Patient.history.count(),
        "coverages": Coverage.objects.count(),
        "products": Product.objects.count(),
        "orders": Order.objects.count(),
        "order history": Order.history.count(),
        "order items": OrderItem.objects.count(),
        "order events": OrderEvent.objects.count(),
        "outbox events": OutboxEvent.objects.count(),
    }


EXPECTED_COUNTS = {
    "territories": 2,
    "users": 5,
    "memberships": 4,
    "providers": 4,
    "patients": 6,
    "patient history": 6,
    "coverages": 6,
    "products": 13,
    "orders": 4,
    # 4 creations, then verify and start_fulfillment on one order per territory.
    "order history": 8,
    "order items": 6,
    "order events": 8,
    # order.created x4; order.verified + order.approved x2; order.fulfillment.started x2.
    "outbox events": 10,
}


def test_second_run_changes_nothing() -> None:
    seed()
    assert counts() == EXPECTED_COUNTS
    passwords = dict(User.objects.values_list("username", "password"))
    products_updated = dict(Product.objects.values_list("sku", "updated_at"))
    patients_updated = dict(Patient.objects.values_list("pk", "updated_at"))

    seed()

    assert counts() == EXPECTED_COUNTS
    assert dict(User.objects.values_list("username", "password")) == passwords
    assert dict(Product.objects.values_list("sku", "updated_at")) == products_updated
    assert dict(Patient.objects.values_list("pk", "updated_at")) == patients_updated


def test_users_roles_and_territories() -> None:
    seed()

    assert dict(Territory.objects.values_list("code", "name")) == {"north": "North Region", "south": "South Region"}
    assert set(User.objects.values_list("username", flat=True)) == DEMO_USERS
    assert set(TerritoryMembership.objects.values_list("user__username", "territory__code", "role")) == {
        ("dr.north", "north", "doctor"),
        ("ops.north", "north", "ops_staff"),
        ("dr.south", "south", "doctor"),
        ("ops.south", "south", "ops_staff"),
    }
    flags = {u.username: (u.is_superuser, u.is_staff, u.is_active) for u in User.objects.all()}
    assert flags == {
        "admin": (True, True, True),
        "dr.north": (False, False, True),
        "ops.north": (False, True, True),
        "dr.south": (False, False, True),
        "ops.south": (False, True, True),
    }


def test_demo_password_signs_every_user_in() -> None:
    seed()

    for username in DEMO_USERS:
        assert authenticate(username=username, password="demo-password") == User.objects.get(username=username)
    assert authenticate(username="dr.north", password="wrong-password") is None


def test_rerun_resets_passwords_to_demo_password(settings: Any) -> None:
    seed()
    changed = User.objects.get(username="ops.south")
    changed.set_password("someone-changed-it")
    changed.save()
    settings.DEMO_PASSWORD = "another-demo-password"

    output = seed()

    for username in DEMO_USERS:
        assert authenticate(username=username, password="another-demo-password") is not None
        assert authenticate(username=username, password="demo-password") is None
    assert authenticate(username="ops.south", password="someone-changed-it") is None
    assert "Password of every demo user: the value of DEMO_PASSWORD" in output
    assert "another-demo-password" not in output


def test_providers_have_valid_npis_and_doctors_are_linked() -> None:
    seed()

    providers = list(Provider.objects.select_related("territory", "user").order_by("npi"))
    assert [(p.territory.code, p.user.username if p.user else None) for p in providers] == [
        ("north", "dr.north"),
        ("north", None),
        ("south", "dr.south"),
        ("south", None),
    ]
    assert all(is_valid_npi(p.npi) for p in providers)
    assert len({p.npi for p in providers}) == 4


def test_catalog_uses_real_hcpcs_codes() -> None:
    seed()

    assert all(is_valid_hcpcs(code) for code in Product.objects.values_list("hcpcs_code", flat=True))
    assert dict(Product.objects.values_list("hcpcs_code", "therapy_type")) == {
        "E0601": "cpap",
        "A7030": "cpap",
        "A7034": "cpap",
        "A7035": "cpap",
        "A7037": "cpap",
        "A7038": "cpap",
        "A7046": "cpap",
        "E0607": "diabetes",
        "A4253": "diabetes",
        "A4259": "diabetes",
        "K0001": "mobility",
        "E0143": "mobility",
        "A6212": "wound_care",
    }
    assert Product.objects.get(hcpcs_code="A4253").unit == "box of 50"
    assert Product.objects.get(hcpcs_code="A4259").unit == "box of 100"


def test_patients_coverage_and_orders_per_territory() -> None:
    seed()

    for code in ("north", "south"):
        patients = list(Patient.objects.filter(territory__code=code))
        assert len(patients) == 3
        assert all(p.mbi is not None and is_valid_mbi(p.mbi) for p in patients)
        assert all(p.provider.territory.code == code for p in patients)
        assert sorted(p.coverages.count() for p in patients) == [1, 1, 1]
        assert sorted(Coverage.objects.filter(patient__in=patients).values_list("payer_type", flat=True)) == [
            "cash",
            "insurance",
            "insurance",
        ]
        orders = Order.objects.filter(territory__code=code)
        assert sorted(orders.values_list("status", flat=True)) == ["in_progress", "pending_verification"]
        started = orders.get(status="in_progress")
        assert [(e.transition, e.actor.username if e.actor else None) for e in started.events.all()] == [
            ("", f"dr.{code}"),
            ("verify", f"ops.{code}"),
            ("start_fulfillment", f"ops.{code}"),
        ]


def test_output_lists_urls_users_and_counts_but_no_patient_data() -> None:
    output = seed()

    for line in (
        "http://127.0.0.1:8000/admin/",
        "http://127.0.0.1:8000/api/docs/",
        "http://127.0.0.1:8000/api/v1/",
        "admin        superuser    every territory",
        "dr.north     Doctor       north (North Region)",
        "ops.north    Ops staff    north (North Region)",
        "dr.south     Doctor       south (South Region)",
        "ops.south    Ops staff    south (South Region)",
        "Password of every demo user: demo-password (the default; DEMO_PASSWORD changes it)",
        "4 providers, 6 patients, 13 products, 4 orders",
    ):
        assert line in output
    for patient in Patient.objects.all():
        for value in (patient.first_name, patient.last_name, patient.mbi, patient.email, patient.phone):
            assert value is not None
            assert value not in output
