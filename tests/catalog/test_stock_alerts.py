"""The daily stock check: low-stock and expiring-lot alerts, de-duplication, resolution and announcing.

Email goes through Django's locmem backend (``mailoutbox``); SMS through the real HTTP backend to a
real local HTTP server (``httpserver``) standing in for the provider.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from celery.worker import state as worker_state
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection, transaction
from django.test import override_settings
from django_celery_beat.models import PeriodicTask
from pytest_httpserver import HTTPServer

from catalog import alerts
from catalog.models import (
    Lot,
    Product,
    PurchaseOrder,
    PurchaseOrderKind,
    PurchaseOrderLine,
    PurchaseOrderStatus,
    StockAlert,
    StockAlertKind,
    Vendor,
    Warehouse,
)
from catalog.services import ReservationLine, lot_adjust, lot_receive, stock_reserve
from catalog.tasks import check_stock
from config.celery import app as celery_app
from territories.models import Territory
from tests.core.conftest import wait_until
from tests.factories import ProductFactory, TerritoryFactory, UserFactory

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 11, 23)
SMS_PATH = "/v1/messages"
SMS_NUMBERS = ["+15550100001", "+15550100002"]
ADMIN_EMAILS = ["alice.admin@example.org", "bob.admin@example.org"]


# --- Fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def alert_settings() -> Iterator[None]:
    with override_settings(STOCK_ALERT_EXPIRY_WINDOW_DAYS=30, PRACTICE_NAME="Test Supply"):
        yield


@pytest.fixture
def territory() -> Territory:
    return TerritoryFactory.create(code="north")


@pytest.fixture
def admins(territory: Territory) -> list[Any]:
    """Two admins with email (one by role, one a superuser); besides them an admin without email, an
    inactive admin and an ops user."""
    people = [
        UserFactory.create(username="bob", email=ADMIN_EMAILS[1], territory=territory, role="admin"),
        get_user_model().objects.create_superuser(username="alice", email=ADMIN_EMAILS[0], password="x"),
    ]
    UserFactory.create(username="noemail", email="", territory=territory, role="admin")
    UserFactory.create(
        username="gone", email="gone.admin@example.org", is_active=False, territory=territory, role="admin"
    )
    UserFactory.create(username="ops", email="ops@example.org", territory=territory, role="ops_staff")
    return people


@pytest.fixture
def sms_gateway(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    """The SMS provider: a real local HTTP server accepting every message, with the HTTP backend configured."""
    httpserver.expect_request(SMS_PATH, method="POST").respond_with_json({"status": "queued"}, status=202)
    with override_settings(
        SMS_BACKEND="core.sms.HTTPSMSBackend",
        SMS_HTTP_URL=httpserver.url_for(SMS_PATH),
        SMS_HTTP_TOKEN="gateway-token",
        STOCK_ALERT_SMS_RECIPIENTS=SMS_NUMBERS,
    ):
        yield httpserver


def sms_received(server: HTTPServer) -> list[tuple[dict[str, str], int]]:
    """Every message the provider received, with the status it answered."""
    return [(request.get_json(), response.status_code) for request, response in server.log]


def summary_sms(text: str, status: int = 202) -> list[tuple[dict[str, str], int]]:
    return [({"to": number, "body": text}, status) for number in SMS_NUMBERS]


@pytest.fixture
def warehouse() -> Warehouse:
    return Warehouse.objects.create(code="main", name="Main warehouse")


@pytest.fixture
def vendor() -> Vendor:
    return Vendor.objects.create(code="acme", name="Acme Respiratory")


@pytest.fixture
def mask(vendor: Vendor) -> Product:
    return ProductFactory.create(sku="MASK-L", name="Nasal mask, large", reorder_point=10, par_level=50, vendor=vendor)


def receive(product: Product, warehouse: Warehouse, number: str, quantity: int, expires: dt.date | None = None) -> Lot:
    return lot_receive(
        actor=None, product=product, warehouse=warehouse, lot_number=number, quantity=quantity, expiration_date=expires
    )


def reserve(product: Product, quantity: int) -> None:
    line = ReservationLine(order_line_id=uuid.uuid4(), product_id=product.pk, quantity=quantity)
    assert stock_reserve(order_id=uuid.uuid4(), lines=[line], today=TODAY) == []


def purchase_order(
    vendor: Vendor, warehouse: Warehouse, lines: list[tuple[Product, int]], *, status: str, kind: str = "restock"
) -> PurchaseOrder:
    po = PurchaseOrder.objects.create(
        vendor=vendor,
        kind=kind,
        status=status,
        warehouse=warehouse if kind == PurchaseOrderKind.RESTOCK else None,
        order_id=uuid.uuid4() if kind == PurchaseOrderKind.DROPSHIP else None,
    )
    for product, quantity in lines:
        PurchaseOrderLine.objects.create(purchase_order=po, product=product, quantity=quantity)
    return po


@pytest.fixture
def check(django_capture_on_commit_callbacks: Any) -> Callable[..., alerts.AlertRun]:
    """Run the stock check and its after-commit announcement (the test's transaction never commits)."""

    def run(today: dt.date = TODAY) -> alerts.AlertRun:
        with django_capture_on_commit_callbacks(execute=True):
            result = alerts.stock_alerts_check(today=today)
        return result

    return run


def open_alerts() -> list[tuple[str, str, int, int, int, dt.date | None]]:
    return [
        (
            a.kind,
            a.condition_key,
            a.available_quantity,
            a.on_order_quantity,
            a.suggested_reorder_quantity,
            a.expiration_date,
        )
        for a in StockAlert.objects.filter(resolved_at__isnull=True).order_by("condition_key")
    ]


def email_summary(mail: EmailMessage) -> tuple[str, list[str], str]:
    return str(mail.subject), mail.to, str(mail.body)


# --- Low stock --------------------------------------------------------------------------------


def test_low_stock_raises_an_alert_with_the_exact_reorder_suggestion(
    check: Callable[..., alerts.AlertRun],
    admins: list[Any],
    sms_gateway: HTTPServer,
    mailoutbox: list[EmailMessage],
    warehouse: Warehouse,
    vendor: Vendor,
    mask: Product,
) -> None:
    # Given MASK-L: 20 received, 12 reserved → 8 available (reorder point 10, par 50)
    receive(mask, warehouse, "M-1", 20)
    reserve(mask, 12)
    # ... 15 + 5 units on open restock purchase orders; received, cancelled and dropship ones do not count
    purchase_order(vendor, warehouse, [(mask, 15)], status=PurchaseOrderStatus.DRAFT)
    purchase_order(vendor, warehouse, [(mask, 5)], status=PurchaseOrderStatus.ACKNOWLEDGED)
    purchase_order(vendor, warehouse, [(mask, 100)], status=PurchaseOrderStatus.RECEIVED)
    purchase_order(vendor, warehouse, [(mask, 100)], status=PurchaseOrderStatus.CANCELLED)
    purchase_order(vendor, warehouse, [(mask, 7)], status=PurchaseOrderStatus.SENT, kind=PurchaseOrderKind.DROPSHIP)
    # ... a product without vendor at exactly its reorder point, with more on order than par needs
    tubing = ProductFactory.create(sku="TUBE-6", name="Heated tubing", reorder_point=4, par_level=6)
    receive(tubing, warehouse, "T-1", 4)
    purchase_order(vendor, warehouse, [(tubing, 9)], status=PurchaseOrderStatus.SENT)
    # ... and products that raise nothing: above the reorder point, no reorder point, inactive
    receive(ProductFactory.create(sku="FILTER", reorder_point=5, par_level=20), warehouse, "F-1", 6)
    ProductFactory.create(sku="NO-POINT", reorder_point=0, par_level=20)
    ProductFactory.create(sku="RETIRED", reorder_point=5, par_level=20, active=False)

    # When the daily check runs
    run = check()

    # Then exactly two low-stock alerts are open: suggestion = par - available - on order, never below 0
    assert open_alerts() == sorted(
        [
            (StockAlertKind.LOW_STOCK, f"low_stock:{mask.pk}", 8, 20, 22, None),
            (StockAlertKind.LOW_STOCK, f"low_stock:{tubing.pk}", 4, 9, 0, None),
        ],
        key=lambda row: row[1],
    )
    assert (run.today, run.raised, run.resolved, run.open) == (TODAY, 2, 0, 2)
    assert sorted(alert.condition_key for alert in run.alerts) == sorted(
        [f"low_stock:{mask.pk}", f"low_stock:{tubing.pk}"]
    )
    assert run.notification == alerts.AlertNotification(notified=2, email_recipients=2, sms_recipients=2)
    assert StockAlert.objects.filter(notified_at__isnull=True).count() == 0
    # ... one email to the active admins with an address, listing each alert
    assert [email_summary(mail) for mail in mailoutbox] == [
        (
            "[Test Supply] 2 stock alerts: 2 low stock, 0 expiring lots",
            ADMIN_EMAILS,
            "The daily stock check found 2 new stock alerts.\n"
            "\n"
            "Low stock (at or below the reorder point):\n"
            "- MASK-L — Nasal mask, large: 8 available, reorder point 10, par level 50, 20 on order. "
            "Suggested reorder: 22 from Acme Respiratory.\n"
            "- TUBE-6 — Heated tubing: 4 available, reorder point 4, par level 6, 9 on order. "
            "Suggested reorder: 0 from no vendor on file.\n"
            "\n"
            "Stock alerts, lots and purchase orders are in the admin.\n",
        )
    ]
    # ... and one SMS summary per configured number
    assert sms_received(sms_gateway) == summary_sms("2 stock alerts: 2 low stock, 0 expiring lots — see the admin")
    assert [request.headers["Authorization"] for request, _ in sms_gateway.log] == ["Bearer gateway-token"] * 2


# --- Expiring lots ----------------------------------------------------------------------------


def test_lots_expiring_within_the_window_raise_alerts_and_later_ones_do_not(
    check: Callable[..., alerts.AlertRun],
    admins: list[Any],
    sms_gateway: HTTPServer,
    mailoutbox: list[EmailMessage],
    warehouse: Warehouse,
) -> None:
    # Given strips (no reorder point, so no low-stock alert) in lots around the 30-day window
    strips = ProductFactory.create(sku="STRIPS-50", name="Test strips", is_perishable=True)
    expired = receive(strips, warehouse, "EXPIRED", 12, TODAY - dt.timedelta(days=1))
    today = receive(strips, warehouse, "TODAY", 3, TODAY)
    last_day = receive(strips, warehouse, "DAY-30", 40, TODAY + dt.timedelta(days=30))
    receive(strips, warehouse, "DAY-31", 40, TODAY + dt.timedelta(days=31))
    emptied = receive(strips, warehouse, "EMPTIED", 5, TODAY + dt.timedelta(days=3))
    lot_adjust(actor=None, lot_id=emptied.pk, delta=-5, reason="damaged")
    receive(ProductFactory.create(sku="CUSHION"), warehouse, "NO-EXPIRY", 9)
    closed = Warehouse.objects.create(code="old", name="Old warehouse", active=False)
    receive(strips, closed, "CLOSED", 7, TODAY + dt.timedelta(days=2))
    reserve(strips, 10)  # FEFO: 3 from TODAY, 7 from DAY-30 (expired stock is never reserved)

    # When the daily check runs
    run = check()

    # Then the expired lot, the one expiring today and the one on the window's last day are alerted
    assert open_alerts() == sorted(
        [
            (StockAlertKind.EXPIRING_LOT, f"expiring_lot:{expired.pk}", 12, 0, 0, TODAY - dt.timedelta(days=1)),
            (StockAlertKind.EXPIRING_LOT, f"expiring_lot:{today.pk}", 0, 0, 0, TODAY),
            (StockAlertKind.EXPIRING_LOT, f"expiring_lot:{last_day.pk}", 33, 0, 0, TODAY + dt.timedelta(days=30)),
        ],
        key=lambda row: row[1],
    )
    assert StockAlert.objects.get(condition_key=f"expiring_lot:{today.pk}").lot == today
    assert (run.raised, run.resolved, run.open) == (3, 0, 3)
    assert [email_summary(mail) for mail in mailoutbox] == [
        (
            "[Test Supply] 3 stock alerts: 0 low stock, 3 expiring lots",
            ADMIN_EMAILS,
            "The daily stock check found 3 new stock alerts.\n"
            "\n"
            "Lots expired or expiring within 30 days:\n"
            "- STRIPS-50 — Test strips: lot EXPIRED at Main warehouse, expired 2026-11-22, 12 available.\n"
            "- STRIPS-50 — Test strips: lot TODAY at Main warehouse, expires 2026-11-23, 0 available.\n"
            "- STRIPS-50 — Test strips: lot DAY-30 at Main warehouse, expires 2026-12-23, 33 available.\n"
            "\n"
            "Stock alerts, lots and purchase orders are in the admin.\n",
        )
    ]
    assert sms_received(sms_gateway) == summary_sms("3 stock alerts: 0 low stock, 3 expiring lots — see the admin")


def test_a_lot_entering_the_window_alerts_once_and_stays_the_same_alert_when_it_expires(
    check: Callable[..., alerts.AlertRun], admins: list[Any], mailoutbox: list[EmailMessage], warehouse: Warehouse
) -> None:
    # Given a lot expiring in 31 days: outside the window today
    strips = ProductFactory.create(sku="STRIPS-50", is_perishable=True)
    lot = receive(strips, warehouse, "L-1", 10, TODAY + dt.timedelta(days=31))
    assert check().raised == 0

    # When the check runs the next day (inside the window) and again after the lot expired
    next_day = check(TODAY + dt.timedelta(days=1))
    after_expiry = check(TODAY + dt.timedelta(days=32))

    # Then one alert was raised and announced, and it is still the open one after expiry
    assert (next_day.raised, after_expiry.raised, after_expiry.resolved) == (1, 0, 0)
    assert list(StockAlert.objects.values_list("condition_key", "resolved_at")) == [(f"expiring_lot:{lot.pk}", None)]
    assert len(mailoutbox) == 1


# --- De-duplication, resolution and recurrence ------------------------------------------------


def test_running_twice_sends_one_email_and_one_sms_per_number(
    check: Callable[..., alerts.AlertRun],
    admins: list[Any],
    sms_gateway: HTTPServer,
    mailoutbox: list[EmailMessage],
    warehouse: Warehouse,
    mask: Product,
) -> None:
    # Given a low product, checked once
    receive(mask, warehouse, "M-1", 3)
    first = check()
    alert = StockAlert.objects.get()
    notified_at = alert.notified_at

    # When the check runs again (the condition still holds)
    second = check()

    # Then nothing new is raised or sent, and the first alert is untouched
    assert (first.raised, second.raised, second.resolved, second.open) == (1, 0, 0, 1)
    assert second.alerts == []
    assert second.notification == alerts.AlertNotification(notified=0, email_recipients=0, sms_recipients=0)
    assert StockAlert.objects.get() == alert
    assert StockAlert.objects.get().notified_at == notified_at
    assert len(mailoutbox) == 1
    assert sms_received(sms_gateway) == summary_sms("1 stock alert: 1 low stock, 0 expiring lots — see the admin")


def test_a_cleared_condition_is_resolved_and_a_recurrence_is_a_new_alert_and_email(
    check: Callable[..., alerts.AlertRun],
    admins: list[Any],
    sms_gateway: HTTPServer,
    mailoutbox: list[EmailMessage],
    warehouse: Warehouse,
    mask: Product,
) -> None:
    # Given an announced low-stock alert
    receive(mask, warehouse, "M-1", 3)
    check()
    first = StockAlert.objects.get()

    # When stock is received above the reorder point and the check runs
    receive(mask, warehouse, "M-2", 30)
    cleared = check()

    # Then the alert is resolved and nobody is told anything
    first.refresh_from_db()
    assert first.resolved_at is not None
    assert (cleared.raised, cleared.resolved, cleared.open) == (0, 1, 0)
    assert len(mailoutbox) == 1

    # When stock drops to the reorder point again and the check runs
    reserve(mask, 23)  # 33 - 23 = 10 available, the reorder point
    recurred = check()

    # Then a new alert is raised and announced; the old one stays resolved
    assert (recurred.raised, recurred.resolved, recurred.open) == (1, 0, 1)
    second = StockAlert.objects.get(resolved_at__isnull=True)
    assert second.pk != first.pk
    assert (second.condition_key, second.available_quantity, second.suggested_reorder_quantity) == (
        f"low_stock:{mask.pk}",
        10,
        40,
    )
    assert second.notified_at is not None
    assert StockAlert.objects.count() == 2
    assert [mail.subject for mail in mailoutbox] == ["[Test Supply] 1 stock alert: 1 low stock, 0 expiring lots"] * 2
    assert "10 available, reorder point 10, par level 50, 0 on order. Suggested reorder: 40" in mailoutbox[1].body
    assert len(sms_gateway.log) == 4


def test_an_inactive_product_or_a_zero_reorder_point_resolves_its_alert(
    check: Callable[..., alerts.AlertRun], admins: list[Any], warehouse: Warehouse, mask: Product
) -> None:
    receive(mask, warehouse, "M-1", 3)
    check()
    Product.objects.filter(pk=mask.pk).update(active=False)

    run = check()

    assert (run.raised, run.resolved, run.open) == (0, 1, 0)
    assert StockAlert.objects.get().resolved_at is not None


# --- Failed announcements ---------------------------------------------------------------------


def test_a_failed_sms_leaves_the_alert_unnotified_and_the_next_run_notifies_it_without_a_duplicate(
    check: Callable[..., alerts.AlertRun],
    admins: list[Any],
    sms_gateway: HTTPServer,
    mailoutbox: list[EmailMessage],
    warehouse: Warehouse,
    mask: Product,
) -> None:
    # Given a low product and an SMS provider that is down
    receive(mask, warehouse, "M-1", 3)
    sms_gateway.clear_all_handlers()
    sms_gateway.expect_request(SMS_PATH, method="POST").respond_with_data("unavailable", status=503)

    # When the check runs
    failed = check()

    # Then the alert exists, un-notified; the email went out and is stamped, the SMS is not
    assert (failed.raised, failed.open) == (1, 1)
    assert failed.notification == alerts.AlertNotification(
        notified=0, email_recipients=2, sms_recipients=2, failed=True
    )
    alert = StockAlert.objects.get()
    assert (alert.notified_at, alert.texted_at) == (None, None)
    assert alert.emailed_at is not None
    text = "1 stock alert: 1 low stock, 0 expiring lots — see the admin"
    assert sms_received(sms_gateway) == [({"to": SMS_NUMBERS[0], "body": text}, 503)]
    assert len(mailoutbox) == 1

    # When the provider is back and the check runs again
    sms_gateway.clear_all_handlers()
    sms_gateway.clear_log()
    sms_gateway.expect_request(SMS_PATH, method="POST").respond_with_json({"status": "queued"}, status=202)
    retried = check()

    # Then the same alert is texted (the email is not repeated) and marked notified
    assert (retried.raised, retried.open) == (0, 1)
    assert retried.notification == alerts.AlertNotification(notified=1, email_recipients=2, sms_recipients=2)
    assert list(StockAlert.objects.values_list("pk", flat=True)) == [alert.pk]
    assert StockAlert.objects.get().notified_at is not None
    assert sms_received(sms_gateway) == summary_sms(text)
    assert [mail.subject for mail in mailoutbox] == ["[Test Supply] 1 stock alert: 1 low stock, 0 expiring lots"]

    # And a third run sends nothing
    check()
    assert len(mailoutbox) == 1
    assert len(sms_gateway.log) == 2


def test_a_failed_email_leaves_the_alert_unnotified_and_the_next_run_notifies_it_without_a_duplicate(
    check: Callable[..., alerts.AlertRun],
    admins: list[Any],
    sms_gateway: HTTPServer,
    mailoutbox: list[EmailMessage],
    warehouse: Warehouse,
    mask: Product,
) -> None:
    # Given a low product and an SMTP server that refuses connections (nothing listens on port 1)
    receive(mask, warehouse, "M-1", 3)
    smtp_down = override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1", EMAIL_PORT=1
    )

    # When the check runs
    with smtp_down:
        failed = check()

    # Then the alert exists, un-notified; the SMS still went out and is stamped
    assert failed.notification == alerts.AlertNotification(
        notified=0, email_recipients=2, sms_recipients=2, failed=True
    )
    alert = StockAlert.objects.get()
    assert (alert.notified_at, alert.emailed_at) == (None, None)
    assert alert.texted_at is not None
    assert mailoutbox == []
    assert len(sms_gateway.log) == 2

    # When email works again and the check runs
    retried = check()

    # Then the one alert is emailed once, the SMS not repeated, and it is notified
    assert (retried.raised, retried.open, StockAlert.objects.count()) == (0, 1, 1)
    assert retried.notification == alerts.AlertNotification(notified=1, email_recipients=2, sms_recipients=2)
    assert StockAlert.objects.get().notified_at is not None
    assert len(mailoutbox) == 1
    assert len(sms_gateway.log) == 2


