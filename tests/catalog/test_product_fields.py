"""A product's medication and refill fields travel through every write path (issue 16).

``rxnorm_name``, ``dispensing_unit`` and ``dispensing_units_per_unit`` (the FHIR prescription's RxNorm
display and dispense quantity) and ``recurring`` / ``days_of_supply`` (the refill rules) are set by
``product_create`` / ``product_update`` like every other field, so the admin form, the CSV import and
the API (tests/api/test_catalog_api.py) store them, and a full update that leaves them out clears them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import tablib
from django.test import Client

from accounts.models import User
from catalog.models import Product
from catalog.resources import ProductResource
from catalog.services import ProductData, product_create, product_update
from core.exceptions import ValidationFailed
from tests.factories import ProductFactory, TerritoryFactory, UserFactory

MEDICATION_FIELDS = ("rxnorm_name", "dispensing_unit", "dispensing_units_per_unit", "recurring", "days_of_supply")
MEDICATIONS_ONLY = "Only a medication has this: enter the RxNorm code too, or leave it empty."
NOT_RECURRING = "Days of supply count only for a recurring supply: mark it recurring or leave this empty."

# Finasteride 1 MG Oral Tablet (RxCUI 200172, compliance/rules/medication_safety.toml), a bottle of
# 90 tablets taken one a day: a recurring supply that lasts 90 days per bottle.
FINASTERIDE = ProductData(
    sku="RX-FINASTERIDE-1MG",
    name="Finasteride 1 mg tablet",
    therapy_type="hair_loss",
    price_cents=2700,
    rxnorm_code="200172",
    rxnorm_name="finasteride 1 MG Oral Tablet",
    strength="1 mg",
    dose_form="Oral Tablet",
    coverage_tier="cash_pay",
    unit="bottle of 90",
    dispensing_unit="tablet",
    dispensing_units_per_unit=90,
    is_perishable=True,
    recurring=True,
    days_of_supply=90,
)
CLEARED = {
    "rxnorm_name": "",
    "dispensing_unit": "",
    "dispensing_units_per_unit": None,
    "recurring": False,
    "days_of_supply": None,
}


def medication_fields(sku: str) -> dict[str, Any]:
    product = Product.objects.get(sku=sku)
    return {name: getattr(product, name) for name in MEDICATION_FIELDS}


def products_state() -> list[Any]:
    return list(Product.objects.order_by("sku").values())


@pytest.fixture
def catalog_admin(db: Any) -> User:
    return UserFactory.create(username="catalog.admin", territory=TerritoryFactory.create(code="north"), role="admin")


# --- The services ---------------------------------------------------------------------------------


def test_create_and_update_set_every_medication_and_refill_field(db: Any) -> None:
    product = product_create(actor=None, data=FINASTERIDE)

    assert medication_fields(FINASTERIDE.sku) == {
        "rxnorm_name": "finasteride 1 MG Oral Tablet",
        "dispensing_unit": "tablet",
        "dispensing_units_per_unit": 90,
        "recurring": True,
        "days_of_supply": 90,
    }

    bottle_of_30 = dataclasses.replace(
        FINASTERIDE, unit="bottle of 30", dispensing_units_per_unit=30, days_of_supply=30
    )
    product_update(actor=None, product=product, data=bottle_of_30)

    assert medication_fields(FINASTERIDE.sku) == {
        "rxnorm_name": "finasteride 1 MG Oral Tablet",
        "dispensing_unit": "tablet",
        "dispensing_units_per_unit": 30,
        "recurring": True,
        "days_of_supply": 30,
    }

    # A full update replaces every field: ProductData's defaults (the model's) clear them.
    unset = {name: field.default for name, field in ProductData.__dataclass_fields__.items() if name in CLEARED}
    assert unset == CLEARED
    product_update(actor=None, product=product, data=dataclasses.replace(FINASTERIDE, **unset))

    assert medication_fields(FINASTERIDE.sku) == CLEARED
    assert Product.objects.get(sku=FINASTERIDE.sku).rxnorm_code == "200172"


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        pytest.param(
            {"dispensing_units_per_unit": 0},
            {"dispensing_units_per_unit": ["One unit sold holds at least 1 dispensing unit."]},
            id="zero-per-unit",
        ),
        pytest.param(
            {"dispensing_unit": "bottle"},
            {"dispensing_unit": ["Dispensing units are tablet, capsule, mL, pen."]},
            id="unknown-dispensing-unit",
        ),
        pytest.param(
            {"dispensing_units_per_unit": None},
            {"dispensing_units_per_unit": ["Say how many dispensing units one unit sold holds."]},
            id="unit-without-count",
        ),
        pytest.param(
            {"dispensing_unit": ""},
            {"dispensing_unit": ["Choose the dispensing unit the count is in."]},
            id="count-without-unit",
        ),
        pytest.param(
            {"rxnorm_code": ""},
            {name: [MEDICATIONS_ONLY] for name in ("rxnorm_name", "dispensing_unit", "dispensing_units_per_unit")},
            id="not-a-medication",
        ),
        pytest.param(
            {"days_of_supply": 0},
            {"days_of_supply": ["One unit lasts at least 1 day; leave it empty when not known."]},
            id="zero-days",
        ),
        pytest.param({"recurring": False}, {"days_of_supply": [NOT_RECURRING]}, id="days-without-recurring"),
        pytest.param(
            {"days_of_supply": 32768},
            {"days_of_supply": ["Ensure this value is less than or equal to 32767."]},
            id="days-above-the-column",
        ),
    ],
)
def test_a_bad_medication_or_refill_field_is_refused_and_nothing_is_written(
    db: Any, changes: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    existing = product_create(actor=None, data=FINASTERIDE)
    before = products_state()
    bad = dataclasses.replace(FINASTERIDE, **changes)

    with pytest.raises(ValidationFailed) as created:
        product_create(actor=None, data=dataclasses.replace(bad, sku="RX-FINASTERIDE-1MG-B"))
    with pytest.raises(ValidationFailed) as updated:
        product_update(actor=None, product=existing, data=bad)

    assert created.value.details == errors
    assert updated.value.details == errors
    assert products_state() == before


def test_the_smallest_counts_are_allowed_and_a_device_needs_none_of_them(db: Any) -> None:
    # The first valid values next to the refused 0s above: one pen per box, a supply of one day.
    one = dataclasses.replace(FINASTERIDE, dispensing_unit="pen", dispensing_units_per_unit=1, days_of_supply=1)
    product_create(actor=None, data=one)
    mask = ProductData(sku="CPAP-MASK", name="CPAP nasal mask", therapy_type="cpap", price_cents=9900)
    product_create(actor=None, data=mask)

    assert medication_fields(FINASTERIDE.sku) == {
        "rxnorm_name": "finasteride 1 MG Oral Tablet",
        "dispensing_unit": "pen",
        "dispensing_units_per_unit": 1,
        "recurring": True,
        "days_of_supply": 1,
    }
    assert medication_fields("CPAP-MASK") == CLEARED


# --- The admin form -------------------------------------------------------------------------------

PRODUCTS_URL = "/admin/catalog/product/"


def admin_form(**overrides: Any) -> dict[str, Any]:
    """The product form as a browser posts it: finasteride with its medication and refill fields."""
    form: dict[str, Any] = {
        "sku": "RX-FINASTERIDE-1MG",
        "name": "Finasteride 1 mg tablet",
        "hcpcs_code": "",
        "therapy_type": "hair_loss",
        "coverage_tier": "cash_pay",
        "rxnorm_code": "200172",
        "rxnorm_name": "finasteride 1 MG Oral Tablet",
        "strength": "1 mg",
        "dose_form": "Oral Tablet",
        "price": "27.00",
        "unit": "bottle of 90",
        "dispensing_unit": "tablet",
        "dispensing_units_per_unit": "90",
        "requires_prescription": "on",
        "is_perishable": "on",
        "recurring": "on",
        "days_of_supply": "90",
        "par_level": "100",
        "reorder_point": "25",
        "warehouse_fulfillment": "on",
        "vendor": "",
        "active": "on",
    }
    form.update(overrides)
    return {key: value for key, value in form.items() if value is not None}


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_form_adds_and_changes_them_through_the_catalog_service(catalog_admin: User) -> None:
    client = signed_in(catalog_admin)

    added = client.post(f"{PRODUCTS_URL}add/", admin_form())

    assert added.status_code == 302, added.context and added.context["adminform"].form.errors
    assert medication_fields("RX-FINASTERIDE-1MG") == {
        "rxnorm_name": "finasteride 1 MG Oral Tablet",
        "dispensing_unit": "tablet",
        "dispensing_units_per_unit": 90,
        "recurring": True,
        "days_of_supply": 90,
    }

    product = Product.objects.get(sku="RX-FINASTERIDE-1MG")
    changed = client.post(
        f"{PRODUCTS_URL}{product.pk}/change/",
        admin_form(
            sku=None,
            unit="bottle of 30",
            dispensing_unit="tablet",
            dispensing_units_per_unit="30",
            recurring=None,
            days_of_supply="",
        ),
    )

    assert changed.status_code == 302, changed.context and changed.context["adminform"].form.errors
    assert medication_fields("RX-FINASTERIDE-1MG") == {
        "rxnorm_name": "finasteride 1 MG Oral Tablet",
        "dispensing_unit": "tablet",
        "dispensing_units_per_unit": 30,
        "recurring": False,
        "days_of_supply": None,
    }


def test_the_admin_form_shows_the_rules_beside_their_fields_and_saves_nothing(catalog_admin: User) -> None:
    client = signed_in(catalog_admin)

    response = client.post(
        f"{PRODUCTS_URL}add/",
        admin_form(rxnorm_code="", dispensing_units_per_unit="0", recurring=None, days_of_supply="30"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "rxnorm_name": [MEDICATIONS_ONLY],
        "dispensing_unit": [MEDICATIONS_ONLY],
        "dispensing_units_per_unit": [MEDICATIONS_ONLY],
        "days_of_supply": [NOT_RECURRING],
    }
    assert Product.objects.count() == 0


# --- The CSV file ---------------------------------------------------------------------------------

HEADER = (
    "sku,name,hcpcs_code,rxnorm_code,rxnorm_name,strength,dose_form,therapy_type,coverage_tier,price_cents,unit,"
    "dispensing_unit,dispensing_units_per_unit,requires_prescription,is_perishable,requires_training,recurring,"
    "days_of_supply,par_level,reorder_point,warehouse_fulfillment,dropship_fulfillment,vendor,active"
)
FINASTERIDE_ROW = (
    "RX-FINASTERIDE-1MG,Finasteride 1 mg tablet,,200172,finasteride 1 MG Oral Tablet,1 mg,Oral Tablet,hair_loss,"
    "cash_pay,2700,bottle of 90,tablet,90,true,true,false,true,90,0,0,true,false,,true"
)


def import_products(user: User, *lines: str) -> Any:
    """Import a product CSV as the admin's confirmed import does: all or nothing, through the services."""
    dataset = tablib.Dataset().load("\n".join(lines) + "\n", format="csv")
    return ProductResource().import_data(
        dataset, dry_run=False, use_transactions=True, rollback_on_validation_errors=True, user=user
    )


