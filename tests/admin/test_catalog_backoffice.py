"""The catalog back office: product and stock CSV files, receiving and adjusting stock, the stock reports.

Imports are all or nothing: a file with one bad row imports nothing, and the page names each bad
row by its line in the file (the header is line 1).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from accounts.models import User
from catalog.models import (
    Lot,
    MovementKind,
    Product,
    PurchaseOrder,
    PurchaseOrderKind,
    PurchaseOrderLine,
    StockAlert,
    StockAlertKind,
    StockMovement,
    TherapyType,
    Vendor,
    Warehouse,
)
from catalog.services import lot_adjust, lot_receive
from tests.factories import ProductFactory, TerritoryFactory, UserFactory, VendorFactory, WarehouseFactory

from .conftest import messages_of, result_ids, signed_in

PRODUCT_HEADER = (
    "sku,name,hcpcs_code,rxnorm_code,strength,dose_form,therapy_type,coverage_tier,price_cents,unit,"
    "requires_prescription,is_perishable,requires_training,par_level,reorder_point,warehouse_fulfillment,"
    "dropship_fulfillment,vendor,active"
)
# Every product column, the medication and refill ones (issue 16) included; imports may leave columns out.
ALL_PRODUCT_COLUMNS = (
    "sku,name,hcpcs_code,rxnorm_code,rxnorm_name,strength,dose_form,therapy_type,coverage_tier,price_cents,unit,"
    "dispensing_unit,dispensing_units_per_unit,requires_prescription,is_perishable,requires_training,recurring,"
    "days_of_supply,par_level,reorder_point,warehouse_fulfillment,dropship_fulfillment,vendor,active"
)
RECEIPT_HEADER = "sku,warehouse,lot_number,expiration_date,quantity"


@pytest.fixture
def catalog_admin(db: Any) -> User:
    return UserFactory.create(username="catalog.admin", territory=TerritoryFactory.create(code="north"), role="admin")


@pytest.fixture
def ops(db: Any) -> User:
    return UserFactory.create(username="ops.north", territory=TerritoryFactory.create(code="north"), role="ops_staff")


@pytest.fixture
def today() -> dt.date:
    return timezone.localdate()


def csv_file(*lines: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("upload.csv", ("\n".join(lines) + "\n").encode(), content_type="text/csv")


def preview(client: Client, url: str, *lines: str) -> Any:
    """Upload a CSV to an import page: the dry run that shows problems or offers the confirmation."""
    return client.post(url, {"format": "0", "resource": "0", "import_file": csv_file(*lines)})


def confirm(client: Client, model_url: str, previewed: Any) -> Any:
    """Confirm an import whose preview offered it."""
    form = previewed.context["confirm_form"]
    return client.post(f"{model_url}process_import/", {name: form.initial[name] for name in form.fields})


def problems(response: Any) -> list[str]:
    """The problems an import page lists, as the admin reads them ("Line 3, hcpcs_code: ...")."""
    result = response.context["result"]
    listed = [f"File: {error.error}" for error in result.base_errors]
    for row in result.invalid_rows:
        line = row.number + 1
        for field, messages in row.field_specific_errors.items():
            listed += [f"Line {line}, {field}: {message}" for message in messages]
        listed += [f"Line {line}: {message}" for message in row.non_field_specific_errors]
    return listed


def product_values(sku: str) -> tuple[Any, ...]:
    product = Product.objects.select_related("vendor").get(sku=sku)
    return (
        product.name,
        product.hcpcs_code,
        product.rxnorm_code,
        product.strength,
        product.dose_form,
        product.therapy_type,
        product.coverage_tier,
        product.price_cents,
        product.unit,
        product.requires_prescription,
        product.is_perishable,
        product.requires_training,
        product.par_level,
        product.reorder_point,
        product.warehouse_fulfillment,
        product.dropship_fulfillment,
        product.vendor.code if product.vendor else None,
        product.active,
    )


def ledger() -> list[tuple[str, str, int, str, Any]]:
    """Every stock movement as (SKU, lot number, on-hand change, kind, actor id), in a stable order."""
    return sorted(
        (movement.lot.product.sku, movement.lot.lot_number, movement.on_hand_delta, movement.kind, movement.actor_id)
        for movement in StockMovement.objects.select_related("lot__product")
    )


def lot_counters() -> list[tuple[str, str, str, dt.date | None, int, int]]:
    return sorted(
        (
            lot.product.sku,
            lot.warehouse.code,
            lot.lot_number,
            lot.expiration_date,
            lot.quantity_on_hand,
            lot.quantity_reserved,
        )
        for lot in Lot.objects.select_related("product", "warehouse")
    )


# --- product CSV ----------------------------------------------------------------------------------

PRODUCTS_URL = "/admin/catalog/product/"


def test_product_import_creates_and_updates_products_with_the_files_values(catalog_admin: User) -> None:
    VendorFactory.create(code="acme", name="Acme Medical")
    ProductFactory.create(sku="MASK-1", name="Old mask name", price_cents=100, par_level=0, reorder_point=0)
    client = signed_in(catalog_admin)

    previewed = preview(
        client,
        f"{PRODUCTS_URL}import/",
        PRODUCT_HEADER,
        "MASK-1,Nasal mask,a7034,,,,cpap,standard,8900,each,true,false,false,40,10,true,true,acme,true",
        "PEN-2,Semaglutide pen,,1991302,2.5 mg/0.5 mL,injection pen,weight_management,premium,45000,pen,"
        "1,1,yes,12,4,TRUE,0,,true",
    )

    assert previewed.status_code == 200
    assert previewed.context["result"].totals["new"] == 1
    assert previewed.context["result"].totals["update"] == 1
    assert "confirm_form" in previewed.context
    assert not Product.objects.filter(sku="PEN-2").exists()  # the preview wrote nothing
    assert product_values("MASK-1")[0] == "Old mask name"

    confirmed = confirm(client, PRODUCTS_URL, previewed)

    assert confirmed.status_code == 302
    assert confirmed["Location"] == PRODUCTS_URL
    assert product_values("MASK-1") == (
        "Nasal mask",
        "A7034",
        "",
        "",
        "",
        "cpap",
        "standard",
        8900,
        "each",
        True,
        False,
        False,
        40,
        10,
        True,
        True,
        "acme",
        True,
    )
    assert product_values("PEN-2") == (
        "Semaglutide pen",
        "",
        "1991302",
        "2.5 mg/0.5 mL",
        "injection pen",
        "weight_management",
        "premium",
        45000,
        "pen",
        True,
        True,
        True,
        12,
        4,
        True,
        False,
        None,
        True,
    )
    assert Product.objects.count() == 2


def test_product_import_with_bad_rows_names_each_line_and_field_and_imports_nothing(catalog_admin: User) -> None:
    VendorFactory.create(code="acme", name="Acme Medical")
    ProductFactory.create(sku="MASK-1", name="Old mask name", price_cents=100)
    before = product_values("MASK-1")
    client = signed_in(catalog_admin)

    response = preview(
        client,
        f"{PRODUCTS_URL}import/",
        PRODUCT_HEADER,
        "NEW-1,Good new product,A7030,,,,cpap,,1000,each,true,false,false,0,0,true,false,,true",
        "NEW-2,Bad HCPCS,XYZ,,,,cpap,,1000,each,true,false,false,0,0,true,false,,true",
        "MASK-1,Good update,A7030,,,,cpap,,2000,each,true,false,false,0,0,true,false,,true",
        "NEW-3,Rules broken,A7030,,,,cpap,,1000,each,true,false,false,5,9,false,true,,true",
        "NEW-4,Unreadable cells,A7030,,,,sleep,,12.50,each,maybe,false,false,0,0,true,false,nobody,true",
    )

    assert response.status_code == 200
    assert "confirm_form" not in response.context
    assert problems(response) == [
        "Line 3, hcpcs_code: Enter a valid HCPCS Level II code: a letter and four digits.",
        "Line 5, vendor: Dropship fulfillment needs a vendor.",
        "Line 5, reorder_point: The reorder point cannot be above the par level.",
        "Line 6, price_cents: Enter a whole number.",
        "Line 6, requires_prescription: Enter true or false.",
        "Line 6, vendor: No vendor has the code “nobody”.",
    ]
    page = response.content.decode()
    assert "Line 3, hcpcs_code: Enter a valid HCPCS Level II code" in page
    assert "nothing will be imported" in page
    assert set(Product.objects.values_list("sku", flat=True)) == {"MASK-1"}
    assert product_values("MASK-1") == before


def test_unknown_therapy_type_is_reported_by_the_model_validators(catalog_admin: User) -> None:
    response = preview(
        signed_in(catalog_admin),
        f"{PRODUCTS_URL}import/",
        PRODUCT_HEADER,
        "NEW-1,Bad choice,A7030,,,,sleep,,1000,each,true,false,false,0,0,true,false,,true",
    )

    assert problems(response) == ["Line 2, therapy_type: Value 'sleep' is not a valid choice."]
    assert Product.objects.count() == 0


def test_a_file_with_unknown_columns_is_refused(catalog_admin: User) -> None:
    response = preview(signed_in(catalog_admin), f"{PRODUCTS_URL}import/", "sku,name,pric_cents", "NEW-1,Mask,100")

    assert problems(response) == [
        "File: Unknown columns: pric_cents. The columns are: " + ALL_PRODUCT_COLUMNS.replace(",", ", ") + "."
    ]
    assert "confirm_form" not in response.context
    assert Product.objects.count() == 0


def test_a_confirmation_whose_rows_went_bad_after_the_preview_imports_nothing(catalog_admin: User) -> None:
    vendor = VendorFactory.create(code="acme", name="Acme Medical")
    client = signed_in(catalog_admin)
    previewed = preview(
        client,
        f"{PRODUCTS_URL}import/",
        PRODUCT_HEADER,
        "NEW-1,Fine either way,A7030,,,,cpap,,1000,each,true,false,false,0,0,true,false,,true",
        "NEW-2,Dropshipped by acme,A7030,,,,cpap,,1000,each,true,false,false,0,0,false,true,acme,true",
    )
    assert "confirm_form" in previewed.context
    Vendor.objects.filter(pk=vendor.pk).update(code="acme-medical")

    confirmed = confirm(client, PRODUCTS_URL, previewed)

    assert confirmed.status_code == 302
    assert confirmed["Location"] == f"{PRODUCTS_URL}import/"
    assert Product.objects.count() == 0
    assert messages_of(client.get(PRODUCTS_URL)) == [
        "Nothing was imported: 1 problem(s) appeared when the import was confirmed (the data changed after the "
        "preview). Upload the file again to see them."
    ]


def test_product_export_has_one_exact_row_per_product(catalog_admin: User, today: dt.date) -> None:
    acme = VendorFactory.create(code="acme", name="Acme Medical")
    ProductFactory.create(
        sku="B-PEN",
        name="Pen, 2 pack",
        hcpcs_code="",
        rxnorm_code="1991302",
        strength="2.5 mg",
        dose_form="injection pen",
        therapy_type=TherapyType.WEIGHT_MANAGEMENT,
        coverage_tier="premium",
        price_cents=45000,
        unit="pen",
        is_perishable=True,
        requires_training=True,
        par_level=12,
        reorder_point=4,
        dropship_fulfillment=True,
        vendor=acme,
    )
    ProductFactory.create(sku="A-MASK", name="Nasal mask", price_cents=8900, active=False)

    response = signed_in(catalog_admin).get(f"{PRODUCTS_URL}export/")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"] == f'attachment; filename="products-{today.isoformat()}.csv"'
    assert response.content.decode().splitlines() == [
        ALL_PRODUCT_COLUMNS,
        "A-MASK,Nasal mask,A7030,,,,,cpap,,8900,each,,,true,false,false,false,,0,0,true,false,,false",
        'B-PEN,"Pen, 2 pack",,1991302,,2.5 mg,injection pen,weight_management,premium,45000,pen,,,true,true,true,'
        "false,,12,4,true,true,acme,true",
    ]


def test_product_form_offers_requires_training(catalog_admin: User) -> None:
    page = signed_in(catalog_admin).get(f"{PRODUCTS_URL}add/").content.decode()

    assert 'name="requires_training"' in page


def product_form(**overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "sku": "MASK-M",
        "name": "Nasal mask, medium",
        "hcpcs_code": "a7034",
        "therapy_type": "cpap",
        "coverage_tier": "standard",
        "rxnorm_code": "",
        "strength": "",
        "dose_form": "",
        "price": "89.00",
        "unit": "each",
        "requires_prescription": "on",
        "par_level": "40",
        "reorder_point": "10",
        "warehouse_fulfillment": "on",
        "vendor": "",
        "active": "on",
    }
    form.update(overrides)
    return {key: value for key, value in form.items() if value is not None}


def test_the_product_form_saves_through_the_catalog_service(catalog_admin: User) -> None:
    response = signed_in(catalog_admin).post(f"{PRODUCTS_URL}add/", product_form())

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    product = Product.objects.get(sku="MASK-M")
    # The service's normalisation: HCPCS upper-case
    assert (product.hcpcs_code, product.price_cents, product.fulfillment_modes) == ("A7034", 8900, ["warehouse"])

    # A product's SKU is shown but cannot be changed
    page = signed_in(catalog_admin).get(f"{PRODUCTS_URL}{product.pk}/change/").content.decode()
    assert 'name="sku"' not in page
    response = signed_in(catalog_admin).post(
        f"{PRODUCTS_URL}{product.pk}/change/", product_form(sku="RENAMED", price="99.00")
    )
    assert response.status_code == 302
    assert list(Product.objects.values_list("sku", "price_cents")) == [("MASK-M", 9900)]


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"reorder_point": "50"}, {"reorder_point": ["The reorder point cannot be above the par level."]}),
        ({"dropship_fulfillment": "on"}, {"vendor": ["Dropship fulfillment needs a vendor."]}),
        ({"warehouse_fulfillment": None}, {"warehouse_fulfillment": ["Choose at least one fulfillment mode."]}),
        ({"hcpcs_code": "A70"}, {"hcpcs_code": ["Enter a valid HCPCS Level II code: a letter and four digits."]}),
    ],
)
def test_the_product_form_shows_the_catalog_rules_and_saves_nothing(
    catalog_admin: User, overrides: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    response = signed_in(catalog_admin).post(f"{PRODUCTS_URL}add/", product_form(**overrides))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == errors
    assert not Product.objects.exists()


# --- stock CSV ------------------------------------------------------------------------------------

LOTS_URL = "/admin/catalog/lot/"


def test_stock_import_receives_every_row_through_the_ledger(catalog_admin: User, today: dt.date) -> None:
    ProductFactory.create(sku="STRIPS-50", is_perishable=True)
    ProductFactory.create(sku="MASK-1")
    WarehouseFactory.create(code="main")
    WarehouseFactory.create(code="east")
    expires = today + dt.timedelta(days=200)
    client = signed_in(catalog_admin)

    previewed = preview(
        client,
        f"{LOTS_URL}import/",
        RECEIPT_HEADER,
        f"STRIPS-50,main,L-1,{expires.isoformat()},12",
        "MASK-1,east,M-9,,5",
        f"STRIPS-50,main,L-1,{expires.isoformat()},3",
    )
    assert "confirm_form" in previewed.context
    assert Lot.objects.count() == 0
    assert StockMovement.objects.count() == 0

    confirmed = confirm(client, LOTS_URL, previewed)

    assert confirmed.status_code == 302
    assert lot_counters() == [
        ("MASK-1", "east", "M-9", None, 5, 0),
        ("STRIPS-50", "main", "L-1", expires, 15, 0),
    ]
    assert ledger() == [
        ("MASK-1", "M-9", 5, MovementKind.RECEIPT, catalog_admin.pk),
        ("STRIPS-50", "L-1", 3, MovementKind.RECEIPT, catalog_admin.pk),
        ("STRIPS-50", "L-1", 12, MovementKind.RECEIPT, catalog_admin.pk),
    ]
    assert messages_of(client.get(LOTS_URL)) == ["Stock received: 3 receipt(s), 20 units into 2 lot(s)."]


def test_stock_import_with_bad_rows_names_each_line_and_imports_nothing(catalog_admin: User, today: dt.date) -> None:
    ProductFactory.create(sku="STRIPS-50", is_perishable=True)
    ProductFactory.create(sku="MASK-1")
    ProductFactory.create(sku="RETIRED", active=False)
    WarehouseFactory.create(code="main")
    WarehouseFactory.create(code="closed", active=False)
    future = (today + dt.timedelta(days=200)).isoformat()
    past = (today - dt.timedelta(days=1)).isoformat()
    client = signed_in(catalog_admin)

    response = preview(
        client,
        f"{LOTS_URL}import/",
        RECEIPT_HEADER,
        f"STRIPS-50,main,L-1,{future},12",
        f"NOPE,main,L-2,{future},1",
        "MASK-1,attic,M-1,,1",
        "MASK-1,main,M-2,2027-13-01,1",
        "MASK-1,main,M-3,,0",
        f"STRIPS-50,main,L-3,{past},4",
        "STRIPS-50,main,L-4,,4",
        "MASK-1,main,,,two",
        "RETIRED,closed,R-1,,1",
    )

    assert "confirm_form" not in response.context
    assert problems(response) == [
        "Line 3, sku: No active product has the SKU “NOPE”.",
        "Line 4, warehouse: No active warehouse has the code “attic”.",
        "Line 5, expiration_date: Enter a date as YYYY-MM-DD.",
        "Line 6, quantity: Receive at least one unit.",
        "Line 7, expiration_date: The lot has already expired; it cannot be received.",
        "Line 8, expiration_date: A perishable product's lot needs an expiration date.",
        "Line 9, quantity: Enter a whole number.",
        "Line 9, lot_number: Enter the lot number.",
        "Line 10, sku: No active product has the SKU “RETIRED”.",
        "Line 10, warehouse: No active warehouse has the code “closed”.",
    ]
    assert Lot.objects.count() == 0
    assert StockMovement.objects.count() == 0


def test_stock_export_lists_every_lot_with_its_counters(catalog_admin: User, today: dt.date) -> None:
    strips = ProductFactory.create(sku="STRIPS-50", is_perishable=True)
    mask = ProductFactory.create(sku="MASK-1")
    main = WarehouseFactory.create(code="main")
    expires = today + dt.timedelta(days=90)
    lot = lot_receive(
        actor=None, product=strips, warehouse=main, lot_number="L-1", quantity=12, expiration_date=expires
    )
    lot_adjust(actor=None, lot_id=lot.pk, delta=-2, reason="Crushed carton")
    lot_receive(actor=None, product=mask, warehouse=main, lot_number="M-1", quantity=1)
    Lot.objects.filter(pk=lot.pk).update(quantity_reserved=3)  # as a reservation would

    response = signed_in(catalog_admin).get(f"{LOTS_URL}export/")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"] == f'attachment; filename="stock-{today.isoformat()}.csv"'
    assert response.content.decode().splitlines() == [
        "sku,warehouse,lot_number,expiration_date,quantity_on_hand,quantity_reserved,quantity_available",
        "MASK-1,main,M-1,,1,0,1",
        f"STRIPS-50,main,L-1,{expires.isoformat()},10,3,7",
    ]


# --- receive and adjust ---------------------------------------------------------------------------


def test_receive_form_receives_through_the_service(catalog_admin: User, today: dt.date) -> None:
    strips = ProductFactory.create(sku="STRIPS-50", is_perishable=True)
    main = WarehouseFactory.create(code="main")
    expires = today + dt.timedelta(days=100)
    client = signed_in(catalog_admin)

    page = client.get(f"{LOTS_URL}receive/")
    response = client.post(
        f"{LOTS_URL}receive/",
        {
            "product": strips.pk,
            "warehouse": main.pk,
            "lot_number": " L-77 ",
            "expiration_date": expires.isoformat(),
            "quantity": 24,
        },
    )

    assert page.status_code == 200
    lot = Lot.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{LOTS_URL}{lot.pk}/change/"
    assert lot_counters() == [("STRIPS-50", "main", "L-77", expires, 24, 0)]
    assert ledger() == [("STRIPS-50", "L-77", 24, MovementKind.RECEIPT, catalog_admin.pk)]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"quantity": 0}, "quantity", "Receive at least one unit."),
        ({"expiration_date": ""}, "expiration_date", "A perishable product's lot needs an expiration date."),
        ({"expiration_date": "2001-01-01"}, "expiration_date", "The lot has already expired; it cannot be received."),
    ],
)
def test_receive_form_shows_the_services_refusal_and_changes_nothing(
    catalog_admin: User, today: dt.date, changes: dict[str, Any], field: str, message: str
) -> None:
    strips = ProductFactory.create(sku="STRIPS-50", is_perishable=True)
    main = WarehouseFactory.create(code="main")
    data = {
        "product": strips.pk,
        "warehouse": main.pk,
        "lot_number": "L-77",
        "expiration_date": (today + dt.timedelta(days=100)).isoformat(),
        "quantity": 24,
        **changes,
    }

    response = signed_in(catalog_admin).post(f"{LOTS_URL}receive/", data)

    assert response.status_code == 200
    assert response.context["form"].errors == {field: [message]}
    assert Lot.objects.count() == 0
    assert StockMovement.objects.count() == 0


def received_lot(quantity: int = 12) -> Lot:
    product = ProductFactory.create(sku="STRIPS-50")
    warehouse = WarehouseFactory.create(code="main")
    return lot_receive(actor=None, product=product, warehouse=warehouse, lot_number="L-1", quantity=quantity)


def test_adjust_form_corrects_the_count_with_its_reason(catalog_admin: User) -> None:
    lot = received_lot()
    client = signed_in(catalog_admin)

    lot_page = client.get(f"{LOTS_URL}{lot.pk}/change/").content.decode()
    response = client.post(f"{LOTS_URL}{lot.pk}/adjust/", {"delta": -2, "reason": "Crushed carton"})

    assert f"{LOTS_URL}{lot.pk}/adjust/" in lot_page
    receive_more = f"{LOTS_URL}receive/?product={lot.product_id}&amp;warehouse={lot.warehouse_id}&amp;lot_number=L-1"
    assert receive_more in lot_page
    assert response.status_code == 302
    assert response["Location"] == f"{LOTS_URL}{lot.pk}/change/"
    assert lot_counters() == [("STRIPS-50", "main", "L-1", None, 10, 0)]
    adjustment = StockMovement.objects.get(kind=MovementKind.ADJUSTMENT)
    assert (adjustment.on_hand_delta, adjustment.reason, adjustment.actor_id) == (
        -2,
        "Crushed carton",
        catalog_admin.pk,
    )


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"delta": -2, "reason": "  "}, {"reason": ["Say why the stock is adjusted."]}),
        ({"delta": -2}, {"reason": ["Say why the stock is adjusted."]}),
        ({"delta": -20, "reason": "Count"}, {"__all__": ["Stock cannot go below what is on hand or reserved."]}),
        ({"delta": 0, "reason": "Count"}, {"delta": ["An adjustment changes the count."]}),
    ],
)
def test_a_refused_adjustment_changes_nothing(catalog_admin: User, data: dict[str, Any], errors: Any) -> None:
    lot = received_lot()

    response = signed_in(catalog_admin).post(f"{LOTS_URL}{lot.pk}/adjust/", data)

    assert response.status_code == 200
    assert response.context["form"].errors == errors
    assert lot_counters() == [("STRIPS-50", "main", "L-1", None, 12, 0)]
    assert StockMovement.objects.count() == 1


def test_ops_staff_may_not_receive_adjust_or_import(ops: User, today: dt.date) -> None:
    lot = received_lot()
    client = signed_in(ops)
    receipt = {"product": lot.product_id, "warehouse": lot.warehouse_id, "lot_number": "L-2", "quantity": 5}

    responses = [
        client.get(f"{LOTS_URL}receive/"),
        client.post(f"{LOTS_URL}receive/", receipt),
        client.get(f"{LOTS_URL}{lot.pk}/adjust/"),
        client.post(f"{LOTS_URL}{lot.pk}/adjust/", {"delta": 5, "reason": "Found a box"}),
        client.get(f"{LOTS_URL}import/"),
        preview(client, f"{LOTS_URL}import/", RECEIPT_HEADER, "STRIPS-50,main,L-2,,5"),
        client.post(
            f"{LOTS_URL}process_import/", {"import_file_name": "x", "original_file_name": "x.csv", "format": "0"}
        ),
        client.get(f"{PRODUCTS_URL}import/"),
        preview(client, f"{PRODUCTS_URL}import/", "sku,price_cents", "STRIPS-50,1"),
    ]

    assert [response.status_code for response in responses] == [403] * len(responses)
    assert lot_counters() == [("STRIPS-50", "main", "L-1", None, 12, 0)]
    assert StockMovement.objects.count() == 1
    assert Product.objects.get(sku="STRIPS-50").price_cents == 12500
    changelist = client.get(LOTS_URL).content.decode()
    assert "Receive stock" not in changelist
    assert "Expiring lots report" in changelist


# --- reports --------------------------------------------------------------------------------------


def restock(product: Product, vendor: Vendor, warehouse: Warehouse, quantity: int, *, status: str = "draft") -> None:
    """A restock purchase order of ``quantity`` units (open while draft, sent or acknowledged)."""
    order = PurchaseOrder.objects.create(
        vendor=vendor, kind=PurchaseOrderKind.RESTOCK, warehouse=warehouse, status=status
    )
    PurchaseOrderLine.objects.create(purchase_order=order, product=product, quantity=quantity)


def test_low_stock_report_lists_products_at_or_below_their_reorder_point(ops: User, today: dt.date) -> None:
    acme = VendorFactory.create(code="acme", name="Acme Medical")
    main = WarehouseFactory.create(code="main")
    closed = WarehouseFactory.create(code="closed", active=False)

    def product(sku: str, *, par: int, reorder: int, on_hand: int = 0, **fields: Any) -> Product:
        item = ProductFactory.create(sku=sku, name=f"Product {sku}", par_level=par, reorder_point=reorder, **fields)
        if on_hand:
            lot_receive(actor=None, product=item, warehouse=main, lot_number=f"{sku}-1", quantity=on_hand)
        return item

    low = product("A-LOW", par=30, reorder=10, on_hand=4, vendor=acme)
    restock(low, acme, main, 5)
    restock(low, acme, main, 100, status="received")  # no longer on order
    at_point = product("B-AT-POINT", par=3, reorder=3, on_hand=3, vendor=acme)
    restock(at_point, acme, main, 10)
    expired = product("C-EXPIRED", par=10, reorder=5)
    lot_receive(
        actor=None,
        product=expired,
        warehouse=main,
        lot_number="OLD",
        quantity=50,
        expiration_date=today - dt.timedelta(days=1),
    )
    elsewhere = product("D-CLOSED-WAREHOUSE", par=8, reorder=2)
    lot_receive(actor=None, product=elsewhere, warehouse=closed, lot_number="X", quantity=50)
    product("E-PLENTY", par=30, reorder=10, on_hand=11)
    product("F-INACTIVE", par=30, reorder=10, active=False)
    product("G-NO-REORDER-POINT", par=0, reorder=0)
    client = signed_in(ops)

    page = client.get(f"{PRODUCTS_URL}low-stock/")
    download = client.get(f"{PRODUCTS_URL}low-stock/", {"format": "csv"})

    assert page.status_code == 200
    assert [row.values for row in page.context["report"].rows] == [
        ("A-LOW", "Product A-LOW", "Acme Medical", 4, 10, 30, 5, 21),
        ("B-AT-POINT", "Product B-AT-POINT", "Acme Medical", 3, 3, 3, 10, 0),
        ("C-EXPIRED", "Product C-EXPIRED", "", 0, 5, 10, 0, 10),
        ("D-CLOSED-WAREHOUSE", "Product D-CLOSED-WAREHOUSE", "", 0, 2, 8, 0, 8),
    ]
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert download["Content-Disposition"] == f'attachment; filename="low-stock-{today.isoformat()}.csv"'
    assert download.content.decode() == (
        "SKU,Product,Vendor,Available,Reorder point,Par level,On order,Suggested reorder\r\n"
        "A-LOW,Product A-LOW,Acme Medical,4,10,30,5,21\r\n"
        "B-AT-POINT,Product B-AT-POINT,Acme Medical,3,3,3,10,0\r\n"
        "C-EXPIRED,Product C-EXPIRED,,0,5,10,0,10\r\n"
        "D-CLOSED-WAREHOUSE,Product D-CLOSED-WAREHOUSE,,0,2,8,0,8\r\n"
    )


def test_expiring_lots_report_lists_expired_and_soon_expiring_lots_with_stock(
    ops: User, today: dt.date, settings: Any
) -> None:
    settings.STOCK_ALERT_EXPIRY_WINDOW_DAYS = 30
    strips = ProductFactory.create(sku="STRIPS-50", name="Test strips", is_perishable=True)
    pens = ProductFactory.create(sku="PEN-2", name="Insulin pen", is_perishable=True)
    main = WarehouseFactory.create(code="main")
    closed = WarehouseFactory.create(code="closed", active=False)

    def lot(product: Product, number: str, days: int | None, quantity: int = 10, warehouse: Warehouse = main) -> Lot:
        expires = None if days is None else today + dt.timedelta(days=days)
        return lot_receive(
            actor=None,
            product=product,
            warehouse=warehouse,
            lot_number=number,
            quantity=quantity,
            expiration_date=expires,
        )

    lot(strips, "EXPIRED", -3, quantity=7)
    soon = lot(pens, "SOON", 5, quantity=20)
    Lot.objects.filter(pk=soon.pk).update(quantity_reserved=4)
    lot(strips, "TODAY", 0, quantity=2)
    lot(strips, "LATER", 40)
    empty = lot(pens, "EMPTY", 2, quantity=3)
    lot_adjust(actor=None, lot_id=empty.pk, delta=-3, reason="Damaged")
    lot(pens, "CLOSED", 1, warehouse=closed)
    lot(ProductFactory.create(sku="MASK-1"), "NO-EXPIRY", None)
    client = signed_in(ops)

    default_window = client.get(f"{LOTS_URL}expiring/")
    wider = client.get(f"{LOTS_URL}expiring/", {"days": "45", "format": "csv"})
    invalid = client.get(f"{LOTS_URL}expiring/", {"days": "-1"})

    def date(days: int) -> str:
        return (today + dt.timedelta(days=days)).isoformat()

    assert default_window.status_code == 200
    assert [row.values[1:] for row in default_window.context["report"].rows] == [
        ("Expired", -3, "STRIPS-50", "Test strips", "main", "EXPIRED", 7, 0, 7),
        ("Expiring", 0, "STRIPS-50", "Test strips", "main", "TODAY", 2, 0, 2),
        ("Expiring", 5, "PEN-2", "Insulin pen", "main", "SOON", 20, 4, 16),
    ]
    assert wider["Content-Type"] == "text/csv; charset=utf-8"
    assert wider["Content-Disposition"] == f'attachment; filename="expiring-lots-{today.isoformat()}.csv"'
    assert wider.content.decode() == (
        "Expires,Status,Days left,SKU,Product,Warehouse,Lot,On hand,Reserved,Available\r\n"
        f"{date(-3)},Expired,-3,STRIPS-50,Test strips,main,EXPIRED,7,0,7\r\n"
        f"{date(0)},Expiring,0,STRIPS-50,Test strips,main,TODAY,2,0,2\r\n"
        f"{date(5)},Expiring,5,PEN-2,Insulin pen,main,SOON,20,4,16\r\n"
        f"{date(40)},Expiring,40,STRIPS-50,Test strips,main,LATER,10,0,10\r\n"
    )
    assert invalid.status_code == 400
    assert invalid.context["filter_form"].errors == {"days": ["Ensure this value is greater than or equal to 0."]}


def test_reports_need_view_permission(db: Any) -> None:
    staff_without_catalog = UserFactory.create(username="clerk", is_staff=True)
    client = signed_in(staff_without_catalog)

    assert client.get(f"{PRODUCTS_URL}low-stock/").status_code == 403
    assert client.get(f"{LOTS_URL}expiring/").status_code == 403
    assert client.get(f"{PRODUCTS_URL}export/").status_code == 403
    assert client.get(f"{LOTS_URL}export/").status_code == 403


# --- stock alerts ---------------------------------------------------------------------------------


def test_stock_alerts_are_listed_read_only_and_filtered_by_resolution(catalog_admin: User) -> None:
    product = ProductFactory.create(sku="STRIPS-50")
    fields = {"kind": StockAlertKind.LOW_STOCK, "product": product, "available_quantity": 1}
    open_alert = StockAlert.objects.create(condition_key="low_stock:open", **fields)
    resolved = StockAlert.objects.create(condition_key="low_stock:old", resolved_at=timezone.now(), **fields)
    client = signed_in(catalog_admin)

    assert result_ids(client.get("/admin/catalog/stockalert/", {"resolved": "no"})) == {open_alert.pk}
    assert result_ids(client.get("/admin/catalog/stockalert/", {"resolved": "yes"})) == {resolved.pk}
    assert result_ids(client.get("/admin/catalog/stockalert/", {"kind__exact": "expiring_lot"})) == set()
    assert client.get("/admin/catalog/stockalert/add/").status_code == 403
    assert (
        client.post(f"/admin/catalog/stockalert/{open_alert.pk}/change/", {"available_quantity": 9}).status_code == 403
    )
    assert StockAlert.objects.get(pk=open_alert.pk).available_quantity == 1


def test_expired_lots_are_written_off_from_the_list_and_fresh_ones_refused(
    catalog_admin: User, ops: User, today: dt.date
) -> None:
    strips = ProductFactory.create(sku="STRIPS", hcpcs_code="A4253", is_perishable=True)
    warehouse = WarehouseFactory.create(code="main")
    expired = lot_receive(
        actor=None, product=strips, warehouse=warehouse, lot_number="OLD", quantity=4, expiration_date=today
    )
    Lot.objects.filter(pk=expired.pk).update(expiration_date=today - dt.timedelta(days=1))
    fresh = lot_receive(
        actor=None,
        product=strips,
        warehouse=warehouse,
        lot_number="NEW",
        quantity=6,
        expiration_date=today + dt.timedelta(days=90),
    )
    action = {"action": "write_off_expired", "_selected_action": [expired.pk, fresh.pk]}
    url = LOTS_URL

    # Ops staff do not get the action: nothing changes
    signed_in(ops).post(url, action)
    assert sorted(Lot.objects.values_list("lot_number", "quantity_on_hand")) == [("NEW", 6), ("OLD", 4)]

    response = signed_in(catalog_admin).post(url, action, follow=True)

    assert sorted(messages_of(response)) == sorted(
        [f"{expired}: 4 units written off.", f"{fresh}: not expired, nothing written off."]
    )
    assert sorted(Lot.objects.values_list("lot_number", "quantity_on_hand")) == [("NEW", 6), ("OLD", 0)]
    assert StockMovement.objects.get(kind="expiry_write_off").actor == catalog_admin
