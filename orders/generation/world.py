"""The world generated orders happen in: catalog, lots, territories, people, patients and coverage.

Few rows (territories, users, providers, products) go through the real services and the ORM, so
memberships and their guardian permissions are exactly what ``membership_grant`` grants. Many rows
(patients and their coverage, with their history) are written with COPY through ``TableRows``,
sealed and indexed by the fields' own code.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from catalog.models import Lot, Product, Vendor, Warehouse
from catalog.services import product_create
from core.identifiers import npi_check_digit
from orders.management.commands.seed_demo import LOTS, PRODUCTS, VENDORS, WAREHOUSES
from patients.models import Coverage, Patient, PayerType, Provider, ProviderCredential
from territories.models import Role, Territory
from territories.services import membership_grant, territory_create

from . import content
from .tables import Tables

Progress = Callable[[int], None]

TERRITORY_CODE_PREFIX = "gen-"
LOT_PREFIX = "GEN-"


@dataclass(frozen=True)
class Doctor:
    user_id: uuid.UUID
    provider_id: uuid.UUID


@dataclass(frozen=True)
class PatientRef:
    id: uuid.UUID
    provider_id: uuid.UUID
    created_at: dt.datetime
    state: str
    sex: str
    has_mbi: bool


@dataclass
class TerritoryWorld:
    id: uuid.UUID
    code: str
    region: int
    doctors: list[Doctor]
    ops: list[uuid.UUID]
    patients: dict[str, list[PatientRef]] = field(default_factory=dict)  # by payer profile key

    def doctor_of(self, provider_id: uuid.UUID) -> Doctor:
        return next(doctor for doctor in self.doctors if doctor.provider_id == provider_id)


@dataclass(frozen=True)
class SamplePatient:
    """What was generated for one patient, to check against what the application reads back."""

    id: uuid.UUID
    territory_id: uuid.UUID
    first_name: str
    last_name: str
    date_of_birth: dt.date
    mbi: str | None


def _quarter_start(day: dt.date) -> dt.date:
    return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def quarters_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """The first days of every calendar quarter from ``first``'s to ``last``'s."""
    quarters, day = [], _quarter_start(first)
    while day <= last:
        quarters.append(day)
        day = dt.date(day.year + (day.month + 3 > 12), (day.month + 2) % 12 + 1, 1)
    return quarters


@dataclass
class Catalog:
    products: dict[str, Product]
    warehouse_of: dict[str, uuid.UUID]  # SKU → the warehouse its generated lots are in
    lots: dict[tuple[str, dt.date], uuid.UUID]  # (SKU, quarter start) → lot id


def catalog_ensure(*, first_day: dt.date, last_day: dt.date) -> Catalog:
    """The demo catalog (``seed_demo``'s vendors, warehouses and products, created through
    ``product_create`` when missing) and one generated lot per warehoused product and quarter from
    ``first_day`` to ``last_day``. Lots are created empty: receipts come when the orders are known
    (``lots_receive``)."""
    with transaction.atomic():
        vendors = {
            vendor.code: Vendor.objects.get_or_create(
                code=vendor.code, defaults={"name": vendor.name, "email": vendor.email, "phone": vendor.phone}
            )[0]
            for vendor in VENDORS
        }
        warehouses = {
            warehouse.code: Warehouse.objects.get_or_create(code=warehouse.code, defaults={"name": warehouse.name})[0]
            for warehouse in WAREHOUSES
        }
        existing = {product.sku: product for product in Product.objects.filter(sku__in=[p.sku for p in PRODUCTS])}
        products = {
            spec.sku: existing.get(spec.sku) or product_create(actor=None, data=spec.data(vendor=vendors[spec.vendor]))
            for spec in PRODUCTS
        }
        warehouse_code: dict[str, str] = {}
        for demo_lot in LOTS:
            warehouse_code.setdefault(demo_lot.sku, demo_lot.warehouse)
        warehouse_of = {
            sku: warehouses[warehouse_code.get(sku, "central")].pk
            for sku, product in products.items()
            if product.warehouse_fulfillment
        }
        lots: dict[tuple[str, dt.date], uuid.UUID] = {}
        for lot in Lot.objects.filter(lot_number__startswith=LOT_PREFIX).select_related("product"):
            quarter = _lot_quarter(lot.lot_number)
            if quarter is not None:
                lots[(lot.product.sku, quarter)] = lot.pk
        tables = Tables(Lot)
        for sku in warehouse_of:
            product = products[sku]
            for quarter in quarters_between(first_day, last_day):
                if (sku, quarter) in lots:
                    continue
                lot_id = uuid.uuid4()
                lots[(sku, quarter)] = lot_id
                received = dt.datetime.combine(quarter, dt.time(8), tzinfo=dt.UTC)
                tables[Lot].add(
                    id=lot_id,
                    product_id=product.pk,
                    warehouse_id=warehouse_of[sku],
                    lot_number=_lot_number(quarter, product),
                    # Perishable stock is good for two years from receipt (usable all through its quarter).
                    expiration_date=quarter + dt.timedelta(days=730) if product.is_perishable else None,
                    quantity_on_hand=0,
                    quantity_reserved=0,
                    received_at=received,
                )
        tables.write()
    return Catalog(products=products, warehouse_of=warehouse_of, lots=lots)


def _lot_number(quarter: dt.date, product: Product) -> str:
    """``GEN-2024Q3-1A2B3C``: the quarter it came in, and the product."""
    return f"{LOT_PREFIX}{quarter.year}Q{(quarter.month - 1) // 3 + 1}-{product.pk.hex[:6].upper()}"


def _lot_quarter(lot_number: str) -> dt.date | None:
    """The quarter of a generated lot number ``GEN-2024Q3-…``."""
    try:
        year, quarter = lot_number.removeprefix(LOT_PREFIX).split("-")[0].split("Q")
        return dt.date(int(year), 3 * (int(quarter) - 1) + 1, 1)
    except ValueError:
        return None


def people_ensure(
    *, territories: int, providers_per_territory: int, password: str, rng: random.Random
) -> list[TerritoryWorld]:
    """Territories ``gen-01`` … ``gen-NN`` (created through ``territory_create`` when missing), each
    with ``providers_per_territory`` credentialed providers whose doctors sign in as
    ``gen-01.dr01`` …, and two ops staff ``gen-01.ops1``, ``gen-01.ops2``; memberships through
    ``membership_grant``. Existing ones are reused as they are; every generated user's password is
    set to ``password``."""
    hashed = make_password(password)
    worlds = []
    with transaction.atomic():
        for number in range(1, territories + 1):
            code = f"{TERRITORY_CODE_PREFIX}{number:02d}"
            region = (number - 1) % len(content.REGIONS)
            territory = Territory.objects.filter(code=code).first()
            if territory is None:
                territory = territory_create(code=code, name=f"{content.REGIONS[region][0]} {number:02d}")
            doctors = []
            for index in range(1, providers_per_territory + 1):
                user = _user(f"{code}.dr{index:02d}", hashed, territory=territory, role=Role.DOCTOR, rng=rng)
                provider = Provider.objects.filter(user=user).first() or _provider(territory, user, rng)
                doctors.append(Doctor(user_id=user.pk, provider_id=provider.pk))
            ops = [
                _user(f"{code}.ops{index}", hashed, territory=territory, role=Role.OPS_STAFF, rng=rng).pk
                for index in (1, 2)
            ]
            worlds.append(TerritoryWorld(id=territory.pk, code=code, region=region, doctors=doctors, ops=ops))
    return worlds


def _user(username: str, hashed_password: str, *, territory: Territory, role: str, rng: random.Random) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User.objects.create(
            username=username,
            first_name=rng.choice(content.FIRST_NAMES),
            last_name=rng.choice(content.LAST_NAMES),
            password=hashed_password,
        )
        membership_grant(user=user, territory=territory, role=role)
    elif user.password != hashed_password:
        user.password = hashed_password
        user.save(update_fields=["password"])
    return user


def _provider(territory: Territory, user: User, rng: random.Random) -> Provider:
    while True:
        stem = f"1{rng.randrange(10**8):08d}"
        npi = stem + npi_check_digit(stem)
        if not Provider.objects.filter(npi=npi).exists():
            break
    provider = Provider.objects.create(
        territory=territory,
        name=f"Dr. {user.first_name} {user.last_name}",
        npi=npi,
        credentials=rng.choice(content.PROVIDER_CREDENTIALS),
        user=user,
    )
    # A licence in the territory: the compliance checks hold orders of uncredentialed providers.
    ProviderCredential.objects.create(
        provider=provider,
        territory=territory,
        kind="State medical licence",
        number=f"LIC-{npi[-6:]}",
        valid_from=dt.date(2015, 1, 1),
    )
    return provider


def patients_create(
    *,
    worlds: list[TerritoryWorld],
    count: int,
    first_day: dt.date,
    rng: random.Random,
    batch_size: int,
    progress: Progress,
    samples: int = 5,
) -> list[SamplePatient]:
    """``count`` new patients spread over the territories and their providers, each with the
    coverage of a payer profile (``content.PAYER_PROFILES``) and a history row of each, registered
    between ``first_day`` and yesterday; added to ``worlds``. Returns the first ``samples`` as
    generated."""
    now = timezone.now()
    start = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    span = (now - dt.timedelta(days=1) - start).total_seconds()
    profiles = content.PAYER_PROFILES
    weights = [profile.weight for profile in profiles]
    sample_list: list[SamplePatient] = []
    historical_patient, historical_coverage = Patient.history.model, Coverage.history.model
    tables = Tables(Patient, historical_patient, Coverage, historical_coverage)
    for serial in range(count):
        world = worlds[serial % len(worlds)]
        doctor = world.doctors[(serial // len(worlds)) % len(world.doctors)]
        profile = rng.choices(profiles, weights)[0]
        medicare = profile.key == "medicare"
        who = content.person(rng, region=world.region, medicare=medicare, serial=serial)
        created = start + dt.timedelta(seconds=rng.random() * span)
        patient_id = uuid.uuid4()
        patient = {
            "id": patient_id,
            "territory_id": world.id,
            "provider_id": doctor.provider_id,
            "first_name": who.first_name,
            "last_name": who.last_name,
            "date_of_birth": who.date_of_birth,
            "sex": who.sex,
            "mbi": who.mbi,
            "phone": who.phone,
            "email": who.email,
            "address": who.address,
            "allergies": who.allergies,
            "medications": who.medications,
            "conditions": None,
            "created_at": created,
            "updated_at": created,
        }
        tables[Patient].add(**patient)
        history = {"history_date": created, "history_type": "+", "history_user_id": doctor.user_id}
        tables[historical_patient].add(**patient, **history)
        coverage = _coverage(profile, who, patient_id=patient_id, territory_id=world.id, created=created, rng=rng)
        tables[Coverage].add(**coverage)
        tables[historical_coverage].add(**coverage, **history)
        world.patients.setdefault(profile.key, []).append(
            PatientRef(patient_id, doctor.provider_id, created, who.address["state"], who.sex, medicare)
        )
        if len(sample_list) < samples:
            sample_list.append(
                SamplePatient(patient_id, world.id, who.first_name, who.last_name, who.date_of_birth, who.mbi)
            )
        if len(tables[Patient]) >= batch_size:
            _write(tables, progress)
    _write(tables, progress)
    return sample_list


def _write(tables: Tables, progress: Progress) -> None:
    with transaction.atomic():
        written = tables.write()
    progress(written[Patient._meta.db_table])


def _coverage(
    profile: content.PayerProfile,
    who: content.PersonDetails,
    *,
    patient_id: uuid.UUID,
    territory_id: uuid.UUID,
    created: dt.datetime,
    rng: random.Random,
) -> dict[str, Any]:
    coverage: dict[str, Any] = {
        "id": uuid.uuid4(),
        "territory_id": territory_id,
        "patient_id": patient_id,
        "payer_type": profile.payer_type,
        "payer_kind": profile.payer_kind,
        "effective_from": (created - dt.timedelta(days=30)).date(),
        "active": True,
        "created_at": created,
    }
    if profile.payer_type == PayerType.INSURANCE:
        if who.mbi:
            payer, plan, member_id = "Medicare Part B", "Original Medicare", who.mbi
        else:
            payer, plan = rng.choice(content.COMMERCIAL_PAYERS)
            member_id = f"W{rng.randrange(10**9):09d}"
        coverage.update(payer_name=payer, plan_name=plan, member_id=member_id, coverage_tier="standard")
    return coverage
