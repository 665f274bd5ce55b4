"""Sending prescriptions to pharmacies, and recording every exchange.

An order's prescribed lines are sent once it may be filled: an insurance order once verified, a
cash-pay order once paid. ``prescriptions_submit`` is idempotent — lines already accepted are not
sent again, and the connector's conditional create makes a resend harmless at the pharmacy.
Network errors and 5xx leave the prescription pending for a retry (the task backs off with
jitter); a 4xx rejects it, records a ``pharmacy_rejected`` finding and puts the order in review;
after the last retry the prescription is dead-lettered for staff to retry from the admin.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.audit import with_history_user
from core.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from core.outbox import outbox_publish
from orders.models import ActorKind, Disposition, EventKind, Order, OrderStatus
from orders.services import order_lock, order_transition
from orders.timeline import record_event
from patients.models import PayerType
from territories.models import TerritoryPermission
from territories.selectors import territory_permits

from .connectors import REGISTRY, DispenseUpdate, Exchange, connector_for
from .destinations import base_url_check
from .fhir import medication_request, prescribed_items, prescription_identifier
from .models import DispenseStatus, LogOutcome, Pharmacy, PharmacyLog, Prescription, TransmissionStatus
from .selectors import refills_due


class PrescriptionNotFound(NotFound):
    code = "PRESCRIPTION_NOT_FOUND"
    default_message = "No prescription of this pharmacy has that identifier."


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
        previous_error = locked.last_error
        locked.last_error = "" if exchange.outcome == LogOutcome.ACCEPTED else _error_text(exchange)
        if exchange.outcome == LogOutcome.ACCEPTED:
            was_rejected = previous_error.startswith("HTTP 4")
            locked.status = TransmissionStatus.SENT
            locked.sent_at = timezone.now()
            locked.pharmacy_reference = exchange.pharmacy_reference
            locked.save()
            if was_rejected:
                _review_closed_if_accepted(locked)
            return exchange
        elif exchange.outcome == LogOutcome.REJECTED:
            locked.status = TransmissionStatus.REJECTED
            _to_review(
                locked,
                code="pharmacy_rejected",
                message=f"{locked.pharmacy.name} refused the prescription (HTTP {exchange.status}).",
            )
        locked.save()
    return exchange


def _review_closed_if_accepted(prescription: Prescription) -> None:
    """A once-refused prescription was accepted: close the review unless another is still refused."""
    still_refused = Prescription.objects.filter(order_id=prescription.order_id).filter(
        Q(status=TransmissionStatus.REJECTED) | Q(dispense_status__in=REFUSED_STATUSES | REVIEW_STATUSES)
    )
    if still_refused.exists():
        return
    order = Order.objects.select_for_update(of=("self",)).get(pk=prescription.order_id)
    if order.ai_disposition != Disposition.NEEDS_REVIEW:
        return
    Order.objects.filter(pk=order.pk).update(ai_disposition=Disposition.CLEAR)
    record_event(
        order=order,
        kind=EventKind.COMPLIANCE,
        actor=None,
        actor_kind=ActorKind.SYSTEM,
        reason=f"{prescription.pharmacy.name} accepted the resent prescription: review closed.",
        payload={"disposition": Disposition.CLEAR, "findings": []},
    )


def _error_text(exchange: Exchange) -> str:
    if exchange.status is None:
        return exchange.response_body[:200]  # the error class, e.g. ReadTimeout
    return f"HTTP {exchange.status}"


def _to_review(prescription: Prescription, *, code: str, message: str, **facts: str) -> None:
    """The pharmacy refused or reported something staff must look at: a ``code`` finding (with
    ``facts``, codes only) on the timeline, and the order needs review (the queue lists it)."""
    order = Order.objects.select_for_update(of=("self",)).get(pk=prescription.order_id)
    Order.objects.filter(pk=order.pk).update(ai_disposition=Disposition.NEEDS_REVIEW)
    finding = {"code": code, "severity": "needs_review", "message": message, "item": prescription.item.sku, **facts}
    record_event(
        order=order,
        kind=EventKind.COMPLIANCE,
        actor=None,
        actor_kind=ActorKind.SYSTEM,
        reason=message,
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


class NoRefillsLeft(Conflict):
    code = "NO_REFILLS_LEFT"
    default_message = "This prescription has no refills left."


class RefillNotPossible(Conflict):
    code = "REFILL_NOT_POSSIBLE"


def prescription_refill(*, order_id: Any, sku: str, actor: Any) -> Prescription:
    """Send the next fill of a line's prescription, counted against its allowed refills.

    From the portal (``actor`` a user who may order in the territory and see the order) or the
    resupply flow (``actor`` None). The original must have been accepted by the pharmacy, and
    the order may not be cancelled or rejected. Raises OrderNotFound, PermissionDenied,
    RefillNotPossible and NoRefillsLeft; the new fill is sent by the pharmacy agent
    (``prescription.refill`` through the outbox).
    """
    with transaction.atomic():
        order = order_lock(pk=order_id, actor=actor)
        if actor is not None and not territory_permits(
            user=actor, permission=TerritoryPermission.CREATE_ORDER, territory_id=order.territory_id
        ):
            raise PermissionDenied("You may not order refills in this territory.")
        fills = list(
            Prescription.objects.select_for_update()
            .select_related("item")
            .filter(order=order, item__sku=sku)
            .order_by("fill")
        )
        if not fills or fills[0].status != TransmissionStatus.SENT:
            raise RefillNotPossible(
                "Only a prescription the pharmacy has accepted can be refilled.", details={"sku": sku[:64]}
            )
        if order.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
            raise RefillNotPossible("The order was cancelled or rejected.", details={"status": order.status})
        item = fills[0].item
        if len(fills) > item.refills:
            raise NoRefillsLeft(details={"sku": sku[:64], "refills": item.refills})
        fill = len(fills)
        refill = Prescription.objects.create(
            order=order,
            item=item,
            territory_id=order.territory_id,
            pharmacy_id=fills[0].pharmacy_id,
            fill=fill,
            identifier=prescription_identifier(item, fill),
        )
        record_event(
            order=order,
            kind=EventKind.NOTE,
            actor=actor,
            actor_kind=ActorKind.SYSTEM if actor is None else ActorKind.STAFF,
            reason=f"Refill {fill} of {item.refills} sent to {fills[0].pharmacy.name}",
            payload={"prescription_id": str(refill.pk), "fill": fill},
        )
        outbox_publish(topic="prescription.refill", aggregate=order, payload={"prescription_id": str(refill.pk)})
    return refill


def refills_send_due(*, as_of: datetime | None = None) -> dict[str, int]:
    """The resupply flow: send the next fill of every prescription whose supply runs low.

    What is due comes from ``selectors.refills_due``; each refill goes through
    ``prescription_refill`` (actor None: the system), so it is counted against the allowed
    refills exactly as a portal refill is. Safe to run again: a line whose next fill exists is
    no longer due. Returns ``{"sent": n, "skipped": m}``.
    """
    counts = {"sent": 0, "skipped": 0}
    for prescription in refills_due(as_of=as_of or timezone.now()):
        try:
            prescription_refill(order_id=prescription.order_id, sku=prescription.item.sku, actor=None)
        except (RefillNotPossible, NoRefillsLeft):
            counts["skipped"] += 1
            continue
        counts["sent"] += 1
    return counts


def prescriptions_dead_letter(*, order_id: Any) -> int:
    """Retries are exhausted: the order's pending prescriptions wait for staff (``prescription_retry``)."""
    return Prescription.objects.filter(order_id=order_id, status=TransmissionStatus.PENDING).update(
        status=TransmissionStatus.DEAD_LETTER, updated_at=timezone.now()
    )


