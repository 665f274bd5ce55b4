"""Sending prescriptions to pharmacies, and recording every exchange.

An order's prescribed lines are sent once it may be filled: an insurance order once verified, a
cash-pay order once paid. ``prescriptions_submit`` is idempotent — lines already accepted are not
sent again, and the connector's conditional create makes a resend harmless at the pharmacy.
Network errors and 5xx leave the prescription pending for a retry (the task backs off with
jitter); a 4xx rejects it, records a ``pharmacy_rejected`` finding and puts the order in review;
after the last retry the prescription is dead-lettered for staff to retry from the admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.exceptions import PermissionDenied
from core.outbox import outbox_publish
from orders.models import ActorKind, Disposition, EventKind, Order, OrderStatus
from orders.timeline import record_event
from patients.models import PayerType
from territories.models import TerritoryPermission
from territories.selectors import territory_permits

from .connectors import Exchange, connector_for
from .fhir import medication_request, prescribed_items, prescription_identifier
from .models import LogOutcome, Pharmacy, PharmacyLog, Prescription, TransmissionStatus

# Order states in which the pharmacy may fill: insurance once verified, cash once paid.
FILLABLE = {
    PayerType.INSURANCE: (
        OrderStatus.VERIFIED,
        OrderStatus.IN_PROGRESS,
        OrderStatus.SHIPPED,
    ),
    PayerType.CASH: (OrderStatus.PAID, OrderStatus.IN_PROGRESS, OrderStatus.SHIPPED),
}


@dataclass(frozen=True)
class SubmitResult:
    sent: int
    rejected: int
    waiting: int  # still pending after a retryable failure

    @property
    def retry_needed(self) -> bool:
        return self.waiting > 0


def pharmacy_for(order: Order) -> Pharmacy | None:
    """The active pharmacy serving the order's territory (the first by name)."""
    return Pharmacy.objects.filter(active=True, territories=order.territory_id).order_by("name").first()


def prescriptions_create(*, order_id: Any) -> list[Prescription]:
    """Create the first fill of each prescribed line of a fillable order (once; a repeat returns them)."""
    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).filter(pk=order_id).first()
        if order is None or order.status not in FILLABLE.get(PayerType(order.payer_type), ()):
            return []
        existing = {p.item_id: p for p in Prescription.objects.filter(order=order, fill=0)}
        lines = [item for item in prescribed_items(order) if item.pk not in existing]
        if not lines:
            return list(existing.values())
        pharmacy = pharmacy_for(order)
        if pharmacy is None:
            record_event(
                order=order,
                kind=EventKind.NOTE,
                actor=None,
                actor_kind=ActorKind.SYSTEM,
                reason="No active pharmacy serves this territory: the prescriptions wait until one does.",
            )
            return list(existing.values())
        created = [
            Prescription.objects.create(
                order=order,
                item=item,
                territory_id=order.territory_id,
                pharmacy=pharmacy,
                fill=0,
                identifier=prescription_identifier(item, 0),
            )
            for item in lines
        ]
    return [*existing.values(), *created]


def _log(prescription: Prescription, exchange: Exchange) -> PharmacyLog:
    return PharmacyLog.objects.create(
        order_id=prescription.order_id,
        territory_id=prescription.territory_id,
        pharmacy_id=prescription.pharmacy_id,
        prescription=prescription,
        direction="out",
        method=exchange.method,
        url=exchange.url,
        request_payload=exchange.request_body,
        response_status=exchange.status,
        response_payload=exchange.response_body,
        duration_ms=exchange.duration_ms,
        outcome=exchange.outcome,
    )