def test_with_nobody_to_tell_alerts_wait_until_someone_is_configured(
    check: Callable[..., alerts.AlertRun],
    territory: Territory,
    mailoutbox: list[EmailMessage],
    warehouse: Warehouse,
    mask: Product,
) -> None:
    # Given no admin with an email address and no SMS number
    receive(mask, warehouse, "M-1", 3)
    admin = UserFactory.create(username="admin", email="", territory=territory, role="admin")

    run = check()

    assert run.notification == alerts.AlertNotification(notified=0, email_recipients=0, sms_recipients=0)
    assert StockAlert.objects.get().notified_at is None

    # When the admin adds an address, the next run announces the waiting alert
    admin.email = "admin@example.org"
    admin.save(update_fields=["email"])
    check()

    assert [mail.to for mail in mailoutbox] == [["admin@example.org"]]
    assert StockAlert.objects.get().notified_at is not None


# --- Overlapping runs (real PostgreSQL, two connections) --------------------------------------


def _waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_overlapping_runs_raise_one_alert_and_send_one_email(
    admins: list[Any], sms_gateway: HTTPServer, mailoutbox: list[EmailMessage], warehouse: Warehouse, mask: Product
) -> None:
    # Given a low product
    receive(mask, warehouse, "M-1", 3)
    runs: dict[str, alerts.AlertRun] = {}
    errors: list[BaseException] = []
    first_inserted, release_first = threading.Event(), threading.Event()

    def first() -> None:
        try:
            # The first run has inserted its alert but not committed yet when the second starts.
            with transaction.atomic():
                runs["first"] = alerts.stock_alerts_check(today=TODAY)
                first_inserted.set()
                release_first.wait(timeout=10)
        except BaseException as error:  # reported to the main thread
            errors.append(error)
        finally:
            connection.close()

    def second() -> None:
        try:
            runs["second"] = alerts.stock_alerts_check(today=TODAY)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    # When a second run starts while the first is still in its transaction
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_inserted.wait(timeout=10)
    threads[1].start()
    deadline = time.monotonic() + 10
    while _waiting_on_a_lock() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _waiting_on_a_lock() == 1  # the second run waits on the first one's alert
    release_first.set()
    for thread in threads:
        thread.join(timeout=20)
        assert not thread.is_alive()

    # Then there is one alert, raised by the first run, announced once
    assert errors == []
    assert (runs["first"].raised, runs["second"].raised) == (1, 0)
    assert StockAlert.objects.count() == 1
    assert StockAlert.objects.get().notified_at is not None
    assert len(mailoutbox) == 1
    assert len(sms_gateway.log) == 2


