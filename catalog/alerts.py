"""The stock alert services: the daily check of low stock and expiring lots, and telling the admins.

``stock_alerts_check`` runs once a day (the Celery beat entry ``stock-alerts-daily``, or
``manage.py check_stock``) and is safe to run any number of times, also at the same moment:

- **Low stock**: an active product with a reorder point above zero whose available stock (the
  ``available_quantities`` selector: unexpired, unreserved units in active warehouses) is at or
  below its reorder point. Key ``low_stock:<product id>``. The alert carries the reorder
  suggestion: ``max(0, par level - available - on order)``, where on order is the units on open
  restock purchase orders.
- **Expiring lot**: a lot in an active warehouse with units on hand whose expiration date is no
  later than today + ``STOCK_ALERT_EXPIRY_WINDOW_DAYS`` (of any product, active or not: the
  stock still has to be used or written off). Lots that have already expired and still
  hold stock are included under the same kind and key (``expiring_lot:<lot id>``): they need a
  write-off even more, and a lot that crosses its expiration date while alerted is the same
  condition, so it is not announced twice. The message says "expired" for them.

Each condition has at most one open ``StockAlert`` (the partial unique constraint on
``condition_key``). An open alert whose condition no longer holds is resolved, so a recurrence
later is a new alert and is announced again. The numbers on an alert are those of the day it was
raised; they are not updated while it stays open.

After the check commits, every open alert that has not been announced yet (the new ones, and any
whose earlier announcement failed) is sent in one email to the active admins with an email
address and one SMS summary per number in ``STOCK_ALERT_SMS_RECIPIENTS``. Each channel is stamped
when it went out and ``notified_at`` once all had the alert; a failed channel leaves the alert
un-notified and the next run sends that channel only. (Within the SMS channel a failure part-way
through the numbers repeats the summary to the numbers before it.) Messages hold catalog facts
only (SKUs, names, quantities, lots, warehouses).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.exceptions import DomainError
from core.sms import sms_send
from territories.models import Role

from .models import Lot, Product, StockAlert, StockAlertKind
from .selectors import available_quantities, on_order_quantities

logger = logging.getLogger(__name__)

# The back-office group of the admin role (see territories.services.role_back_office_group).
ADMIN_GROUP_NAME = f"role:{Role.ADMIN.value}"


class StockAlertNotificationFailed(DomainError):
    """Announcing stock alerts failed; they stay un-notified and the next run sends them again."""

    code = "STOCK_ALERT_NOTIFICATION_FAILED"
    http_status = 502
    default_message = "The stock alerts could not be sent; the next check sends them again."


@dataclass(frozen=True)
class AlertNotification:
    """What one announcement did: ``notified`` alerts marked as sent, or ``failed`` with none marked."""

    notified: int
    email_recipients: int
    sms_recipients: int
    failed: bool = False


@dataclass
class AlertRun:
    """The outcome of one ``stock_alerts_check``.

    ``alerts`` are the alerts this run raised (``raised`` of them); ``open`` counts every open
    alert after the run. ``notification`` is filled when the check's transaction has committed and
    the announcement ran: before ``stock_alerts_check`` returns when it is called outside a
    transaction (the task, the command), else when the caller's transaction commits.
    """

    today: dt.date
    raised: int
    resolved: int
    open: int
    alerts: list[StockAlert] = field(default_factory=list)
    notification: AlertNotification | None = None


@dataclass(frozen=True)
class _Condition:
    """A condition that holds today, with the values its alert is raised with."""

    key: str
    fields: dict[str, Any]


def low_stock_key(product_id: Any) -> str:
    return f"low_stock:{product_id}"


def expiring_lot_key(lot_id: Any) -> str:
    return f"expiring_lot:{lot_id}"


def expiry_window_days() -> int:
    """``settings.STOCK_ALERT_EXPIRY_WINDOW_DAYS``; raises ImproperlyConfigured when negative."""
    days: int = settings.STOCK_ALERT_EXPIRY_WINDOW_DAYS
    if days < 0:
        raise ImproperlyConfigured("STOCK_ALERT_EXPIRY_WINDOW_DAYS must be zero or more.")
    return days


def _low_stock_conditions(*, today: dt.date) -> list[_Condition]:
    products = list(Product.objects.filter(active=True, reorder_point__gt=0))
    available = available_quantities(product_ids=[product.pk for product in products], today=today)
    low = [product for product in products if available[product.pk] <= product.reorder_point]
    on_order = on_order_quantities(product_ids=[product.pk for product in low])
    return [
        _Condition(
            key=low_stock_key(product.pk),
            fields={
                "kind": StockAlertKind.LOW_STOCK,
                "product": product,
                "available_quantity": available[product.pk],
                "on_order_quantity": on_order[product.pk],
                "suggested_reorder_quantity": max(0, product.par_level - available[product.pk] - on_order[product.pk]),
            },
        )
        for product in low
    ]


def _expiring_lot_conditions(*, today: dt.date, window_days: int) -> list[_Condition]:
    lots = Lot.objects.filter(
        quantity_on_hand__gt=0,
        expiration_date__lte=today + dt.timedelta(days=window_days),
        warehouse__active=True,
    ).select_related("product")
    return [
        _Condition(
            key=expiring_lot_key(lot.pk),
            fields={
                "kind": StockAlertKind.EXPIRING_LOT,
                "product": lot.product,
                "lot": lot,
                "available_quantity": lot.quantity_available,
                "expiration_date": lot.expiration_date,
            },
        )
        for lot in lots
    ]


def _alert_open(condition: _Condition) -> tuple[StockAlert, bool]:
    """The open alert for ``condition``, raised if there is none; ``True`` when raised now.

    Call inside an atomic block. A run racing on the same key waits on the unique index until
    the other commits, then gets its alert instead of raising a second one.
    """
    return StockAlert.objects.get_or_create(
        condition_key=condition.key, resolved_at__isnull=True, defaults=condition.fields
    )


def _alerts_resolve(*, holding: set[str]) -> int:
    """Resolve the open alerts whose key is not in ``holding``; returns how many. Call inside an atomic block."""
    stale = list(
        StockAlert.objects.select_for_update()
        .filter(resolved_at__isnull=True)
        .exclude(condition_key__in=holding)
        .order_by("condition_key")
        .values_list("pk", flat=True)
    )
    if not stale:
        return 0
    return StockAlert.objects.filter(pk__in=stale, resolved_at__isnull=True).update(resolved_at=timezone.now())


def stock_alerts_check(*, today: dt.date | None = None) -> AlertRun:
    """Raise alerts for today's low stock and expiring lots, resolve cleared ones, then announce.

    ``today`` defaults to the local date. Atomic; safe to run repeatedly and concurrently (no
    condition ever has two open alerts). The announcement (``stock_alerts_notify``) runs after
    the transaction commits and never raises: its outcome is ``AlertRun.notification``.
    """
    today = today or timezone.localdate()
    window_days = expiry_window_days()
    with transaction.atomic():
        conditions = _low_stock_conditions(today=today) + _expiring_lot_conditions(today=today, window_days=window_days)
        # One key order for every run, so two runs inserting the same keys never deadlock.
        conditions.sort(key=lambda condition: condition.key)
        raised: list[StockAlert] = []
        for condition in conditions:
            alert, created = _alert_open(condition)
            if created:
                raised.append(alert)
        resolved = _alerts_resolve(holding={condition.key for condition in conditions})
        run = AlertRun(
            today=today,
            raised=len(raised),
            resolved=resolved,
            open=StockAlert.objects.filter(resolved_at__isnull=True).count(),
            alerts=raised,
        )

        def announce() -> None:
            run.notification = stock_alerts_notify(today=today)

        transaction.on_commit(announce)
    logger.info("Stock check %s: %d raised, %d resolved, %d open.", today, run.raised, run.resolved, run.open)
    return run


def admin_email_addresses() -> list[str]:
    """The email addresses of the active admins (the admin role's group, and superusers), sorted, once each."""
    return sorted(
        set(
            get_user_model()
            .objects.filter(Q(groups__name=ADMIN_GROUP_NAME) | Q(is_superuser=True), is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
        )
    )


def stock_alerts_notify(*, today: dt.date | None = None) -> AlertNotification:
    """Announce every open alert not yet notified: one email to the admins, one SMS per recipient number.

    ``today`` (the local date by default) tells expired lots from expiring ones in the email.

    The alerts are claimed with ``SELECT … FOR UPDATE SKIP LOCKED``, so two runs at once never
    announce the same alert both. Each channel is stamped when it went out (``emailed_at``,
    ``texted_at``) and ``notified_at`` once every configured channel had the alert; a failed
    channel is logged, sets ``failed`` and is retried by the next run, which never repeats a
    channel that already went out.
    With nobody to tell (no admin email, no SMS number) the alerts stay un-notified, so they are
    announced once someone is configured. Never raises for a failed send.
    """
    emails = admin_email_addresses()
    numbers = [number for number in settings.STOCK_ALERT_SMS_RECIPIENTS if number]
    with transaction.atomic():
        pending = list(
            StockAlert.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(resolved_at__isnull=True, notified_at__isnull=True)
            .select_related("product__vendor", "lot__warehouse")
            .order_by("product__sku", "expiration_date", "condition_key")
        )
        if not pending:
            return AlertNotification(notified=0, email_recipients=0, sms_recipients=0)
        if not emails and not numbers:
            logger.warning(
                "%d stock alerts pending: no admin email address and no SMS number to send them to.", len(pending)
            )
            return AlertNotification(notified=0, email_recipients=0, sms_recipients=0)
        failed = False
        to_email = [alert for alert in pending if alert.emailed_at is None] if emails else []
        if to_email:
            try:
                subject, body = alert_email(to_email, today=today)
                EmailMessage(subject=subject, body=body, to=emails).send(fail_silently=False)
            except Exception:  # any backend's failure: the email is retried by the next run
                logger.warning("Emailing %d stock alerts failed; the next run retries.", len(to_email), exc_info=True)
                failed = True
            else:
                _mark(to_email, "emailed_at")
        to_text = [alert for alert in pending if alert.texted_at is None] if numbers else []
        if to_text:
            try:
                summary = alert_sms_summary(to_text)
                for number in numbers:
                    sms_send(to=number, body=summary)
            except Exception:  # any backend's failure: the SMS summary is retried by the next run
                logger.warning("Texting %d stock alerts failed; the next run retries.", len(to_text), exc_info=True)
                failed = True
            else:
                _mark(to_text, "texted_at")
        announced = [
            alert
            for alert in pending
            if (not emails or alert.emailed_at is not None) and (not numbers or alert.texted_at is not None)
        ]
        _mark(announced, "notified_at")
    return AlertNotification(
        notified=len(announced), email_recipients=len(emails), sms_recipients=len(numbers), failed=failed
    )


def _mark(alerts: list[StockAlert], field_name: str) -> None:
    """Stamp ``field_name`` with now on ``alerts``, in the database and on the objects."""
    now = timezone.now()
    StockAlert.objects.filter(pk__in=[alert.pk for alert in alerts]).update(**{field_name: now})
    for alert in alerts:
        setattr(alert, field_name, now)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def alert_sms_summary(alerts: list[StockAlert]) -> str:
    """One line for a phone: ``3 stock alerts: 2 low stock, 1 expiring lot — see the admin``."""
    low = sum(1 for alert in alerts if alert.kind == StockAlertKind.LOW_STOCK)
    expiring = len(alerts) - low
    return (
        f"{_plural(len(alerts), 'stock alert')}: {low} low stock, {_plural(expiring, 'expiring lot')} — see the admin"
    )


def _low_stock_line(alert: StockAlert) -> str:
    product = alert.product
    vendor = product.vendor.name if product.vendor else "no vendor on file"
    return (
        f"- {product.sku} — {product.name}: {alert.available_quantity} available, reorder point "
        f"{product.reorder_point}, par level {product.par_level}, {alert.on_order_quantity} on order. "
        f"Suggested reorder: {alert.suggested_reorder_quantity} from {vendor}."
    )


def _expiring_lot_line(alert: StockAlert, *, today: dt.date) -> str:
    product, lot = alert.product, alert.lot
    # An expiring-lot alert always names its lot and the date.
    assert lot is not None
    assert alert.expiration_date is not None
    state = "expired" if alert.expiration_date < today else "expires"
    return (
        f"- {product.sku} — {product.name}: lot {lot.lot_number} at {lot.warehouse.name}, "
        f"{state} {alert.expiration_date.isoformat()}, {alert.available_quantity} available."
    )


def alert_email(alerts: list[StockAlert], *, today: dt.date | None = None) -> tuple[str, str]:
    """The admins' email for ``alerts`` as (subject, plain-text body): one line per alert, catalog facts only."""
    today = today or timezone.localdate()
    low = [alert for alert in alerts if alert.kind == StockAlertKind.LOW_STOCK]
    expiring = [alert for alert in alerts if alert.kind == StockAlertKind.EXPIRING_LOT]
    subject = f"[{settings.PRACTICE_NAME}] {alert_sms_summary(alerts).removesuffix(' — see the admin')}"
    parts = [f"The daily stock check found {_plural(len(alerts), 'new stock alert')}."]
    if low:
        parts.append("Low stock (at or below the reorder point):\n" + "\n".join(_low_stock_line(a) for a in low))
    if expiring:
        parts.append(
            f"Lots expired or expiring within {expiry_window_days()} days:\n"
            + "\n".join(_expiring_lot_line(a, today=today) for a in expiring)
        )
    parts.append("Stock alerts, lots and purchase orders are in the admin.")
    return subject, "\n\n".join(parts) + "\n"
