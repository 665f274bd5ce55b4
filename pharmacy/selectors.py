"""Reads of the pharmacy app for agents (no user scope: the system sees every territory)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, F, OuterRef

from orders.models import OrderStatus

from .models import Prescription, TransmissionStatus


def refill_due_at(prescription: Prescription) -> datetime | None:
    """When the next fill should be sent: ``PHARMACY_REFILL_LEAD_DAYS`` before this fill runs out.

    None when the supply has not started (not yet dispensed) or the line has no days supply.
    """
    days = prescription.item.days_supply
    if prescription.dispensed_at is None or not days:
        return None
    return prescription.dispensed_at + timedelta(days=max(days - settings.PHARMACY_REFILL_LEAD_DAYS, 0))


def refills_due(*, as_of: datetime) -> list[Prescription]:
    """The latest fill of each line that is due for its next one at ``as_of`` and may have it.

    A fill qualifies when the pharmacy accepted and dispensed it, the line allows more refills
    than have been sent, its order is not cancelled or rejected, its pharmacy is active, and
    ``refill_due_at`` has come. Oldest due first.
    """
    later_fill = Prescription.objects.filter(item=OuterRef("item"), fill__gt=OuterRef("fill"))
    candidates = (
        Prescription.objects.filter(
            status=TransmissionStatus.SENT,
            dispensed_at__isnull=False,
            item__days_supply__isnull=False,
            fill__lt=F("item__refills"),
            pharmacy__active=True,
        )
        .exclude(order__status__in=(OrderStatus.CANCELLED, OrderStatus.REJECTED))
        .exclude(Exists(later_fill))
        .select_related("item")
    )
    due = [(at, p) for p in candidates if (at := refill_due_at(p)) is not None and at <= as_of]
    return [p for _at, p in sorted(due, key=lambda pair: pair[0])]
