"""``manage.py seed_demo``: demo territories, users, providers, patients, catalog, stock and orders.

Idempotent: every record is looked up by a stable key (territory code, user name, NPI, vendor and
warehouse code, SKU, lot number, a patient's name through the blind index) and only created when
missing, so a second run changes nothing and never fails. Stock only enters through
``catalog.services.lot_receive``, once per demo lot. Demo orders are only placed in a territory
that has no orders yet (they reserve stock like any order). Re-running resets the demo users'
passwords to ``settings.DEMO_PASSWORD``.

The fictional patients below are demo data; nothing printed here names them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import models, transaction
from django.utils import timezone

from catalog.models import Lot, Product, TherapyType, Vendor, Warehouse
from catalog.services import ProductData, lot_receive, product_create, product_update
from core.audit import with_history_user
from core.identifiers import npi_check_digit
from orders.models import Order
from orders.services import ItemRequest, order_create, order_transition
from patients.models import AdministrativeSex, Coverage, Patient, PayerKind, PayerType, Provider, ProviderCredential
from patients.selectors import patient_search
from patients.services import patient_create
from territories.models import Role, Territory, TerritoryMembership
from territories.services import membership_grant, territory_create

DEFAULT_DEMO_PASSWORD = "demo-password"
ADMIN_USERNAME = "admin"
ADMIN_EMAIL = "admin@demo-medical-supply.example"


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
    sex: AdministrativeSex


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


# --- catalog --------------------------------------------------------------------------------
# Vendors and warehouses are fictional; product codes are real. Prices are typical retail list
# prices in cents, not any payer's fee schedule.


@dataclass(frozen=True)
class DemoVendor:
    code: str
    name: str
    email: str
    phone: str


@dataclass(frozen=True)
class DemoWarehouse:
    code: str
    name: str


@dataclass(frozen=True, kw_only=True)
class DemoProduct:
    """A catalog entry; ``vendor`` is a DemoVendor code. Fields as ``catalog.services.ProductData``."""

    sku: str
    name: str
    therapy_type: str
    price_cents: int
    unit: str
    coverage_tier: str
    par_level: int
    reorder_point: int
    vendor: str
    hcpcs_code: str = ""
    rxnorm_code: str = ""
    # Medications: the RxNorm name of rxnorm_code, and what the pharmacy counts (the FHIR dispense quantity).
    rxnorm_name: str = ""
    dispensing_unit: str = ""
    dispensing_units_per_unit: int | None = None
    strength: str = ""
    dose_form: str = ""
    is_perishable: bool = False
    requires_training: bool = False
    # Supplied on a recurring basis (refill rules apply); days_of_supply for one without a usual maximum.
    recurring: bool = False
    days_of_supply: int | None = None
    fulfillment_modes: tuple[str, ...] = ("warehouse",)

    def data(self, *, vendor: Vendor) -> ProductData:
        return ProductData(
            sku=self.sku,
            name=self.name,
            therapy_type=self.therapy_type,
            price_cents=self.price_cents,
            hcpcs_code=self.hcpcs_code,
            rxnorm_code=self.rxnorm_code,
            rxnorm_name=self.rxnorm_name,
            strength=self.strength,
            dose_form=self.dose_form,
            coverage_tier=self.coverage_tier,
            unit=self.unit,
            dispensing_unit=self.dispensing_unit,
            dispensing_units_per_unit=self.dispensing_units_per_unit,
            requires_prescription=True,
            is_perishable=self.is_perishable,
            requires_training=self.requires_training,
            recurring=self.recurring,
            days_of_supply=self.days_of_supply,
            par_level=self.par_level,
            reorder_point=self.reorder_point,
            fulfillment_modes=self.fulfillment_modes,
            vendor=vendor,
            active=True,
        )


@dataclass(frozen=True)
class DemoLot:
    """A lot received into a warehouse; it expires ``expires_in_days`` after the first seeding day."""

    sku: str
    warehouse: str
    lot_number: str
    quantity: int
    expires_in_days: int | None = None


DME_VENDOR = "prairie-home-medical"
PHARMACY_VENDOR = "bluewater-pharmacy-wholesale"
SUPPLY_VENDOR = "cedar-wound-diabetic-supply"

VENDORS: tuple[DemoVendor, ...] = (
    DemoVendor(
        DME_VENDOR, "Prairie Home Medical (DME dropship)", "orders@prairie-home-medical.example.com", "555-020-3001"
    ),
    DemoVendor(PHARMACY_VENDOR, "Bluewater Pharmacy Wholesale", "orders@bluewater-rx.example.com", "555-020-3002"),
    DemoVendor(SUPPLY_VENDOR, "Cedar Wound & Diabetic Supply", "orders@cedar-supply.example.com", "555-020-3003"),
)

WAREHOUSES: tuple[DemoWarehouse, ...] = (
    DemoWarehouse("central", "Central Distribution Center"),
    DemoWarehouse("gulf", "Gulf Coast Warehouse"),
)

BOTH_MODES = ("warehouse", "dropship")
STANDARD = "standard"
CASH_PAY = "cash_pay"

# HCPCS codes and their descriptions checked against the CMS HCPCS Level II file as mirrored in
# github.com/wamuir/hcpcs (groups/a.md, groups/e.md, groups/k.md).
DME_PRODUCTS: tuple[DemoProduct, ...] = (
    # E0601 Continuous positive airway pressure (CPAP) device.
    DemoProduct(
        sku="CPAP-DEVICE",
        name="CPAP device",
        therapy_type=TherapyType.CPAP,
        price_cents=65000,
        unit="each",
        coverage_tier=STANDARD,
        par_level=6,
        reorder_point=2,
        vendor=DME_VENDOR,
        hcpcs_code="E0601",
        requires_training=True,
        fulfillment_modes=BOTH_MODES,
    ),
    # A7030 Full face mask used with positive airway pressure device, each.
    DemoProduct(
        sku="CPAP-MASK-FULL",
        name="CPAP full face mask",
        therapy_type=TherapyType.CPAP,
        price_cents=15500,
        unit="each",
        coverage_tier=STANDARD,
        par_level=30,
        reorder_point=8,
        vendor=DME_VENDOR,
        hcpcs_code="A7030",
        recurring=True,
        fulfillment_modes=BOTH_MODES,
    ),
    # A7034 Nasal interface (mask or cannula type) used with positive airway pressure device.
    DemoProduct(
        sku="CPAP-MASK-NASAL",
        name="CPAP nasal interface (mask)",
        therapy_type=TherapyType.CPAP,
        price_cents=9900,
        unit="each",
        coverage_tier=STANDARD,
        par_level=30,
        reorder_point=8,
        vendor=DME_VENDOR,
        hcpcs_code="A7034",
        recurring=True,
    ),
    # A7035 Headgear used with positive airway pressure device. Stocked below its reorder point.
    DemoProduct(
        sku="CPAP-HEADGEAR",
        name="CPAP headgear",
        therapy_type=TherapyType.CPAP,
        price_cents=3200,
        unit="each",
        coverage_tier=STANDARD,
        par_level=40,
        reorder_point=10,
        vendor=DME_VENDOR,
        hcpcs_code="A7035",
        recurring=True,
    ),
    # A7037 Tubing used with positive airway pressure device.
    DemoProduct(
        sku="CPAP-TUBING",
        name="CPAP tubing, 6 ft",
        therapy_type=TherapyType.CPAP,
        price_cents=2900,
        unit="each",
        coverage_tier=STANDARD,
        par_level=40,
        reorder_point=10,
        vendor=DME_VENDOR,
        hcpcs_code="A7037",
        recurring=True,
    ),
    # A7038 Filter, disposable, used with positive airway pressure device.
    DemoProduct(
        sku="CPAP-FILTER-DISPOSABLE",
        name="CPAP filter, disposable",
        therapy_type=TherapyType.CPAP,
        price_cents=350,
        unit="each",
        coverage_tier=STANDARD,
        par_level=200,
        reorder_point=50,
        vendor=DME_VENDOR,
        hcpcs_code="A7038",
        recurring=True,
    ),
    # A7046 Water chamber for humidifier, used with positive airway pressure device, replacement, each.
    DemoProduct(
        sku="CPAP-WATER-CHAMBER",
        name="CPAP humidifier water chamber",
        therapy_type=TherapyType.CPAP,
        price_cents=2600,
        unit="each",
        coverage_tier=STANDARD,
        par_level=20,
        reorder_point=5,
        vendor=DME_VENDOR,
        hcpcs_code="A7046",
        recurring=True,
    ),
    # E0607 Home blood glucose monitor.
    DemoProduct(
        sku="DIAB-GLUCOSE-MONITOR",
        name="Home blood glucose monitor",
        therapy_type=TherapyType.DIABETES,
        price_cents=5900,
        unit="each",
        coverage_tier=STANDARD,
        par_level=20,
        reorder_point=5,
        vendor=SUPPLY_VENDOR,
        hcpcs_code="E0607",
    ),
    # A4253 Blood glucose test or reagent strips for home blood glucose monitor, per 50 strips.
    DemoProduct(
        sku="DIAB-TEST-STRIPS-50",
        name="Blood glucose test strips",
        therapy_type=TherapyType.DIABETES,
        price_cents=3400,
        unit="box of 50",
        coverage_tier=STANDARD,
        par_level=120,
        reorder_point=30,
        vendor=SUPPLY_VENDOR,
        hcpcs_code="A4253",
        recurring=True,
        is_perishable=True,
        fulfillment_modes=BOTH_MODES,
    ),
    # A4259 Lancets, per box of 100.
    DemoProduct(
        sku="DIAB-LANCETS-100",
        name="Lancets",
        therapy_type=TherapyType.DIABETES,
        price_cents=1200,
        unit="box of 100",
        coverage_tier=STANDARD,
        par_level=80,
        reorder_point=20,
        vendor=SUPPLY_VENDOR,
        hcpcs_code="A4259",
        recurring=True,
    ),
    # K0001 Standard wheelchair. Dropshipped by the DME vendor only: never stocked.
    DemoProduct(
        sku="MOB-WHEELCHAIR-STANDARD",
        name="Standard wheelchair",
        therapy_type=TherapyType.MOBILITY,
        price_cents=29900,
        unit="each",
        coverage_tier=STANDARD,
        par_level=0,
        reorder_point=0,
        vendor=DME_VENDOR,
        hcpcs_code="K0001",
        fulfillment_modes=("dropship",),
    ),
    # E0143 Walker, folding, wheeled, adjustable or fixed height.
    DemoProduct(
        sku="MOB-WALKER-FOLDING-WHEELED",
        name="Folding walker with wheels",
        therapy_type=TherapyType.MOBILITY,
        price_cents=8900,
        unit="each",
        coverage_tier=STANDARD,
        par_level=12,
        reorder_point=3,
        vendor=DME_VENDOR,
        hcpcs_code="E0143",
        fulfillment_modes=BOTH_MODES,
    ),
    # A6212 Foam dressing, wound cover, sterile, pad size 16 sq. in. or less, with any size adhesive border.
    DemoProduct(
        sku="WOUND-FOAM-BORDER-16",
        name="Foam dressing with adhesive border, 16 sq in or less",
        therapy_type=TherapyType.WOUND_CARE,
        price_cents=950,
        unit="each",
        coverage_tier=STANDARD,
        par_level=300,
        reorder_point=60,
        vendor=SUPPLY_VENDOR,
        hcpcs_code="A6212",
        recurring=True,
        # One dressing lasts about 2 days (a foam dressing with border changed up to 3 times a week:
        # a demo figure, the surgical dressings LCD L33831 change frequencies were not confirmed).
        days_of_supply=2,
        is_perishable=True,
    ),
)

# Cash-pay prescriptions (issue 3, seeds 003 and 004). Each RxNorm code (RxCUI, an SCD: ingredient,
# strength, dose form) was confirmed in a stored source that pairs it with that drug and strength;
# "openFDA NDC" means an api.fda.gov/drug/ndc.json record for a single-strength product whose
# openfda.rxcui lists only that code. Medications are perishable (every lot has an expiry date);
# the injection pen needs patient training.
# rxnorm_name is the RxNorm name (SCD) of the code, as compliance/rules/medication_safety.toml's comments
# on rxnorm_products give it; each was also found paired with its code in stored public code (Synthea's
# medication lookup for 897122; RxNorm concept fixtures for 403957 and 197987). dispensing_units_per_unit
# is the count of dispensing units in the catalog unit sold ("bottle of 30": 30 tablets).
MEDICATION_PRODUCTS: tuple[DemoProduct, ...] = (
    # RxCUI 897122 (liraglutide 6 mg/mL, 3 mL pen injector): openFDA drug shortages records for
    # liraglutide injection 0143-9144 and 71288-563, openfda.rxcui ["897122"]
    # (https://api.fda.gov/drug/shortages.json?search=generic_name%3Aliraglutide).
    DemoProduct(
        sku="RX-LIRAGLUTIDE-18MG-PEN",
        name="Liraglutide 18 mg/3 mL pen injector",
        therapy_type=TherapyType.WEIGHT_MANAGEMENT,
        price_cents=79900,
        unit="box of 5 pens",
        coverage_tier=CASH_PAY,
        par_level=20,
        reorder_point=5,
        vendor=PHARMACY_VENDOR,
        rxnorm_code="897122",
        rxnorm_name="3 ML liraglutide 6 MG/ML Pen Injector",
        strength="6 mg/mL (18 mg/3 mL)",
        dose_form="Pen Injector",
        # Counted in mL, as pharmacies bill pen injectors: NCPDP Billing Unit Standard 5.2.2, applied to
        # insulin pens by NCPDP Work Group 2's QUIC resolution of 2017-11-08
        # (https://standards.ncpdp.org/Standards-QUIC-Form-Resolutions). 5 pens of 3 mL are 15 mL.
        dispensing_unit="mL",
        dispensing_units_per_unit=15,
        is_perishable=True,
        requires_training=True,
        fulfillment_modes=BOTH_MODES,
    ),
    # RxCUI 577033 (sildenafil 20 MG Oral Tablet): openFDA NDC 62135-372, 60687-788, 82804-243 and
    # 33342-536, sildenafil citrate 20 mg/1 film-coated tablet, openfda.rxcui ["577033"]
    # (https://api.fda.gov/drug/ndc.json?search=product_ndc%3A%2282804-243%22).
    DemoProduct(
        sku="RX-SILDENAFIL-20MG",
        name="Sildenafil 20 mg tablet",
        therapy_type=TherapyType.ED,
        price_cents=2400,
        unit="bottle of 30",
        coverage_tier=CASH_PAY,
        par_level=120,
        reorder_point=30,
        vendor=PHARMACY_VENDOR,
        rxnorm_code="577033",
        rxnorm_name="sildenafil 20 MG Oral Tablet",
        dispensing_unit="tablet",
        dispensing_units_per_unit=30,
        strength="20 mg",
        dose_form="Oral Tablet",
        is_perishable=True,
        fulfillment_modes=BOTH_MODES,
    ),
    # RxCUI 403957 (tadalafil 5 MG Oral Tablet): openFDA NDC 71335-1884 and 51655-487, tadalafil
    # 5 mg/1 film-coated tablet, openfda.rxcui ["403957"]
    # (https://api.fda.gov/drug/ndc.json?search=product_ndc%3A%2251655-487%22).
    DemoProduct(
        sku="RX-TADALAFIL-5MG",
        name="Tadalafil 5 mg tablet",
        therapy_type=TherapyType.ED,
        price_cents=3000,
        unit="bottle of 30",
        coverage_tier=CASH_PAY,
        par_level=80,
        reorder_point=20,
        vendor=PHARMACY_VENDOR,
        rxnorm_code="403957",
        rxnorm_name="tadalafil 5 MG Oral Tablet",
        dispensing_unit="tablet",
        dispensing_units_per_unit=30,
        strength="5 mg",
        dose_form="Oral Tablet",
        is_perishable=True,
        fulfillment_modes=BOTH_MODES,
    ),
    # RxCUI 200172 (finasteride 1 MG Oral Tablet): openFDA NDC 68071-3744, 68071-4808 and 57237-061,
    # finasteride 1 mg/1 tablet, openfda.rxcui ["200172"]
    # (https://api.fda.gov/drug/ndc.json?search=product_ndc%3A%2257237-061%22).
    DemoProduct(
        sku="RX-FINASTERIDE-1MG",
        name="Finasteride 1 mg tablet",
        therapy_type=TherapyType.HAIR_LOSS,
        price_cents=2700,
        unit="bottle of 90",
        coverage_tier=CASH_PAY,
        par_level=100,
        reorder_point=25,
        vendor=PHARMACY_VENDOR,
        rxnorm_code="200172",
        rxnorm_name="finasteride 1 MG Oral Tablet",
        dispensing_unit="tablet",
        dispensing_units_per_unit=90,
        strength="1 mg",
        dose_form="Oral Tablet",
        is_perishable=True,
        fulfillment_modes=BOTH_MODES,
    ),
    # RxCUI 197987 (minoxidil 2.5 MG Oral Tablet): openFDA NDC 43353-342 and 82804-240, minoxidil
    # 2.5 mg/1 tablet, openfda.rxcui ["197987"]
    # (https://api.fda.gov/drug/ndc.json?search=packaging.package_ndc%3A%2282804-240-30%22).
    DemoProduct(
        sku="RX-MINOXIDIL-2-5MG",
        name="Minoxidil 2.5 mg tablet",
        therapy_type=TherapyType.HAIR_LOSS,
        price_cents=1500,
        unit="bottle of 30",
        coverage_tier=CASH_PAY,
        par_level=60,
        reorder_point=15,
        vendor=PHARMACY_VENDOR,
        rxnorm_code="197987",
        rxnorm_name="minoxidil 2.5 MG Oral Tablet",
        dispensing_unit="tablet",
        dispensing_units_per_unit=30,
        strength="2.5 mg",
        dose_form="Oral Tablet",
        is_perishable=True,
    ),
)

PRODUCTS: tuple[DemoProduct, ...] = DME_PRODUCTS + MEDICATION_PRODUCTS

# The demo's stock. Lot numbers are stable keys: a lot that exists is never received again, so
# expiry dates stay those of the first seeding day. Some lots expire within the stock alert
# window (30 days by default), CPAP headgear sits below its reorder point, and the standard
# wheelchair (dropship only) has no stock at all.
LOTS: tuple[DemoLot, ...] = (
    DemoLot("CPAP-DEVICE", "central", "CPD-24-0611", 5),
    DemoLot("CPAP-MASK-FULL", "central", "FFM-24117", 18),
    DemoLot("CPAP-MASK-NASAL", "central", "NSM-24052", 20),
    DemoLot("CPAP-HEADGEAR", "central", "HG-23310", 6),
    DemoLot("CPAP-TUBING", "central", "TUB-24088", 35),
    DemoLot("CPAP-TUBING", "gulf", "TUB-24091", 15),
    DemoLot("CPAP-FILTER-DISPOSABLE", "central", "FLT-24140", 150),
    DemoLot("CPAP-WATER-CHAMBER", "central", "WC-24033", 12),
    DemoLot("DIAB-GLUCOSE-MONITOR", "central", "GM-24019", 14),
    DemoLot("DIAB-TEST-STRIPS-50", "central", "TS-24A17", 40, expires_in_days=21),
    DemoLot("DIAB-TEST-STRIPS-50", "central", "TS-25B03", 160, expires_in_days=420),
    DemoLot("DIAB-TEST-STRIPS-50", "gulf", "TS-25B04", 60, expires_in_days=420),
    DemoLot("DIAB-LANCETS-100", "central", "LN-24070", 90),
    DemoLot("MOB-WALKER-FOLDING-WHEELED", "gulf", "WLK-24150", 8),
    DemoLot("WOUND-FOAM-BORDER-16", "gulf", "FD-24C21", 30, expires_in_days=18),
    DemoLot("WOUND-FOAM-BORDER-16", "gulf", "FD-25A09", 200, expires_in_days=600),
    DemoLot("RX-LIRAGLUTIDE-18MG-PEN", "central", "LIR-25A114", 12, expires_in_days=210),
    DemoLot("RX-SILDENAFIL-20MG", "central", "SIL-24K31", 25, expires_in_days=25),
    DemoLot("RX-SILDENAFIL-20MG", "central", "SIL-25F02", 120, expires_in_days=700),
    DemoLot("RX-TADALAFIL-5MG", "central", "TAD-25C18", 80, expires_in_days=540),
    DemoLot("RX-FINASTERIDE-1MG", "central", "FIN-25B27", 100, expires_in_days=600),
    DemoLot("RX-FINASTERIDE-1MG", "gulf", "FIN-25B28", 40, expires_in_days=600),
    DemoLot("RX-MINOXIDIL-2-5MG", "central", "MNX-25D04", 60, expires_in_days=480),
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
                sex=AdministrativeSex.FEMALE,
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
                sex=AdministrativeSex.MALE,
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
                sex=AdministrativeSex.FEMALE,
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
                sex=AdministrativeSex.MALE,
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
                sex=AdministrativeSex.FEMALE,
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
                sex=AdministrativeSex.MALE,
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


def _product_differs(product: Product, data: ProductData) -> bool:
    """True when saving ``data`` would change ``product`` (so an unchanged product is never re-saved)."""
    for field in dataclasses.fields(ProductData):
        value = getattr(data, field.name)
        if field.name == "fulfillment_modes":
            if tuple(product.fulfillment_modes) != tuple(value):
                return True
        elif field.name == "vendor":
            if product.vendor_id != (value.pk if value is not None else None):
                return True
        elif getattr(product, field.name) != value:
            return True
    return False


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
            vendors = self._vendors()
            warehouses = self._warehouses()
            products = self._products(vendors=vendors)
            self._lots(products=products, warehouses=warehouses)
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
        if not (admin.is_superuser and admin.is_staff and admin.email):
            admin.is_superuser = True
            admin.is_staff = True
            # Stock alerts are emailed to the admins (the console in the embedded default).
            admin.email = admin.email or ADMIN_EMAIL
            admin.save(update_fields=["is_superuser", "is_staff", "email"])
        return admin

    # --- catalog -----------------------------------------------------------------------------
    def _vendors(self) -> dict[str, Vendor]:
        vendors: dict[str, Vendor] = {}
        for spec in VENDORS:
            values = {"name": spec.name, "email": spec.email, "phone": spec.phone, "active": True}
            vendor = Vendor.objects.filter(code=spec.code).first()
            if vendor is None:
                vendor = Vendor(code=spec.code, **values)
                vendor.full_clean()
                vendor.save()
            else:
                _update_changed(vendor, values)
            vendors[spec.code] = vendor
        return vendors

    def _warehouses(self) -> dict[str, Warehouse]:
        warehouses: dict[str, Warehouse] = {}
        for spec in WAREHOUSES:
            warehouse = Warehouse.objects.filter(code=spec.code).first()
            if warehouse is None:
                warehouse = Warehouse(code=spec.code, name=spec.name)
                warehouse.full_clean()
                warehouse.save()
            else:
                _update_changed(warehouse, {"name": spec.name, "active": True})
            warehouses[spec.code] = warehouse
        return warehouses

    def _products(self, *, vendors: dict[str, Vendor]) -> dict[str, Product]:
        """Create missing products and bring changed ones up to date, through the catalog services."""
        existing = {p.sku: p for p in Product.objects.filter(sku__in=[spec.sku for spec in PRODUCTS])}
        products: dict[str, Product] = {}
        for spec in PRODUCTS:
            data = spec.data(vendor=vendors[spec.vendor])
            product = existing.get(spec.sku)
            if product is None:
                product = product_create(actor=None, data=data)
            elif _product_differs(product, data):
                product = product_update(actor=None, product=product, data=data)
            products[spec.sku] = product
        return products

    def _lots(self, *, products: dict[str, Product], warehouses: dict[str, Warehouse]) -> None:
        """Receive each demo lot that does not exist yet; expiry dates count from today."""
        today = timezone.localdate()
        existing = set(
            Lot.objects.filter(product__in=products.values()).values_list(
                "product__sku", "warehouse__code", "lot_number"
            )
        )
        for spec in LOTS:
            if (spec.sku, spec.warehouse, spec.lot_number) in existing:
                continue
            expires = None if spec.expires_in_days is None else today + dt.timedelta(days=spec.expires_in_days)
            lot_receive(
                actor=None,
                product=products[spec.sku],
                warehouse=warehouses[spec.warehouse],
                lot_number=spec.lot_number,
                quantity=spec.quantity,
                expiration_date=expires,
            )

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
        # A state licence in the territory: the compliance checks hold orders from uncredentialed providers.
        ProviderCredential.objects.get_or_create(
            provider=provider,
            territory=territory,
            kind="State medical licence",
            defaults={"number": f"LIC-{spec.npi[-6:]}", "valid_from": dt.date(2020, 1, 1)},
        )
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
                sex=spec.sex,
                mbi=spec.mbi,
                phone=spec.phone,
                email=spec.email,
                address=spec.address,
                territory=territory,
            )
        if not patient.coverages.exists():
            coverage = Coverage(territory=territory, patient=patient, payer_type=spec.payer_type, active=True)
            if spec.payer_type == PayerType.INSURANCE:
                coverage.payer_kind = PayerKind.MEDICARE_FFS
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
            # The doctor signs orders for their own patients; a colleague's stay unsigned (a hold to resolve).
            sign=patient.provider.user_id == doctor.pk,
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
        out.write("  Payments: verify North's cash-pay order in the admin; its payment link (sandbox, no real")
        out.write("  money) is texted to the patient (printed here) and listed under Payments > Payment links.")
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
        out.write(
            f"  {Vendor.objects.count()} vendors, {Warehouse.objects.count()} warehouses, "
            f"{Lot.objects.count()} stock lots"
        )
