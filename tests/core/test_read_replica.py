"""Reports and exports read from the read replica; writes and reads inside a transaction stay on the primary.

The replica is a second, separately migrated PostgreSQL test database (config/settings/test.py) holding
different rows from the primary, so each answer shows where it was read. In production the replica
is a streaming copy of the primary; here rows are put in each database on purpose.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connections, router, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from catalog.models import Lot, Product, TherapyType, Warehouse
from catalog.selectors import expiring_lots_report, low_stock_report
from core.db_routers import in_write_transaction, reading_from_replica, replica_alias
from orders.models import Order
from payments.selectors import reconciliation_mismatches
from tests.conftest import World
from tests.factories import TerritoryFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(databases=["default", "replica"])]

PRODUCTS_URL = "/admin/catalog/product/"
LOTS_URL = "/admin/catalog/lot/"


@pytest.fixture
def with_replica(settings: Any) -> None:
    """The stand-in database is the read replica (as DATABASE_REPLICA_URL makes "replica" in production)."""
    settings.DATABASE_REPLICA_ALIAS = "replica"


@pytest.fixture
def catalog_admin() -> User:
    return UserFactory.create(username="catalog.admin", territory=TerritoryFactory.create(code="north"), role="admin")


@pytest.fixture
def today() -> dt.date:
    return timezone.localdate()


@contextmanager
def sql_sent() -> Iterator[dict[str, list[str]]]:
    """The SQL each database receives inside the block, by alias (filled in when the block ends)."""
    sent: dict[str, list[str]] = {}
    primary, copy = CaptureQueriesContext(connections["default"]), CaptureQueriesContext(connections["replica"])
    with primary, copy:
        yield sent
    sent["default"] = [query["sql"] for query in primary.captured_queries]
    sent["replica"] = [query["sql"] for query in copy.captured_queries]


def low_product(sku: str, *, using: str) -> Product:
    """An active product with a reorder point and no stock, written to ``using``: on the low-stock report."""
    product = Product(
        sku=sku, name=f"Product {sku}", therapy_type=TherapyType.CPAP, price_cents=100, reorder_point=5, par_level=9
    )
    product.save(using=using)
    return product


def expiring_lot(sku: str, *, using: str, expires: dt.date) -> Lot:
    product = low_product(sku, using=using)
    warehouse = Warehouse(code=f"wh-{sku.lower()}", name="Main")
    warehouse.save(using=using)
    lot = Lot(product=product, warehouse=warehouse, lot_number=f"{sku}-1", expiration_date=expires, quantity_on_hand=4)
    lot.save(using=using)
    return lot


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- reports and exports read the replica -----------------------------------------------------------


def test_the_low_stock_report_page_and_csv_read_the_replica(with_replica: None, catalog_admin: User) -> None:
    low_product("ON-PRIMARY", using="default")
    low_product("ON-REPLICA", using="replica")
    client = signed_in(catalog_admin)

    with sql_sent() as sent:
        page = client.get(f"{PRODUCTS_URL}low-stock/")
        download = client.get(f"{PRODUCTS_URL}low-stock/", {"format": "csv"})

    assert page.status_code == 200
    assert [row.values for row in page.context["report"].rows] == [
        ("ON-REPLICA", "Product ON-REPLICA", "", 0, 5, 9, 0, 9)
    ]
    assert download.content.decode().splitlines()[1:] == ["ON-REPLICA,Product ON-REPLICA,,0,5,9,0,9"]
    # The report's three queries per request went to the replica; the session and permission reads did not.
    assert len(sent["replica"]) == 6
    assert all('FROM "catalog_' in sql for sql in sent["replica"])
    assert any('FROM "accounts_user"' in sql for sql in sent["default"])
    assert any('FROM "django_session"' in sql for sql in sent["default"])


def test_the_expiring_lots_report_reads_the_replica(with_replica: None, today: dt.date) -> None:
    expiring_lot("ON-PRIMARY", using="default", expires=today + dt.timedelta(days=3))
    replica_lot = expiring_lot("ON-REPLICA", using="replica", expires=today + dt.timedelta(days=3))

    rows = expiring_lots_report(today=today, days=30)

    assert [(row.lot_id, row.sku, row.days_left, row.quantity_available) for row in rows] == [
        (replica_lot.pk, "ON-REPLICA", 3, 4)
    ]


def test_the_stock_export_reads_the_replica(with_replica: None, catalog_admin: User, today: dt.date) -> None:
    expiring_lot("ON-PRIMARY", using="default", expires=today + dt.timedelta(days=3))
    expiring_lot("ON-REPLICA", using="replica", expires=today + dt.timedelta(days=3))
    client = signed_in(catalog_admin)

    with sql_sent() as sent:
        response = client.get(f"{LOTS_URL}export/")

    assert response.status_code == 200
    assert response.content.decode().splitlines() == [
        "sku,warehouse,lot_number,expiration_date,quantity_on_hand,quantity_reserved,quantity_available",
        f"ON-REPLICA,wh-on-replica,ON-REPLICA-1,{(today + dt.timedelta(days=3)).isoformat()},4,0,4",
    ]
    assert len(sent["replica"]) == 1
    assert 'CURSOR FOR SELECT "catalog_lot"."id"' in sent["replica"][0]  # the export streams from a cursor
    assert not any('FROM "catalog_lot"' in sql for sql in sent["default"])


def test_payment_reconciliation_reads_the_replica(with_replica: None, north: World) -> None:
    """A paid cash order without a payment is a mismatch on the primary; the replica (empty) has none."""
    order = north.order(payer_type="cash")
    Order.objects.filter(pk=order.pk).update(status="paid")

    assert reconciliation_mismatches(now=timezone.now()) == []
    with transaction.atomic():  # the same report inside a transaction reads the primary
        assert [row.reference for row in reconciliation_mismatches(now=timezone.now())] == [order.reference]


# --- writes and transactions stay on the primary ----------------------------------------------------


def test_an_order_written_with_the_replica_configured_touches_only_the_primary(
    with_replica: None, north: World
) -> None:
    with sql_sent() as sent:
        order = north.order()

    assert Order.objects.filter(pk=order.pk).exists()
    assert sent["replica"] == []
    assert any(sql.startswith('INSERT INTO "orders_order"') for sql in sent["default"])
    assert Order.objects.using("replica").count() == 0


def test_inside_the_block_writes_and_reads_in_a_transaction_use_the_primary(with_replica: None) -> None:
    low_product("ON-PRIMARY", using="default")
    low_product("ON-REPLICA", using="replica")

    with sql_sent() as sent, reading_from_replica() as alias:
        assert alias == "replica"
        assert list(Product.objects.values_list("sku", flat=True)) == ["ON-REPLICA"]
        with transaction.atomic():
            assert in_write_transaction()
            assert list(Product.objects.values_list("sku", flat=True)) == ["ON-PRIMARY"]
            locked = Product.objects.select_for_update().get(sku="ON-PRIMARY")
            locked.name = "Renamed on the primary"
            locked.save(update_fields=["name"])
        replica_copy = Product.objects.get(sku="ON-REPLICA")
        replica_copy.name = "Saved from a replica read"
        replica_copy.save()  # a write: to the primary, whatever the object was read from
        created = Product.objects.create(sku="NEW", name="New", therapy_type=TherapyType.CPAP, price_cents=1)
    assert not in_write_transaction()

    assert sorted(Product.objects.values_list("sku", "name")) == [
        ("NEW", "New"),
        ("ON-PRIMARY", "Renamed on the primary"),
        ("ON-REPLICA", "Saved from a replica read"),
    ]
    assert list(Product.objects.using("replica").values_list("sku", "name")) == [("ON-REPLICA", "Product ON-REPLICA")]
    assert created._state.db == "default"
    # The two reads outside the transaction, and nothing else.
    assert len(sent["replica"]) == 2
    assert all(sql.startswith("SELECT") for sql in sent["replica"])


def test_outside_the_block_every_read_uses_the_primary(with_replica: None) -> None:
    low_product("ON-PRIMARY", using="default")
    low_product("ON-REPLICA", using="replica")
    with reading_from_replica():
        from_replica = Product.objects.get(sku="ON-REPLICA")

    assert list(Product.objects.values_list("sku", flat=True)) == ["ON-PRIMARY"]
    assert router.db_for_read(Product, instance=from_replica) == "default"


def test_migrations_run_on_the_primary_only_and_relations_across_both_are_allowed(with_replica: None) -> None:
    on_primary = low_product("ON-PRIMARY", using="default")
    on_replica = low_product("ON-REPLICA", using="replica")

    assert router.allow_migrate("default", "orders") is True
    assert router.allow_migrate("replica", "orders") is False
    assert router.allow_migrate_model("replica", Order) is False
    assert router.allow_relation(on_primary, on_replica) is True


# --- without a replica ---------------------------------------------------------------------------------


def test_without_a_replica_reports_read_the_primary_and_the_replica_database_is_never_touched(
    catalog_admin: User, today: dt.date
) -> None:
    low_product("ON-PRIMARY", using="default")
    low_product("ON-REPLICA", using="replica")
    client = signed_in(catalog_admin)

    with sql_sent() as sent:
        with reading_from_replica() as alias:
            assert alias == "default"
        page = client.get(f"{PRODUCTS_URL}low-stock/")
        export = client.get(f"{LOTS_URL}export/")
        report = low_stock_report(today=today)

    assert replica_alias() == "default"
    assert [row.values[0] for row in page.context["report"].rows] == ["ON-PRIMARY"]
    assert [row.sku for row in report] == ["ON-PRIMARY"]
    assert export.status_code == 200
    assert sent["replica"] == []
    # "replica" is only a database here, not the read replica: migrations are allowed on it (how the
    # stand-in gets its schema).
    assert router.allow_migrate("replica", "orders") is True


def test_a_replica_alias_that_names_no_database_resolves_to_the_primary(settings: Any) -> None:
    settings.DATABASE_REPLICA_ALIAS = "reporting"

    assert replica_alias() == "default"
    with reading_from_replica() as alias:
        assert alias == "default"
        assert router.db_for_read(Product) == "default"