# --- The interfaces: management command, Celery task, beat schedule ---------------------------


@pytest.mark.django_db(transaction=True)
def test_the_management_command_runs_the_check_and_prints_a_summary(
    admins: list[Any], mailoutbox: list[EmailMessage], warehouse: Warehouse, mask: Product
) -> None:
    receive(mask, warehouse, "M-1", 3)
    out = StringIO()

    call_command("check_stock", "--date", "2026-11-23", stdout=out)
    call_command("check_stock", "--date", "2026-11-24", stdout=out)

    assert out.getvalue() == (
        "Stock check 2026-11-23: 1 raised, 0 resolved, 1 open; 1 notified.\n"
        "Stock check 2026-11-24: 0 raised, 0 resolved, 1 open; 0 notified.\n"
    )
    assert list(StockAlert.objects.values_list("condition_key", flat=True)) == [f"low_stock:{mask.pk}"]
    assert StockAlert.objects.get().notified_at is not None
    assert [mail.to for mail in mailoutbox] == [ADMIN_EMAILS]


@pytest.mark.django_db(transaction=True)
def test_the_management_command_fails_when_the_announcement_fails(
    admins: list[Any], mailoutbox: list[EmailMessage], warehouse: Warehouse, mask: Product
) -> None:
    receive(mask, warehouse, "M-1", 3)
    out = StringIO()

    with (
        override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1", EMAIL_PORT=1
        ),
        pytest.raises(CommandError, match=r"^Sending the stock alerts failed; they stay pending"),
    ):
        call_command("check_stock", "--date", "2026-11-23", stdout=out)

    assert out.getvalue() == "Stock check 2026-11-23: 1 raised, 0 resolved, 1 open; 0 notified.\n"
    assert StockAlert.objects.get().notified_at is None


