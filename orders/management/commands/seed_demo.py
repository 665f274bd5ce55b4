"""``manage.py seed_demo``: demo territories, users, providers, patients, catalog and orders.

Idempotent: every record is looked up by a stable key (territory code, user name, NPI, SKU, a
patient's name through the blind index) and only created when missing, so a second run changes
nothing and never fails. Demo orders are only placed in a territory that has no orders yet.
Re-running resets the demo users' passwords to ``settings.DEMO_PASSWORD``.

The fictional patients below are demo data; nothing printed here names them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import models, transaction

from catalog.models import Product, TherapyType
from core.audit import with_history_user
from core.identifiers import npi_check_digit
from orders.models import Order
from orders.services import ItemRequest, order_create, order_transition
from patients.models import Coverage, Patient, PayerType, Provider
from patients.selectors import patient_search
from patients.services import patient_create
from territories.models import Role, Territory, TerritoryMembership
from territories.services import membership_grant, territory_create

DEFAULT_DEMO_PASSWORD = "demo-password"
ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    last_name: str
    role: Role


@dataclass(frozen=True)
class DemoProvider:
    name: str
    npi_stem: str  # first nine digits; the check digit is computed
    credentials: str
    username: str | None = None  # the doctor's sign-in account, if any

    @property
    def npi(self) -> str:
        return self.npi_stem + npi_check_digit(self.npi_stem)


@dataclass(frozen=True)
class DemoPatient:
    first_name: str
    last_name: str
    date_of_birth: dt.date
    mbi: str
    phone: str
    email: str
    address: dict[str, str]
    payer_type: PayerType
    provider_index: int  # which of the territory's providers treats them


@dataclass(frozen=True)
class DemoOrder:
    patient_index: int
    items: tuple[tuple[str, int], ...]
    payer_type: PayerType
    service_type: str
    diagnosis_codes: tuple[str, ...]
    notes: str
    start_fulfillment: bool = False


@dataclass(frozen=True)
class DemoTerritory:
    code: str
    name: str
    users: tuple[DemoUser, ...]
    providers: tuple[DemoProvider, ...]
    patients: tuple[DemoPatient, ...]
    orders: tuple[DemoOrder, ...]


def _address(line1: str, city: str, state: str, postal_code: str) -> dict[str, str]:
    return {"line1": line1, "line2": "", "city": city, "state": state, "postal_code": postal_code}


# Prices are typical retail list prices in cents, not any payer's fee schedule.
PRODUCTS: tuple[dict[str, Any], ...] = (
    {
        "sku": "CPAP-DEVICE",
        "name": "CPAP device",
        "hcpcs_code": "E0601",
        "therapy_type": TherapyType.CPAP,
        "price_cents": 65000,
        "unit": "each",
    },
    {
        "sku": "CPAP-MASK-FULL",
        "name": "CPAP full face mask",
        "hcpcs_code": "A7030",
        "therapy_type": TherapyType.CPAP,
        "price_cents": 15500,
        "unit": "each",
    },
    {
        "sku": "CPAP-MASK-NASAL",
        "name": "CPAP nasal interface (mask)",
        "hcpcs_code": "A7034",
        "therapy_type": TherapyType.CPAP,
        "price_cents": 9900,
        "unit": "each",
    },
    {
        "sku": "CPAP-HEADGEAR",
        "name": "CPAP headgear",
        "hcpcs_code": "A7035",
        "therapy_type": TherapyType.CPAP,
        "price_cents": 3200,
        "unit": "each",
    },
    {
        "sku": "CPAP-TUBING",
        "name": "CPAP tubing, 6 ft",
        "hcpcs_code": "A7037",
        "therapy_type": TherapyType.CPAP,
        "price_cents": 2900,
        "unit": "each",
    },
    {
        "sku": "CPAP-FILTER-DISPOSABLE",
        "name": "CPAP filter, disposable",
        "hcpcs_code": "A7038",
        "therapy_type": TherapyType.CPAP,
        "price_cents": 350,
        "unit": "each",
    },
    {
        "sku": "CPAP-WATER-CHAMBER",
        "name": "CPAP humidifier water chamber",
        "hcpcs_code": "A7046",
        "therapy_type": TherapyType.CPAP,
        "price_cents": 2600,
        "unit": "each",
    },
    {
        "sku": "DIAB-GLUCOSE-MONITOR",
        "name": "Home blood glucose monitor",
        "hcpcs_code": "E0607",
        "therapy_type": TherapyType.DIABETES,
        "price_cents": 5900,
        "unit": "each",
    },
    {
        "sku": "DIAB-TEST-STRIPS-50",
        "name": "Blood glucose test strips",
        "hcpcs_code": "A4253",
        "therapy_type": TherapyType.DIABETES,
        "price_cents": 3400,
        "unit": "box of 50",
    },
    {
        "sku": "DIAB-LANCETS-100",
        "name": "Lancets",
        "hcpcs_code": "A4259",
        "therapy_type": TherapyType.DIABETES,
        "price_cents": 1200,
        "unit": "box of 100",
    },
    {
        "sku": "MOB-WHEELCHAIR-STANDARD",
        "name": "Standard wheelchair",
        "hcpcs_code": "K0001",
        "therapy_type": TherapyType.MOBILITY,
        "price_cents": 29900,
        "unit": "each",
    },
    {
        "sku": "MOB-WALKER-FOLDING-WHEELED",
        "name": "Folding walker with wheels",
        "hcpcs_code": "E0143",
        "therapy_type": TherapyType.MOBILITY,
        "price_cents": 8900,
        "unit": "each",
    },
    {
        "sku": "WOUND-FOAM-BORDER-16",
        "name": "Foam dressing with adhesive border, 16 sq in or less",
        "hcpcs_code": "A6212",
        "therapy_type": TherapyType.WOUND_CARE,
        "price_cents": 950,
        "unit": "each",
    },
)

TERRITORIES: tuple[DemoTerritory, ...] = (
    DemoTerritory(
        code="north",
        name="North Region",
        users=(
            DemoUser("dr.north", "Naomi", "Lindqvist", Role.DOCTOR),
            DemoUser("ops.north", "Owen", "Haldane", Role.OPS_STAFF),
        ),
        providers=(
            DemoProvider("Dr. Naomi Lindqvist", "155830101", "MD", username="dr.north"),
            DemoProvider("Dr. Tobias Wrenfield", "155830102", "DO"),
        ),
        patients=(
            DemoPatient(
                "Edith",
                "Calloway",
                dt.date(1946, 4, 12),
                "2HJ7KM3NP48",
                "555-010-1001",
                "edith.calloway@example.org",
                _address("1420 Birchwood Lane", "Duluth", "MN", "55803"),
                PayerType.INSURANCE,
                0,
            ),
            DemoPatient(
                "Bernard",
                "Osterhagen",
                dt.date(1952, 11, 3),
                "3CD9EF1GH25",
                "555-010-1002",
                "bernard.osterhagen@example.org",
                _address("88 Larkspur Court", "Fargo", "ND", "58102"),
                PayerType.INSURANCE,
                1,
            ),
            DemoPatient(
                "Rosalind",
                "Marchetti",
                dt.date(1961, 7, 28),
                "4KT2WX6YA19",
                "555-010-1003",
                "rosalind.marchetti@example.org",
                _address("301 Quarry Road", "Bismarck", "ND", "58501"),
                PayerType.CASH,
                0,
            ),
        ),
        orders=(
            DemoOrder(
                patient_index=0,
                items=(("CPAP-MASK-FULL", 1), ("CPAP-FILTER-DISPOSABLE", 2)),
                payer_type=PayerType.INSURANCE,
                service_type="CPAP resupply",
                diagnosis_codes=("G47.33",),
                notes="Quarterly CPAP resupply.",
                start_fulfillment=True,
            ),
            DemoOrder(
                patient_index=2,
                items=(("DIAB-TEST-STRIPS-50", 2), ("DIAB-LANCETS-100", 1)),
                payer_type=PayerType.CASH,
                service_type="Diabetes testing supplies",
                diagnosis_codes=("E11.9",),
                notes="Tests twice a day.",
            ),
        ),
    ),
    DemoTerritory(
        code="south",
        name="South Region",
        users=(
            DemoUser("dr.south", "Samuel", "Achebe-Ward", Role.DOCTOR),
            DemoUser("ops.south", "Paloma", "Reyes", Role.OPS_STAFF),
        ),
        providers=(
            DemoProvider("Dr. Samuel Achebe-Ward", "165830201", "MD", username="dr.south"),
            DemoProvider("Dr. Imogen Castellano", "165830202", "NP"),
        ),
        patients=(
            DemoPatient(
                "Clarence",
                "Abernathy",
                dt.date(1944, 2, 19),
                "5MN3QR8TU62",
                "555-010-2001",
                "clarence.abernathy@example.org",
                _address("12 Magnolia Bend", "Mobile", "AL", "36602"),
                PayerType.INSURANCE,
                0,
            ),
            DemoPatient(
                "Yolanda",
                "Pruitt",
                dt.date(1957, 9, 6),
                "6PA5RC2VW37",
                "555-010-2002",
                "yolanda.pruitt@example.org",
                _address("4077 Cypress Hollow Drive", "Baton Rouge", "LA", "70808"),
                PayerType.INSURANCE,
                1,
            ),
            DemoPatient(
                "Desmond",
                "Okonkwo-Hale",
                dt.date(1968, 5, 30),
                "7UV1XY4AC80",
                "555-010-2003",
                "desmond.okonkwo-hale@example.org",
                _address("590 Pelican Way", "Gulfport", "MS", "39501"),
                PayerType.CASH,
                1,
            ),
        ),
        orders=(
            DemoOrder(
                patient_index=0,
                items=(("MOB-WALKER-FOLDING-WHEELED", 1),),
                payer_type=PayerType.INSURANCE,
                service_type="Mobility aid",
                diagnosis_codes=("M17.11",),
                notes="Unsteady gait after knee surgery.",
                start_fulfillment=True,
            ),
            DemoOrder(
                patient_index=1,
                items=(("WOUND-FOAM-BORDER-16", 10),),
                payer_type=PayerType.INSURANCE,
                service_type="Wound care",
                diagnosis_codes=("L97.412",),
                notes="Change dressing every other day.",
            ),
        ),
    ),
)


def _update_changed(instance: models.Model, values: dict[str, Any]) -> bool:
    """Set ``values`` on ``instance`` and save only if one of them differs. Returns True if saved."""
    changed = [name for name, value in values.items() if getattr(instance, name) != value]
    for name in changed:
        setattr(instance, name, values[name])
    if changed:
        instance.full_clean()
        instance.save()
    return bool(changed)


class Command(BaseCommand):
    help = "Load the demo territories, users, providers, patients, catalog and orders (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            admin = self._admin()
            products = self._products()
            for spec in TERRITORIES:
                self._territory(spec, admin=admin, products=products)
        self._print_summary()

    # --- people ------------------------------------------------------------------------------
    def _user(self, username: str, *, first_name: str, last_name: str) -> Any:
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=username, defaults={"first_name": first_name, "last_name": last_name}
        )
        # Reset the password on every run, but only write when it differs (a re-hash would be a change).
        if created or not user.check_password(settings.DEMO_PASSWORD):
            user.set_password(settings.DEMO_PASSWORD)
            user.save(update_fields=["password"])
        if not user.is_active:
            user.is_active = True
            user.save(update_fields=["is_active"])
        return user

    def _admin(self) -> Any:
        admin = self._user(ADMIN_USERNAME, first_name="Demo", last_name="Admin")
        if not (admin.is_superuser and admin.is_staff):
            admin.is_superuser = True
            admin.is_staff = True
            admin.save(update_fields=["is_superuser", "is_staff"])
        return admin

    # --- catalog -----------------------------------------------------------------------------
    def _products(self) -> dict[str, Product]:
        products: dict[str, Product] = {}
        for values in PRODUCTS:
            defaults = {key: value for key, value in values.items() if key != "sku"}
            defaults.setdefault("requires_prescription", True)
            defaults.setdefault("active", True)
            product = Product.objects.filter(sku=values["sku"]).first()
            if product is None:
                product = Product(sku=values["sku"], **defaults)
                product.full_clean()
                product.save()
            else:
                _update_changed(product, defaults)
            products[product.sku] = product
        return products

    # --- one territory -----------------------------------------------------------------------
    def _territory(self, spec: DemoTerritory, *, admin: Any, products: dict[str, Product]) -> None:
        territory = Territory.objects.filter(code=spec.code).first()
        if territory is None:
            territory = territory_create(code=spec.code, name=spec.name)

        users = {}
        for demo_user in spec.users:
            user = self._user(demo_user.username, first_name=demo_user.first_name, last_name=demo_user.last_name)
            membership_grant(user=user, territory=territory, role=demo_user.role)
            users[demo_user.role] = user

        providers = [self._provider(demo_provider, territory=territory) for demo_provider in spec.providers]
        patients = [
            self._patient(demo_patient, actor=admin, territory=territory, providers=providers)
            for demo_patient in spec.patients
        ]

        if not Order.objects.filter(territory=territory).exists():
            for demo_order in spec.orders:
                self._order(
                    demo_order,
                    patient=patients[demo_order.patient_index],
                    doctor=users[Role.DOCTOR],
                    ops=users[Role.OPS_STAFF],
                    products=products,
                )

    def _provider(self, spec: DemoProvider, *, territory: Territory) -> Provider:
        user = get_user_model().objects.get(username=spec.username) if spec.username else None
        values = {"territory": territory, "name": spec.name, "credentials": spec.credentials, "user": user}
        provider = Provider.objects.filter(npi=spec.npi).first()
        if provider is None:
            provider = Provider(npi=spec.npi, **values)
            provider.full_clean()
            provider.save()
        else:
            _update_changed(provider, {**values, "active": True})
        return provider

    def _patient(self, spec: DemoPatient, *, actor: Any, territory: Territory, providers: list[Provider]) -> Patient:
        # Names are encrypted: find an earlier run's patient through the blind index.
        patient = (
            patient_search(user=actor, query=f"{spec.first_name} {spec.last_name}", territory=territory)
            .order_by("created_at")
            .first()
        )
        if patient is None:
            patient = patient_create(
                actor=actor,
                provider_id=providers[spec.provider_index].pk,
                first_name=spec.first_name,
                last_name=spec.last_name,
                date_of_birth=spec.date_of_birth,
                mbi=spec.mbi,
                phone=spec.phone,
                email=spec.email,
                address=spec.address,
                territory=territory,
            )
        if not patient.coverages.exists():
            coverage = Coverage(territory=territory, patient=patient, payer_type=spec.payer_type, active=True)
            if spec.payer_type == PayerType.INSURANCE:
                coverage.payer_name = "Medicare Part B"
                coverage.plan_name = "Original Medicare"
                coverage.member_id = spec.mbi
                coverage.coverage_tier = "standard"
                coverage.effective_from = dt.date(2024, 1, 1)
            with_history_user(coverage, actor)
            coverage.save()
        return patient

    def _order(
        self, spec: DemoOrder, *, patient: Patient, doctor: Any, ops: Any, products: dict[str, Product]
    ) -> Order:
        insurance = None
        if spec.payer_type == PayerType.INSURANCE:
            insurance = {"carrier": "Medicare Part B", "policy_number": patient.mbi or "", "group_number": ""}
        order = order_create(
            actor=doctor,
            patient_id=patient.pk,
            provider_id=patient.provider_id,
            items=[ItemRequest(sku=products[sku].sku, quantity=quantity) for sku, quantity in spec.items],
            payer_type=spec.payer_type,
            service_type=spec.service_type,
            diagnosis_codes=spec.diagnosis_codes,
            notes=spec.notes,
            insurance=insurance,
        )
        if spec.start_fulfillment:
            order_transition(
                order_id=order.pk,
                actor=ops,
                transition="verify",
                reason="Demo: prescription and coverage checked.",
                verification_data={"verified_by": ops.username, "verification_method": "demo"},
            )
            order = order_transition(order_id=order.pk, actor=ops, transition="start_fulfillment")
        return order

    # --- output ------------------------------------------------------------------------------
    def _print_summary(self) -> None:
        out = self.stdout
        out.write(self.style.SUCCESS("Demo data is loaded."))
        out.write("")
        out.write("  Back office (Django admin)  http://127.0.0.1:8000/admin/")
        out.write("  API docs (Swagger UI)       http://127.0.0.1:8000/api/docs/")
        out.write("  REST API                    http://127.0.0.1:8000/api/v1/")
        out.write("")
        out.write(f"  {'user':<12} {'role':<12} territory")
        out.write(f"  {ADMIN_USERNAME:<12} {'superuser':<12} every territory")
        memberships = (
            TerritoryMembership.objects.filter(
                user__username__in=[u.username for t in TERRITORIES for u in t.users],
                territory__code__in=[t.code for t in TERRITORIES],
            )
            .select_related("user", "territory")
            .order_by("territory__code", "role", "user__username")
        )
        for membership in memberships:
            out.write(
                f"  {membership.user.username:<12} {membership.get_role_display():<12} "
                f"{membership.territory.code} ({membership.territory.name})"
            )
        out.write("")
        if settings.DEMO_PASSWORD == DEFAULT_DEMO_PASSWORD:
            out.write(f"  Password of every demo user: {DEFAULT_DEMO_PASSWORD} (the default; DEMO_PASSWORD changes it)")
        else:
            out.write("  Password of every demo user: the value of DEMO_PASSWORD")
        out.write("")
        out.write(
            f"  {Provider.objects.count()} providers, {Patient.objects.count()} patients, "
            f"{Product.objects.count()} products, {Order.objects.count()} orders"
        )
