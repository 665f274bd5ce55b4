"""The catalog endpoints: list and filters, detail, the ordering wizard's groups, product writes, lot receipts."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from catalog import selectors, services
from catalog.models import Lot, MovementKind, Product, StockMovement, Vendor, Warehouse
from core.exceptions import PermissionDenied
from tests.api import assert_error
from tests.conftest import World
from tests.factories import ProductFactory, VendorFactory, WarehouseFactory

INVALID = "The request has invalid fields."
REFUSED = "You do not have permission to change the catalog."
PRODUCTS = "/api/v1/catalog/products"
GROUPED = "/api/v1/catalog/products/grouped"
LOTS = "/api/v1/catalog/lots"
# Today's count for a list page or the groups (token user, the admin check, count, page, availability);
# a new query on these paths has to be a deliberate change of this budget.
LIST_BUDGET = 6
GROUPED_BUDGET = 3

ACTIVE_SKUS = ["CPAP-DEVICE", "CPAP-MASK-NORTH", "CPAP-TUBING", "DIAB-STRIPS-50", "GLP1-PEN"]


@dataclass
class Catalog:
    """``north`` plus a small catalog with stock in a main and a closed warehouse."""

    world: World
    warehouse: Warehouse
    vendor: Vendor
    products: dict[str, Product]


def receive(product: Product, warehouse: Warehouse, number: str, quantity: int, expires: dt.date | None) -> Lot:
    return services.lot_receive(
        actor=None, product=product, warehouse=warehouse, lot_number=number, quantity=quantity, expiration_date=expires
    )


def reserve(product: Product, quantity: int) -> None:
    line = services.ReservationLine(order_line_id=uuid.uuid4(), product_id=product.pk, quantity=quantity)
    assert services.stock_reserve(order_id=uuid.uuid4(), lines=[line]) == []


@pytest.fixture
def catalog(north: World) -> Catalog:
    today = timezone.localdate()
    Product.objects.filter(pk=north.product.pk).update(name="CPAP full face mask", coverage_tier="standard")
    make = ProductFactory.create
    products = {
        "CPAP-MASK-NORTH": Product.objects.get(pk=north.product.pk),
        "CPAP-TUBING": make(sku="CPAP-TUBING", name="CPAP heated tubing", coverage_tier="standard", hcpcs_code="A4604"),
        "CPAP-DEVICE": make(sku="CPAP-DEVICE", name="CPAP device", coverage_tier="premium", hcpcs_code="E0601"),
        "DIAB-STRIPS-50": make(
            sku="DIAB-STRIPS-50",
            name="Glucose test strips",
            therapy_type="diabetes",
            coverage_tier="standard",
            hcpcs_code="A4253",
            is_perishable=True,
            price_cents=3500,
            unit="box of 50",
            par_level=40,
            reorder_point=10,
        ),
        "GLP1-PEN": make(
            sku="GLP1-PEN",
            name="Semaglutide pen",
            therapy_type="weight_management",
            coverage_tier="self_pay",
            hcpcs_code="",
            rxnorm_code="2200644",
            strength="2.5 mg/0.5 mL",
            dose_form="injection pen",
            requires_training=True,
        ),
        "WOUND-FOAM-OLD": make(
            sku="WOUND-FOAM-OLD", name="Foam dressing", therapy_type="wound_care", hcpcs_code="A6212", active=False
        ),
    }
    main = WarehouseFactory.create(code="main", name="Main warehouse")
    closed = WarehouseFactory.create(code="closed", name="Closed warehouse", active=False)
    receive(products["CPAP-MASK-NORTH"], main, "M-1", 10, None)
    receive(products["DIAB-STRIPS-50"], main, "S-OLD", 5, today - dt.timedelta(days=1))  # expired: not available
    receive(products["DIAB-STRIPS-50"], main, "S-NEW", 20, today + dt.timedelta(days=30))
    reserve(products["DIAB-STRIPS-50"], 3)  # 20 - 3 = 17 available
    receive(products["CPAP-TUBING"], main, "T-1", 4, None)
    reserve(products["CPAP-TUBING"], 4)  # all reserved: 0 available
    receive(products["GLP1-PEN"], closed, "G-1", 6, today + dt.timedelta(days=90))  # closed warehouse: 0
    vendor = VendorFactory.create(code="resmed", name="ResMed")
    return Catalog(world=north, warehouse=main, vendor=vendor, products=products)


def product_row(product: Product, available: int) -> dict[str, Any]:
    """A product as the API shows it."""
    return {
        "sku": product.sku,
        "name": product.name,
        "hcpcs_code": product.hcpcs_code,
        "rxnorm_code": product.rxnorm_code,
        "rxnorm_name": product.rxnorm_name,
        "strength": product.strength,
        "dose_form": product.dose_form,
        "therapy_type": product.therapy_type,
        "coverage_tier": product.coverage_tier,
        "price_cents": product.price_cents,
        "unit": product.unit,
        "dispensing_unit": product.dispensing_unit,
        "dispensing_units_per_unit": product.dispensing_units_per_unit,
        "requires_prescription": product.requires_prescription,
        "is_perishable": product.is_perishable,
        "requires_training": product.requires_training,
        "recurring": product.recurring,
        "days_of_supply": product.days_of_supply,
        "par_level": product.par_level,
        "reorder_point": product.reorder_point,
        "fulfillment_modes": product.fulfillment_modes,
        "vendor": product.vendor.code if product.vendor else None,
        "active": product.active,
        "available_quantity": available,
    }


def skus(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["sku"] for row in response.json()["results"]]


def products_state() -> list[Any]:
    """Every product row as stored, timestamps included: a refused write leaves it equal."""
    return list(Product.objects.order_by("sku").values())


def stock_state() -> tuple[list[Any], int]:
    return list(Lot.objects.order_by("lot_number").values()), StockMovement.objects.count()


# --- GET /api/v1/catalog/products ---------------------------------------------------------------


def test_the_list_shows_active_products_with_their_available_quantity(catalog: Catalog, api: Any) -> None:
    response = api(catalog.world.doctor).get(PRODUCTS)

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (5, None, None)
    # The mask: the world's 500 units in wh-north plus lot M-1's 10 in main.
    available = {"CPAP-DEVICE": 0, "CPAP-MASK-NORTH": 510, "CPAP-TUBING": 0, "DIAB-STRIPS-50": 17, "GLP1-PEN": 0}
    assert body["results"] == [product_row(catalog.products[sku], available[sku]) for sku in ACTIVE_SKUS]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ACTIVE_SKUS),
        ({"therapy_type": "cpap"}, ["CPAP-DEVICE", "CPAP-MASK-NORTH", "CPAP-TUBING"]),
        ({"therapy_type": "diabetes"}, ["DIAB-STRIPS-50"]),
        ({"therapy_type": "wound_care"}, []),  # its one product is inactive
        ({"coverage_tier": "standard"}, ["CPAP-MASK-NORTH", "CPAP-TUBING", "DIAB-STRIPS-50"]),
        ({"coverage_tier": "premium"}, ["CPAP-DEVICE"]),
        ({"search": "a4253"}, ["DIAB-STRIPS-50"]),  # HCPCS, any case
        ({"search": "2200644"}, ["GLP1-PEN"]),  # RxNorm
        ({"search": "Tubing"}, ["CPAP-TUBING"]),  # name
        ({"search": "cpap-dev"}, ["CPAP-DEVICE"]),  # SKU
        ({"search": "foam"}, []),  # inactive
        ({"available": "true"}, ["CPAP-MASK-NORTH", "DIAB-STRIPS-50"]),
        ({"available": "false"}, ["CPAP-DEVICE", "CPAP-TUBING", "GLP1-PEN"]),
        ({"therapy_type": "cpap", "available": "true"}, ["CPAP-MASK-NORTH"]),
        ({"therapy_type": "cpap", "coverage_tier": "standard", "search": "mask"}, ["CPAP-MASK-NORTH"]),
        ({"therapy_type": " ", "search": ""}, ACTIVE_SKUS),  # blank parameters count as absent
        ({"active": "false"}, ACTIVE_SKUS),  # not a catalog admin: ignored
    ],
)
def test_each_filter_selects_exactly_its_products(
    catalog: Catalog, api: Any, query: dict[str, str], expected: list[str]
) -> None:
    assert skus(api(catalog.world.doctor).get(PRODUCTS, query)) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ACTIVE_SKUS),
        ({"active": "true"}, ACTIVE_SKUS),
        ({"active": "false"}, ["WOUND-FOAM-OLD"]),
        ({"active": "false", "therapy_type": "cpap"}, []),
    ],
)
def test_a_catalog_admin_may_list_inactive_products(
    catalog: Catalog, api: Any, query: dict[str, str], expected: list[str]
) -> None:
    assert skus(api(catalog.world.admin).get(PRODUCTS, query)) == expected


def test_the_available_filter_agrees_with_the_available_quantity(catalog: Catalog, api: Any) -> None:
    in_stock = skus(api(catalog.world.doctor).get(PRODUCTS, {"available": "true"}))

    assert in_stock == [sku for sku in ACTIVE_SKUS if selectors.available_quantity(product=catalog.products[sku]) > 0]


@pytest.mark.parametrize(
    ("query", "details"),
    [
        ({"therapy_type": "sleep"}, {"therapy_type": ['"sleep" is not a valid choice.']}),
        ({"available": "yes"}, {"available": ['"yes" is not a valid choice.']}),
        ({"active": "0"}, {"active": ['"0" is not a valid choice.']}),
        ({"search": "x" * 101}, {"search": ["Ensure this field has no more than 100 characters."]}),
    ],
)
def test_a_malformed_filter_is_a_validation_error(
    catalog: Catalog, api: Any, query: dict[str, str], details: dict[str, Any]
) -> None:
    response = api(catalog.world.admin).get(PRODUCTS, query)

    assert_error(response, 400, "VALIDATION_ERROR", INVALID, details)


def test_the_list_is_paginated(catalog: Catalog, api: Any) -> None:
    client = api(catalog.world.doctor)

    first = client.get(PRODUCTS, {"page_size": 2})
    last = client.get(PRODUCTS, {"page_size": 2, "page": 3})

    assert skus(first) == ["CPAP-DEVICE", "CPAP-MASK-NORTH"]
    assert first.json()["count"] == 5
    assert first.json()["next"].endswith("/api/v1/catalog/products?page=2&page_size=2")
    assert skus(last) == ["GLP1-PEN"]
    assert last.json()["next"] is None
    assert_error(client.get(PRODUCTS, {"page": 4, "page_size": 2}), 404, "NOT_FOUND")


def _list_queries(client: Any, url: str, *, expected_products: int) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    body = response.json()
    listed = (
        body["count"]
        if "count" in body
        else sum(len(tier["products"]) for group in body["groups"] for tier in group["coverage_tiers"])
    )
    assert listed == expected_products
    return len(captured.captured_queries)


def _stocked_products(world: World, warehouse: Warehouse, count: int, start: int) -> None:
    vendor = VendorFactory.create(code="medline")
    for index in range(start, start + count):
        product = ProductFactory.create(
            sku=f"BULK-{index:03d}",
            therapy_type=["cpap", "diabetes", "mobility"][index % 3],
            coverage_tier=["standard", "premium"][index % 2],
            vendor=vendor,
            dropship_fulfillment=True,
        )
        receive(product, warehouse, f"L-{index}", 5, None)


@pytest.mark.parametrize(("url", "budget"), [(PRODUCTS, LIST_BUDGET), (GROUPED, GROUPED_BUDGET)])
def test_list_and_groups_queries_stay_flat_as_products_grow(north: World, api: Any, url: str, budget: int) -> None:
    warehouse = WarehouseFactory.create(code="main")
    client = api(north.doctor)
    _stocked_products(north, warehouse, 2, start=0)  # with the world's product: 3
    _list_queries(client, url, expected_products=3)  # warm-up

    few = _list_queries(client, url, expected_products=3)
    _stocked_products(north, warehouse, 9, start=2)
    many = _list_queries(client, url, expected_products=12)

    assert few == many
    assert many <= budget


# --- GET /api/v1/catalog/products/{sku} ---------------------------------------------------------


def test_the_detail_counts_unexpired_stock_in_open_warehouses_minus_reservations(catalog: Catalog, api: Any) -> None:
    strips = catalog.products["DIAB-STRIPS-50"]
    Product.objects.filter(pk=strips.pk).update(vendor=catalog.vendor, dropship_fulfillment=True)
    strips.refresh_from_db()

    response = api(catalog.world.doctor).get(f"{PRODUCTS}/DIAB-STRIPS-50")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "sku": "DIAB-STRIPS-50",
        "name": "Glucose test strips",
        "hcpcs_code": "A4253",
        "rxnorm_code": "",
        "rxnorm_name": "",
        "strength": "",
        "dose_form": "",
        "therapy_type": "diabetes",
        "coverage_tier": "standard",
        "price_cents": 3500,
        "unit": "box of 50",
        "dispensing_unit": "",
        "dispensing_units_per_unit": None,
        "requires_prescription": True,
        "is_perishable": True,
        "requires_training": False,
        "recurring": False,
        "days_of_supply": None,
        "par_level": 40,
        "reorder_point": 10,
        "fulfillment_modes": ["warehouse", "dropship"],
        "vendor": "resmed",
        "active": True,
        # 5 expired + 20 fresh on hand, 3 of the fresh reserved
        "available_quantity": 17,
    }
    assert selectors.available_quantity(product=strips) == 17


def test_a_medication_shows_its_rxnorm_code_strength_and_dose_form(catalog: Catalog, api: Any) -> None:
    response = api(catalog.world.distributor).get(f"{PRODUCTS}/GLP1-PEN")

    assert response.status_code == 200, response.content
    assert response.json() == product_row(catalog.products["GLP1-PEN"], 0)
    assert (response.json()["strength"], response.json()["dose_form"]) == ("2.5 mg/0.5 mL", "injection pen")


def test_an_unknown_sku_is_not_found(catalog: Catalog, api: Any) -> None:
    response = api(catalog.world.doctor).get(f"{PRODUCTS}/NO-SUCH-SKU")

    assert_error(response, 404, "NOT_FOUND", "No such product in the catalog.")


def test_an_inactive_product_is_unknown_to_all_but_catalog_admins(catalog: Catalog, api: Any) -> None:
    url = f"{PRODUCTS}/WOUND-FOAM-OLD"

    assert_error(api(catalog.world.doctor).get(url), 404, "NOT_FOUND", "No such product in the catalog.")
    assert_error(api(catalog.world.ops).get(url), 404, "NOT_FOUND", "No such product in the catalog.")
    response = api(catalog.world.admin).get(url)
    assert response.status_code == 200, response.content
    assert response.json() == product_row(catalog.products["WOUND-FOAM-OLD"], 0)


def test_a_user_of_another_territory_reads_the_same_shared_catalog(catalog: Catalog, south: World, api: Any) -> None:
    north_view = api(catalog.world.doctor).get(f"{PRODUCTS}/DIAB-STRIPS-50")
    south_view = api(south.doctor).get(f"{PRODUCTS}/DIAB-STRIPS-50")

    assert south_view.status_code == 200, south_view.content
    assert south_view.json() == north_view.json()


# --- GET /api/v1/catalog/products/grouped -------------------------------------------------------


def test_groups_by_therapy_type_then_coverage_tier(catalog: Catalog, api: Any) -> None:
    client = api(catalog.world.doctor)

    response = client.get(GROUPED)

    assert response.status_code == 200, response.content
    groups = response.json()["groups"]
    shape = [
        (
            group["therapy_type"],
            group["label"],
            [(tier["coverage_tier"], [p["sku"] for p in tier["products"]]) for tier in group["coverage_tiers"]],
        )
        for group in groups
    ]
    assert shape == [
        ("cpap", "CPAP / sleep", [("premium", ["CPAP-DEVICE"]), ("standard", ["CPAP-MASK-NORTH", "CPAP-TUBING"])]),
        ("diabetes", "Diabetes", [("standard", ["DIAB-STRIPS-50"])]),
        ("weight_management", "Weight management", [("self_pay", ["GLP1-PEN"])]),
    ]
    listed = {row["sku"]: row for row in client.get(PRODUCTS).json()["results"]}
    grouped = {p["sku"]: p for group in groups for tier in group["coverage_tiers"] for p in tier["products"]}
    assert grouped == listed  # the same representation, available_quantity included
    assert grouped["DIAB-STRIPS-50"]["available_quantity"] == 17


def test_inactive_products_are_not_grouped(catalog: Catalog, api: Any) -> None:
    Product.objects.update(active=False)

    response = api(catalog.world.admin).get(GROUPED)

    assert response.status_code == 200, response.content
    assert response.json() == {"groups": []}


# --- POST /api/v1/catalog/products --------------------------------------------------------------


def product_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": "CPAP-HUMIDIFIER",
        "name": "Heated humidifier",
        "hcpcs_code": "e0562",
        "rxnorm_code": "",
        "therapy_type": "cpap",
        "coverage_tier": "premium",
        "price_cents": 18900,
        "unit": "each",
        "requires_prescription": True,
        "is_perishable": False,
        "par_level": 12,
        "reorder_point": 4,
        "fulfillment_modes": ["dropship", "warehouse"],
        "vendor": "resmed",
        "active": True,
    }
    body.update(overrides)
    return body


def stored(sku: str) -> dict[str, Any]:
    product = Product.objects.select_related("vendor").get(sku=sku)
    fields = [
        *("sku", "name", "hcpcs_code", "rxnorm_code", "rxnorm_name", "strength", "dose_form", "therapy_type"),
        *("coverage_tier", "price_cents", "unit", "dispensing_unit", "dispensing_units_per_unit"),
        *("requires_prescription", "is_perishable", "requires_training", "recurring", "days_of_supply"),
        *("par_level", "reorder_point", "warehouse_fulfillment", "dropship_fulfillment", "active"),
    ]
    return {
        **{name: getattr(product, name) for name in fields},
        "vendor": product.vendor.code if product.vendor else None,
    }


def test_an_admin_adds_a_product(catalog: Catalog, api: Any) -> None:
    response = api(catalog.world.admin).post(PRODUCTS, product_body(), format="json")

    assert response.status_code == 201, response.content
    assert response.json() == {
        "sku": "CPAP-HUMIDIFIER",
        "name": "Heated humidifier",
        "hcpcs_code": "E0562",
        "rxnorm_code": "",
        "rxnorm_name": "",
        "strength": "",
        "dose_form": "",
        "therapy_type": "cpap",
        "coverage_tier": "premium",
        "price_cents": 18900,
        "unit": "each",
        "dispensing_unit": "",
        "dispensing_units_per_unit": None,
        "requires_prescription": True,
        "is_perishable": False,
        "requires_training": False,
        "recurring": False,
        "days_of_supply": None,
        "par_level": 12,
        "reorder_point": 4,
        "fulfillment_modes": ["warehouse", "dropship"],
        "vendor": "resmed",
        "active": True,
        "available_quantity": 0,
    }
    assert stored("CPAP-HUMIDIFIER") == {
        "sku": "CPAP-HUMIDIFIER",
        "name": "Heated humidifier",
        "hcpcs_code": "E0562",
        "rxnorm_code": "",
        "rxnorm_name": "",
        "strength": "",
        "dose_form": "",
        "therapy_type": "cpap",
        "coverage_tier": "premium",
        "price_cents": 18900,
        "unit": "each",
        "dispensing_unit": "",
        "dispensing_units_per_unit": None,
        "requires_prescription": True,
        "is_perishable": False,
        "requires_training": False,
        "recurring": False,
        "days_of_supply": None,
        "par_level": 12,
        "reorder_point": 4,
        "warehouse_fulfillment": True,
        "dropship_fulfillment": True,
        "active": True,
        "vendor": "resmed",
    }


def test_a_product_needs_only_sku_name_therapy_type_and_price(catalog: Catalog, api: Any) -> None:
    body = {"sku": "WOUND-GAUZE", "name": "Gauze pads", "therapy_type": "wound_care", "price_cents": 0}

    response = api(catalog.world.admin).post(PRODUCTS, body, format="json")

    assert response.status_code == 201, response.content
    assert stored("WOUND-GAUZE") == {
        "sku": "WOUND-GAUZE",
        "name": "Gauze pads",
        "hcpcs_code": "",
        "rxnorm_code": "",
        "rxnorm_name": "",
        "strength": "",
        "dose_form": "",
        "therapy_type": "wound_care",
        "coverage_tier": "",
        "price_cents": 0,
        "unit": "each",
        "dispensing_unit": "",
        "dispensing_units_per_unit": None,
        "requires_prescription": True,
        "is_perishable": False,
        "requires_training": False,
        "recurring": False,
        "days_of_supply": None,
        "par_level": 0,
        "reorder_point": 0,
        "warehouse_fulfillment": True,
        "dropship_fulfillment": False,
        "active": True,
        "vendor": None,
    }


# A medication's pharmacy and refill fields: finasteride 1 MG Oral Tablet (RxCUI 200172, see
# compliance/rules/medication_safety.toml), sold by the bottle of 90 tablets, one taken daily.
FINASTERIDE = {
    "rxnorm_code": "200172",
    "rxnorm_name": "finasteride 1 MG Oral Tablet",
    "dispensing_unit": "tablet",
    "dispensing_units_per_unit": 90,
}
MEDICATIONS_ONLY = "Only a medication has this: enter the RxNorm code too, or leave it empty."
NOT_RECURRING = "Days of supply count only for a recurring supply: mark it recurring or leave this empty."


def finasteride_body(**overrides: Any) -> dict[str, Any]:
    """Finasteride 1 mg tablets, bottle of 90, with every medication and refill field given."""
    return product_body(
        **{
            "sku": "RX-FINASTERIDE-1MG",
            "name": "Finasteride 1 mg tablet",
            "hcpcs_code": "",
            **FINASTERIDE,
            "strength": "1 mg",
            "dose_form": "Oral Tablet",
            "therapy_type": "hair_loss",
            "coverage_tier": "cash_pay",
            "price_cents": 2700,
            "unit": "bottle of 90",
            "is_perishable": True,
            "recurring": True,
            "days_of_supply": 90,
            "fulfillment_modes": ["warehouse"],
            "vendor": None,
            **overrides,
        }
    )


BAD_PRODUCT_BODIES = [
    pytest.param(
        {"hcpcs_code": "A123"},
        {"hcpcs_code": ["Enter a valid HCPCS Level II code: a letter and four digits."]},
        id="bad-hcpcs",
    ),
    pytest.param(
        {"hcpcs_code": "Z1234"},
        {"hcpcs_code": ["Enter a valid HCPCS Level II code: a letter and four digits."]},
        id="hcpcs-letter-not-a-section",
    ),
    pytest.param({"vendor": "nobody"}, {"vendor": ["Object with code=nobody does not exist."]}, id="unknown-vendor"),
    pytest.param({"vendor": None}, {"vendor": ["Dropship fulfillment needs a vendor."]}, id="dropship-no-vendor"),
    pytest.param({"sku": "CPAP-MASK-NORTH"}, {"sku": ["Product with this SKU already exists."]}, id="duplicate-sku"),
    pytest.param({"therapy_type": "sleep"}, {"therapy_type": ['"sleep" is not a valid choice.']}, id="therapy-type"),
    pytest.param(
        {"par_level": 4, "reorder_point": 5},
        {"reorder_point": ["The reorder point cannot be above the par level."]},
        id="reorder-above-par",
    ),
    pytest.param(
        {"fulfillment_modes": ["warehouse", "drone"]},
        {"fulfillment_modes": {"1": ['"drone" is not a valid choice.']}},
        id="unknown-fulfillment-mode",
    ),
    pytest.param(
        {"fulfillment_modes": []}, {"fulfillment_modes": ["This list may not be empty."]}, id="no-fulfillment-mode"
    ),
    pytest.param(
        {"fulfillment_modes": ["warehouse", "warehouse"]},
        {"fulfillment_modes": ["List each fulfillment mode once."]},
        id="repeated-fulfillment-mode",
    ),
    pytest.param(
        {"price_cents": -1}, {"price_cents": ["Ensure this value is greater than or equal to 0."]}, id="negative-price"
    ),
    pytest.param({"price_cents": "12.50"}, {"price_cents": ["A valid integer is required."]}, id="price-not-cents"),
    pytest.param({"sku": "grouped"}, {"sku": ["This SKU is reserved by the API."]}, id="reserved-sku"),
    pytest.param(
        {"sku": "CPAP/HUMIDIFIER"}, {"sku": ["Use letters, digits, dots, dashes and underscores."]}, id="sku-chars"
    ),
    pytest.param(
        {"hcpcs_code": "E05", "par_level": 1, "reorder_point": 2},
        {
            "hcpcs_code": ["Enter a valid HCPCS Level II code: a letter and four digits."],
            "reorder_point": ["The reorder point cannot be above the par level."],
        },
        id="every-bad-field-at-once",
    ),
    # The medication and refill fields (issue 16): bad values, and values that do not fit together.
    pytest.param(
        {**FINASTERIDE, "dispensing_units_per_unit": 0},
        {"dispensing_units_per_unit": ["Ensure this value is greater than or equal to 1."]},
        id="no-dispensing-units-per-unit",
    ),
    pytest.param(
        {**FINASTERIDE, "dispensing_units_per_unit": "ninety"},
        {"dispensing_units_per_unit": ["A valid integer is required."]},
        id="dispensing-units-not-a-number",
    ),
    pytest.param(
        {**FINASTERIDE, "dispensing_unit": "bottle"},
        {"dispensing_unit": ['"bottle" is not a valid choice.']},
        id="unknown-dispensing-unit",
    ),
    pytest.param(
        {**FINASTERIDE, "dispensing_units_per_unit": None},
        {"dispensing_units_per_unit": ["Say how many dispensing units one unit sold holds."]},
        id="dispensing-unit-without-count",
    ),
    pytest.param(
        {**FINASTERIDE, "dispensing_unit": ""},
        {"dispensing_unit": ["Choose the dispensing unit the count is in."]},
        id="count-without-dispensing-unit",
    ),
    pytest.param(
        {key: value for key, value in FINASTERIDE.items() if key != "rxnorm_code"},
        {
            "rxnorm_name": [MEDICATIONS_ONLY],
            "dispensing_unit": [MEDICATIONS_ONLY],
            "dispensing_units_per_unit": [MEDICATIONS_ONLY],
        },
        id="medication-fields-without-rxnorm-code",
    ),
    pytest.param(
        {"recurring": True, "days_of_supply": 0},
        {"days_of_supply": ["Ensure this value is greater than or equal to 1."]},
        id="no-days-of-supply",
    ),
    pytest.param(
        {"recurring": True, "days_of_supply": 32768},
        {"days_of_supply": ["Ensure this value is less than or equal to 32767."]},
        id="days-of-supply-too-large",
    ),
    pytest.param(
        {"recurring": False, "days_of_supply": 30},
        {"days_of_supply": [NOT_RECURRING]},
        id="days-of-supply-without-recurring",
    ),
]


@pytest.mark.parametrize(("overrides", "details"), BAD_PRODUCT_BODIES)
def test_a_bad_product_is_refused_and_nothing_is_stored(
    catalog: Catalog, api: Any, overrides: dict[str, Any], details: dict[str, Any]
) -> None:
    before = products_state()

    response = api(catalog.world.admin).post(PRODUCTS, product_body(**overrides), format="json")

    assert_error(response, 400, "VALIDATION_ERROR", INVALID, details)
    assert products_state() == before


@pytest.mark.parametrize("role", ["doctor", "ops", "distributor"])
def test_only_catalog_admins_add_products(catalog: Catalog, api: Any, role: str) -> None:
    before = products_state()

    response = api(getattr(catalog.world, role)).post(PRODUCTS, product_body(), format="json")

    assert_error(response, 403, "PERMISSION_DENIED", REFUSED)
    assert products_state() == before


def test_the_permission_is_checked_before_the_body(catalog: Catalog, api: Any) -> None:
    response = api(catalog.world.doctor).post(PRODUCTS, {"sku": ""}, format="json")

    assert_error(response, 403, "PERMISSION_DENIED", REFUSED)


def test_the_services_refuse_a_user_without_the_permission(catalog: Catalog) -> None:
    data = services.ProductData(sku="NEW-1", name="New", therapy_type="cpap", price_cents=100)
    before = products_state()

    with pytest.raises(PermissionDenied):
        services.product_create(actor=catalog.world.doctor, data=data)
    with pytest.raises(PermissionDenied):
        services.product_update(actor=catalog.world.ops, product=catalog.products["CPAP-DEVICE"], data=data)

    assert products_state() == before


def test_an_admin_adds_a_medication_with_its_pharmacy_and_refill_fields(catalog: Catalog, api: Any) -> None:
    response = api(catalog.world.admin).post(PRODUCTS, finasteride_body(), format="json")

    assert response.status_code == 201, response.content
    medication_fields = {
        "rxnorm_code": "200172",
        "rxnorm_name": "finasteride 1 MG Oral Tablet",
        "unit": "bottle of 90",
        "dispensing_unit": "tablet",
        "dispensing_units_per_unit": 90,
        "recurring": True,
        "days_of_supply": 90,
    }
    assert {name: response.json()[name] for name in medication_fields} == medication_fields
    assert {name: stored("RX-FINASTERIDE-1MG")[name] for name in medication_fields} == medication_fields
    assert response.json() == product_row(Product.objects.get(sku="RX-FINASTERIDE-1MG"), 0)
    shown = api(catalog.world.doctor).get(f"{PRODUCTS}/RX-FINASTERIDE-1MG").json()
    assert {name: shown[name] for name in medication_fields} == medication_fields


def test_the_smallest_counts_are_accepted(catalog: Catalog, api: Any) -> None:
    # One pen per box and a supply that lasts one day: the first valid values (0 is refused above).
    body = finasteride_body(dispensing_unit="pen", dispensing_units_per_unit=1, days_of_supply=1)

    response = api(catalog.world.admin).post(PRODUCTS, body, format="json")

    assert response.status_code == 201, response.content
    assert (response.json()["dispensing_unit"], response.json()["dispensing_units_per_unit"]) == ("pen", 1)
    assert stored("RX-FINASTERIDE-1MG")["days_of_supply"] == 1


# --- PUT /api/v1/catalog/products/{sku} ---------------------------------------------------------


def test_an_admin_replaces_a_product(catalog: Catalog, api: Any) -> None:
    body = product_body(
        sku="CPAP-DEVICE",
        name="CPAP device, auto-titrating",
        hcpcs_code="E0601",
        coverage_tier="standard",
        price_cents=64900,
        unit="kit",
        requires_prescription=True,
        is_perishable=False,
        requires_training=True,
        par_level=8,
        reorder_point=8,
        fulfillment_modes=["dropship"],
        vendor="resmed",
        active=True,
    )

    response = api(catalog.world.admin).put(f"{PRODUCTS}/CPAP-DEVICE", body, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == product_row(Product.objects.get(sku="CPAP-DEVICE"), 0)
    assert stored("CPAP-DEVICE") == {
        "sku": "CPAP-DEVICE",
        "name": "CPAP device, auto-titrating",
        "hcpcs_code": "E0601",
        "rxnorm_code": "",
        "rxnorm_name": "",
        "strength": "",
        "dose_form": "",
        "therapy_type": "cpap",
        "coverage_tier": "standard",
        "price_cents": 64900,
        "unit": "kit",
        "dispensing_unit": "",
        "dispensing_units_per_unit": None,
        "requires_prescription": True,
        "is_perishable": False,
        "requires_training": True,
        "recurring": False,
        "days_of_supply": None,
        "par_level": 8,
        "reorder_point": 8,
        "warehouse_fulfillment": False,
        "dropship_fulfillment": True,
        "active": True,
        "vendor": "resmed",
    }
    assert Product.objects.count() == 6


def test_a_put_replaces_every_field_so_omitted_ones_take_their_defaults(catalog: Catalog, api: Any) -> None:
    body = {"sku": "DIAB-STRIPS-50", "name": "Glucose test strips", "therapy_type": "diabetes", "price_cents": 3600}

    response = api(catalog.world.admin).put(f"{PRODUCTS}/DIAB-STRIPS-50", body, format="json")

    assert response.status_code == 200, response.content
    row = response.json()
    assert {k: row[k] for k in ("hcpcs_code", "coverage_tier", "unit", "is_perishable", "par_level")} == {
        "hcpcs_code": "",
        "coverage_tier": "",
        "unit": "each",
        "is_perishable": False,
        "par_level": 0,
    }
    assert row["available_quantity"] == 17  # the stock is untouched


def test_a_put_without_the_medication_and_refill_fields_clears_them(catalog: Catalog, api: Any) -> None:
    client = api(catalog.world.admin)
    assert client.post(PRODUCTS, finasteride_body(), format="json").status_code == 201
    omitted = ("rxnorm_name", "dispensing_unit", "dispensing_units_per_unit", "recurring", "days_of_supply")
    body = {key: value for key, value in finasteride_body().items() if key not in omitted}

    response = client.put(f"{PRODUCTS}/RX-FINASTERIDE-1MG", body, format="json")

    assert response.status_code == 200, response.content
    defaults = {
        "rxnorm_name": "",
        "dispensing_unit": "",
        "dispensing_units_per_unit": None,
        "recurring": False,
        "days_of_supply": None,
    }
    assert {name: response.json()[name] for name in omitted} == defaults
    assert {name: stored("RX-FINASTERIDE-1MG")[name] for name in omitted} == defaults
    assert stored("RX-FINASTERIDE-1MG")["rxnorm_code"] == "200172"  # given again, so kept


def test_a_put_with_the_medication_and_refill_fields_keeps_or_changes_them(catalog: Catalog, api: Any) -> None:
    client = api(catalog.world.admin)
    assert client.post(PRODUCTS, finasteride_body(), format="json").status_code == 201

    same = client.put(f"{PRODUCTS}/RX-FINASTERIDE-1MG", finasteride_body(price_cents=2500), format="json")

    assert same.status_code == 200, same.content
    assert same.json() == product_row(Product.objects.get(sku="RX-FINASTERIDE-1MG"), 0)
    assert (same.json()["price_cents"], same.json()["dispensing_units_per_unit"], same.json()["recurring"]) == (
        2500,
        90,
        True,
    )

    # A bottle of 30 lasting 30 days instead
    body = finasteride_body(unit="bottle of 30", dispensing_units_per_unit=30, days_of_supply=30)
    changed = client.put(f"{PRODUCTS}/RX-FINASTERIDE-1MG", body, format="json")

    assert changed.status_code == 200, changed.content
    stored_now = stored("RX-FINASTERIDE-1MG")
    assert (stored_now["unit"], stored_now["dispensing_units_per_unit"], stored_now["days_of_supply"]) == (
        "bottle of 30",
        30,
        30,
    )
    assert (stored_now["rxnorm_name"], stored_now["dispensing_unit"], stored_now["recurring"]) == (
        "finasteride 1 MG Oral Tablet",
        "tablet",
        True,
    )


def test_a_bad_medication_update_changes_nothing(catalog: Catalog, api: Any) -> None:
    client = api(catalog.world.admin)
    assert client.post(PRODUCTS, finasteride_body(), format="json").status_code == 201
    before = products_state()

    response = client.put(
        f"{PRODUCTS}/RX-FINASTERIDE-1MG",
        finasteride_body(name="Renamed", dispensing_units_per_unit=0, days_of_supply=0),
        format="json",
    )

    assert_error(
        response,
        400,
        "VALIDATION_ERROR",
        INVALID,
        {
            "dispensing_units_per_unit": ["Ensure this value is greater than or equal to 1."],
            "days_of_supply": ["Ensure this value is greater than or equal to 1."],
        },
    )
    assert products_state() == before


def test_an_admin_reactivates_an_inactive_product(catalog: Catalog, api: Any) -> None:
    body = product_body(sku="WOUND-FOAM-OLD", name="Foam dressing", therapy_type="wound_care", hcpcs_code="A6212")

    response = api(catalog.world.admin).put(f"{PRODUCTS}/WOUND-FOAM-OLD", body, format="json")

    assert response.status_code == 200, response.content
    assert Product.objects.get(sku="WOUND-FOAM-OLD").active is True
    assert "WOUND-FOAM-OLD" in skus(api(catalog.world.doctor).get(PRODUCTS, {"therapy_type": "wound_care"}))


def test_the_sku_cannot_change(catalog: Catalog, api: Any) -> None:
    before = products_state()

    response = api(catalog.world.admin).put(f"{PRODUCTS}/CPAP-DEVICE", product_body(sku="CPAP-DEVICE-2"), format="json")

    assert_error(
        response,
        400,
        "VALIDATION_ERROR",
        INVALID,
        {"sku": ["A product's SKU cannot change; add a new product and make this one inactive."]},
    )
    assert products_state() == before


@pytest.mark.parametrize(
    ("overrides", "details"),
    [
        param
        for param in BAD_PRODUCT_BODIES
        if param.id not in {"duplicate-sku", "reserved-sku", "sku-chars"}  # the SKU cannot change anyway
    ],
)
def test_a_bad_update_is_refused_and_nothing_changes(
    catalog: Catalog, api: Any, overrides: dict[str, Any], details: dict[str, Any]
) -> None:
    before = products_state()
    body = product_body(**{"sku": "CPAP-DEVICE", **overrides})

    response = api(catalog.world.admin).put(f"{PRODUCTS}/CPAP-DEVICE", body, format="json")

    assert_error(response, 400, "VALIDATION_ERROR", INVALID, details)
    assert products_state() == before


def test_updating_an_unknown_sku_is_not_found(catalog: Catalog, api: Any) -> None:
    before = products_state()

    response = api(catalog.world.admin).put(f"{PRODUCTS}/NO-SUCH-SKU", product_body(sku="NO-SUCH-SKU"), format="json")

    assert_error(response, 404, "NOT_FOUND", "No such product in the catalog.")
    assert products_state() == before


@pytest.mark.parametrize("role", ["doctor", "ops", "distributor"])
def test_only_catalog_admins_change_products(catalog: Catalog, api: Any, role: str) -> None:
    before = products_state()

    response = api(getattr(catalog.world, role)).put(
        f"{PRODUCTS}/CPAP-DEVICE", product_body(sku="CPAP-DEVICE", price_cents=1), format="json"
    )

    assert_error(response, 403, "PERMISSION_DENIED", REFUSED)
    assert products_state() == before


# --- POST /api/v1/catalog/lots ------------------------------------------------------------------


def lot_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": "DIAB-STRIPS-50",
        "lot_number": "S-200",
        "expiration_date": (timezone.localdate() + dt.timedelta(days=200)).isoformat(),
        "quantity": 12,
        "warehouse": "main",
    }
    body.update(overrides)
    return body


def test_an_admin_receives_a_lot_and_the_ledger_records_it(catalog: Catalog, api: Any) -> None:
    client = api(catalog.world.admin)
    expires = (timezone.localdate() + dt.timedelta(days=200)).isoformat()

    first = client.post(LOTS, lot_body(), format="json")
    again = client.post(LOTS, lot_body(quantity=3), format="json")

    assert first.status_code == 201, first.content
    lot = Lot.objects.get(lot_number="S-200")
    assert first.json() == {
        "id": str(lot.pk),
        "sku": "DIAB-STRIPS-50",
        "lot_number": "S-200",
        "expiration_date": expires,
        "warehouse": "main",
        "quantity_on_hand": 12,
        "quantity_reserved": 0,
        "quantity_available": 12,
    }
    assert again.status_code == 201, again.content
    assert again.json() == {**first.json(), "quantity_on_hand": 15, "quantity_available": 15}
    movements = list(
        lot.movements.order_by("created_at").values_list("kind", "on_hand_delta", "reserved_delta", "actor", "reason")
    )
    assert movements == [
        (MovementKind.RECEIPT, 12, 0, catalog.world.admin.pk, "received"),
        (MovementKind.RECEIPT, 3, 0, catalog.world.admin.pk, "received"),
    ]
    assert api(catalog.world.doctor).get(f"{PRODUCTS}/DIAB-STRIPS-50").json()["available_quantity"] == 17 + 15


def test_a_lot_expiring_today_and_stock_that_never_expires_are_received(catalog: Catalog, api: Any) -> None:
    client = api(catalog.world.admin)
    today = timezone.localdate().isoformat()

    expiring = client.post(LOTS, lot_body(expiration_date=today, lot_number="S-TODAY"), format="json")
    lasting = client.post(LOTS, lot_body(sku="CPAP-DEVICE", expiration_date=None, lot_number="D-1"), format="json")

    assert expiring.status_code == 201, expiring.content
    assert expiring.json()["expiration_date"] == today
    assert lasting.status_code == 201, lasting.content
    assert lasting.json()["expiration_date"] is None
    assert lasting.json()["quantity_on_hand"] == 12


@pytest.mark.parametrize(
    ("overrides", "details"),
    [
        ({"sku": "NOPE"}, {"sku": ["Object with sku=NOPE does not exist."]}),
        ({"warehouse": "nowhere"}, {"warehouse": ["Object with code=nowhere does not exist."]}),
        ({"warehouse": "closed"}, {"warehouse": ["Object with code=closed does not exist."]}),
        (
            {"expiration_date": (timezone.localdate() - dt.timedelta(days=400)).isoformat()},
            {"expiration_date": ["The lot has already expired; it cannot be received."]},
        ),
        ({"expiration_date": None}, {"expiration_date": ["A perishable product's lot needs an expiration date."]}),
        ({"quantity": 0}, {"quantity": ["Ensure this value is greater than or equal to 1."]}),
        ({"lot_number": ""}, {"lot_number": ["This field may not be blank."]}),
        (
            {"lot_number": "S-NEW"},  # already in stock with another expiration date
            {"expiration_date": ["The lot already has a different expiration date."]},
        ),
    ],
)
def test_a_bad_receipt_is_refused_and_stock_is_unchanged(
    catalog: Catalog, api: Any, overrides: dict[str, Any], details: dict[str, Any]
) -> None:
    before = stock_state()

    response = api(catalog.world.admin).post(LOTS, lot_body(**overrides), format="json")

    assert_error(response, 400, "VALIDATION_ERROR", INVALID, details)
    assert stock_state() == before


def test_yesterdays_expiry_is_already_past(catalog: Catalog, api: Any) -> None:
    yesterday = (timezone.localdate() - dt.timedelta(days=1)).isoformat()
    before = stock_state()

    response = api(catalog.world.admin).post(LOTS, lot_body(expiration_date=yesterday), format="json")

    assert_error(
        response,
        400,
        "VALIDATION_ERROR",
        INVALID,
        {"expiration_date": ["The lot has already expired; it cannot be received."]},
    )
    assert stock_state() == before


@pytest.mark.parametrize("role", ["doctor", "ops", "distributor"])
def test_only_catalog_admins_receive_stock(catalog: Catalog, api: Any, role: str) -> None:
    before = stock_state()

    response = api(getattr(catalog.world, role)).post(LOTS, lot_body(), format="json")

    assert_error(response, 403, "PERMISSION_DENIED", REFUSED)
    assert stock_state() == before


# --- Authentication and the schema ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", PRODUCTS),
        ("get", GROUPED),
        ("get", f"{PRODUCTS}/CPAP-DEVICE"),
        ("post", PRODUCTS),
        ("put", f"{PRODUCTS}/CPAP-DEVICE"),
        ("post", LOTS),
    ],
)
def test_the_catalog_needs_a_token(catalog: Catalog, method: str, url: str) -> None:
    before = (products_state(), stock_state())
    body = product_body(sku="CPAP-DEVICE") if url != LOTS else lot_body()

    client = APIClient()
    response = client.get(url) if method == "get" else getattr(client, method)(url, body, format="json")

    assert_error(response, 401, "AUTHENTICATION_FAILED", "Authentication credentials were not provided.")
    assert (products_state(), stock_state()) == before


def test_the_schema_documents_the_catalog(db: Any) -> None:
    response = APIClient().get("/api/schema/", {"format": "json"})
    schema = json.loads(response.content)
    paths, components = schema["paths"], schema["components"]["schemas"]

    operations = {path: set(item) & {"get", "post", "put"} for path, item in paths.items() if "/catalog/" in path}
    assert operations == {
        "/api/v1/catalog/products": {"get", "post"},
        "/api/v1/catalog/products/grouped": {"get"},
        "/api/v1/catalog/products/{sku}": {"get", "put"},
        "/api/v1/catalog/lots": {"post"},
    }
    errors = {
        (path, method): {code for code in operation["responses"] if code >= "400"}
        for path, item in paths.items()
        if "/catalog/" in path
        for method, operation in item.items()
    }
    assert errors == {
        ("/api/v1/catalog/products", "get"): {"400", "401", "404"},
        ("/api/v1/catalog/products", "post"): {"400", "401", "403", "413", "415"},
        ("/api/v1/catalog/products/grouped", "get"): {"401"},
        ("/api/v1/catalog/products/{sku}", "get"): {"400", "401", "404"},
        ("/api/v1/catalog/products/{sku}", "put"): {"400", "401", "403", "404", "413", "415"},
        ("/api/v1/catalog/lots", "post"): {"400", "401", "403", "413", "415"},
    }
    list_parameters = {p["name"] for p in paths["/api/v1/catalog/products"]["get"]["parameters"]}
    assert list_parameters == {"therapy_type", "coverage_tier", "search", "available", "active", "page", "page_size"}
    assert set(components["ProductWriteRequest"]["properties"]) == {
        "sku",
        "name",
        "hcpcs_code",
        "rxnorm_code",
        "rxnorm_name",
        "strength",
        "dose_form",
        "therapy_type",
        "coverage_tier",
        "price_cents",
        "unit",
        "dispensing_unit",
        "dispensing_units_per_unit",
        "requires_prescription",
        "is_perishable",
        "requires_training",
        "recurring",
        "days_of_supply",
        "par_level",
        "reorder_point",
        "fulfillment_modes",
        "vendor",
        "active",
    }
    assert set(components["Product"]["properties"]) == {
        *components["ProductWriteRequest"]["properties"],
        "available_quantity",
    }
    assert set(components["LotReceiveRequest"]["properties"]) == {
        "sku",
        "lot_number",
        "expiration_date",
        "quantity",
        "warehouse",
    }