def test_the_management_command_refuses_a_malformed_date() -> None:
    with pytest.raises(CommandError, match=r"^--date must be YYYY-MM-DD, not '23/11/2026'\.$"):
        call_command("check_stock", "--date", "23/11/2026")
    assert StockAlert.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_celery_task_runs_the_check_and_is_idempotent(
    admins: list[Any], mailoutbox: list[EmailMessage], warehouse: Warehouse, mask: Product
) -> None:
    receive(mask, warehouse, "M-1", 3)

    first = check_stock.delay("2026-11-23").get(timeout=10)
    second = check_stock.delay("2026-11-23").get(timeout=10)

    assert first == {"raised": 1, "resolved": 0, "open": 1, "notified": 1}
    assert second == {"raised": 0, "resolved": 0, "open": 1, "notified": 0}
    assert StockAlert.objects.count() == 1
    assert len(mailoutbox) == 1


@pytest.mark.usefixtures("beat_schedule")
def test_the_task_is_registered_with_its_retry_policy_and_scheduled_daily_at_six() -> None:
    task: Any = celery_app.tasks["catalog.tasks.check_stock"]
    assert task.run.__doc__ == check_stock.run.__doc__
    assert task.acks_late is True
    assert task.autoretry_for == (alerts.StockAlertNotificationFailed, OperationalError)
    assert (task.retry_backoff, task.retry_backoff_max, task.retry_jitter, task.max_retries) == (60, 3600, True, 6)
    entry = PeriodicTask.objects.select_related("crontab").get(name="stock-alerts-daily")
    assert (entry.task, entry.enabled, entry.interval_id) == ("catalog.tasks.check_stock", True, None)
    assert (entry.crontab.hour, entry.crontab.minute, entry.crontab.day_of_week) == ("6", "0", "*")


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("beat_schedule")
def test_a_real_worker_runs_the_beat_task_once_per_condition(
    live_worker: Any, admins: list[Any], mailoutbox: list[EmailMessage], warehouse: Warehouse, mask: Product
) -> None:
    # Given low stock, when beat's message reaches a real worker through Redis, twice
    receive(mask, warehouse, "M-1", 3)
    task_name = PeriodicTask.objects.get(name="stock-alerts-daily").task
    done_before = worker_state.total_count[task_name]
    for _ in range(2):
        celery_app.send_task(task_name, args=["2026-11-23"])
    assert wait_until(lambda: worker_state.total_count[task_name] == done_before + 2)

    # Then one alert was raised and announced once
    assert open_alerts() == [("low_stock", f"low_stock:{mask.pk}", 3, 0, 47, None)]
    assert StockAlert.objects.get().notified_at is not None
    assert [email.to for email in mailoutbox] == [ADMIN_EMAILS]