def prescription_retry(*, prescription_id: Any, actor: Any) -> Prescription:
    """Staff send a dead-lettered or refused prescription again (through the outbox: ``prescription.retry``).

    Needs the territory's review permission (PermissionDenied otherwise); any other prescription
    is returned unchanged. When a refused one is accepted, the order's review is closed.
    """
    with transaction.atomic():
        prescription = Prescription.objects.select_for_update().get(pk=prescription_id)
        if not territory_permits(
            user=actor, permission=TerritoryPermission.REVIEW_ORDER, territory_id=prescription.territory_id
        ):
            raise PermissionDenied("You may not resend prescriptions in this territory.")
        if prescription.status not in (TransmissionStatus.DEAD_LETTER, TransmissionStatus.REJECTED):
            return prescription
        prescription.status = TransmissionStatus.PENDING
        prescription.save(update_fields=["status", "updated_at"])
        outbox_publish(
            topic="prescription.retry", aggregate=prescription.order, payload={"prescription_id": str(prescription.pk)}
        )
    return prescription


# --- status back from the pharmacy ----------------------------------------------------------------

# What a dispense status does to the order (MedicationDispense.status, plus the vendors' "shipped").
PROGRESS_STATUSES = {DispenseStatus.PREPARATION, DispenseStatus.IN_PROGRESS, DispenseStatus.COMPLETED}
REFUSED_STATUSES = {DispenseStatus.DECLINED, DispenseStatus.CANCELLED}
SUPPLIED_STATUSES = {DispenseStatus.COMPLETED, DispenseStatus.SHIPPED}
# Valid R4 codes that say the dispense did not (or may not) go as prescribed, so a person must look
# (http://hl7.org/fhir/R4/codesystem-medicationdispense-status.html, R4 4.0.1 of 2019-10-30):
# stopped "actions implied by the dispense have been permanently halted, before all of them
# occurred"; entered-in-error "the dispense was entered in error and therefore nullified"; unknown
# "the authoring system does not know which of the status values applies". The order goes to review
# with a ``pharmacy_dispense_review`` finding naming the status; the order's state does not move.
REVIEW_STATUSES = {DispenseStatus.STOPPED, DispenseStatus.ENTERED_IN_ERROR, DispenseStatus.UNKNOWN}