def row_problems(result: Any) -> list[str]:
    return [
        f"Line {row.number + 1}, {field}: {message}"
        for row in result.invalid_rows
        for field, messages in row.field_specific_errors.items()
        for message in messages
    ]


def test_the_export_has_the_columns_with_each_products_values(db: Any) -> None:
    product_create(actor=None, data=FINASTERIDE)
    ProductFactory.create(sku="CPAP-MASK", name="CPAP nasal mask", price_cents=9900)

    exported = ProductResource().export(Product.objects.all()).csv.splitlines()

    assert exported == [
        HEADER,
        "CPAP-MASK,CPAP nasal mask,A7030,,,,,cpap,,9900,each,,,true,false,false,false,,0,0,true,false,,true",
        FINASTERIDE_ROW,
    ]


def test_an_import_creates_them_and_a_file_without_the_columns_keeps_them(catalog_admin: User) -> None:
    created = import_products(catalog_admin, HEADER, FINASTERIDE_ROW)

    assert row_problems(created) == []
    assert not created.has_errors()
    assert medication_fields("RX-FINASTERIDE-1MG") == {
        "rxnorm_name": "finasteride 1 MG Oral Tablet",
        "dispensing_unit": "tablet",
        "dispensing_units_per_unit": 90,
        "recurring": True,
        "days_of_supply": 90,
    }

    # An import changes only the columns its file has.
    repriced = import_products(catalog_admin, "sku,price_cents", "RX-FINASTERIDE-1MG,2500")

    assert row_problems(repriced) == []
    assert Product.objects.get(sku="RX-FINASTERIDE-1MG").price_cents == 2500
    assert medication_fields("RX-FINASTERIDE-1MG")["dispensing_units_per_unit"] == 90

    # Empty cells clear them.
    cleared = import_products(
        catalog_admin,
        "sku,rxnorm_name,dispensing_unit,dispensing_units_per_unit,recurring,days_of_supply",
        "RX-FINASTERIDE-1MG,,,,false,",
    )

    assert row_problems(cleared) == []
    assert medication_fields("RX-FINASTERIDE-1MG") == CLEARED


