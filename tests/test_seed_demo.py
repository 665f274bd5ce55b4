"""``manage.py seed_demo``: the demo data, and that loading it again changes nothing."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.db.models import Sum
from django.test import RequestFactory
from django.utils import timezone

from accounts.models import User
from catalog.models import (
    Lot,
    MovementKind,
    Product,
    PurchaseOrder,
    ReservationStatus,
    StockMovement,
    StockReservation,
    Vendor,
    Warehouse,
)
from catalog.selectors import available_quantities, expiring_lots_report, low_stock_report
from core.identifiers import is_valid_hcpcs, is_valid_mbi, is_valid_npi
from core.models import OutboxEvent
from orders.models import FulfillmentTask, Order, OrderEvent, OrderItem, StockStatus
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
        "vendors": Vendor.objects.count(),
        "warehouses": Warehouse.objects.count(),
        "lots": Lot.objects.count(),
        "stock movements": StockMovement.objects.count(),
        "stock reservations": StockReservation.objects.count(),
        "purchase orders": PurchaseOrder.objects.count(),
        "fulfillment tasks": FulfillmentTask.objects.count(),
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
    "products": 18,
    "vendors": 3,
    "warehouses": 2,
    "lots": 23,
    # 23 receipts, then the 6 order lines reserve from 6 lots.
    "stock movements": 29,
    "stock reservations": 6,
    # Both started orders ship from stock: one pick/pack task each, nothing dropshipped.
    "purchase orders": 0,
    "fulfillment tasks": 2,
    "orders": 4,
    # 4 creations; the hold of south's unsigned order (a colleague's patient); then verify and
    # start_fulfillment on one order per territory.
    "order history": 9,
    "order items": 6,
    # 4 creations, each with its compliance check; the hold; the compliance check before verifying,
    # verify, start_fulfillment and its routing entry on one order per territory.
    "order events": 17,
    # order.created x4; order.held x1; order.verified + order.approved x2; order.fulfillment.started x2;
    # staffing.changed x2 (each started order's pick task, for the workforce agent).
    "outbox events": 13,
}


def test_second_run_changes_nothing() -> None:
    seed()
    assert counts() == EXPECTED_COUNTS
    passwords = dict(User.objects.values_list("username", "password"))
    products_updated = dict(Product.objects.values_list("sku", "updated_at"))
    patients_updated = dict(Patient.objects.values_list("pk", "updated_at"))
    stock = lot_counters()

    seed()

    assert counts() == EXPECTED_COUNTS
    assert dict(User.objects.values_list("username", "password")) == passwords
    assert dict(Product.objects.values_list("sku", "updated_at")) == products_updated
    assert dict(Patient.objects.values_list("pk", "updated_at")) == patients_updated
    assert lot_counters() == stock


def test_second_run_on_a_later_day_receives_nothing_again(monkeypatch: pytest.MonkeyPatch) -> None:
    seed()
    stock = lot_counters()
    later = timezone.localdate() + dt.timedelta(days=45)
    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: later)

    seed()

    assert counts() == EXPECTED_COUNTS
    assert lot_counters() == stock


def test_seed_repairs_a_changed_demo_product() -> None:
    seed()
    Product.objects.filter(sku="RX-TADALAFIL-5MG").update(
        rxnorm_code="999999", rxnorm_name="", dispensing_units_per_unit=60, price_cents=1, active=False
    )

    seed()

    tadalafil = Product.objects.get(sku="RX-TADALAFIL-5MG")
    assert (tadalafil.rxnorm_code, tadalafil.price_cents, tadalafil.active) == ("403957", 3000, True)
    assert (tadalafil.rxnorm_name, tadalafil.dispensing_units_per_unit) == ("tadalafil 5 MG Oral Tablet", 30)
    assert counts() == EXPECTED_COUNTS


def lot_counters() -> dict[tuple[str, str, str], tuple[dt.date | None, int, int]]:
    return {
        (sku, warehouse, number): (expires, on_hand, reserved)
        for sku, warehouse, number, expires, on_hand, reserved in Lot.objects.values_list(
            "product__sku",
            "warehouse__code",
            "lot_number",
            "expiration_date",
            "quantity_on_hand",
            "quantity_reserved",
        )
    }


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


def sign_in_request() -> Any:
    """A sign-in request: django-axes checks every authentication against one."""
    return RequestFactory().post("/accounts/login/")


def test_demo_password_signs_every_user_in() -> None:
    seed()

    for username in DEMO_USERS:
        assert authenticate(request=sign_in_request(), username=username, password="demo-password") == User.objects.get(
            username=username
        )
    assert authenticate(request=sign_in_request(), username="dr.north", password="wrong-password") is None


def test_rerun_resets_passwords_to_demo_password(settings: Any) -> None:
    seed()
    changed = User.objects.get(username="ops.south")
    changed.set_password("someone-changed-it")
    changed.save()
    settings.DEMO_PASSWORD = "another-demo-password"

    output = seed()

    for username in DEMO_USERS:
        assert authenticate(request=sign_in_request(), username=username, password="another-demo-password") is not None
        assert authenticate(request=sign_in_request(), username=username, password="demo-password") is None
    assert authenticate(request=sign_in_request(), username="ops.south", password="someone-changed-it") is None
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


DME_HCPCS = {
    "CPAP-DEVICE": ("E0601", "cpap"),
    "CPAP-MASK-FULL": ("A7030", "cpap"),
    "CPAP-MASK-NASAL": ("A7034", "cpap"),
    "CPAP-HEADGEAR": ("A7035", "cpap"),
    "CPAP-TUBING": ("A7037", "cpap"),
    "CPAP-FILTER-DISPOSABLE": ("A7038", "cpap"),
    "CPAP-WATER-CHAMBER": ("A7046", "cpap"),
    "DIAB-GLUCOSE-MONITOR": ("E0607", "diabetes"),
    "DIAB-TEST-STRIPS-50": ("A4253", "diabetes"),
    "DIAB-LANCETS-100": ("A4259", "diabetes"),
    "MOB-WHEELCHAIR-STANDARD": ("K0001", "mobility"),
    "MOB-WALKER-FOLDING-WHEELED": ("E0143", "mobility"),
    "WOUND-FOAM-BORDER-16": ("A6212", "wound_care"),
}

# SKU: (RxCUI, strength, dose form, therapy type); the sources are in the seed command.
MEDICATIONS = {
    "RX-LIRAGLUTIDE-18MG-PEN": ("897122", "6 mg/mL (18 mg/3 mL)", "Pen Injector", "weight_management"),
    "RX-SILDENAFIL-20MG": ("577033", "20 mg", "Oral Tablet", "ed"),
    "RX-TADALAFIL-5MG": ("403957", "5 mg", "Oral Tablet", "ed"),
    "RX-FINASTERIDE-1MG": ("200172", "1 mg", "Oral Tablet", "hair_loss"),
    "RX-MINOXIDIL-2-5MG": ("197987", "2.5 mg", "Oral Tablet", "hair_loss"),
}


def test_dme_and_supplies_carry_real_hcpcs_codes() -> None:
    seed()

    dme = Product.objects.exclude(hcpcs_code="")
    assert {p.sku: (p.hcpcs_code, p.therapy_type) for p in dme} == DME_HCPCS
    assert all(is_valid_hcpcs(p.hcpcs_code) for p in dme)
    assert {(p.rxnorm_code, p.strength, p.dose_form, p.coverage_tier) for p in dme} == {("", "", "", "standard")}
    assert Product.objects.get(hcpcs_code="A4253").unit == "box of 50"
    assert Product.objects.get(hcpcs_code="A4259").unit == "box of 100"


def test_cash_pay_medications_carry_rxnorm_strength_and_dose_form() -> None:
    seed()

    medications = Product.objects.filter(hcpcs_code="")
    assert {p.sku: (p.rxnorm_code, p.strength, p.dose_form, p.therapy_type) for p in medications} == MEDICATIONS
    assert {p.coverage_tier for p in medications} == {"cash_pay"}
    assert all(p.requires_prescription and p.is_perishable for p in medications)
    assert {p.vendor.code for p in medications if p.vendor} == {"bluewater-pharmacy-wholesale"}
    # Covered by all three cash-pay therapies of seeds 003 and 004.
    assert {p.therapy_type for p in medications} == {"weight_management", "ed", "hair_loss"}


# The RxNorm name of each medication's code and what one unit sold holds in the pharmacy's count.
MEDICATION_DISPENSING = {
    "RX-LIRAGLUTIDE-18MG-PEN": ("3 ML liraglutide 6 MG/ML Pen Injector", "box of 5 pens", "mL", 15),
    "RX-SILDENAFIL-20MG": ("sildenafil 20 MG Oral Tablet", "bottle of 30", "tablet", 30),
    "RX-TADALAFIL-5MG": ("tadalafil 5 MG Oral Tablet", "bottle of 30", "tablet", 30),
    "RX-FINASTERIDE-1MG": ("finasteride 1 MG Oral Tablet", "bottle of 90", "tablet", 90),
    "RX-MINOXIDIL-2-5MG": ("minoxidil 2.5 MG Oral Tablet", "bottle of 30", "tablet", 30),
}


def test_medications_carry_their_rxnorm_name_and_dispensing_unit_and_supplies_none() -> None:
    seed()

    medications = Product.objects.filter(hcpcs_code="")
    assert {
        p.sku: (p.rxnorm_name, p.unit, p.dispensing_unit, p.dispensing_units_per_unit) for p in medications
    } == MEDICATION_DISPENSING
    dme = Product.objects.exclude(hcpcs_code="")
    assert {(p.rxnorm_name, p.dispensing_unit, p.dispensing_units_per_unit) for p in dme} == {("", "", None)}


def test_product_flags_vendors_and_warehouses() -> None:
    seed()

    assert dict(Vendor.objects.values_list("code", "name")) == {
        "prairie-home-medical": "Prairie Home Medical (DME dropship)",
        "bluewater-pharmacy-wholesale": "Bluewater Pharmacy Wholesale",
        "cedar-wound-diabetic-supply": "Cedar Wound & Diabetic Supply",
    }
    assert dict(Warehouse.objects.values_list("code", "name")) == {
        "central": "Central Distribution Center",
        "gulf": "Gulf Coast Warehouse",
    }
    assert set(Product.objects.filter(requires_training=True).values_list("sku", flat=True)) == {
        "CPAP-DEVICE",
        "RX-LIRAGLUTIDE-18MG-PEN",
    }
    assert set(Product.objects.filter(is_perishable=True).values_list("sku", flat=True)) == {
        "DIAB-TEST-STRIPS-50",
        "WOUND-FOAM-BORDER-16",
        *MEDICATIONS,
    }
    assert set(Product.objects.filter(warehouse_fulfillment=False).values_list("sku", flat=True)) == {
        "MOB-WHEELCHAIR-STANDARD"
    }
    assert all(p.vendor is not None for p in Product.objects.filter(dropship_fulfillment=True))
    assert all(0 <= p.reorder_point <= p.par_level for p in Product.objects.all())


def test_stock_is_received_through_the_ledger() -> None:
    today = timezone.localdate()

    seed()

    lots = {(lot.product.sku, lot.warehouse.code, lot.lot_number): lot for lot in Lot.objects.select_related()}
    assert len(lots) == 23
    strips = lots[("DIAB-TEST-STRIPS-50", "central", "TS-24A17")]
    assert (strips.expiration_date, strips.quantity_on_hand) == (today + dt.timedelta(days=21), 40)
    assert lots[("CPAP-DEVICE", "central", "CPD-24-0611")].expiration_date is None
    # Every perishable lot has an expiry date, and every lot's counters are explained by its ledger.
    assert all(lot.expiration_date is not None for lot in lots.values() if lot.product.is_perishable)
    for lot in lots.values():
        moved = lot.movements.aggregate(on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta"))
        assert (moved["on_hand"], moved["reserved"]) == (lot.quantity_on_hand, lot.quantity_reserved)
        assert lot.movements.filter(kind=MovementKind.RECEIPT).count() == 1


def test_stock_alert_conditions_and_a_dropship_only_product_without_stock() -> None:
    today = timezone.localdate()

    seed()

    assert [
        (row.sku, row.available, row.reorder_point, row.suggested_reorder) for row in low_stock_report(today=today)
    ] == [("CPAP-HEADGEAR", 6, 10, 34)]
    assert [(row.sku, row.lot_number, row.days_left) for row in expiring_lots_report(today=today, days=30)] == [
        ("WOUND-FOAM-BORDER-16", "FD-24C21", 18),
        ("DIAB-TEST-STRIPS-50", "TS-24A17", 21),
        ("RX-SILDENAFIL-20MG", "SIL-24K31", 25),
    ]
    wheelchair = Product.objects.get(sku="MOB-WHEELCHAIR-STANDARD")
    assert (wheelchair.fulfillment_modes, wheelchair.vendor.code if wheelchair.vendor else None) == (
        ["dropship"],
        "prairie-home-medical",
    )
    assert not wheelchair.lots.exists()
    assert available_quantities(product_ids=[wheelchair.pk], today=today) == {wheelchair.pk: 0}


def test_demo_orders_reserve_stock_first_expiring_first() -> None:
    seed()

    assert set(OrderItem.objects.values_list("sku", "stock_status")) == {
        ("CPAP-MASK-FULL", StockStatus.RESERVED),
        ("CPAP-FILTER-DISPOSABLE", StockStatus.RESERVED),
        ("DIAB-TEST-STRIPS-50", StockStatus.RESERVED),
        ("DIAB-LANCETS-100", StockStatus.RESERVED),
        ("MOB-WALKER-FOLDING-WHEELED", StockStatus.RESERVED),
        ("WOUND-FOAM-BORDER-16", StockStatus.RESERVED),
    }
    reserved = StockReservation.objects.filter(status=ReservationStatus.ACTIVE)
    assert set(reserved.values_list("lot__lot_number", "quantity")) == {
        ("FFM-24117", 1),
        ("FLT-24140", 2),
        ("TS-24A17", 2),
        ("LN-24070", 1),
        ("WLK-24150", 1),
        ("FD-24C21", 10),
    }
    assert set(FulfillmentTask.objects.values_list("order__territory__code", "kind", "warehouse__code")) == {
        ("north", "pick_pack", "central"),
        ("south", "pick_pack", "gulf"),
    }


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
        # The doctor signs orders for their own provider's patients; south's second order is for a
        # colleague's patient, so it stays unsigned and the compliance checks hold it.
        waiting = {"north": "pending_verification", "south": "on_hold"}[code]
        assert sorted(orders.values_list("status", flat=True)) == ["in_progress", waiting]
        other = orders.get(status=waiting)
        assert (other.signed_by is None, other.ai_disposition) == (
            {"north": (False, "clear"), "south": (True, "hold")}[code]
        )
        if code == "south":
            assert other.events.get(transition="hold").reason == "Compliance: SWO_MISSING_SIGNATURE"
        started = orders.get(status="in_progress")
        assert (started.signed_by.username if started.signed_by else None, started.ai_disposition) == (
            f"dr.{code}",
            "clear",
        )
        assert [(e.kind, e.transition, e.actor.username if e.actor else None) for e in started.events.all()] == [
            ("created", "", f"dr.{code}"),
            # the checks at submission and again before verifying
            ("compliance", "", None),
            ("compliance", "", None),
            ("transition", "verify", f"ops.{code}"),
            ("transition", "start_fulfillment", f"ops.{code}"),
            # Routing: every line ships from the warehouse stock reserved on submission.
            ("fulfillment", "", f"ops.{code}"),
        ]
        assert set(started.items.values_list("fulfillment_path", flat=True)) == {"warehouse"}


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
        "4 providers, 6 patients, 18 products, 4 orders",
        "3 vendors, 2 warehouses, 23 stock lots",
    ):
        assert line in output
    for patient in Patient.objects.all():
        for value in (patient.first_name, patient.last_name, patient.mbi, patient.email, patient.phone):
            assert value is not None
            assert value not in output