def dispense_update_apply(*, pharmacy: Pharmacy, update: DispenseUpdate, channel: str, log: bool = True) -> str:
    """Record a dispense status on the pharmacy's prescription and move the order; returns what happened.

    In progress or dispensed → the order is ``in_progress``; shipped with a tracking number →
    ``shipped``; declined or cancelled → a ``pharmacy_declined`` finding puts the order in review;
    stopped, entered-in-error or unknown → a ``pharmacy_dispense_review`` finding naming the status
    puts it in review (once per change of status: a repeated report adds nothing).
    A status for a prescription of another pharmacy is treated as unknown (ids are not probed).
    Raises PrescriptionNotFound and ValidationFailed (unknown status, shipped without tracking).
    """
    if update.status not in DispenseStatus.values or not update.status:
        raise ValidationFailed(details={"status": [f"Unknown dispense status {update.status[:40]!r}."]})
    if update.status == DispenseStatus.SHIPPED and not update.tracking_number:
        raise ValidationFailed(details={"tracking_number": ["A shipped status needs its tracking number."]})
    with transaction.atomic():
        prescription = (
            Prescription.objects.select_for_update().filter(pharmacy=pharmacy, identifier=update.identifier).first()
        )
        if prescription is None:
            raise PrescriptionNotFound()
        previous_status = prescription.dispense_status
        prescription.dispense_status = update.status
        if update.tracking_number:
            prescription.tracking_number, prescription.carrier = update.tracking_number[:100], update.carrier[:50]
        if update.status in SUPPLIED_STATUSES and prescription.dispensed_at is None:
            prescription.dispensed_at = timezone.now()
        prescription.save(update_fields=["dispense_status", "tracking_number", "carrier", "dispensed_at", "updated_at"])
        if log:
            _log_update(prescription, update, channel)
        if update.status in REVIEW_STATUSES:
            return _review_for_status(prescription, update.status, changed=previous_status != update.status)
        return _order_follows(prescription, update)


def _log_update(prescription: Prescription, update: DispenseUpdate, channel: str) -> None:
    PharmacyLog.objects.create(
        order_id=prescription.order_id,
        territory_id=prescription.territory_id,
        pharmacy_id=prescription.pharmacy_id,
        prescription=prescription,
        direction="in",
        request_payload=json.dumps(dataclasses.asdict(update), sort_keys=True),
        outcome=channel,
    )