def test_an_import_with_bad_medication_or_refill_cells_names_them_and_imports_nothing(catalog_admin: User) -> None:
    before = products_state()

    result = import_products(
        catalog_admin,
        HEADER,
        FINASTERIDE_ROW.replace(",tablet,90,", ",bottle,90,"),
        FINASTERIDE_ROW.replace("RX-FINASTERIDE-1MG", "RX-2").replace(",tablet,90,", ",tablet,ninety,"),
        FINASTERIDE_ROW.replace("RX-FINASTERIDE-1MG", "RX-3").replace(",true,90,0,0,", ",false,90,0,0,"),
        FINASTERIDE_ROW.replace("RX-FINASTERIDE-1MG", "RX-4").replace(",200172,", ",,"),
    )

    assert row_problems(result) == [
        "Line 2, dispensing_unit: Dispensing units are tablet, capsule, mL, pen.",
        "Line 3, dispensing_units_per_unit: Enter a whole number.",
        f"Line 4, days_of_supply: {NOT_RECURRING}",
        f"Line 5, rxnorm_name: {MEDICATIONS_ONLY}",
        f"Line 5, dispensing_unit: {MEDICATIONS_ONLY}",
        f"Line 5, dispensing_units_per_unit: {MEDICATIONS_ONLY}",
    ]
    assert products_state() == before


def test_an_import_that_clears_the_rxnorm_code_alone_names_the_medication_fields_left(catalog_admin: User) -> None:
    product_create(actor=None, data=FINASTERIDE)
    before = products_state()

    result = import_products(catalog_admin, "sku,rxnorm_code", "RX-FINASTERIDE-1MG,")

    # The stored medication fields are kept (their columns are not in the file), so they are named.
    assert row_problems(result) == [
        f"Line 2, rxnorm_name: {MEDICATIONS_ONLY}",
        f"Line 2, dispensing_unit: {MEDICATIONS_ONLY}",
        f"Line 2, dispensing_units_per_unit: {MEDICATIONS_ONLY}",
    ]
    assert products_state() == before