def prescription_send(*, prescription_id: Any) -> Exchange | None:
    """Send one pending prescription once and record the result; None when it is not pending."""
    prescription = (
        Prescription.objects.select_related(
            "pharmacy", "item__product", "item__order__patient", "item__order__provider"
        )
        .filter(pk=prescription_id, status=TransmissionStatus.PENDING)
        .first()
    )
    if prescription is None:
        return None
    resource = medication_request(prescription.item, fill=prescription.fill)
    exchange = connector_for(prescription.pharmacy).send(prescription.pharmacy, prescription, resource)
    with transaction.atomic():
        locked = Prescription.objects.select_for_update().get(pk=prescription.pk)
        _log(locked, exchange)
        locked.attempts += 1
        locked.last_error = "" if exchange.outcome == LogOutcome.ACCEPTED else _error_text(exchange)
        if exchange.outcome == LogOutcome.ACCEPTED:
            locked.status = TransmissionStatus.SENT
            locked.sent_at = timezone.now()
            locked.pharmacy_reference = exchange.pharmacy_reference
        elif exchange.outcome == LogOutcome.REJECTED:
            locked.status = TransmissionStatus.REJECTED
            _to_review(locked, exchange)
        locked.save()
    return exchange


def _error_text(exchange: Exchange) -> str:
    if exchange.status is None:
        return exchange.response_body[:200]  # the error class, e.g. ReadTimeout
    return f"HTTP {exchange.status}"


def _to_review(prescription: Prescription, exchange: Exchange) -> None:
    """A pharmacy refused the prescription: a ``pharmacy_rejected`` finding, and the order needs review."""
    order = Order.objects.select_for_update(of=("self",)).get(pk=prescription.order_id)
    Order.objects.filter(pk=order.pk).update(ai_disposition=Disposition.NEEDS_REVIEW)
    finding = {
        "code": "pharmacy_rejected",
        "severity": "needs_review",
        "message": f"{prescription.pharmacy.name} refused the prescription (HTTP {exchange.status}).",
        "item": prescription.item.sku,
    }
    record_event(
        order=order,
        kind=EventKind.COMPLIANCE,
        actor=None,
        actor_kind=ActorKind.SYSTEM,
        reason=finding["message"],
        payload={"disposition": Disposition.NEEDS_REVIEW, "findings": [finding]},
    )


def prescriptions_submit(*, order_id: Any) -> SubmitResult:
    """Create the order's prescriptions if due and send every pending one; says whether to retry."""
    prescriptions_create(order_id=order_id)
    sent = rejected = waiting = 0
    for prescription in Prescription.objects.filter(order_id=order_id, status=TransmissionStatus.PENDING):
        exchange = prescription_send(prescription_id=prescription.pk)
        if exchange is None:
            continue
        if exchange.outcome == LogOutcome.ACCEPTED:
            sent += 1
        elif exchange.retryable:
            waiting += 1
        else:
            rejected += 1
    return SubmitResult(sent=sent, rejected=rejected, waiting=waiting)


def prescriptions_dead_letter(*, order_id: Any) -> int:
    """Retries are exhausted: the order's pending prescriptions wait for staff (``prescription_retry``)."""
    return Prescription.objects.filter(order_id=order_id, status=TransmissionStatus.PENDING).update(
        status=TransmissionStatus.DEAD_LETTER, updated_at=timezone.now()
    )


def prescription_retry(*, prescription_id: Any, actor: Any) -> Prescription:
    """Staff send a dead-lettered prescription again (through the outbox: ``prescription.retry``).

    Needs the territory's review permission (PermissionDenied otherwise); anything but a
    dead-lettered prescription is returned unchanged.
    """
    with transaction.atomic():
        prescription = Prescription.objects.select_for_update().get(pk=prescription_id)
        if not territory_permits(
            user=actor, permission=TerritoryPermission.REVIEW_ORDER, territory_id=prescription.territory_id
        ):
            raise PermissionDenied("You may not resend prescriptions in this territory.")
        if prescription.status != TransmissionStatus.DEAD_LETTER:
            return prescription
        prescription.status = TransmissionStatus.PENDING
        prescription.save(update_fields=["status", "updated_at"])
        outbox_publish(
            topic="prescription.retry", aggregate=prescription.order, payload={"prescription_id": str(prescription.pk)}
        )
    return prescription