def _review_for_status(prescription: Prescription, status: str, *, changed: bool) -> str:
    """A stopped, entered-in-error or unknown dispense: the order goes to review, the status named
    (no free text from the pharmacy: it may hold PHI; the received message is in the PharmacyLog)."""
    if changed:
        label = DispenseStatus(status).label.lower()
        name = prescription.pharmacy.name
        _to_review(
            prescription,
            code="pharmacy_dispense_review",
            message=f"{name} reported the dispense as {label} ({status}): check with the pharmacy.",
            dispense_status=status,
        )
    return "order in review"


def _order_follows(prescription: Prescription, update: DispenseUpdate) -> str:
    order = Order.objects.select_for_update(of=("self",)).get(pk=prescription.order_id)
    name = prescription.pharmacy.name
    steps: list[tuple[str, str]] = []
    moving = update.status in PROGRESS_STATUSES or update.status == DispenseStatus.SHIPPED
    if moving and order.status in (OrderStatus.VERIFIED, OrderStatus.PAID):
        steps.append(("start_fulfillment", f"{name} is filling the prescription"))
    if update.status == DispenseStatus.SHIPPED and order.status in (
        OrderStatus.VERIFIED,
        OrderStatus.PAID,
        OrderStatus.IN_PROGRESS,
    ):
        carrier = f" with {update.carrier}" if update.carrier else ""
        steps.append(("ship", f"{name} shipped it{carrier}, tracking {update.tracking_number}"))
    if update.status in REFUSED_STATUSES:
        reason = f": {update.reason[:200]}" if update.reason else ""
        _to_review(
            prescription,
            code="pharmacy_declined",
            message=f"{prescription.pharmacy.name} {update.status} the prescription{reason}.",
        )
        return "order in review"
    for transition, reason in steps:
        order_transition(order_id=order.pk, actor=None, transition=transition, reason=reason)
    return f"order {steps[-1][0]}" if steps else "recorded"


# --- pharmacies -------------------------------------------------------------------------------------


def callback_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def pharmacy_for_callback(*, pharmacy_id: Any, token: str) -> Pharmacy | None:
    """The active pharmacy whose callback token this is (constant-time compare), else None."""
    key = _as_uuid(pharmacy_id)
    pharmacy = Pharmacy.objects.filter(pk=key, active=True).first() if key is not None else None
    if pharmacy is None or not pharmacy.callback_token_hash or not token:
        return None
    return pharmacy if hmac.compare_digest(pharmacy.callback_token_hash, callback_token_hash(token)) else None


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


FHIR_MODES = ("resource", "transaction")


def _settings_check(connector: str, mapping: dict[str, Any]) -> None:
    """A known connector; for fhir-r4 an optional ``mode`` of ``resource`` (default) or ``transaction``."""
    if connector not in REGISTRY:
        raise ValidationFailed(details={"connector": [f"Choose one of: {', '.join(sorted(REGISTRY))}."]})
    if not isinstance(mapping, dict):
        raise ValidationFailed(details={"mapping": ["Must be a JSON object."]})
    if connector == "fhir-r4" and mapping.get("mode", "resource") not in FHIR_MODES:
        raise ValidationFailed(details={"mapping": [f"mode must be one of: {', '.join(FHIR_MODES)}."]})


def pharmacy_create(
    *,
    actor: Any,
    name: str,
    connector: str,
    base_url: str,
    credentials: dict[str, str],
    mapping: dict[str, Any],
    territory_ids: list[Any],
    active: bool = True,
) -> tuple[Pharmacy, str]:
    """Register a pharmacy; returns it and its callback token (shown this once, stored as a hash).

    The actor needs ``manage_pharmacies`` on every territory it serves (PermissionDenied); the
    base URL must be https:// to a public address (``pharmacy.destinations``; ValidationFailed).
    """
    _settings_check(connector, mapping)
    base_url_check(base_url)
    for territory_id in territory_ids:
        if not territory_permits(
            user=actor, permission=TerritoryPermission.MANAGE_PHARMACIES, territory_id=territory_id
        ):
            raise PermissionDenied("You may not manage pharmacies for these territories.")
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        pharmacy = Pharmacy(
            name=name,
            connector=connector,
            base_url=base_url,
            mapping=mapping,
            active=active,
            callback_token_hash=callback_token_hash(token),
        )
        pharmacy.credentials = credentials
        with_history_user(pharmacy, actor)
        pharmacy.save()
        pharmacy.territories.set(territory_ids)
    return pharmacy, token


def pharmacy_update(
    *,
    actor: Any,
    pharmacy: Pharmacy,
    fields: dict[str, Any],
    credentials: dict[str, str] | None,
    territory_ids: list[Any],
) -> Pharmacy:
    """Change a pharmacy's settings; ``credentials`` None keeps the current secrets.

    The actor needs ``manage_pharmacies`` on every territory it served and will serve; a new
    base URL must be https:// to a public address (``pharmacy.destinations``; ValidationFailed).
    """
    current = [str(pk) for pk in pharmacy.territories.values_list("pk", flat=True)]
    for territory_id in {*current, *(str(pk) for pk in territory_ids)}:
        if not territory_permits(
            user=actor, permission=TerritoryPermission.MANAGE_PHARMACIES, territory_id=territory_id
        ):
            raise PermissionDenied("You may not manage pharmacies for these territories.")
    _settings_check(fields.get("connector", pharmacy.connector), fields.get("mapping", pharmacy.mapping) or {})
    if "base_url" in fields:
        base_url_check(fields["base_url"])
    with transaction.atomic():
        for name, value in fields.items():
            setattr(pharmacy, name, value)
        if credentials is not None:
            pharmacy.credentials = credentials
        with_history_user(pharmacy, actor)
        pharmacy.save()
        pharmacy.territories.set(territory_ids)
    return pharmacy


def callback_token_rotate(*, actor: Any, pharmacy: Pharmacy) -> str:
    """Issue a new callback token (the old one stops working); returned this once."""
    pharmacy_update(
        actor=actor,
        pharmacy=pharmacy,
        fields={},
        credentials=None,
        territory_ids=list(pharmacy.territories.values_list("pk", flat=True)),
    )
    token = secrets.token_urlsafe(32)
    Pharmacy.objects.filter(pk=pharmacy.pk).update(callback_token_hash=callback_token_hash(token))
    return token


def credentials_hint(pharmacy: Pharmacy) -> dict[str, str]:
    """The credentials as staff may see them: which keys are set, secrets masked to their last four."""
    return {
        key: (value if key.endswith("_header") else f"••••{str(value)[-4:]}")
        for key, value in sorted(pharmacy.credentials.items())
    }


# Dispense states after which nothing more is expected from the pharmacy (stopped is permanent;
# after entered-in-error or unknown the pharmacy may still report the real status).
FINAL_DISPENSE_STATUSES = (
    DispenseStatus.SHIPPED,
    DispenseStatus.DECLINED,
    DispenseStatus.CANCELLED,
    DispenseStatus.STOPPED,
)


def prescriptions_poll() -> dict[str, int]:
    """Ask each pharmacy about its open prescriptions (sent, not yet shipped or refused); apply what changed.

    Every poll is logged; a pharmacy that cannot be reached is asked again next time. Returns counts.
    """
    counts = {"polled": 0, "changed": 0, "failed": 0}
    open_prescriptions = (
        Prescription.objects.filter(status=TransmissionStatus.SENT, pharmacy__active=True)
        .exclude(dispense_status__in=FINAL_DISPENSE_STATUSES)
        .select_related("pharmacy")
    )
    for prescription in open_prescriptions:
        exchange, update = connector_for(prescription.pharmacy).poll(prescription.pharmacy, prescription)
        counts["polled"] += 1
        with transaction.atomic():
            _log(prescription, dataclasses.replace(exchange, outcome=LogOutcome.POLL) if update else exchange)
        if update is None:
            counts["failed"] += exchange.outcome != LogOutcome.ACCEPTED
            continue
        unchanged = update.status == prescription.dispense_status and (
            not update.tracking_number or update.tracking_number == prescription.tracking_number
        )
        if unchanged or update.identifier != prescription.identifier:
            continue
        try:
            dispense_update_apply(pharmacy=prescription.pharmacy, update=update, channel=LogOutcome.POLL, log=False)
        except (ValidationFailed, PrescriptionNotFound):
            counts["failed"] += 1
            continue
        counts["changed"] += 1
    return counts
